"""Metric series: a dense integer id per distinct (name, host, service, attributes) of the metrics frame,
and the frame's points a batch of whole series at a time.

Why. A group-by, sort or window over the four string keys of millions of metric points makes polars'
in-memory engine encode every point's strings: at 5M points about +0.8 GB per group-by, however small
its aggregate (measured; string categoricals are little better: +0.4 GB for a group-by on four
categorical columns). The distinct key tuples are few (one series per metric, pod and attribute set):
found once with the streaming engine, which hashes the strings morsel by morsel (+40 MB at 5M points),
and joined back to the points as a UInt32, they let the detectors group, sort and window on one integer
column and read the strings back from the small table of keys.

Even on one integer key, an in-memory group-by or sort of every point costs its own copy of the points
(+150 to +500 MB at 5M). The detectors therefore work a batch of whole series at a time
(`MetricSeries.batches`, about `BATCH_POINTS` points each): what a batch costs does not grow with the
file, and as each series is whole in one batch, with its points in their order, every per-series result
(a mean per bucket, a median, a sorted run) is the one the whole frame would give, to the last bit. The
streaming engine would bound memory too, but it sums floats in thread order: the means would differ in
their last digits from run to run.

Ids are numbered in the order of the sorted key tuples (nulls last), so they do not depend on the row
order or on the engine's threads. `metric_series` computes them once per metrics frame (the windows and
every metric detector read them), and forgets them with the frame.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

SERIES_KEYS = ("name", "host", "service", "attributes")
SERIES = "series"  # the id column
POINTS = "points"  # the keys' count of points per series
BATCH_POINTS = 1 << 18  # points per batch, about: 256k points of (series, ts, value) take 5 MB, a group-by or sort of them ~25 MB


@dataclass(frozen=True)
class MetricSeries:
    """The series of a metrics frame: `keys` one row per series (`series` id 0..n-1, its key columns and
    its count of `points`), `ids` the series of each row of the frame (UInt32, named `series`)."""

    keys: pl.DataFrame
    ids: pl.Series

    def regrouped(self, **columns: pl.Expr) -> MetricSeries:
        """Coarser series: those whose keys, computed by `columns` from the key columns (e.g. the service
        falling back to the host), are equal, merged into one. Works on the small table of keys only."""
        names = list(columns)
        mapped = self.keys.select(SERIES, POINTS, **columns)
        keys = _numbered(mapped.group_by(names).agg(pl.col(POINTS).sum()))
        old_to_new = mapped.join(keys.drop(POINTS), on=names, how="left", nulls_equal=True, suffix="_new").sort(SERIES)[f"{SERIES}_new"]
        return MetricSeries(keys=keys, ids=old_to_new.gather(self.ids).alias(SERIES))

    def batches(self, points: pl.DataFrame, max_points: int | None = None) -> Iterator[pl.DataFrame]:
        """`points` (columns of the metrics frame, row for row) with their `series`, a batch of whole series
        at a time (about `max_points` rows, more when one series has more), rows in their order."""
        max_points = max_points or BATCH_POINTS
        first_point = self.keys[POINTS].cum_sum() - self.keys[POINTS]
        edges = self.keys.select(SERIES, (first_point // max_points).alias("batch")).group_by("batch").agg(
            pl.col(SERIES).min().alias("lo"), pl.col(SERIES).max().alias("hi")).sort("batch")
        if edges.height == 1:
            yield points.with_columns(self.ids)
            return
        for lo, hi in edges.select("lo", "hi").iter_rows():
            # a mask, not a filter on the frame with its ids: their chunks differ, and aligning them copies every point
            mask = self.ids.is_between(lo, hi)
            yield points.filter(mask).with_columns(self.ids.filter(mask))

    def with_keys(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (with a `series` column) with the key columns of its series."""
        return frame.join(self.keys.drop(POINTS), on=SERIES, how="left")


def _numbered(distinct: pl.DataFrame) -> pl.DataFrame:
    """Distinct key tuples sorted (nulls last) and numbered from 0 as `series`."""
    names = [c for c in distinct.columns if c != POINTS]
    return distinct.sort(names, nulls_last=True).with_row_index(SERIES).with_columns(pl.col(SERIES).cast(pl.UInt32))


def _compute(metrics: pl.DataFrame) -> MetricSeries:
    keys_only = metrics.lazy().select(SERIES_KEYS)
    keys = _numbered(keys_only.group_by(SERIES_KEYS).agg(pl.len().cast(pl.Int64).alias(POINTS)).collect(engine="streaming"))
    ids = (
        keys_only.join(keys.lazy().drop(POINTS), on=list(SERIES_KEYS), how="left", nulls_equal=True, maintain_order="left")
        .select(SERIES).collect(engine="streaming").to_series()
    )
    return MetricSeries(keys=keys, ids=ids)


_COMPUTED: dict[int, MetricSeries] = {}  # by id() of a live metrics frame; dropped when the frame is


def metric_series(metrics: pl.DataFrame) -> MetricSeries:
    """The series of `metrics` (computed on first use for this frame, then reused)."""
    key = id(metrics)
    found = _COMPUTED.get(key)
    if found is None:
        found = _COMPUTED[key] = _compute(metrics)
        weakref.finalize(metrics, _COMPUTED.pop, key, None)
    return found
