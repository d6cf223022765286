"""Request aggregates: exact per-bucket counts and latency histograms, built from chunks and merged.

A chunk of canonical request rows (or a store's GROUP BY) becomes a `RequestAggregates` (schemas and the
sketch's constants in `rca.model`); aggregates of several chunks merge by summing, and coarsen to a wider
bucket by flooring `bucket` and summing. Memory then follows the distinct (bucket, subject) pairs, not the
lines read. The design and the SQL a store computes the same with: /work/notes/aggregates.md.

Latency quantiles come from a log-binned histogram (DDSketch's logarithmic mapping, relative accuracy
`SKETCH_ALPHA` = 1%) computed as polars expressions: the `ddsketch` package adds values one by one in
Python (seconds per million), where a vectorized bin is tens of milliseconds and merges with a group-by.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

import polars as pl

from rca.model import (
    AGGREGATE_DIMENSIONS,
    AGGREGATE_KEY,
    CALL_AGGREGATES_SCHEMA,
    LATENCY_SKETCH_SCHEMA,
    REQUEST_AGGREGATES_SCHEMA,
    SKETCH_ALPHA,
    SKETCH_METRICS,
    SKETCH_MIN_MS,
    SKETCH_ZERO_BIN,
    TS,
    CallAggregates,
    RequestAggregates,
)

GAMMA = (1 + SKETCH_ALPHA) / (1 - SKETCH_ALPHA)
LN_GAMMA = math.log(GAMMA)
# Dimensions whose latency is kept as histograms (the latency detector's; sources and user agents are
# compared by counts only, and a histogram per client would cost more than the rows).
SKETCH_DIMENSIONS = ("service", "endpoint", "host")
AGGREGATE_KEY_STRINGS = tuple(dict.fromkeys(("signal", "service", "method", *AGGREGATE_DIMENSIONS)))  # the row strings aggregates group by
AGGREGATED_REQUEST_COLUMNS = ("ts", "status", "bytes", *SKETCH_METRICS, *AGGREGATE_KEY_STRINGS)  # all `aggregate_requests` reads
_COUNT_COLUMNS = [c for c in REQUEST_AGGREGATES_SCHEMA if c not in (*AGGREGATE_KEY, "method")]
SUM_ROWS = 50_000  # aggregate rows regrouped at once when parts are merged or coarsened (`_summed`): smaller is slower, bigger holds more


def bucket_floor_expr(bucket_s: int, column: str = "ts") -> pl.Expr:
    """`column` floored to a multiple of `bucket_s` seconds since the epoch (ClickHouse's toStartOfInterval)."""
    step = bucket_s * 1_000_000
    return ((pl.col(column).dt.epoch("us") // step) * step).cast(TS)


def sketch_bin_expr(value: pl.Expr) -> pl.Expr:
    """The histogram bin of each value: ceil(ln x / ln gamma), SKETCH_ZERO_BIN for x <= SKETCH_MIN_MS."""
    return pl.when(value > SKETCH_MIN_MS).then((value.log() / LN_GAMMA).ceil()).otherwise(SKETCH_ZERO_BIN).cast(pl.Int32)


def bin_value_expr(bin_: pl.Expr) -> pl.Expr:
    """A bin's representative value, within SKETCH_ALPHA of every value in it (0 for the zero bin)."""
    return pl.when(bin_ == SKETCH_ZERO_BIN).then(0.0).otherwise(2.0 * (bin_.cast(pl.Float64) * LN_GAMMA).exp() / (GAMMA + 1.0))


def dependency_expr() -> pl.Expr:
    """The dependency a span calls: a client span's peer service, else its database system; null otherwise."""
    return pl.when(pl.col("kind") == "client").then(pl.coalesce(pl.col("peer_service"), pl.col("db_system"))).otherwise(None)


def log_duration_expr() -> pl.Expr:
    """ln of a span's duration in ms, clipped at 1e-3 ms: the location statistic of per-bucket call times."""
    return pl.col("duration_ms").clip(1e-3).log()


def aggregate_calls(spans: pl.DataFrame, bucket_s: int, origin: str | None = None) -> pl.DataFrame:
    """CALL_AGGREGATES_SCHEMA rows of the calls (client spans with a dependency and a duration) among `spans`."""
    return (
        spans.lazy().with_columns(dependency_expr().alias("dependency"))
        .filter(pl.col("dependency").is_not_null() & pl.col("duration_ms").is_not_null())
        .group_by("dependency", bucket_floor_expr(bucket_s).alias("bucket"))
        .agg(pl.len().cast(pl.Int64).alias("calls"), log_duration_expr().sum().alias("log_ms_sum"))
        .with_columns(pl.lit(origin, pl.String).alias("origin"))
        .select(list(CALL_AGGREGATES_SCHEMA)).collect()
    )


def merge_calls(parts: Sequence[pl.DataFrame], bucket_s: int) -> pl.DataFrame:
    """Call aggregates summed at buckets of `bucket_s` (a multiple of each part's width)."""
    if not parts:
        return pl.DataFrame(schema=CALL_AGGREGATES_SCHEMA)
    return (
        pl.concat(parts).lazy().with_columns(bucket_floor_expr(bucket_s, "bucket").alias("bucket"))
        .group_by("origin", "dependency", "bucket").agg(pl.col("calls").sum(), pl.col("log_ms_sum").sum())
        .select(list(CALL_AGGREGATES_SCHEMA)).collect()
    )


def merge_call_aggregates(parts: Sequence[CallAggregates]) -> CallAggregates | None:
    """The call aggregates of several inputs at the widest of their widths; None when the widths do not nest."""
    if not parts:
        return None
    width = max(p.bucket_s for p in parts)
    if any(width % p.bucket_s for p in parts):
        return None
    return CallAggregates(width, merge_calls([p.counts for p in parts], width))


def empty_aggregates(bucket_s: int) -> RequestAggregates:
    return RequestAggregates(bucket_s, pl.DataFrame(schema=REQUEST_AGGREGATES_SCHEMA), pl.DataFrame(schema=LATENCY_SKETCH_SCHEMA))


def aggregate_requests(requests: pl.DataFrame | pl.LazyFrame, bucket_s: int) -> RequestAggregates:
    """Aggregate canonical request rows (REQUESTS_SCHEMA; its key strings may come as Categorical) at buckets of
    `bucket_s` seconds."""
    # the key strings are grouped by as codes (categories made for this call, freed with it): each string is
    # hashed once rather than in each of the dozen group-bys, and their keys are numbers, not copies of strings
    # (150k access-log rows: about 1.5x faster, half the memory); the aggregated rows get their strings back
    schema = requests.collect_schema()
    coded = {c: pl.Categorical(pl.Categories.random()) for c in AGGREGATE_KEY_STRINGS if schema.get(c) == pl.String}
    rows = (requests.lazy().filter(pl.col("ts").is_not_null())
            .with_columns(bucket_floor_expr(bucket_s).alias("bucket"), *(pl.col(c).cast(dtype) for c, dtype in coded.items())))
    strings = [pl.col(c).cast(pl.String) for c in ("signal", "service", "value", "method")]
    status = pl.col("status")
    totals = [
        pl.len().cast(pl.Int64).alias("requests"),
        (status >= 500).sum().cast(pl.Int64).alias("errors"),
        ((status >= 400) & (status < 500)).sum().cast(pl.Int64).alias("client_errors"),
        status.count().cast(pl.Int64).alias("with_status"),
        pl.col("bytes").sum().cast(pl.Int64).alias("bytes"),
        pl.col("duration_ms").count().cast(pl.Int64).alias("timed"),
        pl.col("duration_ms").sum().alias("duration_ms_sum"),
        pl.col("upstream_ms").count().cast(pl.Int64).alias("upstream_timed"),
        pl.col("upstream_ms").sum().alias("upstream_ms_sum"),
    ]
    counts = [
        rows.group_by("signal", "service", "bucket", pl.col(dim).alias("value"), "method")
        .agg(totals)
        .with_columns(pl.lit(dim).alias("dimension"), *strings)
        for dim in AGGREGATE_DIMENSIONS
    ]
    sketches = [
        rows.filter(pl.col(metric).is_not_null())
        .group_by("signal", "service", "bucket", pl.col(dim).alias("value"), sketch_bin_expr(pl.col(metric)).alias("bin"))
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns(pl.lit(dim).alias("dimension"), pl.lit(metric).alias("metric"), *strings[:3])
        for dim in SKETCH_DIMENSIONS
        for metric in SKETCH_METRICS
    ]
    out = pl.collect_all([pl.concat(counts).select(list(REQUEST_AGGREGATES_SCHEMA)), pl.concat(sketches).select(list(LATENCY_SKETCH_SCHEMA)),
                          rows.select(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last"))])
    first, last = out[2].row(0)
    return RequestAggregates(bucket_s, out[0].cast(REQUEST_AGGREGATES_SCHEMA), out[1].cast(LATENCY_SKETCH_SCHEMA), first, last)  # type: ignore[arg-type]


def merge_aggregates(parts: Iterable[RequestAggregates], bucket_s: int | None = None) -> RequestAggregates:
    """Sum aggregates (of chunks, files or stores) into one, at `bucket_s` (default: the widest part's),
    which every part's width must divide."""
    parts = list(parts)
    if not parts:
        return empty_aggregates(bucket_s or 60)
    width = bucket_s or max(p.bucket_s for p in parts)
    for part in parts:
        if width % part.bucket_s:
            raise ValueError(f"aggregates at {part.bucket_s}s cannot be coarsened to {width}s")
    counts = pl.concat([p.counts for p in parts])
    sketches = pl.concat([p.sketches for p in parts])
    if any(p.bucket_s != width for p in parts):
        counts = counts.with_columns(bucket_floor_expr(width, "bucket").alias("bucket"))
        sketches = sketches.with_columns(bucket_floor_expr(width, "bucket").alias("bucket"))
    if len(parts) > 1 or any(p.bucket_s != width for p in parts):
        # only the buckets that two parts hold (or a part coarsened here) need summing; a group-by's keys of strings
        # cost several times the rows it reads, so the others are passed through as they are
        shared = _shared_buckets(parts, width)
        count_key, sketch_key = [*AGGREGATE_KEY, "method"], [*AGGREGATE_KEY, "metric", "bin"]
        if shared is None:
            counts = pl.concat(_summed(counts, count_key, _COUNT_COLUMNS, REQUEST_AGGREGATES_SCHEMA))
            sketches = pl.concat(_summed(sketches, sketch_key, ["count"], LATENCY_SKETCH_SCHEMA))
        elif shared.len():
            summed = pl.col("bucket").is_in(shared.implode())
            counts = pl.concat([counts.filter(~summed), *_summed(counts.filter(summed), count_key, _COUNT_COLUMNS, REQUEST_AGGREGATES_SCHEMA)])
            sketches = pl.concat([sketches.filter(~summed), *_summed(sketches.filter(summed), sketch_key, ["count"], LATENCY_SKETCH_SCHEMA)])
    firsts = [p.first for p in parts if p.first is not None]
    lasts = [p.last for p in parts if p.last is not None]
    return RequestAggregates(width, counts, sketches, min(firsts, default=None), max(lasts, default=None))


def _summed(rows: pl.DataFrame, key: Sequence[str], columns: Sequence[str], schema: dict[str, pl.DataType]) -> list[pl.DataFrame]:
    """`rows` summed per `key` (which holds `bucket`), a range of buckets of about SUM_ROWS rows at a time: a
    group-by's keys of strings and its table cost several times the rows it reads, so a million rows (a width change
    of a long read) regrouped at once would be the peak of the whole read."""
    def summed(part: pl.DataFrame) -> pl.DataFrame:
        return part.group_by(key).agg(pl.col(columns).sum()).select(list(schema))

    if rows.height <= SUM_ROWS or rows.get_column("bucket").null_count():
        return [summed(rows)]
    slices = (rows.group_by("bucket").len().sort("bucket").with_columns((pl.col("len").cum_sum() // SUM_ROWS).alias("slice"))
              .group_by("slice").agg(pl.col("bucket").min().alias("low"), pl.col("bucket").max().alias("high")).sort("slice"))
    return [summed(rows.filter(pl.col("bucket").is_between(low, high))) for _, low, high in slices.iter_rows()]


def _shared_buckets(parts: Sequence[RequestAggregates], width: int) -> pl.Series | None:
    """The buckets (at `width`) that more than one of the parts holds: only their keys can be in two parts
    (each part holds a key once). None when every bucket must be summed (a part coarsened here, or a null bucket)."""
    if any(p.bucket_s != width for p in parts):
        return None
    held = []
    for index, part in enumerate(parts):
        buckets = pl.concat([part.counts.select("bucket"), part.sketches.select("bucket")]).unique()
        if buckets.get_column("bucket").null_count():
            return None
        held.append(buckets.with_columns(pl.lit(index).alias("part")))
    return pl.concat(held).group_by("bucket").len().filter(pl.col("len") > 1).get_column("bucket")


def relabel(aggregates: RequestAggregates, dimension: str, value: pl.Expr) -> RequestAggregates:
    """The aggregates with the values of `dimension` replaced by `value` (an expression of the counts'
    columns: a value settled only once every row is read), rows that now share a key summed. Only that
    dimension's rows are regrouped; its histograms too when it has some."""
    of_dimension = pl.col("dimension") == dimension

    def regroup(frame: pl.DataFrame, extra: Sequence[str], sums: Sequence[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
        rows = frame.filter(of_dimension).with_columns(value.alias("value"))
        summed = rows.group_by(*AGGREGATE_KEY, *extra).agg(pl.col(sums).sum()).select(list(schema)).cast(schema)  # type: ignore[arg-type]
        return pl.concat([frame.filter(~of_dimension), summed])

    counts = regroup(aggregates.counts, ["method"], _COUNT_COLUMNS, REQUEST_AGGREGATES_SCHEMA)
    sketches = regroup(aggregates.sketches, ["metric", "bin"], ["count"], LATENCY_SKETCH_SCHEMA) if dimension in SKETCH_DIMENSIONS else aggregates.sketches
    return replace(aggregates, counts=counts, sketches=sketches)


def coarsen(aggregates: RequestAggregates, bucket_s: int) -> RequestAggregates:
    """The same aggregates at buckets of `bucket_s` seconds (a multiple of their width)."""
    if bucket_s == aggregates.bucket_s:
        return aggregates
    return merge_aggregates([aggregates], bucket_s)


def sketch_quantiles(sketches: pl.DataFrame, by: Sequence[str], quantiles: dict[str, float]) -> pl.DataFrame:
    """Per group of `by`: `n` (values) and each named quantile, read from the merged histograms.

    The rank is polars' nearest rank (0-based round(q * (n - 1))), so each figure is within SKETCH_ALPHA
    (relative) of `pl.col(...).quantile(q)` over the same values."""
    by = list(by) or ["_all"]
    if "_all" in by:
        sketches = sketches.with_columns(pl.lit(True).alias("_all"))
    merged = (
        sketches.group_by(*by, "bin").agg(pl.col("count").sum())
        .sort([*by, "bin"])
        .with_columns(pl.col("count").cum_sum().over(by).alias("_cum"), pl.col("count").sum().over(by).alias("n"))
    )
    picks = [
        pl.col("bin").filter(pl.col("_cum") > (q * (pl.col("n") - 1) + 0.5).floor()).first().alias(name)
        for name, q in quantiles.items()
    ]
    out = merged.group_by(by, maintain_order=True).agg(pl.col("n").first(), *picks)
    out = out.with_columns(bin_value_expr(pl.col(name)).alias(name) for name in quantiles)
    return out.drop("_all", strict=False)
