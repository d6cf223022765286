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


def bucket_grid(context: AnalysisContext) -> list[datetime]:
    """Every bucket start from the first to the last bucket of the data."""
    start = _floor(context.span.start, context.bucket_s)
    out, t = [], start
    step = timedelta(seconds=context.bucket_s)
    while t <= context.span.end:
        out.append(t)
        t += step
    return out


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
