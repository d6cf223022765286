"""The statistics helpers: the integer bucket index against polars' truncation, per-subject quantiles over
the (subject, time) order against a plain group-by, subject codes, and the onset fit on ramps whose
start is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.detectors.stats import (
    PHASE_BASELINE,
    PHASE_INCIDENT,
    bucket_expr,
    bucket_grid,
    bucket_index_expr,
    mann_whitney_greater,
    onset_time,
    order_by_subject,
    subject_codes,
    time_order,
)
from rca.model import AnalysisContext, Window

T0 = datetime(2026, 3, 1, 8, 0, 7, 250000, tzinfo=UTC)


def _context(bucket_s: int = 30) -> AnalysisContext:
    span = Window(T0, T0 + timedelta(minutes=60))
    return AnalysisContext(bucket_s=bucket_s, span=span, baseline=Window(T0, T0 + timedelta(minutes=35, seconds=13)),
                           incident=Window(T0 + timedelta(minutes=36, seconds=2), span.end))


def _rows(seed: int, n: int = 20_000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ts = T0.timestamp() * 1e6 + rng.uniform(0, 3600e6, n)  # not in time order
    endpoint = rng.choice(np.array(["/a", "/b", "/c", "/d", None], dtype=object), n, p=[0.4, 0.3, 0.2, 0.05, 0.05])
    return pl.DataFrame({
        "ts": pl.Series(ts.astype(np.int64)).cast(pl.Datetime("us", "UTC")),
        "endpoint": endpoint, "duration_ms": np.round(rng.lognormal(3, 0.5, n), 1),
    })


@pytest.mark.parametrize("bucket_s", [10, 30, 60, 300])
def test_bucket_index_is_the_truncated_bucket(bucket_s):
    context = _context(bucket_s)
    rows = _rows(1).select(bucket_expr(context), bucket_index_expr(context))
    grid = bucket_grid(context)
    assert [grid[i] for i in rows["_bucket"].to_list()] == rows["bucket"].to_list()


@pytest.mark.parametrize("seed", [2, 3])
def test_subject_order_gives_the_group_by_quantiles(seed):
    context = _context()
    n_buckets = len(bucket_grid(context))
    rows, phase, bucket = time_order(_rows(seed), context, n_buckets)
    codes, names = subject_codes(rows["endpoint"])
    order = order_by_subject(codes, names, phase, bucket, n_buckets, {"duration_ms": rows["duration_ms"].to_numpy()})
    got = (
        order.frame.group_by("_kw").agg(pl.col("duration_ms").quantile(0.95).alias("p95"), pl.len().alias("n"))
        .with_columns(pl.col("_kw") // 5, (pl.col("_kw") % 5).alias("phase"))
        .filter(pl.col("phase").is_in([PHASE_BASELINE, PHASE_INCIDENT]))
    )
    got = {(names[k], ph): (p95, n) for k, p95, n, ph in got.select("_kw", "p95", "n", "phase").iter_rows()}
    ts = pl.col("ts")
    window = (pl.when((ts >= context.baseline.start) & (ts < context.baseline.end)).then(PHASE_BASELINE)
              .when((ts >= context.incident.start) & (ts < context.incident.end)).then(PHASE_INCIDENT))
    want = (
        _rows(seed).with_columns(window.alias("phase")).filter(pl.col("phase").is_not_null())
        .group_by("endpoint", "phase").agg(pl.col("duration_ms").quantile(0.95).alias("p95"), pl.len().alias("n"))
    )
    want = {(e, ph): (p95, n) for e, ph, p95, n in want.iter_rows()}
    assert got == want
    # each run holds one subject's rows in time order
    kb = order.frame["_kb"].to_numpy()
    assert np.all(np.diff(kb) >= 0)


def test_subject_codes_are_dense_with_null_as_a_value():
    codes, names = subject_codes(pl.Series(["x", None, "y", "x", None]))
    assert sorted(set(codes.tolist())) == [0, 1, 2]
    assert [names[c] for c in codes] == ["x", None, "y", "x", None]
    assert subject_codes(pl.Series([], dtype=pl.String))[1] == []


def _ramp_series(rng, n, tau, width, level, height, noise):
    t = np.arange(n) + 0.5
    shape = np.clip((t - tau) / width, 0, 1) if width > 0 else (t >= tau).astype(float)
    mean = level + height * shape
    if noise == "poisson":
        return rng.poisson(mean).astype(float)
    return mean * rng.lognormal(0, 0.1, n)


@pytest.mark.parametrize("noise", ["poisson", "relative"])
def test_onset_fit_recovers_the_start_of_random_ramps(noise):
    rng = np.random.default_rng(11)
    errors = []
    for _ in range(40):
        n = int(rng.integers(80, 160))
        tau = float(rng.uniform(0.45, 0.7) * n)
        width = float(rng.choice([0.0, rng.uniform(1, 12)]))
        level = float(rng.uniform(5, 60))
        values = _ramp_series(rng, n, tau, width, level, level * float(rng.uniform(1, 4)), noise)
        base = np.arange(n) < int(0.4 * n)
        inc = np.arange(n) >= int(0.4 * n) + 1
        estimate = onset_time(values, base, inc, noise=noise)
        assert estimate is not None
        errors.append(estimate - tau)
    errors = np.abs(errors)
    assert np.median(errors) <= 0.6, errors
    assert errors.max() <= 2.0, errors


def test_onset_fit_on_a_drop():
    values = np.concatenate([np.full(50, 100.0), np.full(30, 20.0)])
    base = np.arange(80) < 45
    assert onset_time(values, base, ~base, direction=-1, noise="relative") == pytest.approx(50, abs=0.5)
    assert onset_time(values, base, ~base) is None  # no rise


@pytest.mark.parametrize("seed", range(4))
def test_mann_whitney_equals_scipy_on_small_large_and_tied_samples(seed):
    """The numpy Mann-Whitney gives scipy's p-values: exact for small tie-free samples, normal
    approximation with tie and continuity corrections otherwise (scipy is only a test oracle)."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(seed)
    for case in range(200):
        small = case % 3 != 0
        n1, n2 = (int(rng.integers(1, 12)), int(rng.integers(1, 12))) if small else (int(rng.integers(9, 400)), int(rng.integers(9, 400)))
        x = rng.lognormal(rng.normal(0, 0.4), 1.0, n1)
        y = rng.lognormal(0, 1.0, n2)
        if case % 2:
            x, y = np.round(x, 1), np.round(y, 1)  # ties
        assert mann_whitney_greater(x, y) == pytest.approx(mannwhitneyu(x, y, alternative="greater").pvalue, abs=1e-12)


