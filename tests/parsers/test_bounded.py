"""Requests in bounded memory (parsers.bounded): aggregates built chunk by chunk equal those of the whole
frame, pruning keeps the totals exact within its budget, and the sample is uniform, bounded and the same
however the input is cut (end to end: tests/test_bounded_analysis.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rca.aggregates import aggregate_requests
from rca.model import AGGREGATE_KEY
from rca.parsers import bounded
from rca.parsers.bounded import BoundedRequests, aggregate_base_s, prune_aggregates
from tests.test_aggregates import _requests as varied_requests


def _requests(seed: int) -> pl.DataFrame:
    """test_aggregates' varied requests (time-ordered), numbered by line as a parser numbers them."""
    rows = varied_requests(seed)
    return rows.with_columns(pl.int_range(1, rows.height + 1, dtype=pl.Int64).alias("line"))


def _read(rows: pl.DataFrame, chunk: int, max_rows: int, shares: bool = False) -> BoundedRequests:
    """`shares`: tell the reader how much of the input each chunk completes, as parsers of files do."""
    reader = BoundedRequests(max_rows)
    for start in range(0, rows.height, chunk):
        reader.add(rows[start : start + chunk], min(start + chunk, rows.height) / rows.height if shares else None)
    return reader


def _sorted(frame: pl.DataFrame, extra: list[str]) -> pl.DataFrame:
    return frame.sort([*AGGREGATE_KEY, *extra], nulls_last=True)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_aggregates_of_chunks_equal_those_of_the_whole_frame(seed: int):
    rows = _requests(seed)
    chunk = int(np.random.default_rng(seed).integers(200, 1500))
    sample = _read(rows, chunk, max_rows=rows.height // 5).sample()
    assert sample is not None
    span_s = (rows["ts"].max() - rows["ts"].min()).total_seconds()  # type: ignore[operator]
    assert sample.aggregates.bucket_s == aggregate_base_s(span_s)
    whole = prune_aggregates(aggregate_requests(rows, sample.aggregates.bucket_s), sample.prune_share)
    assert_frame_equal(_sorted(sample.aggregates.counts, ["method"]), _sorted(whole.counts, ["method"]), check_exact=False)
    assert_frame_equal(_sorted(sample.aggregates.sketches, ["metric", "bin"]), _sorted(whole.sketches, ["metric", "bin"]))
    assert (sample.rows, sample.first_ts, sample.last_ts) == (rows.height, rows["ts"].min(), rows["ts"].max())


@pytest.mark.parametrize("seed", [5, 6])
def test_pruning_keeps_every_total_and_bounds_the_rows(seed: int, monkeypatch: pytest.MonkeyPatch):
    """Merged and pruned as it reads (tiny budgets): the vantage totals, hosts and versions stay exact,
    the pruned dimensions keep only subjects at or over the share of their bucket, the budget holds."""
    monkeypatch.setattr(bounded, "MERGE_ROWS", 500)
    monkeypatch.setattr(bounded, "MAX_AGGREGATE_ROWS", 2_000)
    rows = _requests(seed)
    sample = _read(rows, 700, max_rows=1_000).sample()
    assert sample is not None
    counts = sample.aggregates.counts
    whole = aggregate_requests(rows, sample.aggregates.bucket_s).counts
    exact = ["service", "host", "version"]
    assert_frame_equal(_sorted(counts.filter(pl.col("dimension").is_in(exact)), ["method"]),
                       _sorted(whole.filter(pl.col("dimension").is_in(exact)), ["method"]), check_exact=False)
    assert counts.height <= 2_000 or sample.prune_share >= 1.0
    assert sample.prune_share > bounded.PRUNE_SHARE  # the budget forced a coarser share
    pruned = counts.filter(pl.col("dimension").is_in(bounded.PRUNED_DIMENSIONS))
    assert pruned.height < whole.filter(pl.col("dimension").is_in(bounded.PRUNED_DIMENSIONS)).height
    assert pruned["requests"].sum() <= rows.height * len(bounded.PRUNED_DIMENSIONS)


@pytest.mark.parametrize("seed", [7, 8])
def test_sample_is_bounded_uniform_and_independent_of_chunking(seed: int):
    rows = _requests(seed)
    max_rows = rows.height // 6
    samples = [_read(rows, chunk, max_rows) for chunk in (300, 1100, rows.height)]
    frames = [s.frame(rows.clear()) for s in samples]
    assert all(f.equals(frames[0]) for f in frames[1:])
    kept = frames[0]
    assert max_rows // 2 < kept.height <= max_rows
    share = samples[0].sample().kept_share  # type: ignore[union-attr]
    assert kept.height == pytest.approx(rows.height * share, rel=0.25)
    # uniform: each service keeps about the same share of its rows
    for service in ("web", "api"):
        assert kept.filter(pl.col("service") == service).height == pytest.approx(rows.filter(pl.col("service") == service).height * share, rel=0.3)


@pytest.mark.parametrize(("seed", "times"), [(10, 3), (11, 5), (12, 12)])
def test_input_projected_over_the_cap_is_sampled_from_its_first_chunk_alike(seed: int, times: int):
    """Knowing the input's size, a reader samples from the first chunk at the level the size calls for:
    it never holds more than the cap, and keeps the same rows and the same exact totals as one that
    learns the size only by passing the cap."""
    rows = _requests(seed)
    max_rows = rows.height // times
    chunk = rows.height // 40
    early, late = _read(rows, chunk, max_rows, shares=True), _read(rows, chunk, max_rows)
    assert early.sampling and early.kept <= max_rows
    assert early.frame(rows.clear()).equals(late.frame(rows.clear()))
    exact = pl.col("dimension").is_in(["service", "host", "version"])
    totals = [_sorted(r.sample().aggregates.counts.filter(exact), ["method"]) for r in (early, late)]  # type: ignore[union-attr]
    assert_frame_equal(totals[0], totals[1], check_exact=False)


def test_input_projected_near_the_cap_is_read_as_one_that_is_not():
    rows = _requests(9)
    reader = _read(rows, rows.height // 40, max_rows=rows.height - 10, shares=True)
    assert reader.sample() is not None and reader.level == 1  # passed the cap by reading, not by projection
    assert _read(rows, rows.height // 40, max_rows=rows.height, shares=True).sample() is None


def test_small_input_is_kept_whole_without_aggregates():
    rows = _requests(9)
    reader = _read(rows, 1000, max_rows=rows.height)
    assert reader.sample() is None
    assert reader.frame(rows.clear()).equals(rows)


@pytest.mark.parametrize("seed", [13, 14])
def test_sampled_rows_are_held_as_codes_and_given_back_as_the_rows_kept(seed: int):
    """Past the cap the kept rows' strings are held as codes, each distinct string once (a long log's sample repeats
    its user agents and routes thousands of times): `frame` gives back exactly the rows of the input at the kept
    lines, nulls and long strings included, and a thinning lets go of the strings only dropped rows held."""
    rows = _requests(seed).with_columns(  # long strings (not inlined in a view) and nulls, repeated
        pl.concat_str(pl.lit("Mozilla/5.0 (X11; Linux x86_64) build "), pl.col("line") % 37).alias("user_agent"),
        pl.when(pl.col("line") % 5 == 0).then(None).otherwise(pl.col("endpoint")).alias("endpoint"))
    reader = _read(rows, 500, max_rows=rows.height // 5)
    assert reader.level >= 2  # thinned at least once after the switch
    kept = reader.frame(rows.clear())
    assert kept.equals(rows.filter(pl.col("line").hash(bounded.SAMPLE_SEED) % (1 << reader.level) == 0))
    held = pl.concat(reader.parts)
    assert all(isinstance(held.schema[c], pl.Categorical) for c, dtype in rows.schema.items() if dtype == pl.String)
    for column, categories in reader.codes.categories.items():  # no string of a dropped row only
        assert set(categories.to_series().to_list()) <= set(kept.get_column(column).drop_nulls().to_list())
