"""Requests of a big input in bounded memory: exact aggregates of every row, a uniform sample of the rows.

A parser hands each chunk's canonical request rows to `BoundedRequests.add` as it reads. Up to `max_rows`
rows everything is kept and nothing else is done: a small input is analysed as before. Past it, the rows
kept so far and every chunk after are aggregated (`rca.aggregates`: counts and latency histograms per
bucket, merged by summing) and the rows are thinned to a uniform sample: a row stays when the low `level`
bits of a hash of its line number (or of another column: requests from spans are kept by trace id, so a
trace's requests stay or go together) are zero, `level` rising by one (halving the sample) each time the kept
rows pass `max_rows` again. Which rows stay depends only on the final level, not on the chunking, so the
same input always gives the same sample, of between `max_rows / 2` and `max_rows` rows.

Bucket width: the aggregates are built at the widest width that divides every analysis bucket the
input's span could still choose (`windows.choose_bucket_s` only grows with the span), and re-coarsened
as the span read grows, so they coarsen exactly to the bucket the analysis picks later.

Cardinality: the subjects of `endpoint`, `source` and `user_agent` can be as many as the rows (a
public site's paths and clients, over months). Once a bucket is complete, its rows of those dimensions
(a subject and method) holding less than the prune share of the bucket's requests of the vantage (and of
its errors) are dropped: a subject that small cannot explain a shift of the vantage, and memory then
follows buckets times the subjects that matter, not the lines. The share starts at `PRUNE_SHARE` and
doubles while the aggregates are over `MAX_AGGREGATE_ROWS` (years of a site's daily buckets). Vantage
totals (`service`), hosts and versions are never pruned. A bucket is complete when it lies strictly
inside the time range of a batch of rows, or ends before the earliest timestamp of the latest chunk
(logs are written in time order; a row arriving later for a pruned bucket still counts in the totals).
Pruning happens at the width of the time: subjects kept at a fine width and coarsened later may miss
the small parts pruned before.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import reduce

import polars as pl

from rca.aggregates import AGGREGATED_REQUEST_COLUMNS, bucket_floor_expr, empty_aggregates, merge_aggregates
from rca.model import AGGREGATE_KEY, REQUESTS_SCHEMA, RequestAggregates

PRUNE_SHARE = 0.001  # a subject below 0.1% of its bucket's requests (and errors) is left out of the aggregates
# Aggregate rows kept (about 150 bytes each, so ~30 MB): past it the prune share doubles until they fit.
MAX_AGGREGATE_ROWS = 200_000
PRUNED_DIMENSIONS = ("endpoint", "source", "user_agent")
SAMPLE_SEED = 0x5EED  # the line hash deciding which rows stay; fixed: the same input gives the same sample
# An input whose first chunk projects more than this many times max_rows is sampled from the start: the
# projection (rows per byte of that chunk times the size) can be off by some, never by this much.
EARLY_SAMPLING = 2
MERGE_ROWS = 100_000  # aggregate rows of open buckets merged together once they pass this
AGGREGATE_BATCH_ROWS = 150_000  # request rows aggregated at once: a few chunks (per call, polars' fixed costs are not small)


# Aggregation runs beside the parse: polars releases the GIL, so it takes the core the parser leaves idle.
_AGGREGATOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rca-aggregate")


@dataclass(frozen=True)
class RequestSample:
    """What a bounded read kept of an input's requests: exact aggregates of them all, their count and
    time range, and the share of rows kept (1 / 2**level)."""

    aggregates: RequestAggregates
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None
    kept_share: float
    prune_share: float  # subjects of PRUNED_DIMENSIONS under this share of their bucket are left out
    sampled_by: str = "line"  # the column whose hash chose the rows kept


def aggregate_base_s(span_s: float) -> int:
    """The widest bucket width that divides every analysis bucket a span of at least `span_s` seconds
    can choose: the gcd of the candidate widths."""
    from rca.detectors.windows import BUCKETS_S, choose_bucket_s

    smallest = choose_bucket_s(span_s)
    return reduce(math.gcd, [b for b in BUCKETS_S if b >= smallest])


def prune_aggregates(aggregates: RequestAggregates, share: float = PRUNE_SHARE) -> RequestAggregates:
    """`aggregates` without the rows of PRUNED_DIMENSIONS (a subject and method) under `share` of their
    bucket's requests and of its errors."""
    counts, sketches = aggregates.counts, aggregates.sketches
    vantage = ["signal", "service", "bucket"]
    of_vantage = pl.col("dimension") == "service"
    all_requests = pl.when(of_vantage).then(pl.col("requests")).otherwise(0).sum().over(vantage)
    all_errors = pl.when(of_vantage).then(pl.col("errors")).otherwise(0).sum().over(vantage)
    small = (pl.col("dimension").is_in(PRUNED_DIMENSIONS) & (pl.col("requests") < share * all_requests)
             & ((pl.col("errors") == 0) | (pl.col("errors") < share * all_errors)))
    counts = counts.with_columns(small.alias("_small"))
    pruned = counts.filter(pl.col("_small")).get_column("bucket").unique()
    kept = counts.filter(~pl.col("_small")).drop("_small")
    if not pruned.len():
        return aggregates
    if sketches.height:  # a subject's histograms go with its last count; only the buckets it left from are joined
        touched = pl.col("bucket").is_in(pruned.implode())
        kept_keys = kept.filter(touched).select(AGGREGATE_KEY).unique()
        sketches = pl.concat([sketches.filter(~touched), sketches.filter(touched).join(kept_keys, on=list(AGGREGATE_KEY), how="semi", nulls_equal=True)])
    return replace(aggregates, counts=kept, sketches=sketches)


