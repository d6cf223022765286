"""Request aggregates: exact counts, mergeable chunks, and quantiles within the sketch's stated error."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rca import aggregates
from rca.aggregates import (
    aggregate_requests,
    bin_value_expr,
    coarsen,
    merge_aggregates,
    relabel,
    sketch_bin_expr,
    sketch_quantiles,
)
from rca.model import AGGREGATE_KEY, LATENCY_SKETCH_SCHEMA, REQUEST_AGGREGATES_SCHEMA, SKETCH_ALPHA, conform

START = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)


def _requests(seed: int) -> pl.DataFrame:
    """Requests whose shape varies with the seed: endpoint and client counts, latency law, nulls."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2_000, 6_000))
    endpoints = [f"/api/e{k}" for k in range(int(rng.integers(1, 12)))]
    sources = [f"10.0.{k // 250}.{k % 250}" for k in range(int(rng.integers(5, 400)))]
    sigma = float(rng.uniform(0.3, 1.5))
    duration = rng.lognormal(float(rng.uniform(0, 6)), sigma, n)
    duration[rng.random(n) < 0.05] = 0.0  # zeros have a bin of their own
    timed = rng.random(n) < float(rng.uniform(0.5, 1.0))
    return conform(pl.DataFrame({
        "ts": pl.Series(START.timestamp() * 1e6 + np.sort(rng.integers(0, 3 * 3600 * 10**6, n))).cast(pl.Int64).cast(pl.Datetime("us", "UTC")),
        "duration_ms": np.where(timed, duration, np.nan),
        "upstream_ms": np.where(rng.random(n) < 0.5, duration * 0.8, np.nan),
        "service": rng.choice(["web", "api"], n),
        "host": rng.choice(["h1", "h2", "h3"], n),
        "method": rng.choice(["GET", "POST"], n),
        "endpoint": rng.choice(endpoints, n),
        "status": rng.choice([200, 200, 200, 404, 500, 503], n),
        "source": rng.choice(sources, n),
        "user_agent": pl.Series(rng.choice(["curl/8", "Mozilla/5.0", None], n).tolist(), dtype=pl.String),  # an object array: polars may not infer it
        "bytes": rng.integers(0, 10_000, n),
        "signal": "access_log",
    }).with_columns(pl.col("duration_ms").fill_nan(None), pl.col("upstream_ms").fill_nan(None)), "requests")


