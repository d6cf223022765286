"""Latency: shifts of p50/p95/p99 per endpoint, service and host, within each vantage point.

Baseline and incident distributions of `duration_ms` are compared per subject: the quantile ratio
gives the size of the shift, a one-sided Mann-Whitney U test its confidence (rank based, so a few
outliers neither fake nor hide a shift). The onset is fitted on the subject's per-bucket p95 series
(`stats.onset_time`: a bucket's p95 varies in proportion to its level and in inverse proportion to
its requests).

Cost: the quantiles are exact (polars' nearest-rank quantile per group), on each vantage's rows
regrouped once per dimension by (subject, time) with two stable radix sorts (`stats.order_by_subject`):
every (subject, window) and (subject, bucket) is then a contiguous run, and the group-bys read slices
instead of gathering rows. Mann-Whitney runs on a seeded uniform random sample (without replacement)
of at most `SAMPLE_N` requests per subject and window, drawn from the run: below that size the test
sees every request. At 3,000 a side the U test already resolves a shift of a few percent, and its
p-value only feeds a confidence, so bounding n keeps the cost flat without changing what is reported.

A vantage whose rows are only a sample (`Dataset.request_aggregates` carries it) is read from the
aggregates instead (`detectors.histograms`): n exact, quantiles of windows and buckets from its latency
histograms (within 1%), Mann-Whitney U on the histograms' bins; the details' `basis` says so.

Reporting threshold: at least 20 requests on each side, p95 up by 30% and 20 ms, Mann-Whitney
p < 1e-4.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.histograms import (
    TESTED_BASIS,
    binned_mann_whitney_p,
    vantage_sketches,
    window_quantiles,
)
from rca.detectors.stats import (
    PHASE_BASELINE,
    PHASE_INCIDENT,
    WINDOW_BASELINE,
    WINDOW_INCIDENT,
    WINDOW_OTHER,
    SubjectOrder,
    aggregated_vantages,
    confidence_from_p,
    exact_aggregates,
    mann_whitney_p,
    onset_at,
    onset_time,
    order_by_subject,
    series_by_index,
    subject_codes,
    time_order,
    to_series,
    window_code_expr,
    window_masks,
)
from rca.detectors.traffic import vantages
from rca.findings import LatencyShiftDetails
from rca.model import AnalysisContext, Dataset, Finding, RequestAggregates

MIN_N = 20
MIN_RATIO = 1.3
MIN_DELTA_MS = 20.0
MAX_P = 1e-4
SAMPLE_N = 3000
COLUMNS = ["ts", "duration_ms", "endpoint", "host", "method"]
DIMENSIONS = (("service", None), ("endpoint", "endpoint"), ("host", "host"))


def _window_stats(order: SubjectOrder) -> pl.DataFrame:
    """Per subject code: n, p50/p95/p99 and the run's offset, baseline and incident side by side (`_i`)."""
    stats = (
        order.frame.group_by("_kw", maintain_order=True)
        .agg(
            pl.len().alias("n"),
            pl.col("duration_ms").quantile(0.5).alias("p50"),
            pl.col("duration_ms").quantile(0.95).alias("p95"),
            pl.col("duration_ms").quantile(0.99).alias("p99"),
        )
        .with_columns(
            (pl.col("n").cum_sum() - pl.col("n")).alias("start"),
            (pl.col("_kw") // 5).alias("_code"), (pl.col("_kw") % 5).alias("_phase"),
        )
    )
    columns = ["_code", "n", "start", "p50", "p95", "p99"]
    before = stats.filter(pl.col("_phase") == PHASE_BASELINE).select(columns)
    after = stats.filter(pl.col("_phase") == PHASE_INCIDENT).select(columns)
    return before.join(after, on="_code", suffix="_i").sort("_code")


def _sample(values: np.ndarray, start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of at most SAMPLE_N of the run values[start:start+n] (all of it when smaller)."""
    run = values[start:start + n]
    return run if n <= SAMPLE_N else run[rng.choice(n, SAMPLE_N, replace=False)]


def _usual_method(methods: np.ndarray, names: list, runs: list[tuple[int, int]]) -> str | None:
    """The most frequent known method over the runs (ties: alphabetical), or None."""
    counts = np.sum([np.bincount(methods[s:s + n], minlength=len(names)) for s, n in runs], axis=0)
    known = sorted((j for j, name in enumerate(names) if name is not None), key=lambda j: names[j])
    best = max(known, key=lambda j: counts[j], default=None)  # max keeps the first of the ties
    return names[best] if best is not None and counts[best] > 0 else None


def _usual_method_of(counts: pl.DataFrame) -> str | None:
    """The most frequent known method in aggregates' counts (`method`, `timed`), ties alphabetical, or None."""
    known = counts.filter(pl.col("method").is_not_null()).group_by("method").agg(pl.col("timed").sum())
    known = known.filter(pl.col("timed") > 0).sort(["timed", "method"], descending=[True, False])
    return str(known["method"][0]) if known.height else None


# What one subject of one dimension of a vantage showed: its label, window figures (n, p50, p95, p99 before;
# the same with `_i` after), the test's p-value, its per-bucket p95 and requests, and its usual method.
Shift = tuple[str, dict, float, np.ndarray, np.ndarray | None, str | None]


def _row_shifts(rows: pl.DataFrame, service: str | None, context: AnalysisContext, n_buckets: int) -> Iterator[tuple[str, Shift]]:
    """(dimension, shift) of every subject whose p95 rose past the thresholds, from every row of a vantage."""
    rows, phase, bucket = time_order(rows, context, n_buckets)
    method_codes, method_names = subject_codes(rows["method"])
    values = {"duration_ms": rows["duration_ms"].to_numpy(), "_m": method_codes.astype(np.uint16 if len(method_names) < 1 << 16 else np.int64)}
    for dim, col in DIMENSIONS:
        codes, names = (np.zeros(rows.height, dtype=np.int64), [service]) if col is None else subject_codes(rows[col])
        order = order_by_subject(codes, names, phase, bucket, n_buckets, values)
        wide = _shifted(_window_stats(order))
        if col is not None:  # rows without the dimension's value are no subject
            wide = wide.filter(pl.Series([names[c] is not None for c in wide["_code"].to_list()], dtype=pl.Boolean))
        if wide.height == 0:
            continue
        if dim == "host" and wide.height == len(names):
            continue  # all hosts alike: not a host-local shift
        per_bucket = (
            order.frame.group_by("_kb").agg(pl.col("duration_ms").quantile(0.95).alias("p95"), pl.len().alias("n"))
            .with_columns((pl.col("_kb") // n_buckets).alias("_code"), (pl.col("_kb") % n_buckets).cast(pl.Int32).alias("_bucket"))
            .filter(pl.col("_code").is_in(wide["_code"].implode()))
        )
        series = series_by_index(per_bucket, "_code", "p95", n_buckets, fill=None)
        counts = series_by_index(per_bucket, "_code", "n", n_buckets, fill=0.0)
        durations, methods = order.values["duration_ms"], order.values["_m"]
        for row in wide.iter_rows(named=True):
            code = row["_code"]
            rng = np.random.default_rng(0)  # seeded: the same sample run to run
            before = _sample(durations, row["start"], row["n"], rng)
            after = _sample(durations, row["start_i"], row["n_i"], rng)
            p = mann_whitney_p(before, after, max_n=SAMPLE_N)
            method = _usual_method(methods, method_names, [(row["start"], row["n"]), (row["start_i"], row["n_i"])])
            yield dim, (str(names[code]), row, p, series.get(code, np.full(n_buckets, np.nan)), counts.get(code), method)


def _shifted(wide: pl.DataFrame) -> pl.DataFrame:
    """The subjects with enough requests on both sides whose p95 rose by MIN_RATIO and MIN_DELTA_MS."""
    return wide.filter(
        (pl.col("n") >= MIN_N) & (pl.col("n_i") >= MIN_N)
        & (pl.col("p95_i") >= MIN_RATIO * pl.col("p95")) & (pl.col("p95_i") - pl.col("p95") >= MIN_DELTA_MS)
    )


def _aggregated_shifts(aggregates: RequestAggregates, signal: str, service: str | None, context: AnalysisContext,
                       n_buckets: int) -> Iterator[tuple[str, Shift]]:
    """The same as `_row_shifts` for a vantage the aggregates carry: window and bucket quantiles from its
    latency histograms, counts exact, Mann-Whitney U on the histograms' bins (`detectors.histograms`)."""
    mine = aggregates.counts.filter((pl.col("signal") == signal) & pl.col("service").eq_missing(service))
    methods = mine.select("dimension", "value", "method", "timed", window_code_expr(context, "bucket")).filter(pl.col("_w") != WINDOW_OTHER)
    for dim, col in DIMENSIONS:
        sketches = vantage_sketches(aggregates, signal, service, dim, context, n_buckets)
        windows = sketches.filter(pl.col("_w") != WINDOW_OTHER)
        stats = window_quantiles(windows, ["value", "_w"])
        wide = _shifted(
            stats.filter(pl.col("_w") == WINDOW_BASELINE).drop("_w")
            .join(stats.filter(pl.col("_w") == WINDOW_INCIDENT).drop("_w"), on="value", suffix="_i", nulls_equal=True)
        )
        if col is not None:
            wide = wide.filter(pl.col("value").is_not_null())
        if wide.height == 0:
            continue
        if dim == "host" and wide.height == sketches["value"].n_unique():
            continue  # all hosts alike: not a host-local shift
        shifted = sketches.filter(pl.col("value").is_in(wide["value"].implode()))
        per_bucket = window_quantiles(shifted, ["value", "_bucket"]).rename({"value": "_value"})
        series = series_by_index(per_bucket, "_value", "p95", n_buckets, fill=None)
        counts = series_by_index(per_bucket, "_value", "n", n_buckets, fill=0.0)
        for row in wide.sort("value").iter_rows(named=True):
            value = row["value"]
            mine_windows = windows.filter(pl.col("value").eq_missing(value))
            p = binned_mann_whitney_p(mine_windows.filter(pl.col("_w") == WINDOW_BASELINE), mine_windows.filter(pl.col("_w") == WINDOW_INCIDENT), SAMPLE_N)
            method = _usual_method_of(methods.filter((pl.col("dimension") == dim) & pl.col("value").eq_missing(value)))
            yield dim, (str(value), row, p, series.get(value, np.full(n_buckets, np.nan)), counts.get(value), method)


@register("latency", order=20)
def detect_latency(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    base_mask, inc_mask, grid = window_masks(context)
    n_buckets = len(grid)
    aggregates = exact_aggregates(dataset.request_aggregates, context)
    carried = aggregated_vantages(aggregates)
    requests = dataset.requests.select(["signal", "service", *COLUMNS]).filter(pl.col("duration_ms").is_not_null())
    # every vantage, busiest first: from its rows, or from the aggregates when they carry it (its rows are a sample)
    sources: list[tuple[int, str, str | None, pl.DataFrame | None]] = [
        (rows.height, signal, service, rows) for signal, service, rows in vantages(requests) if (signal, service) not in carried
    ]
    if aggregates is not None:
        timed = aggregates.counts.filter(pl.col("dimension") == "service").group_by("signal", "service").agg(pl.col("timed").sum())
        sources += [(int(n), signal, service, None) for signal, service, n in timed.filter(pl.col("timed") >= 50).iter_rows()]
    sources.sort(key=lambda v: (-v[0], v[1], v[2] is None, v[2] or ""))
    for _, signal, service, rows in sources:
        vantage = f"{signal}:{service}"
        if rows is not None:
            shifts, basis = _row_shifts(rows, service, context, n_buckets), None
        else:
            assert aggregates is not None
            shifts, basis = _aggregated_shifts(aggregates, signal, service, context, n_buckets), TESTED_BASIS
        for dim, (label, row, p, values_, counts, method) in shifts:
            if p >= MAX_P:
                continue
            filled = np.where(np.isfinite(values_), values_, np.nanmedian(values_[base_mask]) if np.isfinite(values_[base_mask]).any() else 0.0)
            # a bucket's p95 varies in proportion to its level, and less the more requests it holds
            tau = onset_time(values_, base_mask, inc_mask, smooth=1, weights=counts, noise="relative")
            findings.append(
                Finding(
                    detector="latency", kind="latency_shift", dimension=dim, subject=label, metric="p95_ms",
                    onset=onset_at(grid, tau, context.bucket_s),
                    baseline=round(row["p95"], 1), incident=round(row["p95_i"], 1),
                    magnitude=round(row["p95_i"] / max(row["p95"], 1e-6), 3), confidence=confidence_from_p(p),
                    signal=signal, where=str(service),
                    peak=grid[int(np.nanargmax(np.where(inc_mask, filled, -1)))],
                    series=to_series(values_, grid, context, f"p95 ms {dim} {label}, {vantage}"),
                    details=LatencyShiftDetails(
                        vantage=vantage, method=method, p_value=float(f"{p:.3g}"),
                        p50_before_ms=round(row["p50"], 1), p50_after_ms=round(row["p50_i"], 1),
                        p95_before_ms=round(row["p95"], 1), p95_after_ms=round(row["p95_i"], 1),
                        p99_before_ms=round(row["p99"], 1), p99_after_ms=round(row["p99_i"], 1),
                        n_before=int(row["n"]), n_after=int(row["n_i"]), basis=basis,
                    ),
                )
            )
    return findings
