"""Calls that vanish: a service that stops making the calls its requests used to make.

An exception or a wrong return value inside a service short-circuits its code path: the calls it made
after that point vanish while its own requests keep coming. Per edge (caller service -> callee service,
from the traces' parent links, `service_calls.call_edges`) the calls per request of the caller are
compared before and after a split:
- the baseline and incident windows when the caller's server requests fill both with `MIN_REQUESTS`;
- else splits inside the data at `SPLIT_QUANTILES` of the caller's own request times (traces often
  cover only a minute around the fault), each side holding `MIN_REQUESTS` requests.
Under no change, the edge's calls after the split are Binomial(all its calls, the share of the
caller's requests that come after it) (the conditional test of two Poisson rates, so the baseline's
own uncertainty counts). The lower tail p, times the splits tried, must fall below `MAX_P`, and the
calls per request fall to `MAX_RATE_RATIO` of before or less. The calls per second must fall too, by the
same test against the share of the time after the split: a caller whose requests rose with requests of
another kind (a surge on its other routes) makes fewer calls per request while no call vanished. The finding's subject is the caller:
the code that stopped calling. Whether a callee whose calls dropped everywhere is rather to blame is
the ranker's call.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.service_calls import call_edges
from rca.detectors.stats import binomial_lower_p, confidence_from_p, trace_sample_basis
from rca.detectors.traffic import in_window
from rca.findings import CallDropDetails
from rca.model import AnalysisContext, Dataset, Finding

MIN_REQUESTS = 5  # requests of the caller on each side of a split: a handful suffices when all calls vanish
MAX_P = 1e-6
MAX_RATE_RATIO = 0.5
SPLIT_QUANTILES = np.linspace(0.2, 0.8, 13)


@register("call_drops", order=63)
def detect_call_drops(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    spans = dataset.spans
    if spans.height == 0:
        return []
    edges = call_edges(spans).select("ts", "caller", "callee")
    if edges.height == 0:
        return []
    requests = spans.filter((pl.col("kind") == "server") & pl.col("service").is_not_null()).select("ts", pl.col("service").alias("caller"))
    fan_out = dict(edges.group_by("caller").agg(pl.col("callee").n_unique()).iter_rows())
    fan_in = dict(edges.group_by("callee").agg(pl.col("caller").n_unique()).iter_rows())
    findings: list[Finding] = []
    for (caller,), own in sorted(requests.group_by("caller"), key=lambda kv: str(kv[0][0])):
        if caller not in fan_out:
            continue
        calls = edges.filter(pl.col("caller") == caller)
        splits, reference, own, calls = _splits(own, calls, context)
        if not splits:
            continue
        request_ts = own["ts"].sort()
        time_share = _time_shares(splits, reference, request_ts, context)
        for (callee,), rows in sorted(calls.group_by("callee"), key=lambda kv: str(kv[0][0])):
            call_ts = rows["ts"].sort()
            best = None
            for split, after_share in zip(splits, time_share, strict=True):
                r_after = int(request_ts.len() - request_ts.search_sorted(split))
                r_before = request_ts.len() - r_after
                c_after = int(call_ts.len() - call_ts.search_sorted(split))
                c_before = call_ts.len() - c_after
                if r_before < MIN_REQUESTS or r_after < MIN_REQUESTS or c_before < MIN_REQUESTS:
                    continue
                rate_ratio = (c_after / r_after) / (c_before / r_before)
                p = binomial_lower_p(c_after, c_before + c_after, r_after / (r_before + r_after)) * len(splits)
                # fewer calls per second too: when the caller's requests rose with requests of another kind (a
                # surge on its other routes), its calls per request fall while every call is still made
                p_time = binomial_lower_p(c_after, c_before + c_after, after_share) * len(splits)
                if rate_ratio <= MAX_RATE_RATIO and p < MAX_P and p_time < MAX_P and (best is None or p < best[0]):
                    best = (p, split, r_before, r_after, c_before, c_after)
            if best is None:
                continue
            p, split, r_before, r_after, c_before, c_after = best
            before, after = c_before / r_before, c_after / r_after
            findings.append(Finding(
                detector="call_drops", kind="call_drop", dimension="edge", subject=str(caller), metric="calls_per_request",
                onset=split, baseline=round(before, 4), incident=round(after, 4),
                magnitude=round(before / max(after, 0.5 / r_after), 3), confidence=confidence_from_p(p), signal="trace",
                details=CallDropDetails(
                    caller=str(caller), callee=str(callee), reference=reference, requests_before=r_before, requests_after=r_after,
                    calls_before=c_before, calls_after=c_after, p=float(p), caller_fan_out=int(fan_out[caller]),
                    callee_fan_in=int(fan_in[callee]), basis=trace_sample_basis(dataset),
                ),
            ))
    return findings


def _time_shares(splits: list, reference: str, request_ts: pl.Series, context: AnalysisContext) -> list[float]:
    """Per split, the share of the tested time that lies after it: the windows' observed seconds, or the
    caller's own requests' span cut at the split."""
    if reference == "windows":
        base_s, inc_s = context.observed_s(context.baseline), context.observed_s(context.incident)
        return [inc_s / max(base_s + inc_s, 1e-9)] * len(splits)
    first: datetime = request_ts.min()  # type: ignore[assignment]
    last: datetime = request_ts.max()  # type: ignore[assignment]
    span_s = max((last - first).total_seconds(), 1e-9)
    return [min(max((last - split).total_seconds() / span_s, 0.0), 1.0) for split in splits]


def _splits(own: pl.DataFrame, calls: pl.DataFrame, context: AnalysisContext) -> tuple[list, str, pl.DataFrame, pl.DataFrame]:
    """The split times to test for one caller, the reference they stand for, and its requests and calls
    restricted to the span the test covers."""
    base = in_window("ts", context.baseline.start, context.baseline.end)
    inc = in_window("ts", context.incident.start, context.incident.end)
    if own.filter(base).height >= MIN_REQUESTS and own.filter(inc).height >= MIN_REQUESTS:
        return [context.incident.start], "windows", own.filter(base | inc), calls.filter(base | inc)
    if own.height < 2 * MIN_REQUESTS:
        return [], "", own, calls
    ts = own["ts"].sort()
    picks = sorted({int(q * (ts.len() - 1)) for q in SPLIT_QUANTILES})
    return [ts[i] for i in picks], "own earlier requests", own, calls