def _sorted(frame: pl.DataFrame, extra: list[str]) -> pl.DataFrame:
    return frame.sort([*AGGREGATE_KEY, *extra], nulls_last=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_are_exact_and_chunks_merge_to_the_whole(seed: int):
    rows = _requests(seed)
    whole = aggregate_requests(rows, 30)
    assert whole.counts.schema == pl.Schema(REQUEST_AGGREGATES_SCHEMA)
    assert whole.sketches.schema == pl.Schema(LATENCY_SKETCH_SCHEMA)
    cut = np.random.default_rng(seed).integers(1, rows.height - 1)
    merged = merge_aggregates([aggregate_requests(rows[:cut], 30), aggregate_requests(rows[cut:], 30)])
    assert_frame_equal(_sorted(merged.counts, ["method"]), _sorted(whole.counts, ["method"]), check_exact=False)
    assert_frame_equal(_sorted(merged.sketches, ["metric", "bin"]), _sorted(whole.sketches, ["metric", "bin"]))
    # every dimension holds every row once; errors per endpoint match a direct count
    per_dim = whole.counts.group_by("dimension").agg(pl.col("requests").sum(), pl.col("errors").sum(), pl.col("timed").sum())
    assert set(per_dim["requests"].to_list()) == {rows.height}
    assert set(per_dim["errors"].to_list()) == {int((rows["status"] >= 500).sum())}
    assert set(per_dim["timed"].to_list()) == {rows["duration_ms"].count()}
    direct = rows.group_by("endpoint").agg((pl.col("status") >= 500).sum().cast(pl.Int64).alias("e")).sort("endpoint")
    mine = whole.counts.filter(pl.col("dimension") == "endpoint").group_by(pl.col("value").alias("endpoint")).agg(pl.col("errors").sum().alias("e")).sort("endpoint")
    assert mine.equals(direct)


@pytest.mark.parametrize("seed", [6, 7])
def test_parts_sharing_few_buckets_merge_to_the_whole_summing_only_those(seed: int):
    """Parts cut at bucket edges but one (as a reader settles them) merge to the aggregates of every row, and the
    rows of buckets only one part holds pass through as they were, in their order: nothing else is regrouped."""
    rows = _requests(seed).sort("ts")
    whole = aggregate_requests(rows, 300)
    floor = ((pl.col("ts").dt.epoch("us") // 300_000_000) * 300_000_000).cast(pl.Datetime("us", "UTC"))
    edges = rows.select(floor.unique().sort()).to_series().to_list()
    cut_at = edges[len(edges) // 3]  # parts 1 and 2 end on a bucket edge; part 3 begins inside part 2's last bucket
    inside = rows.filter(floor == edges[2 * len(edges) // 3]).height // 2
    second_end = rows.filter(floor < edges[2 * len(edges) // 3]).height + inside
    first = rows.filter(pl.col("ts") < cut_at)
    pieces = [first, rows[first.height:second_end], rows[second_end:]]
    parts = [aggregate_requests(p, 300) for p in pieces]
    merged = merge_aggregates(parts)
    assert_frame_equal(_sorted(merged.counts, ["method"]), _sorted(whole.counts, ["method"]), check_exact=False)
    assert_frame_equal(_sorted(merged.sketches, ["metric", "bin"]), _sorted(whole.sketches, ["metric", "bin"]))
    shared = pl.col("bucket") == edges[2 * len(edges) // 3]
    untouched = pl.concat([p.counts.filter(~shared) for p in parts])
    assert_frame_equal(merged.counts.filter(~shared), untouched)


@pytest.mark.parametrize(("seed", "sum_rows"), [(4, 50_000), (5, 300)])
def test_coarsening_equals_aggregating_at_the_wider_bucket(seed: int, sum_rows: int, monkeypatch: pytest.MonkeyPatch):
    """Also when the rows are regrouped a range of buckets at a time (`SUM_ROWS`), as a long read's are."""
    monkeypatch.setattr(aggregates, "SUM_ROWS", sum_rows)
    rows = _requests(seed)
    fine, wide = aggregate_requests(rows, 5), aggregate_requests(rows, 300)
    coarse = coarsen(fine, 300)
    assert coarse.bucket_s == 300
    assert_frame_equal(_sorted(coarse.counts, ["method"]), _sorted(wide.counts, ["method"]), check_exact=False)
    assert_frame_equal(_sorted(coarse.sketches, ["metric", "bin"]), _sorted(wide.sketches, ["metric", "bin"]))
    with pytest.raises(ValueError):
        coarsen(fine, 7)


@pytest.mark.parametrize(("seed", "dimension"), [(4, "host"), (5, "version")])
def test_relabelling_a_dimension_equals_aggregating_the_relabelled_rows(seed: int, dimension: str):
    """Values merged after the fact (two hosts found to be one, a version known only later) sum as if the
    rows had carried the final value; the other dimensions are untouched."""
    row = pl.int_range(pl.len())
    rows = _requests(seed).with_columns(version=pl.when(row % 5 == 0).then(None).otherwise(pl.format("1.{}", (row * 7919) % 4)))
    values = rows.get_column(dimension).drop_nulls().unique().sort().to_list()
    mapping = {v: f"final-{values[0] if i % 2 else v}" for i, v in enumerate(values)}  # every other value folds into the first
    final = pl.col("value").replace_strict(mapping, default=None, return_dtype=pl.String)
    relabelled = relabel(aggregate_requests(rows, 30), dimension, final)
    expected = aggregate_requests(rows.with_columns(pl.col(dimension).replace_strict(mapping, default=None, return_dtype=pl.String)), 30)
    assert_frame_equal(_sorted(relabelled.counts, ["method"]), _sorted(expected.counts, ["method"]), check_exact=False)
    assert_frame_equal(_sorted(relabelled.sketches, ["metric", "bin"]), _sorted(expected.sketches, ["metric", "bin"]))


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_sketch_quantiles_are_within_the_stated_relative_error(seed: int):
    rows = _requests(seed).filter(pl.col("duration_ms").is_not_null())
    qs = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "p10": 0.1}
    exact = rows.group_by("endpoint").agg(pl.col("duration_ms").quantile(q).alias(k) for k, q in qs.items()).sort("endpoint")
    sketches = aggregate_requests(rows, 60).sketches.filter((pl.col("dimension") == "endpoint") & (pl.col("metric") == "duration_ms"))
    mine = sketch_quantiles(sketches, ["value"], qs).sort("value")
    assert mine["value"].to_list() == exact["endpoint"].to_list()
    assert mine["n"].to_list() == rows.group_by("endpoint").len().sort("endpoint")["len"].to_list()
    for name in qs:
        truth, approx = exact[name].to_numpy(), mine[name].to_numpy()
        assert np.all(np.abs(approx - truth) <= SKETCH_ALPHA * truth + 1e-9), name


def test_every_bin_value_is_within_alpha_of_its_values():
    values = pl.Series("x", np.geomspace(2e-3, 1e7, 20_001))
    back = pl.DataFrame({"x": values}).select(bin_value_expr(sketch_bin_expr(pl.col("x")))).to_series().to_numpy()
    assert np.all(np.abs(back - values.to_numpy()) <= SKETCH_ALPHA * values.to_numpy())
    zero = pl.DataFrame({"x": [0.0, -3.0, 1e-4]}).select(bin_value_expr(sketch_bin_expr(pl.col("x")))).to_series().to_list()
    assert zero == [0.0, 0.0, 0.0]
