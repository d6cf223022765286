"""Latency: shifts of p50/p95/p99 per endpoint, service and host, within each vantage point.

Baseline and incident distributions of `duration_ms` are compared per subject: the quantile ratio
gives the size of the shift, a one-sided Mann-Whitney U test its confidence (rank based, so a few
outliers neither fake nor hide a shift). The onset is the first bucket of the shift in the subject's
per-bucket p95 series.

Reporting threshold: at least 20 requests on each side, p95 up by 30% and 20 ms, Mann-Whitney
p < 1e-4.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors import register
from detectors.stats import (
    bucket_expr,
    confidence_from_p,
    dense_series,
    mann_whitney_p,
    onset_index,
    to_series,
    window_masks,
)
from detectors.traffic import in_window, vantages
from rca.model import AnalysisContext, Dataset, Finding

MIN_N = 20
MIN_RATIO = 1.3
MIN_DELTA_MS = 20.0
MAX_P = 1e-4


@register("latency", order=20)
def detect_latency(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    base_mask, inc_mask, grid = window_masks(context)
    for signal, service, rows in vantages(dataset.requests.filter(pl.col("duration_ms").is_not_null())):
        rows = rows.with_columns(
            bucket_expr(context),
            pl.when(in_window("ts", context.baseline.start, context.baseline.end)).then(pl.lit("b"))
            .when(in_window("ts", context.incident.start, context.incident.end)).then(pl.lit("i"))
            .otherwise(None).alias("_w"),
            pl.lit(str(service)).alias("_service"),
        )
        vantage = f"{signal}:{service}"
        for dim, col in (("service", "_service"), ("endpoint", "endpoint"), ("host", "host")):
            stats = (
                rows.filter(pl.col("_w").is_not_null() & pl.col(col).is_not_null())
                .group_by(col, "_w")
                .agg(
                    pl.len().alias("n"),
                    pl.col("duration_ms").quantile(0.5).alias("p50"),
                    pl.col("duration_ms").quantile(0.95).alias("p95"),
                    pl.col("duration_ms").quantile(0.99).alias("p99"),
                )
            )
            wide = stats.filter(pl.col("_w") == "b").join(stats.filter(pl.col("_w") == "i"), on=col, suffix="_i")
            wide = wide.filter(
                (pl.col("n") >= MIN_N) & (pl.col("n_i") >= MIN_N)
                & (pl.col("p95_i") >= MIN_RATIO * pl.col("p95")) & (pl.col("p95_i") - pl.col("p95") >= MIN_DELTA_MS)
            ).sort(col)
            if wide.height == 0:
                continue
            if dim == "host" and wide.height == rows.select(pl.col("host").n_unique()).item():
                continue  # all hosts alike: not a host-local shift
            subjects = wide[col].to_list()
            chosen = rows.filter(pl.col(col).is_in(subjects))
            per_bucket = chosen.group_by(col, "bucket").agg(pl.col("duration_ms").quantile(0.95).alias("p95"))
            series = dense_series(per_bucket, [col], "p95", context, fill=None)
            # one pass to split the shifted subjects' rows, instead of a full scan per subject
            parts = chosen.filter(pl.col("_w").is_not_null()).select(col, "_w", "duration_ms", "method").partition_by(col, as_dict=True)
            for row in wide.iter_rows(named=True):
                subject = row[col]
                sub = parts[(subject,)]
                before = sub.filter(pl.col("_w") == "b")["duration_ms"].to_numpy()
                after = sub.filter(pl.col("_w") == "i")["duration_ms"].to_numpy()
                p = mann_whitney_p(before, after)
                if p >= MAX_P:
                    continue
                values = series.get((subject,), np.full(len(grid), np.nan))
                filled = np.where(np.isfinite(values), values, np.nanmedian(values[base_mask]) if np.isfinite(values[base_mask]).any() else 0.0)
                onset = onset_index(filled, base_mask, inc_mask, smooth=1)
                method = sub["method"].mode().first() if sub["method"].null_count() < sub.height else None
                findings.append(
                    Finding(
                        detector="latency", kind="latency_shift", dimension=dim, subject=str(subject), metric="p95_ms",
                        onset=grid[onset] if onset is not None else None,
                        baseline=round(row["p95"], 1), incident=round(row["p95_i"], 1),
                        magnitude=round(row["p95_i"] / max(row["p95"], 1e-6), 3), confidence=confidence_from_p(p),
                        signal=signal, where=str(service),
                        peak=grid[int(np.nanargmax(np.where(inc_mask, filled, -1)))],
                        series=to_series(values, grid, context, f"p95 ms {dim} {subject}, {vantage}"),
                        details={
                            "vantage": vantage, "method": method, "p_value": float(f"{p:.3g}"),
                            "p50_before_ms": round(row["p50"], 1), "p50_after_ms": round(row["p50_i"], 1),
                            "p95_before_ms": round(row["p95"], 1), "p95_after_ms": round(row["p95_i"], 1),
                            "p99_before_ms": round(row["p99"], 1), "p99_after_ms": round(row["p99_i"], 1),
                            "n_before": int(row["n"]), "n_after": int(row["n_i"]),
                        },
                    )
                )
    return findings
