"""Latency read from request aggregates' histograms, for the vantages whose rows are only a sample.

`Dataset.request_aggregates` carries, per (vantage, bucket, dimension, value), exact counts and a
log-binned latency histogram (`rca.aggregates`: DDSketch's mapping, relative accuracy SKETCH_ALPHA = 1%).
The detectors that compare latency distributions read, for the vantages it carries:
- counts and means exactly (sums of the counts);
- p50/p95/p99 of a window or a bucket from the merged histograms (`sketch_quantiles`): each within 1%
  (relative) of the nearest-rank quantile of every row;
- Mann-Whitney U from the histograms (`binned_mann_whitney_p`): U only needs ranks, and the histograms
  rank every request against every other up to the width of a bin (values in one bin, within 2% of each
  other, count as ties). The test sees every request, as the rows' test sees up to `max_n` of a side:
  the effective sizes are capped the same way, so its p-value matches the rows' (a uniform subsample of
  `max_n` keeps the AUC, U / (n1 n2), and shrinks n). No sample of rows enters.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from rca.aggregates import sketch_quantiles
from rca.detectors.stats import bucket_index_expr, window_code_expr
from rca.model import SKETCH_ALPHA, AnalysisContext, RequestAggregates

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
# What the details of a finding read from histograms say (its figures' basis).
HISTOGRAM_BASIS = f"every request, from the request aggregates: counts exact, quantiles from latency histograms (within {SKETCH_ALPHA:.0%})"
TESTED_BASIS = f"{HISTOGRAM_BASIS}, Mann-Whitney U on the histograms' bins"


def vantage_sketches(aggregates: RequestAggregates, signal: str, service: str | None, dimension: str, context: AnalysisContext,
                     n_buckets: int, metric: str = "duration_ms") -> pl.DataFrame:
    """One vantage's histograms of `dimension` (value, bin, count) with each bucket's window code `_w` and
    index `_bucket` in the analysis grid (clipped to it)."""
    mine = (
        (pl.col("signal") == signal) & pl.col("service").eq_missing(service)
        & (pl.col("dimension") == dimension) & (pl.col("metric") == metric)
    )
    return aggregates.sketches.filter(mine).select(
        "value", "bin", "count", window_code_expr(context, "bucket"), bucket_index_expr(context, "bucket").clip(0, max(n_buckets - 1, 0)),
    )


def window_quantiles(sketches: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Per group of `by`: `n` (values) and p50/p95/p99 from the merged histograms."""
    return sketch_quantiles(sketches, by, QUANTILES)


def binned_mann_whitney_p(before: pl.DataFrame, after: pl.DataFrame, max_n: int) -> float:
    """One-sided p-value that `after` is stochastically larger than `before`, both histograms (`bin`,
    `count`): `mann_whitney_binned` on their bins aligned."""
    merged = (
        pl.concat([before.select("bin", pl.col("count").cast(pl.Float64).alias("a"), pl.lit(0.0).alias("b")),
                   after.select("bin", pl.lit(0.0).alias("a"), pl.col("count").cast(pl.Float64).alias("b"))])
        .group_by("bin").agg(pl.col("a").sum(), pl.col("b").sum()).sort("bin")
    )
    return mann_whitney_binned(merged["a"].to_numpy(), merged["b"].to_numpy(), max_n)


def mann_whitney_binned(before: np.ndarray, after: np.ndarray, max_n: int) -> float:
    """One-sided p-value that `after` is stochastically larger than `before`, given as counts over the
    same ascending bins: Mann-Whitney U with the normal approximation, tie and continuity corrections (as
    `stats.mann_whitney_greater`), values of one bin counted as ties, each side's size capped at `max_n`
    as the rows' test subsamples (the AUC is kept; tie counts shrink in proportion)."""
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    n_before, n_after = float(a.sum()), float(b.sum())
    if n_before < 3 or n_after < 3:
        return 1.0
    below = np.cumsum(a) - a  # values of `before` in lower bins
    auc = float((b * (below + 0.5 * a)).sum()) / (n_before * n_after)
    m_after, m_before = min(n_after, max_n), min(n_before, max_n)
    n = m_after + m_before
    ties = (a + b) * (n / (n_before + n_after))
    tie_term = float((ties**3 - ties).sum())
    sd = math.sqrt(max(m_after * m_before / 12.0 * ((n + 1) - tie_term / (n * (n - 1))), 0.0))
    if sd == 0:
        return 1.0
    z = (auc * m_after * m_before - m_after * m_before / 2.0 - 0.5) / sd
    return float(0.5 * math.erfc(z / math.sqrt(2.0)))
