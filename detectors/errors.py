"""Errors: 5xx share per endpoint, service and host (per vantage), and error-level log events per
service and host.

The 5xx share is compared between windows with a two-proportion z-test; error-level events (ERROR,
FATAL) as Poisson counts against the baseline rate. Onsets from the per-bucket series. Message-level
templates (new or bursting messages) are the template detector's (`detectors.templates`).

Reporting threshold: 5xx share up by 1 percentage point and 2x with z >= 4; error events up 3x with
Poisson z >= 5 and at least 10 of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.stats import (
    WINDOW_BASELINE,
    WINDOW_INCIDENT,
    aggregated_vantages,
    bucket_expr,
    bucket_index_expr,
    confidence_from_z,
    dense_series,
    exact_aggregates,
    onset_at,
    onset_time,
    per_minute,
    poisson_excess_z,
    subject_codes,
    to_series,
    two_proportion_z,
    weighted_events,
    window_code_expr,
    window_masks,
)
from rca.detectors.traffic import in_window, vantages
from rca.findings import ErrorEventsDetails, ErrorRateDetails
from rca.model import AnalysisContext, Dataset, Finding

COLUMNS = ["ts", "status", "endpoint", "host"]
DIMENSIONS = (("service", None), ("endpoint", "endpoint"), ("host", "host"))


# per dimension of a vantage: subject codes, their names, window code, bucket index, requests (None: one
# per row), 5xx errors
CountInputs = tuple[np.ndarray, list, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]


def _count_inputs(dataset: Dataset, context: AnalysisContext, n_buckets: int) -> Iterator[tuple[str, str | None, str, CountInputs]]:
    """(signal, service, dimension, counts) for every vantage and dimension: from the rows, or from the
    exact aggregates for the vantages they carry (whose rows are only a sample)."""
    aggregates = exact_aggregates(dataset.request_aggregates, context)
    carried = aggregated_vantages(aggregates)
    requests = dataset.requests.select(["signal", "service", *COLUMNS])
    if requests.get_column("status").null_count():  # a filter copies every row: only when some lack a status
        requests = requests.filter(pl.col("status").is_not_null())
    for signal, service, rows in vantages(requests):
        if (signal, service) in carried:
            continue
        keys = rows.select(window_code_expr(context), bucket_index_expr(context).clip(0, n_buckets - 1), (pl.col("status") >= 500).alias("_err"))
        window, bucket, err = keys["_w"].to_numpy().astype(np.int64), keys["_bucket"].to_numpy().astype(np.int64), keys["_err"].to_numpy().astype(float)
        for dim, col in DIMENSIONS:
            # Counts per (subject, window) and per (subject, bucket) by bincount over dense subject codes:
            # one hashing pass per dimension, the rest is integer arithmetic.
            codes, names = (np.zeros(rows.height, dtype=np.int64), [str(service)]) if col is None else subject_codes(rows[col])
            yield signal, service, dim, (codes, names, window, bucket, None, err)
    if aggregates is None:
        return
    counts = aggregates.counts.filter(pl.col("with_status") > 0)
    totals = (
        counts.filter(pl.col("dimension") == "service").group_by("signal", "service").agg(pl.col("with_status").sum().alias("n"))
        .filter(pl.col("n") >= 50).sort(["n", "signal", "service"], descending=[True, False, False], nulls_last=True)
    )
    for signal, service, _ in totals.iter_rows():
        mine = counts.filter((pl.col("signal") == signal) & pl.col("service").eq_missing(service))
        for dim, col in DIMENSIONS:
            rows = mine.filter(pl.col("dimension") == dim).select(
                "value", window_code_expr(context, "bucket"), bucket_index_expr(context, "bucket").clip(0, n_buckets - 1), "with_status", "errors"
            )
            codes, names = (np.zeros(rows.height, dtype=np.int64), [str(service)]) if col is None else subject_codes(rows["value"])
            yield signal, service, dim, (
                codes, names, rows["_w"].to_numpy().astype(np.int64), rows["_bucket"].to_numpy().astype(np.int64),
                rows["with_status"].to_numpy().astype(float), rows["errors"].to_numpy().astype(float),
            )


@register("errors", order=30)
def detect_errors(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    base_mask, inc_mask, grid = window_masks(context)
    n_buckets = len(grid)
    in_base = in_window("ts", context.baseline.start, context.baseline.end)
    in_inc = in_window("ts", context.incident.start, context.incident.end)
    for signal, service, dim, counts in _count_inputs(dataset, context, n_buckets):
        vantage = f"{signal}:{service}"
        codes, names, window, bucket, n_weight, err = counts
        k = len(names)
        per_window = codes * 3 + window
        n = np.bincount(per_window, weights=n_weight, minlength=3 * k).reshape(k, 3)
        e = np.bincount(per_window, weights=err, minlength=3 * k).reshape(k, 3)
        flagged = []
        for code in sorted((c for c in range(k) if names[c] is not None), key=lambda c: str(names[c])):
            nb, eb = int(n[code, WINDOW_BASELINE]), int(e[code, WINDOW_BASELINE])
            ni, ei = int(n[code, WINDOW_INCIDENT]), int(e[code, WINDOW_INCIDENT])
            if ni < 20 or nb < 20:
                continue
            rb, ri = eb / nb, ei / ni
            z = two_proportion_z(eb, nb, ei, ni)
            if ri - rb >= 0.01 and ri >= 2 * rb and z >= 4:
                flagged.append((code, nb, eb, ni, ei, rb, ri, z))
        if not flagged:
            continue
        per_bucket = codes * n_buckets + bucket
        nbk = np.bincount(per_bucket, weights=n_weight, minlength=k * n_buckets).reshape(k, n_buckets)
        ebk = np.bincount(per_bucket, weights=err, minlength=k * n_buckets).reshape(k, n_buckets)
        for code, nb, eb, ni, ei, rb, ri, z in flagged:
            subject = names[code]
            values = np.divide(ebk[code], nbk[code], out=np.zeros(n_buckets), where=nbk[code] > 0)
            # a share of n requests: variance p(1-p)/n, about level/n for small shares
            share = np.where(nbk[code] > 0, values, np.nan)
            onset = onset_at(grid, onset_time(share, base_mask, inc_mask, weights=nbk[code], noise="share"), context.bucket_s)
            findings.append(
                Finding(
                    detector="errors", kind="error_rate", dimension=dim, subject=str(subject), metric="error_rate",
                    onset=onset, baseline=round(rb, 4), incident=round(ri, 4),
                    magnitude=round(ri / max(rb, 1e-4), 3), confidence=confidence_from_z(z), signal=signal,
                    where=str(service), excess=float(ei - rb * ni),
                    series=to_series(values, grid, context, f"5xx share {dim} {subject}, {vantage}"),
                    details=ErrorRateDetails(vantage=vantage, errors_before=int(eb), requests_before=int(nb),
                                             errors_after=int(ei), requests_after=int(ni), z=round(z, 1)),
                )
            )
    events = weighted_events(dataset).filter(pl.col("level").is_in(["ERROR", "FATAL"]))
    base_s = context.observed_s(context.baseline)
    inc_s = context.observed_s(context.incident)
    if events.height and base_s > 0:
        events = events.with_columns(bucket_expr(context))
        for dim in ("service", "host"):
            per = (
                events.filter(pl.col(dim).is_not_null())
                .group_by(dim, "signal")
                .agg(pl.col("n").filter(in_base).sum().alias("b"), pl.col("n").filter(in_inc).sum().alias("i"))
                .sort(dim, "signal")
            )
            for subject, signal, b, i in per.iter_rows():
                expected = b * inc_s / base_s
                z = poisson_excess_z(i, expected)
                if i < 10 or i < 3 * max(expected, 1.0) or z < 5:
                    continue
                sub = events.filter((pl.col(dim) == subject) & (pl.col("signal") == signal)).group_by("bucket").agg(pl.col("n").sum().alias("len")).with_columns(pl.lit(1).alias("k"))
                values = dense_series(sub, ["k"], "len", context).get((1,), np.zeros(len(grid)))
                onset = onset_at(grid, onset_time(values, base_mask, inc_mask), context.bucket_s)
                findings.append(
                    Finding(
                        detector="errors", kind="error_rate", dimension=dim, subject=str(subject), metric="error_events_per_min",
                        onset=onset, baseline=per_minute(b, base_s),
                        incident=per_minute(i, inc_s), magnitude=round(i / max(expected, 0.5), 3),
                        confidence=confidence_from_z(z), signal=signal, where=str(subject), excess=float(i - expected),
                        series=to_series(values, grid, context, f"error events {dim} {subject}"),
                        details=ErrorEventsDetails(errors_before=int(b), errors_after=int(i), z=round(z, 1)),
                    )
                )
    return findings
