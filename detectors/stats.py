"""Robust statistics shared by the detectors: robust z-scores, onset of a shift, tests for a change.

Method, and why:
- Baselines are summarized by median and MAD (scaled to sigma), not mean and standard deviation, so a
  few outliers in the baseline (a slow request, a burst of one minute) do not hide or fake a shift.
- The onset of a shift is estimated as the quantity the truth of an incident names: the instant the
  shift starts, not the first bucket where it becomes obvious (a walk back to where the series leaves
  a 2-z band, the earlier method, is late on every ramp by the time the ramp takes to clear the band:
  2-3 buckets on a 5-minute surge). On the per-bucket series of one subject, a ramp (level, then a
  linear rise from tau over a width, a step when the width is 0) is fitted by weighted least squares to
  the shift holding the incident's peak and the 30 buckets before it, each bucket's expected value
  integrating the ramp over the bucket, with the series' noise model (Poisson counts, shares of n
  requests, quantiles whose spread scales with their level, or Gaussian), and tau is the mode of its
  marginal posterior (`onset_time`). Only the local level before the shift enters, so a slow seasonal
  swell outside the fitted stretch does not bias it, and the baseline is never assumed flat. Detection
  stays a per-bucket robust z against the baseline (median and MAD); a single global change point
  (binary segmentation, CUSUM over the whole series) would need both sides flat, which diurnal
  traffic is not. The onset is never placed before the shift's first abnormal value, across empty
  buckets or buckets at the baseline's level (`_earliest_onset`): a slow ramp fitted to sparse data
  would otherwise start minutes early. Onsets are reported to the second.
- Counts are tested as Poisson (an excess over the expected count with a z on sqrt(expected)); shares
  (error rates) with a two-proportion z-test; latency distributions with Mann-Whitney U (numpy, as scipy computes it), whose
  rank statistic is robust to outliers and makes no normality assumption. Effect sizes come with these
  tests so the ranker can weigh magnitude and confidence separately.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import polars as pl

from rca.model import EVENTS_SCHEMA, AnalysisContext, Dataset, RequestAggregates, Series

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
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows with no value at all give NaN
        out = np.nanmedian(np.where(np.isfinite(windows), windows, np.nan), axis=1)
    return np.where(np.isfinite(out), out, values)


ONSET_PRE_BUCKETS = 30  # buckets of the series before the shift that the onset fit sees
ONSET_MAX_WIDTH = 40  # longest ramp considered, in buckets
ONSET_POST_BUCKETS = 160  # buckets from the shift's start that the fit sees at most
ONSET_STEP = 0.5  # grid of candidate onsets, in buckets (the posterior median interpolates nothing finer)


def _ramp_average(tau: np.ndarray, width: np.ndarray, n: int) -> np.ndarray:
    """Average over each bucket [t, t+1) of the ramp that is 0 before `tau`, rises linearly to 1 over
    `width` buckets (a step when 0) and stays at 1: one row per (tau, width) candidate."""
    x = np.arange(n + 1, dtype=float)[None, :]
    t, w = tau[:, None], width[:, None]
    d = x - t
    safe = np.where(w > 0, w, 1.0)
    integral = np.where(d <= 0, 0.0, np.where(d >= w, w / 2 + (d - w), d * d / (2 * safe)))
    return np.diff(integral, axis=1)


def _shift_run(z: np.ndarray, peak: int, threshold: float, gap: int) -> tuple[int, int]:
    """First and last bucket of the run of z >= threshold holding `peak`, bridging gaps of `gap` buckets."""
    start = end = peak
    while True:
        back = [start - k for k in range(1, gap + 2) if start - k >= 0 and z[start - k] >= threshold]
        if not back:
            break
        start = back[0]
    while True:
        ahead = [end + k for k in range(1, gap + 2) if end + k < z.size and z[end + k] >= threshold]
        if not ahead:
            break
        end = ahead[0]
    return start, end


ONSET_NORMAL_Z = -0.25  # a bucket this far below the baseline's median holds none of a shift


def _earliest_onset(values: np.ndarray, baseline: np.ndarray, after_baseline: int, run_start: int, threshold: float,
                    counts: bool) -> int:
    """The earliest bucket the onset may lie in: from the first raw value of the shift standing
    `threshold` robust z above the baseline (its first evidence), back over the buckets just before it
    that may hold a ramp's beginning (about the baseline's median or above, and above its lowest value),
    to the first bucket after an empty one or after one below the median or as low as the baseline ever
    was. Never earlier: a ramp fitted to sparse counts or to a noisy quantile otherwise starts minutes
    before the first abnormal value, across empty or normal buckets that say nothing of a shift."""
    z = robust_z(values, baseline)
    # The first abnormal raw value from the run's start, or from the baseline's end when the run begins
    # later (sparse counts leave gaps in a shift): a smoothed run may begin on an empty bucket its median
    # filled, and a lone spike just before it is no evidence of the shift.
    since = min(run_start, after_baseline)
    after = z[since:]
    abnormal = np.flatnonzero(np.isfinite(after) & (after >= threshold))
    first = since + int(abnormal[0]) if abnormal.size else run_start
    # Rare events leave empty buckets after they began (at a rate of one a bucket, a third of them): for
    # counts, abnormal values up to three buckets apart are one shift's evidence.
    bridge = 3 if counts else 0
    while True:
        before = [j for j in range(first - 1, max(first - bridge - 2, -1), -1) if np.isfinite(z[j]) and z[j] >= threshold]
        if not before:
            break
        first = before[-1]
    finite = baseline[np.isfinite(baseline)]
    lowest = float(finite.min()) if finite.size else -np.inf
    i = first - 1
    while i >= 0 and np.isfinite(z[i]) and z[i] > ONSET_NORMAL_Z and values[i] > lowest:
        i -= 1
    return i + 1


def onset_time(values: np.ndarray, baseline_mask: np.ndarray, incident_mask: np.ndarray, threshold: float = 2.0,
               direction: int = 1, smooth: int = 0, weights: np.ndarray | None = None, noise: str = "poisson") -> float | None:
    """When the shift holding the incident's peak began, in buckets from the start of the series (a
    fraction: 3.5 is half-way through bucket 3), or None when nothing in the incident stands 2 robust z
    above the baseline.

    Detection is on the (optionally median-smoothed) series against the baseline; the onset is then the
    start of a ramp fitted to the raw values over the shift and the 30 buckets before it: level mu, then
    a linear rise of delta over `width` buckets from `tau` (width 0: a step), each bucket's expected
    value integrating the ramp over the bucket, so a shift that starts within a bucket is placed within
    it. Weighted least squares with the noise model of the series: `poisson` (counts: variance = level),
    `share` (a proportion of a bucket's requests: variance p(1-p), with the requests as `weights`),
    `relative` (latency quantiles: standard deviation proportional to level) or `gaussian` (constant);
    `weights` multiply in (requests per bucket, for a statistic of a bucket's requests). The variances
    are first read off the smoothed series, then off the best fit (one reweighting pass). The estimate
    is the mode of the marginal posterior of tau, the width integrated out (flat priors on tau and
    width, Gaussian likelihood scaled by the fit's residual variance): steadier than the single best
    (tau, width) when the ramp is slow and the counts low, and, unlike a posterior median, not drawn
    early by the long flat tail of slow ramps that a sparse series cannot rule out.
    """
    if not incident_mask.any() or not baseline_mask.any():
        return None
    v = np.asarray(values, dtype=float) * direction
    smoothed = rolling_median(v, smooth)
    z = robust_z(smoothed, smoothed[baseline_mask])
    z = np.where(np.isfinite(z), z, 0.0)
    inc = np.flatnonzero(incident_mask)
    peak = int(inc[np.argmax(z[inc])])
    if z[peak] < threshold:
        return None
    start, end = _shift_run(z, peak, threshold, 1 + smooth)
    earliest = _earliest_onset(v, smoothed[baseline_mask], int(np.flatnonzero(baseline_mask)[-1]) + 1, start, threshold,
                               counts=noise == "poisson" and direction > 0)
    # The fit sees the shift's start and what follows it for a bounded stretch: a shift that lasts for
    # thousands of buckets (months of logs) would otherwise cost (onsets x widths x buckets) memory.
    lo = max(0, min(start, max(int(inc[0]), start - ONSET_MAX_WIDTH)) - ONSET_PRE_BUCKETS)
    hi = min(end + 1, max(start, lo) + ONSET_POST_BUCKETS)
    peak = min(peak, hi - 1)
    y = v[lo:hi]
    finite = np.isfinite(y)
    if finite.sum() < 3:
        return float(start)
    prior = np.where(finite, 1.0, 0.0) if weights is None else np.where(finite, np.asarray(weights, dtype=float)[lo:hi], 0.0)
    center, _ = robust_center_scale(smoothed[baseline_mask])
    # Counts: no less than half an event of variance per bucket; shares likewise, half an event of the
    # bucket's usual requests, so that buckets without events do not pin the onset to the first event.
    per_bucket = float(np.median(prior[prior > 0])) if (prior > 0).any() else 1.0
    floor = {"poisson": max(center, 0.5), "share": max(center, 0.5 / max(per_bucket, 1.0))}.get(noise, max(abs(center), 1e-9))

    def variance(level: np.ndarray) -> np.ndarray:
        level = np.maximum(level, floor)
        if noise == "poisson":
            return level
        if noise == "share":
            return level * (1.0 - np.minimum(level, 0.999))
        return level * level if noise == "relative" else np.ones_like(level)

    level = rolling_median(np.where(finite, y, np.nan), 2)
    w_t = prior / variance(np.where(np.isfinite(level), level, center))
    y = np.where(finite, y, 0.0)
    if w_t.sum() <= 0:
        return float(start)
    taus = np.arange(max(1.0, earliest - lo), peak - lo + 1 + ONSET_STEP / 2, ONSET_STEP)
    widths = np.arange(0.0, min(ONSET_MAX_WIDTH, hi - lo) + 0.5, 1.0)
    tau, width = (a.ravel() for a in np.meshgrid(taus, widths, indexing="ij"))
    ramp = _ramp_average(tau, width, hi - lo)
    for reweight in (True, False):
        s, sa, saa = w_t.sum(), ramp @ w_t, (ramp * ramp) @ w_t
        sy, say, syy = w_t @ y, ramp @ (w_t * y), w_t @ (y * y)
        det = s * saa - sa * sa
        ok = det > 1e-12 * s * s
        delta = np.where(ok, (s * say - sa * sy) / np.where(ok, det, 1.0), 0.0)
        mu = (sy - delta * sa) / s
        chi2 = np.where(ok & (delta > 0), syy - mu * sy - delta * say, np.inf)
        best = int(np.argmin(chi2))
        if not np.isfinite(chi2[best]):
            return float(start)
        if reweight and noise != "gaussian":
            w_t = prior / variance(mu[best] + delta[best] * ramp[best])
        else:
            break
    # Counts and shares have a known scale (overdispersion only widens it); the others take the fit's.
    known = noise in ("poisson", "share")
    sigma2 = max(float(chi2[best]) / max(int(finite.sum()) - 4, 1), 1.0 if known else 1e-12)
    posterior = np.exp(-0.5 * (chi2 - chi2[best]) / sigma2)
    # marginal posterior of the onset (the ramp's width integrated out), and its mode
    marginal = posterior.reshape(taus.size, widths.size).sum(axis=1)
    return float(taus[int(np.argmax(marginal))] + lo)


def onset_index(values: np.ndarray, baseline_mask: np.ndarray, incident_mask: np.ndarray, threshold: float = 2.0,
                direction: int = 1, smooth: int = 0, weights: np.ndarray | None = None, noise: str = "poisson") -> int | None:
    """The bucket in which the shift holding the incident's peak began (`onset_time`, rounded down), or None."""
    tau = onset_time(values, baseline_mask, incident_mask, threshold, direction, smooth, weights, noise)
    return None if tau is None else int(np.clip(np.floor(tau), 0, len(values) - 1))


def onset_at(grid: list[datetime], tau: float | None, bucket_s: int) -> datetime | None:
    """The time `tau` buckets after the first bucket of `grid` (to the second), or None."""
    if tau is None:
        return None
    return grid[0] + timedelta(seconds=round(tau * bucket_s))


def per_minute(count: float, seconds: float) -> float:
    """A count over `seconds` as a rate per minute, to 3 decimals, or to 3 significant digits when it is
    smaller than that (a template seen twice in a month is 0.0000463/min, not 0)."""
    rate = count / seconds * 60
    return round(rate, 3) or float(f"{rate:.3g}")


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


def binomial_lower_p(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (exact for thousands of trials)."""
    if n <= 0 or k >= n or p <= 0:
        return 1.0
    if p >= 1:
        return 0.0 if k < n else 1.0
    i = np.arange(k, dtype=float)
    log_pmf = n * math.log1p(-p) + np.concatenate(([0.0], np.cumsum(np.log((n - i) / (i + 1)) + math.log(p / (1 - p)))))
    top = float(log_pmf.max())
    return float(min(1.0, math.exp(top) * float(np.exp(log_pmf - top).sum())))


def mann_whitney_p(before: np.ndarray, after: np.ndarray, seed: int = 0, max_n: int = 3000) -> float:
    """One-sided p-value that `after` is stochastically larger than `before` (subsampled when large).

    Mann-Whitney U computed here with numpy, as scipy.stats.mannwhitneyu(after, before,
    alternative="greater") does it: the exact null distribution when a side has at most 8 values and
    nothing ties, else the normal approximation with tie and continuity corrections. (Importing
    scipy.stats costs about a second, more than the whole analysis of a small incident.)"""
    before = before[np.isfinite(before)]
    after = after[np.isfinite(after)]
    if before.size < 3 or after.size < 3:
        return 1.0
    rng = np.random.default_rng(seed)
    if before.size > max_n:
        before = rng.choice(before, max_n, replace=False)
    if after.size > max_n:
        after = rng.choice(after, max_n, replace=False)
    return mann_whitney_greater(after, before)


def mann_whitney_greater(x: np.ndarray, y: np.ndarray) -> float:
    """p-value of Mann-Whitney U for the alternative that `x` is stochastically greater than `y`."""
    n1, n2 = int(x.size), int(y.size)
    values = np.concatenate([x, y]).astype(np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    # mid-ranks: the average rank of each distinct value, given to every copy of it
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    ties = bool((counts > 1).any())
    if (n1 <= 8 or n2 <= 8) and not ties:
        return _mwu_exact_sf(u, n1, n2)
    n = n1 + n2
    tie_term = float((counts.astype(np.float64) ** 3 - counts).sum())
    sd = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    if sd == 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / sd
    return float(0.5 * math.erfc(z / math.sqrt(2.0)))


def _mwu_exact_sf(u: float, n1: int, n2: int) -> float:
    """P(U >= u) under the null, from the count of arrangements with each U (no ties)."""
    # counts[i][j] = number of ways for i values of x and j of y per U value, built up one value at a time
    table = {(0, j): np.ones(1, dtype=np.float64) for j in range(n2 + 1)}
    for i in range(1, n1 + 1):
        table[(i, 0)] = np.ones(1, dtype=np.float64)
        for j in range(1, n2 + 1):
            # the largest value is x's (it beats all j of y: U shifts by j) or y's
            with_x, with_y = table[(i - 1, j)], table[(i, j - 1)]
            out = np.zeros(i * j + 1, dtype=np.float64)
            out[j : j + with_x.size] += with_x
            out[: with_y.size] += with_y
            table[(i, j)] = out
    dist = table[(n1, n2)]
    k = math.ceil(u - 1e-9)
    return float(dist[k:].sum() / dist.sum()) if k < dist.size else 0.0


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
    `WINDOW_OTHER`): one comparison pass, after which group-bys test a UInt8 instead of timestamps.
    On aggregates (`column="bucket"`) a bucket starting before the data counts from the data's start."""
    ts = pl.col(column) if column != "bucket" else pl.max_horizontal(pl.col(column), pl.lit(context.span.start))
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
    if not (b.start <= i.start <= i.end):
        raise ValueError("the baseline window must start before the incident window")
    # A baseline reaching into the incident (data shorter than a few buckets) ends where the incident starts.
    b_end = min(b.end, i.start)
    ts = pl.col(column)
    return (
        (ts >= b.start).cast(pl.UInt8) + (ts >= b_end).cast(pl.UInt8)
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
    raw = phys.fill_null(cast(int, phys.max()) + 1).to_numpy().astype(np.int64)
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
    """Every bucket start from the first bucket of the data to the last one before the span's end."""
    start = _floor(context.span.start, context.bucket_s)
    out, t = [], start
    step = timedelta(seconds=context.bucket_s)
    while t < context.span.end:  # windows are half-open: [start, end)
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


def exact_aggregates(aggregates: RequestAggregates | None, context: AnalysisContext) -> RequestAggregates | None:
    """`aggregates` when their counts per window and per analysis bucket are exact: the analysis bucket
    is a multiple of theirs and every window edge inside the data falls on one of their bucket edges
    (automatic windows do; `--since 12:03:17` may not). None otherwise: detectors read rows then.
    Window codes and bucket indices (`window_code_expr`, `bucket_index_expr` on `bucket`) apply to
    their buckets as they are, finer ones included."""
    if aggregates is None or context.bucket_s % aggregates.bucket_s:
        return None
    edges = (context.baseline.start, context.baseline.end, context.incident.start, context.incident.end)
    inside = [t for t in edges if context.span.start < t < context.span.end]
    if any(_epoch_us(t) % (aggregates.bucket_s * 1_000_000) for t in inside):
        return None
    return aggregates


def aggregated_vantages(aggregates: RequestAggregates | None) -> set[tuple[str, str | None]]:
    """The (signal, service) vantages whose requests the aggregates carry (their rows are a sample)."""
    if aggregates is None:
        return set()
    totals = aggregates.counts.filter(pl.col("dimension") == "service").select("signal", "service").unique()
    return {(str(s), v) for s, v in totals.iter_rows()}


def carried_expr(carried: set[tuple[str, str | None]]) -> pl.Expr:
    """Rows of the vantages the aggregates carry (their rows are a sample)."""
    expr = pl.lit(False)
    for signal, service in sorted(carried, key=lambda v: (v[0], v[1] or "")):
        expr = expr | ((pl.col("signal") == signal) & pl.col("service").eq_missing(service))
    return expr


def window_masks(context: AnalysisContext) -> tuple[np.ndarray, np.ndarray, list[datetime]]:
    grid = bucket_grid(context)
    arr = np.array([t.timestamp() for t in grid])
    base = (arr >= context.baseline.start.timestamp()) & (arr < context.baseline.end.timestamp())
    inc = (arr >= _floor(context.incident.start, context.bucket_s).timestamp()) & (arr < context.incident.end.timestamp())
    gap = gap_mask(arr, context)
    return base & ~gap, inc & ~gap, grid


def gap_mask(bucket_starts: np.ndarray, context: AnalysisContext) -> np.ndarray:
    """Buckets (epoch seconds of their starts) inside a gap of the data: in neither window's statistics."""
    out = np.zeros(bucket_starts.shape, dtype=bool)
    for gap in context.gaps:
        out |= (bucket_starts >= gap.start.timestamp()) & (bucket_starts < gap.end.timestamp())
    return out


def to_series(values: np.ndarray, grid: list[datetime], context: AnalysisContext, label: str = "") -> Series:
    return Series(
        start=grid[0],
        bucket_s=context.bucket_s,
        values=tuple(None if not np.isfinite(v) else round(float(v), 4) for v in values),
        label=label,
    )


def weighted_events(dataset: Dataset) -> pl.DataFrame:
    """The log events detectors count, as EVENTS_SCHEMA rows with a weight `n` (events the row stands for)
    and `last_ts`: every row weighing 1, except for the inputs whose events were sampled
    (`Dataset.event_aggregates`), whose rows are only a sample and are replaced by one row per counted key:
    its example's message, line and logger, `ts` its first event and `last_ts` its last, weighing its
    count. Every event of a key has the same level, service, host, message shape (template) and resource
    class, so sums of `n` over any of those are the counts of every event. A key is placed in a window by
    its first event: exact when the window edges fall on the counts' bucket edges (automatic windows do)."""
    rows = dataset.events.with_columns(pl.lit(1, pl.Int64).alias("n"), pl.col("ts").alias("last_ts"))
    counted = dataset.event_aggregates
    if counted is None:
        return rows
    keys = counted.counts.select(
        pl.col("first_ts").alias("ts"), "level", "service", "host", "logger", pl.col("example").alias("message"),
        pl.lit(None, pl.String).alias("attributes"), pl.lit(None, pl.String).alias("trace_id"), "origin", "line", "signal",
        pl.col("events").alias("n"), "last_ts",
    )
    assert keys.columns[: len(EVENTS_SCHEMA)] == list(EVENTS_SCHEMA)
    return pl.concat([rows.filter(~pl.col("origin").is_in(counted.origins)), keys], how="vertical_relaxed")


def weighted_mode(frame: pl.DataFrame, by: list[str], column: str, where: pl.Expr) -> pl.DataFrame:
    """Per group of `by`, the value of `column` weighing most (sum of `n`, `weighted_events`) among the rows
    where `where` holds; on a tie the smallest, a null only when nothing else is there (as
    `mode().sort(nulls_last=True).first()` on unweighted rows). Groups without such rows are left out."""
    return (
        frame.filter(where).group_by([*by, column]).agg(pl.col("n").sum().alias("_weight"))
        .sort([*by, "_weight", column], descending=[False] * len(by) + [True, False], nulls_last=True)
        .group_by(by, maintain_order=True).agg(pl.col(column).first())
    )