def _prunable(aggregates: RequestAggregates) -> bool:
    """Whether any subject of PRUNED_DIMENSIONS is left (a higher share may prune it)."""
    return aggregates.counts.select(pl.col("dimension").is_in(PRUNED_DIMENSIONS).any()).item()


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its strings copied into buffers of their own. Polars' strings are views: a filter, a
    join or a group-by key of a chunk's rows points into the whole chunk's buffers, so a 1/8 sample or a
    small aggregate of every chunk would keep every chunk alive (5M lines: +0.9 GB). Appending "" rebuilds them."""
    strings = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(pl.col(strings) + "") if strings and frame.height else frame


class StringCodes:
    """The String columns of sampled rows held as codes (Categorical), each distinct string once, over categories
    of their own (freed with them: the global string cache would keep every value of a long log). A sample of a
    long log repeats its services, routes, clients and user agents thousands of times: as strings each row costs
    16 bytes a column plus the text of the longer ones (a 1/16 sample of 10M Apache lines: ~150 MB), as codes 4.
    Columns in `keep` stay strings (compacted): a sample key is hashed as itself."""

    def __init__(self, keep: tuple[str, ...] = ()):
        self.keep = keep
        self.categories: dict[str, pl.Categories] = {}

    def encode(self, rows: pl.DataFrame) -> pl.DataFrame:
        """`rows` with their String columns (but `keep`) as codes; copies nothing of the chunk they came from."""
        strings = [c for c, dtype in rows.schema.items() if dtype == pl.String and c not in self.keep]
        for column in strings:
            self.categories.setdefault(column, pl.Categories.random())
        return compact(rows.with_columns(pl.col(c).cast(pl.Categorical(self.categories[c])) for c in strings))

    def decode(self, rows: pl.DataFrame) -> pl.DataFrame:
        """`rows` (made by `encode`) with their strings back: each string's bytes shared by the rows holding it."""
        return rows.with_columns(self.categories[c].to_series().gather(rows.get_column(c).to_physical()).alias(c)
                                 for c, dtype in rows.schema.items() if isinstance(dtype, pl.Categorical) and c in self.categories)

    def thinned(self, parts: list[pl.DataFrame]) -> list[pl.DataFrame]:
        """`parts` (filtered: fewer rows) as one, encoded over fresh categories: the strings only dropped rows held
        are let go, so the categories hold no more than the sample."""
        if not parts:
            return []
        rows = self.decode(pl.concat(parts))
        self.categories = {}
        return [self.encode(rows)]


def _compacted(aggregates: RequestAggregates) -> RequestAggregates:
    return replace(aggregates, counts=compact(aggregates.counts), sketches=compact(aggregates.sketches))


