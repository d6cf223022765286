"""Robust statistics shared by the detectors: robust z-scores, onset of a shift, tests for a change.

Method, and why:
- Baselines are summarized by median and MAD (scaled to sigma), not mean and standard deviation, so a
  few outliers in the baseline (a slow request, a burst of one minute) do not hide or fake a shift.
- The onset of a shift is found on the per-bucket series of one subject: the peak of the incident is
  located, then we walk back while the series stays above the baseline by a robust z of 2 (tolerating
  one quiet bucket inside a ramp). That gives "the first bucket of the shift" even for slow ramps, and
  unlike a single global change point (binary segmentation, CUSUM) it needs no assumption that the
  series is flat on both sides, which diurnal traffic is not. Each bucket is tested against the
  baseline, never against its neighbours.
- Counts are tested as Poisson (an excess over the expected count with a z on sqrt(expected)); shares
  (error rates) with a two-proportion z-test; latency distributions with Mann-Whitney U (scipy), whose
  rank statistic is robust to outliers and makes no normality assumption. Effect sizes come with these
  tests so the ranker can weigh magnitude and confidence separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from rca.model import AnalysisContext, Series

MAD_TO_SIGMA = 1.4826


def robust_center_scale(values: np.ndarray, floor: float = 1e-9) -> tuple[float, float]:
    """Median and MAD-based sigma of the finite values (sigma floored so flat series do not divide by 0)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, floor
    median = float(np.median(finite))
    mad = float(np.median(np.abs(finite - median))) * MAD_TO_SIGMA
    # Poisson-like floor: a flat series of counts still varies by about sqrt(level).
    return median, max(mad, math.sqrt(abs(median)) * 0.5, floor)