def test_onset_of_new_events_is_not_before_the_first_of_them():
    """Issue #18 item 2: a ramp fitted to sparse counts placed the onset of events that never happened
    before six buckets ahead of the first one (HikariPool errors from 08:48, onset 08:42)."""
    values = np.zeros(90)
    values[48:] = np.array([2, 1, 1, 1, 0, 0, 0, 2, 1, 0, 1, 1] * 4)[:42]
    base = np.arange(90) < 40
    tau = onset_time(values, base, ~base)
    assert tau is not None and tau >= 48.0


# p95 per minute of an endpoint's sampled spans (third-party-surge, seed 7): empty buckets, normal values
# (18.4, 17.6 ms at 08:41, 08:42), then the first abnormal one (70.3 ms at 08:43)
_SPARSE_P95 = [None, 22.1, 24.6, 23.9, 16.5, None, 20.5, None, None, 18.9, None, 23.5, None, 17.9, 20.2, 19.3, 15.5, 21.9,
               18.8, 13.4, 12.1, None, None, 16.6, 29.4, 24.5, 14.3, 20.4, None, 23.3, None, 17.2, 23.4, 10.4, 31.7, None,
               None, 19.1, 20.0, 13.6, None, 18.4, 17.6, 70.3, 13.4, 29.3, 56.0, 540.3, None, 108.1, 79.8, 89.8, None, 45.9,
               52.6, None, 722.5, 60.6, None, 86.4, 60.2, 92.9, None, 72.2, 77.2, 70.4, 51.1, None, None, 82.1, 74.6]


def test_onset_is_not_placed_across_empty_or_normal_buckets():
    """Issue #18 item 2: buckets without a value, or at the baseline's level, just before the first
    abnormal value say nothing of a shift (the onset was 08:41:30, ahead of two normal minutes)."""
    values = np.array([np.nan if v is None else v for v in _SPARSE_P95])
    base = np.arange(values.size) < 42
    tau = onset_time(values, base, np.arange(values.size) >= 43, smooth=1, noise="relative")
    assert tau is not None and tau >= 43.0
    # the same with two more empty minutes in front of the first abnormal value
    values[41:43] = np.nan
    tau = onset_time(values, base, np.arange(values.size) >= 43, smooth=1, noise="relative")
    assert tau is not None and tau >= 43.0
