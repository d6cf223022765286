"""Span-level detectors: which downstream got slow, whether calls per request grew, who drives the load,
and where errors start.

- `self_time_shift`: per dependency (the `peer.service`/`db.system` a client span calls, else the
  service/operation's own self time), the baseline and incident distributions of its time are
  compared with Mann-Whitney U and the p95 ratio; onset fitted on the per-bucket mean log duration
  weighted by the spans in the bucket (`stats.onset_time`), sampled spans being few. `details` carry the
  call-rate ratio, so the ranker can tell a dependency that slowed by itself from one slowed by extra
  load sent to it.
- `fanout_growth`: calls to a dependency per server request (per trace) before vs during the incident:
  the signature of a cache that stopped serving and lets every read through to the database.
- `caller_share`: for a dependency whose call volume rose, which caller (client address of the
  trace's root, or the calling service) accounts for the extra calls.
- `error_origin`: in failing traces, the deepest span with an error status, counted per service/operation.

Thresholds: 30 spans per side, p95 up 50% and 5 ms with p < 1e-4; fan-out and the calls whose caller is
looked for up `CALLS_ROSE_RATIO` (the ranker's "calls rose", one value for both); caller share >= 50%.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rca.aggregates import aggregate_calls, dependency_expr, log_duration_expr
from rca.detectors import register
from rca.detectors.stats import (
    bucket_expr,
    confidence_from_p,
    dense_series,
    mann_whitney_p,
    onset_at,
    onset_time,
    to_series,
    trace_sample_basis,
    window_masks,
)
from rca.detectors.traffic import in_window
from rca.findings import (
    CALLS_ROSE_RATIO,
    CallsDetails,
    ErrorOriginDetails,
    OperationCallsDetails,
    SelfTimeDetails,
)
from rca.model import AnalysisContext, Dataset, Finding

MIN_N = 30


def _call_series(dataset: Dataset, context: AnalysisContext) -> pl.DataFrame | None:
    """Per (dependency, bucket): every call's count (`n`) and mean log duration (`log_mean`), when the spans are
    a sample of traces whose inputs carry call aggregates at a width the bucket is a multiple of (the calls
    of inputs read whole are aggregated from their rows); None otherwise (the rows are every call)."""
    aggregates = dataset.call_aggregates
    if aggregates is None or context.bucket_s % aggregates.bucket_s:
        return None
    carried = aggregates.counts.get_column("origin").unique().implode()
    whole = aggregate_calls(dataset.spans.filter(~pl.col("origin").is_in(carried)), aggregates.bucket_s)
    return (
        pl.concat([aggregates.counts, whole]).group_by("dependency", bucket_expr(context, "bucket"))
        .agg(pl.col("calls").sum().alias("n"), (pl.col("log_ms_sum").sum() / pl.col("calls").sum()).alias("log_mean"))
        .with_columns(pl.lit(1).alias("k"))
    )


@register("spans", order=60)
def detect_spans(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    spans = dataset.spans
    if spans.height == 0:
        return []
    base_mask, inc_mask, grid = window_masks(context)
    in_base = in_window("ts", context.baseline.start, context.baseline.end)
    in_inc = in_window("ts", context.incident.start, context.incident.end)
    spans = spans.with_columns(bucket_expr(context), dependency_expr().alias("dependency"))
    basis = trace_sample_basis(dataset)
    every_call = _call_series(dataset, context)
    onset_basis = basis if every_call is None or basis is None else f"{basis}; the onset from every call (calls and mean log duration per bucket)"
    findings: list[Finding] = []
    base_s = max(context.observed_s(context.baseline), 1e-9)
    inc_s = max(context.observed_s(context.incident), 1e-9)

    calls = spans.filter(pl.col("dependency").is_not_null() & pl.col("duration_ms").is_not_null())
    servers = spans.filter(pl.col("kind") == "server")
    for (dependency,), rows in sorted(calls.group_by("dependency"), key=lambda kv: str(kv[0][0])):
        before = rows.filter(in_base)["duration_ms"].to_numpy()
        after = rows.filter(in_inc)["duration_ms"].to_numpy()
        if before.size < MIN_N or after.size < MIN_N:
            continue
        p95b, p95a = float(np.quantile(before, 0.95)), float(np.quantile(after, 0.95))
        calls_ratio = (after.size / inc_s) / max(before.size / base_s, 1e-9)
        # calls per server request, per window
        req_b = max(servers.filter(in_base).height, 1)
        req_a = max(servers.filter(in_inc).height, 1)
        fan_b, fan_a = before.size / req_b, after.size / req_a
        operations = rows.filter(in_inc).group_by("name").len().sort(["len", "name"], descending=[True, False])["name"].head(3).to_list()
        operation_names = tuple(str(name) for name in operations)
        per_bucket = (
            rows.group_by("bucket")
            .agg(pl.col("duration_ms").quantile(0.95).alias("p95"), pl.len().alias("n"),
                 log_duration_expr().mean().alias("log_mean"))
            .with_columns(pl.lit(1).alias("k"))
        )
        values = dense_series(per_bucket, ["k"], "p95", context, fill=None).get((1,), np.full(len(grid), np.nan))
        if p95a >= 1.5 * p95b and p95a - p95b >= 5.0:
            p = mann_whitney_p(before, after)
            if p < 1e-4:
                # Spans are sampled: a few per bucket. The onset is fitted on the bucket's mean log duration,
                # weighted by its spans (the efficient location statistic of a log-normal-like latency),
                # rather than on a p95 of three values; the series shown stays the p95.
                weighted = per_bucket if every_call is None else every_call.filter(pl.col("dependency") == dependency)
                log_mean = dense_series(weighted, ["k"], "log_mean", context, fill=None).get((1,), np.full(len(grid), np.nan))
                counts = dense_series(weighted, ["k"], "n", context, fill=0.0).get((1,), np.zeros(len(grid)))
                fitted = onset_time(log_mean, base_mask, inc_mask, smooth=1, weights=counts, noise="gaussian")
                if fitted is None:
                    # robust z floors its scale at half the square root of the level (meant for counts): on a
                    # log scale of ~3-5 that hides a doubling (+0.69), so the series is tried centred on its
                    # baseline, where the spread of the buckets alone sets the scale
                    centred = log_mean - np.nanmedian(np.where(base_mask, log_mean, np.nan))
                    fitted = onset_time(centred, base_mask, inc_mask, smooth=1, weights=counts, noise="gaussian")
                onset = onset_at(grid, fitted, context.bucket_s)
                callers = rows.filter(in_inc)["service"].drop_nulls().unique().sort().to_list()
                findings.append(
                    Finding(
                        detector="spans", kind="self_time_shift", dimension="operation", subject=str(dependency), metric="p95_ms",
                        onset=onset, baseline=round(p95b, 2), incident=round(p95a, 2),
                        magnitude=round(p95a / max(p95b, 1e-6), 3), confidence=confidence_from_p(p), signal="trace",
                        where=", ".join(callers) or None, series=to_series(values, grid, context, f"p95 ms of calls to {dependency}"),
                        details=SelfTimeDetails(dependency=str(dependency), operations=operation_names, calls_ratio=round(calls_ratio, 3),
                                                calls_per_request_before=round(fan_b, 3), calls_per_request_after=round(fan_a, 3),
                                                p_value=float(f"{p:.3g}"), n_before=int(before.size), n_after=int(after.size), basis=onset_basis),
                    )
                )
        if fan_a >= CALLS_ROSE_RATIO * fan_b and after.size >= MIN_N:
            findings.append(
                Finding(
                    detector="spans", kind="fanout_growth", dimension="operation", subject=str(dependency), metric="calls_per_request",
                    onset=None, baseline=round(fan_b, 3), incident=round(fan_a, 3), magnitude=round(fan_a / max(fan_b, 1e-6), 3),
                    confidence=min(1.0, (fan_a / max(fan_b, 1e-6) - 1.0)), signal="trace", where=None,
                    details=OperationCallsDetails(dependency=str(dependency), operations=operation_names, calls_ratio=round(calls_ratio, 3), basis=basis),
                )
            )
        if calls_ratio >= CALLS_ROSE_RATIO:
            # who drives the extra calls: the client of the trace's server span at the edge
            roots = spans.filter(pl.col("kind") == "server").select("trace_id", pl.coalesce("client_address", "service").alias("caller"))
            roots = roots.unique(subset=["trace_id"], keep="first")
            by_caller = (
                rows.join(roots, on="trace_id", how="left")
                .group_by("caller")
                .agg(in_base.sum().alias("b"), in_inc.sum().alias("i"))
                .with_columns((pl.col("i") - pl.col("b") * inc_s / base_s).alias("excess"))
                .sort(["excess", "caller"], descending=[True, False], nulls_last=True)
            )
            total = float(by_caller.filter(pl.col("excess") > 0)["excess"].sum())
            if total > 0 and by_caller.height:
                caller, b, i, excess = by_caller.row(0)
                share = excess / total
                if caller is not None and share >= 0.5:
                    findings.append(
                        Finding(
                            detector="spans", kind="caller_share", dimension="caller", subject=str(caller), metric="calls_per_min",
                            onset=None, baseline=round(b / base_s * 60, 3), incident=round(i / inc_s * 60, 3),
                            magnitude=round((i / inc_s) / max(b / base_s, 1e-9), 3) if b else float(i), confidence=min(1.0, share),
                            signal="trace", where=str(dependency), share_explained=round(share, 3),
                            details=CallsDetails(dependency=str(dependency), calls_ratio=round(calls_ratio, 3), basis=basis),
                        )
                    )
    findings.extend(_error_origin(spans, in_inc, basis))
    return findings


def _error_origin(spans: pl.DataFrame, in_inc: pl.Expr, basis: str | None) -> list[Finding]:
    errors = spans.filter(in_inc & (pl.col("status") == "error"))
    if errors.height < 10:
        return []
    # deepest error: an error span none of whose children in the same trace is an error
    erroring_parents = errors.select("trace_id", pl.col("parent_span_id").alias("span_id")).unique()
    leaves = errors.join(erroring_parents, on=["trace_id", "span_id"], how="anti")
    per = leaves.group_by("service", "name").len().sort(["len", "service", "name"], descending=[True, False, False])
    total = leaves.height
    out = []
    for service, name, n in per.head(3).iter_rows():
        out.append(
            Finding(
                detector="spans", kind="error_origin", dimension="operation", subject=f"{service} {name}", metric="failing_traces",
                onset=None, baseline=None, incident=float(n), magnitude=float(n), confidence=min(1.0, n / max(total, 1)),
                signal="trace", where=service, share_explained=round(n / max(total, 1), 3), details=ErrorOriginDetails(traces=int(n), basis=basis),
            )
        )
    return out