def robust_z(values: np.ndarray, baseline: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    """Robust z of each value against the baseline values (`floor`: the smallest scale, in the series' unit)."""
    center, scale = robust_center_scale(baseline, floor)
    return (values - center) / scale


def rolling_median(values: np.ndarray, half_width: int) -> np.ndarray:
    """Centered running median over 2*half_width+1 buckets (NaN-aware): tames sparse, noisy series."""
    if half_width <= 0 or values.size == 0:
        return values
    padded = np.pad(values.astype(float), half_width, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_width + 1)
    with np.errstate(all="ignore"):
        out = np.nanmedian(np.where(np.isfinite(windows), windows, np.nan), axis=1)
    return np.where(np.isfinite(out), out, values)


def onset_index(values: np.ndarray, baseline_mask: np.ndarray, incident_mask: np.ndarray, threshold: float = 2.0,
                direction: int = 1, smooth: int = 0) -> int | None:
    """The first bucket of the shift that contains the incident's peak, or None if there is no peak.
    `smooth` > 0 runs a centered median of 2*smooth+1 buckets first (for sparse series such as sampled traces)."""
    if not incident_mask.any() or not baseline_mask.any():
        return None
    values = rolling_median(values, smooth)
    z = robust_z(values, values[baseline_mask]) * direction
    z = np.where(np.isfinite(z), z, 0.0)
    inc = np.flatnonzero(incident_mask)
    peak = int(inc[np.argmax(z[inc])])
    if z[peak] < threshold:
        return None
    first_inc = int(inc[0])
    i = peak
    while i - 1 >= 0:
        if z[i - 1] >= threshold:
            i -= 1
        elif i - 2 >= 0 and z[i - 2] >= threshold and i - 1 >= first_inc - 3:
            i -= 2
        else:
            break
    return i


def poisson_excess_z(observed: float, expected: float) -> float:
    """How surprising `observed` counts are given `expected` ones (Anscombe-like z, 0 when fewer)."""
    return (observed - expected) / math.sqrt(expected + 1.0)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """z of the difference p2 - p1 of two proportions (pooled)."""
    if n1 == 0 or n2 == 0:
        return 0.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(max(p * (1 - p) * (1 / n1 + 1 / n2), 1e-12))
    return (k2 / n2 - k1 / n1) / se


def mann_whitney_p(before: np.ndarray, after: np.ndarray, seed: int = 0, max_n: int = 3000) -> float:
    """One-sided p-value that `after` is stochastically larger than `before` (subsampled when large)."""
    from scipy.stats import mannwhitneyu

    before = before[np.isfinite(before)]
    after = after[np.isfinite(after)]
    if before.size < 3 or after.size < 3:
        return 1.0
    rng = np.random.default_rng(seed)
    if before.size > max_n:
        before = rng.choice(before, max_n, replace=False)
    if after.size > max_n:
        after = rng.choice(after, max_n, replace=False)
    return float(mannwhitneyu(after, before, alternative="greater").pvalue)


def confidence_from_z(z: float) -> float:
    """Map a z-score to a confidence in [0, 1): 0 at z<=2, 0.5 near z=4, ~1 past z=8."""
    return float(max(0.0, 1.0 - math.exp(-max(z - 2.0, 0.0) / 2.5)))


def confidence_from_p(p: float) -> float:
    """Map a p-value to a confidence in [0, 1]."""
    if p <= 0:
        return 1.0
    return float(min(1.0, max(0.0, -math.log10(p) / 8.0)))


# --- buckets ---------------------------------------------------------------------------------------


def bucket_expr(context: AnalysisContext, column: str = "ts") -> pl.Expr:
    """Bucket start for each row (truncated to the bucket grid anchored at the data start)."""
    return pl.col(column).dt.truncate(f"{context.bucket_s}s").alias("bucket")


WINDOW_OTHER, WINDOW_BASELINE, WINDOW_INCIDENT = 0, 1, 2


def window_code_expr(context: AnalysisContext, column: str = "ts") -> pl.Expr:
    """Which window each row falls in, as a small integer (`WINDOW_BASELINE`, `WINDOW_INCIDENT` or
    `WINDOW_OTHER`): one comparison pass, after which group-bys test a UInt8 instead of timestamps."""
    ts = pl.col(column)
    return (
        pl.when((ts >= context.baseline.start) & (ts < context.baseline.end)).then(pl.lit(WINDOW_BASELINE, pl.UInt8))
        .when((ts >= context.incident.start) & (ts < context.incident.end)).then(pl.lit(WINDOW_INCIDENT, pl.UInt8))
        .otherwise(pl.lit(WINDOW_OTHER, pl.UInt8))
        .alias("_w")
    )


def bucket_index_expr(context: AnalysisContext, column: str = "ts") -> pl.Expr:
    """Index of each row's bucket in `bucket_grid(context)` (Int32): the same epoch-anchored grid as
    `bucket_expr`, as integers, so per-bucket series are filled by one numpy scatter."""
    step = context.bucket_s * 1_000_000
    first = _epoch_us(_floor(context.span.start, context.bucket_s)) // step
    return (pl.col(column).dt.epoch("us") // step - first).cast(pl.Int32).alias("_bucket")


PHASE_BASELINE, PHASE_INCIDENT = 1, 3


def phase_expr(context: AnalysisContext, column: str = "ts") -> pl.Expr:
    """Where each row falls on the time line, as a number that never decreases with time: 0 before the
    baseline, 1 in it (`PHASE_BASELINE`), 2 between the windows, 3 in the incident (`PHASE_INCIDENT`), 4
    after. Rows ordered by (subject, time) therefore hold each subject's windows as contiguous runs."""
    b, i = context.baseline, context.incident
    if not (b.start <= b.end <= i.start <= i.end):
        raise ValueError("the baseline window must end before the incident window starts")
    ts = pl.col(column)
    return (
        (ts >= b.start).cast(pl.UInt8) + (ts >= b.end).cast(pl.UInt8)
        + (ts >= i.start).cast(pl.UInt8) + (ts >= i.end).cast(pl.UInt8)
    ).alias("_phase")


def _stable_argsort(codes: np.ndarray, bound: int) -> np.ndarray:
    """Stable argsort of non-negative integer codes below `bound` (numpy's radix sort when they fit 16 bits)."""
    if bound <= 1 << 16:
        return np.argsort(codes.astype(np.uint16), kind="stable")
    return np.argsort(codes, kind="stable")


def subject_codes(column: pl.Series) -> tuple[np.ndarray, list]:
    """Dense integer codes 0..k-1 for a column's values (null is a value of its own) and the value of
    each code. One hashing pass (a categorical cast), whatever the number of rows."""
    if column.len() == 0:
        return np.zeros(0, dtype=np.int64), []
    phys = column.cast(pl.String).cast(pl.Categorical).to_physical()
    if phys.null_count() == phys.len():
        return np.zeros(phys.len(), dtype=np.int64), [None]
    raw = phys.fill_null(phys.max() + 1).to_numpy().astype(np.int64)
    dense_of = np.cumsum(np.bincount(raw) > 0) - 1
    codes = dense_of[raw]
    first = np.full(int(dense_of[-1]) + 1, raw.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(raw.size))
    return codes, column.gather(first).to_list()


@dataclass(frozen=True)
class SubjectOrder:
    """One vantage's rows ordered by (subject, time), so that every (subject, window) and (subject,
    bucket) is a contiguous run. A group-by over the sorted run keys `_kw` (subject * 5 + phase) and
    `_kb` (subject * buckets + bucket) reads slices instead of gathering rows, which makes per-group
    quantiles several times cheaper than on rows in time order; `values` holds the same rows as numpy
    arrays, to slice one subject's window. `names[code]` is each subject."""

    frame: pl.DataFrame
    values: dict[str, np.ndarray]
    names: list
    n_buckets: int

    def runs(self, column: str = "_kw") -> pl.DataFrame:
        """Each run of `column` with its `start` offset and length `n`, in row order."""
        lengths = self.frame.group_by(column, maintain_order=True).len("n")
        return lengths.with_columns((pl.col("n").cum_sum() - pl.col("n")).alias("start"))


def time_order(rows: pl.DataFrame, context: AnalysisContext, n_buckets: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """`rows` in time order (bucket, then phase; kept as they are when already so), with their phase and
    bucket index as numpy arrays. Needs `ts`."""
    keys = rows.select(phase_expr(context), bucket_index_expr(context).clip(0, max(n_buckets - 1, 0)))
    phase = keys["_phase"].to_numpy()
    bucket = keys["_bucket"].to_numpy()
    time_key = bucket.astype(np.int64) * 5 + phase
    if time_key.size and not np.all(time_key[1:] >= time_key[:-1]):
        order = _stable_argsort(time_key, int(time_key.max()) + 1)
        rows, phase, bucket = rows[order], phase[order], bucket[order]
    return rows, phase, bucket


def order_by_subject(codes: np.ndarray, names: list, phase: np.ndarray, bucket: np.ndarray, n_buckets: int,
                     values: dict[str, np.ndarray]) -> SubjectOrder:
    """Rows already in time order (`time_order`) regrouped by subject code with one stable radix sort,
    so each subject keeps its rows in time order."""
    if len(names) > 1:
        order = _stable_argsort(codes, len(names))
        codes, phase, bucket = codes[order], phase[order], bucket[order]
        values = {k: v[order] for k, v in values.items()}
    codes = codes.astype(np.int64)
    frame = pl.DataFrame({
        "_kw": codes * 5 + phase,
        "_kb": codes * max(n_buckets, 1) + bucket,
        **values,
    }).with_columns(pl.col("_kw").set_sorted(), pl.col("_kb").set_sorted())
    return SubjectOrder(frame, values, names, n_buckets)


def series_by_index(frame: pl.DataFrame, key: str | None, value: str, n_buckets: int,
                    fill: float | None = 0.0) -> dict[object, np.ndarray]:
    """Per value of `key` (one series under None when `key` is None), `value` per bucket from the
    `_bucket` index column; buckets without a row hold `fill` (NaN when None)."""
    out: dict[object, np.ndarray] = {}
    if frame.height == 0:
        return out
    idx = frame["_bucket"].to_numpy()
    vals = frame[value].cast(pl.Float64).to_numpy()
    ok = (idx >= 0) & (idx < n_buckets) & np.isfinite(vals)
    keys = [None] * frame.height if key is None else frame[key].to_list()
    order: dict[object, list[int]] = {}
    for row, k in enumerate(keys):
        order.setdefault(k, []).append(row)
    for k, rows in order.items():
        series = np.full(n_buckets, np.nan if fill is None else fill, dtype=float)
        r = np.asarray(rows)
        r = r[ok[r]]
        series[idx[r]] = vals[r]
        out[k] = series
    return out


def bucket_grid(context: AnalysisContext) -> list[datetime]:
    """Every bucket start from the first to the last bucket of the data."""
    start = _floor(context.span.start, context.bucket_s)
    out, t = [], start
    step = timedelta(seconds=context.bucket_s)
    while t <= context.span.end:
        out.append(t)
        t += step
    return out


def _epoch_us(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=ts.tzinfo)) // timedelta(microseconds=1)


def _floor(ts: datetime, bucket_s: int) -> datetime:
    epoch = ts.timestamp()
    return datetime.fromtimestamp(epoch - (epoch % bucket_s), tz=ts.tzinfo)


def dense_series(frame: pl.DataFrame, key_cols: list[str], value_col: str, context: AnalysisContext, fill: float | None = 0.0) -> dict[tuple, np.ndarray]:
    """Per key, the value per bucket over the whole grid (missing buckets -> `fill`)."""
    grid = bucket_grid(context)
    index = {t: i for i, t in enumerate(grid)}
    out: dict[tuple, np.ndarray] = {}
    if frame.height == 0:
        return out
    for key, group in frame.group_by(key_cols, maintain_order=True):
        values = np.full(len(grid), np.nan if fill is None else fill, dtype=float)
        for t, v in zip(group["bucket"].to_list(), group[value_col].to_list(), strict=True):
            i = index.get(t)
            if i is not None and v is not None:
                values[i] = v
        out[tuple(key)] = values
    return out


def window_masks(context: AnalysisContext) -> tuple[np.ndarray, np.ndarray, list[datetime]]:
    grid = bucket_grid(context)
    arr = np.array([t.timestamp() for t in grid])
    base = (arr >= context.baseline.start.timestamp()) & (arr < context.baseline.end.timestamp())
    inc = (arr >= _floor(context.incident.start, context.bucket_s).timestamp()) & (arr < context.incident.end.timestamp())
    return base, inc, grid


def to_series(values: np.ndarray, grid: list[datetime], context: AnalysisContext, label: str = "") -> Series:
    return Series(
        start=grid[0],
        bucket_s=context.bucket_s,
        values=tuple(None if not np.isfinite(v) else round(float(v), 4) for v in values),
        label=label,
    )