class BoundedRequests:
    """Accumulates an input's request rows chunk by chunk: all of them up to `max_rows`, then a uniform
    sample of at most `max_rows` and exact aggregates of every row (see the module docstring)."""

    def __init__(self, max_rows: int | None, sample_key: str = "line"):
        self.max_rows = max_rows
        self.sample_key = sample_key  # the column whose hash decides which rows stay
        self.parts: list[pl.DataFrame] = []
        self.kept = 0
        self.rows = 0
        self.level = 0
        self.first_ts: datetime | None = None
        self.last_ts: datetime | None = None
        self.sampling = False
        self.codes = StringCodes(keep=(sample_key,))  # the sampled rows' strings, each held once
        self.share = PRUNE_SHARE
        # aggregates of buckets behind the reading, pruned (final but for the coarsening at the end), and
        # of the buckets still open (a chunk's first and last), merged now and then
        self.settled: list[RequestAggregates] = []
        self.settled_rows = 0
        self.open: list[RequestAggregates] = []
        self.open_rows = 0
        self.merge_at = MERGE_ROWS
        self.batch: list[pl.DataFrame] = []  # request rows not aggregated yet: the columns aggregates read, strings as codes
        self.batch_codes = StringCodes()
        self.batch_rows = 0
        # batches are aggregated on a thread of their own, one at a time, while the parser goes on
        self.aggregating: Future[None] | None = None

    def add(self, rows: pl.DataFrame, read_share: float | None = None) -> None:
        """Take one chunk's request rows (REQUESTS_SCHEMA, with `line`). `read_share`: the share of the
        input read once this chunk is (bytes read / size), when known: an input that will clearly pass
        `max_rows` is then sampled from its first chunk on, at the level its size calls for, rather than
        holding `max_rows` rows and aggregating them all at once when it passes."""
        if not rows.height:
            return
        self.rows += rows.height
        if self.max_rows is None:
            self.parts.append(rows)
            return
        if not self.sampling and self.kept == 0 and read_share is not None and 0 < read_share < 1:
            projected = rows.height / read_share
            if projected > EARLY_SAMPLING * self.max_rows:
                self.sampling = True
                self.level = math.ceil(math.log2(projected / self.max_rows))
        low, high = rows.select(pl.col("ts").min().alias("low"), pl.col("ts").max().alias("high")).row(0)
        if low is not None:
            self.first_ts = low if self.first_ts is None else min(self.first_ts, low)
            self.last_ts = high if self.last_ts is None else max(self.last_ts, high)
        if not self.sampling:
            self.parts.append(self.codes.encode(rows))
            self.kept += rows.height
            if self.kept > self.max_rows:  # from here on: aggregates of every row, a sample of the rows
                self.sampling = True
                for part in self.parts:  # as they came: a few MB of work at a time
                    self._batch(self.codes.decode(part))
                self._thin()
            return
        self._batch(rows)
        sample = self.codes.encode(rows.filter(self._kept_expr()))
        self.parts.append(sample)
        self.kept += sample.height
        self._thin()

    def frame(self, empty: pl.DataFrame) -> pl.DataFrame:
        """The kept rows, in reading order (`empty` when none)."""
        return self.codes.decode(pl.concat(self.parts)) if self.parts else empty

    def sample(self) -> RequestSample | None:
        """The aggregates of every row and what the sample is, once sampling began; None when every row was kept."""
        if not self.sampling:
            return None
        self._batch(None)
        base = aggregate_base_s(self._span_s())
        # the settled buckets are pruned (each piece at the current share); the open ones, the last read, are pruned
        # here once merged: pruning everything again would copy every histogram row for the few it drops
        last = prune_aggregates(merge_aggregates(self.open, base), self.share) if self.open else empty_aggregates(base)
        # the parts' strings are their own already (each was compacted): a copy of them all here would only add to the peak
        aggregates = replace(self._fit(merge_aggregates([*self.settled, last], base)), first=self.first_ts, last=self.last_ts)  # every row's range, exact
        return RequestSample(aggregates, self.rows, self.first_ts, self.last_ts, 0.5**self.level, self.share, self.sample_key)

    def _span_s(self) -> float:
        return (self.last_ts - self.first_ts).total_seconds() if self.first_ts is not None and self.last_ts is not None else 0.0

    def _kept_expr(self) -> pl.Expr:
        return pl.col(self.sample_key).hash(SAMPLE_SEED) % (1 << self.level) == 0

    def _thin(self) -> None:
        assert self.max_rows is not None
        while self.kept > self.max_rows:
            self.level += 1
            self.parts = self.codes.thinned([p.filter(self._kept_expr()) for p in self.parts])
            self.kept = sum(p.height for p in self.parts)

    def _batch(self, rows: pl.DataFrame | None) -> None:
        """Aggregate `rows` with the ones before, once they are AGGREGATE_BATCH_ROWS (None: now)."""
        if rows is not None:
            # as codes over the batch's own categories, the rows waiting cost a few bytes a column, not their chunk's strings
            self.batch.append(self.batch_codes.encode(rows.select(c for c in AGGREGATED_REQUEST_COLUMNS if c in rows.columns)))
            self.batch_rows += rows.height
        if self.batch and (rows is None or self.batch_rows >= AGGREGATE_BATCH_ROWS):
            latest = self.batch[-1].get_column("ts").min()  # buckets ending before it are complete (rows in time order)
            batch = pl.concat(self.batch)
            self.batch, self.batch_rows, self.batch_codes = [], 0, StringCodes()
            self._wait()  # one batch in flight at most: memory stays bounded
            self.aggregating = _AGGREGATOR.submit(self._aggregate, batch, latest, aggregate_base_s(self._span_s()))  # type: ignore[arg-type]
        if rows is None:
            self._wait()

    def _wait(self) -> None:
        if self.aggregating is not None:
            self.aggregating.result()  # re-raises what failed there
            self.aggregating = None

    def _aggregate(self, rows: pl.DataFrame, low: datetime | None, base: int) -> None:
        from rca.aggregates import aggregate_requests

        missing = [pl.lit(None, REQUESTS_SCHEMA[c]).alias(c) for c in AGGREGATED_REQUEST_COLUMNS if c not in rows.columns]  # columns the caller does not read
        chunk = aggregate_requests(rows.lazy().with_columns(missing), base)
        # the buckets strictly inside the chunk's time range are complete (logs are written in time order)
        first, last = rows.select(bucket_floor_expr(base).min().alias("first"), bucket_floor_expr(base).max().alias("last")).row(0)
        if first is not None and last > first:
            self._settle(_where(chunk, (pl.col("bucket") > first) & (pl.col("bucket") < last)))
            chunk = _where(chunk, (pl.col("bucket") <= first) | (pl.col("bucket") >= last))
        self.open.append(_compacted(chunk))
        self.open_rows += chunk.counts.height
        if low is not None and len(self.open) > 1:
            # the buckets ending before the batch's last chunk are complete: settled now, a few at a time (one is
            # mostly a batch's first bucket, begun by the batch before), so the open ones stay a bucket or two and no
            # big merge of them ever runs (a merge's string keys cost several times the rows merged)
            behind = bucket_floor_expr(base, "bucket") + pl.duration(seconds=base) <= pl.lit(low)
            done = [part for piece in self.open if not _empty(part := _where(piece, behind))]
            if done:
                self._settle(merge_aggregates(done, base))
                self.open = [_compacted(rest) for piece in self.open if not _empty(rest := _where(piece, ~behind))]
                self.open_rows = sum(piece.counts.height for piece in self.open)
        if self.open_rows > self.merge_at:  # rows out of time order: open buckets merged now and then
            merged = merge_aggregates(self.open, base)
            if low is not None:  # the buckets ending before this chunk's earliest row are complete too
                behind = pl.col("bucket") + pl.duration(seconds=base) <= pl.lit(low)
                self._settle(_where(merged, behind))
                merged = _where(merged, ~behind)
            self.open, self.open_rows = [_compacted(merged)], merged.counts.height
            self.merge_at = max(MERGE_ROWS, 2 * self.open_rows)  # amortized, should rows come out of order

    def _settle(self, aggregates: RequestAggregates) -> None:
        """Keep the aggregates of complete buckets, pruned; prune them all harder while over the budget."""
        pruned = _compacted(prune_aggregates(aggregates, self.share))
        if any(a.bucket_s != pruned.bucket_s for a in self.settled):  # the span read grew to a wider width: coarsen the older ones now
            self.settled = [_compacted(merge_aggregates(self.settled, pruned.bucket_s))]
            self.settled_rows = self.settled[0].counts.height
        self.settled.append(pruned)
        self.settled_rows += pruned.counts.height
        if len(self.settled) > 64:  # fewer, bigger frames (complete buckets at one width: no group-by)
            self.settled = [replace(pruned, counts=pl.concat([a.counts for a in self.settled]), sketches=pl.concat([a.sketches for a in self.settled]),
                                    first=None, last=None)]
        while self.settled_rows + self.open_rows > MAX_AGGREGATE_ROWS and self.share < 1.0 and any(_prunable(a) for a in self.settled):
            self.share = min(1.0, self.share * 2)
            self.settled = [_compacted(prune_aggregates(a, self.share)) for a in self.settled]
            self.settled_rows = sum(a.counts.height for a in self.settled)

    def _fit(self, aggregates: RequestAggregates) -> RequestAggregates:
        """`aggregates` (pruned at the current share) pruned at twice the share, and again, until they hold at most
        MAX_AGGREGATE_ROWS rows (or no subject is left to prune)."""
        while aggregates.counts.height > MAX_AGGREGATE_ROWS and self.share < 1.0 and _prunable(aggregates):
            self.share = min(1.0, self.share * 2)
            aggregates = prune_aggregates(aggregates, self.share)
        return aggregates


def _empty(aggregates: RequestAggregates) -> bool:
    return not (aggregates.counts.height or aggregates.sketches.height)


def _where(aggregates: RequestAggregates, buckets: pl.Expr) -> RequestAggregates:
    return replace(aggregates, counts=aggregates.counts.filter(buckets), sketches=aggregates.sketches.filter(buckets))
