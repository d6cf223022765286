"""Log events of a big input in bounded memory: exact counts of every event, a sample of the rows.

A parser hands each chunk's canonical event rows (EVENTS_SCHEMA, in line order) to `BoundedEvents.add`.
Up to `max_rows` events everything is kept and nothing else is done: a small log is analysed as before.
Past it, every event is counted into `EventAggregates` (rca/model.py) and only a sample of the rows stays.

Why counts per (signal, origin, service, host, bucket, level, shape, resource): that key holds all the
event detectors read. Error rates and the warning-or-worse window feature count levels per service, host
and bucket; the template detector counts templates, which are mined from shapes (the message's first
line with its variables masked, `rca.messages.mask_expr`), per service and window; the resources detector
counts the resource class of the message (`rca.messages.classify_expr`) per service and host. Every event
of a key has the same level, shape and class, so the key's example (its first event) stands for all of
them and the detectors read each key as one row weighing `events`. Counts are therefore exact, not
estimates from a sample: a template is never "new" because its rare baseline lines were not sampled,
a burst is tested on its true counts (no inflated significance), and an error rate is every error.
Memory follows distinct keys, not lines: real logs repeat a few thousand shapes (loghub's 16 systems:
2,268 shapes in 32,000 lines), times hosts and buckets.

Deploys, rollbacks, flag and config changes announced in messages (`parsers.changes.changes_from_messages`)
are read from every event as it comes, into the input's `changes` frame: the sample may miss the one line
that announces a release. The rows kept for drill-down: every "priority" event (WARN, ERROR or FATAL, or
a message naming a resource: few, and the ones a responder reads) and a uniform sample of the others, each at most `max_rows / 2`: a row stays
when the low `level` bits of a hash of its line number are zero, the level of each group rising by one
(halving it) each time it passes its cap. Which rows stay depends only on the final levels, not on the
chunking, so the same input always gives the same sample.

Bucket width: the widest that divides every analysis bucket the input's span could still choose
(`bounded.aggregate_base_s`), re-coarsened as the span read grows, as for requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from rca.aggregates import bucket_floor_expr
from rca.messages import classify_expr, mask_expr
from rca.model import EVENT_AGGREGATE_KEY, EVENT_AGGREGATES_SCHEMA, EventAggregates
from rca.parsers.bounded import SAMPLE_SEED, aggregate_base_s, compact
from rca.parsers.changes import changes_from_messages, dedupe_changes
from rca.parsers.distinct import by_distinct

PRIORITY_LEVELS = ("WARN", "ERROR", "FATAL")
MERGE_ROWS = 100_000  # aggregate rows gathered before they are merged (then at twice the merged size)
MAX_CHANGE_ROWS = 10_000  # change announcements held before duplicates (the same release seen again) are dropped


@dataclass(frozen=True)
class EventSample:
    """What a bounded read kept of an input's events: exact counts of them all, how many there were, and
    the share of rows kept of the priority events (WARN or worse, change and resource messages) and of
    the others (1 / 2**level each)."""

    aggregates: EventAggregates
    rows: int
    kept: int
    priority_share: float
    other_share: float


def tag_events(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` with the key columns an event is counted under (`shape`, `resource`) and `_priority` (WARN or
    worse, or a resource message: kept before the others). The regexes run once per distinct message."""
    codes, distinct = by_distinct(rows.get_column("message"))
    message = pl.col("message")
    tags = pl.concat([distinct.to_frame("message"), pl.DataFrame({"message": [None]}, schema={"message": pl.String})]).select(
        mask_expr(message).alias("shape"), classify_expr(message).alias("resource"))
    return rows.with_columns(tags.get_column("shape").gather(codes.fill_null(len(distinct))),
                             tags.get_column("resource").gather(codes.fill_null(len(distinct)))).with_columns(
        (pl.col("level").is_in(PRIORITY_LEVELS).fill_null(False) | pl.col("resource").is_not_null()).alias("_priority")
    )


def aggregate_events(tagged: pl.LazyFrame, bucket_s: int) -> pl.DataFrame:
    """Counts of tagged events (`tag_events`) per EVENT_AGGREGATE_KEY at buckets of `bucket_s` seconds."""
    first = pl.col("line").arg_min()
    return tagged.with_columns(bucket_floor_expr(bucket_s).alias("bucket")).group_by(EVENT_AGGREGATE_KEY).agg(
        pl.len().cast(pl.Int64).alias("events"), pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts"),
        pl.col("line").min(), pl.col("message").get(first).alias("example"), pl.col("logger").get(first),
    ).select(list(EVENT_AGGREGATES_SCHEMA)).collect()


def merge_event_counts(frames: list[pl.DataFrame], bucket_s: int) -> pl.DataFrame:
    """Event counts of several chunks of one input summed per key, at buckets of `bucket_s` seconds (a
    multiple of theirs); each key keeps the example of its lowest line."""
    first = pl.col("line").arg_min()
    return (
        pl.concat(frames).lazy().with_columns(bucket_floor_expr(bucket_s, "bucket").alias("bucket"))
        .group_by(EVENT_AGGREGATE_KEY)
        .agg(pl.col("events").sum(), pl.col("first_ts").min(), pl.col("last_ts").max(), pl.col("line").min(),
             pl.col("example").get(first), pl.col("logger").get(first))
        .select(list(EVENT_AGGREGATES_SCHEMA)).collect()
    )


class BoundedEvents:
    """Accumulates an input's event rows chunk by chunk: all of them up to `max_rows`; beyond, exact counts
    of every event and a sample of the rows (see the module docstring). `max_rows` None keeps every row."""

    def __init__(self, max_rows: int | None):
        self.max_rows = max_rows
        self.parts: list[pl.DataFrame] = []  # every row, until sampling begins
        self.priority: list[pl.DataFrame] = []  # then the kept rows of each group
        self.others: list[pl.DataFrame] = []
        self.levels = {"priority": 0, "others": 0}
        self.rows = 0
        self.kept = 0
        self.sampling = False
        self.low: datetime | None = None
        self.high: datetime | None = None
        self.counts: list[pl.DataFrame] = []  # per chunk, merged now and then
        self.counts_rows = 0
        self.merge_at = MERGE_ROWS
        self.counts_bucket_s = 0
        self.announced: list[pl.DataFrame] = []  # changes announced by any event (changes_from_messages)
        self.announced_rows = 0

    def add(self, rows: pl.DataFrame) -> None:
        """Take one chunk's event rows (EVENTS_SCHEMA, with `origin` and `line`), in line order."""
        if not rows.height:
            return
        self.rows += rows.height
        if self.max_rows is None:
            self.parts.append(rows)
            return
        if not self.sampling:
            self.parts.append(rows)
            self.kept += rows.height
            if self.kept > self.max_rows:  # from here on: counts of every event, a sample of the rows
                self.sampling = True
                parts, self.parts = self.parts, []
                for part in parts:
                    self._take(part)
            return
        self._take(rows)

    def frame(self, empty: pl.DataFrame) -> pl.DataFrame:
        """The kept rows, in line order (`empty` when none)."""
        if not self.sampling:
            return pl.concat(self.parts) if self.parts else empty
        kept = [*self.priority, *self.others]
        return pl.concat(kept).sort("line") if kept else empty

    def changes(self, empty: pl.DataFrame) -> pl.DataFrame:
        """The changes announced by the events not kept (and by the kept ones): `changes_from_messages` of
        every event once sampling began (`empty` before: the kept rows are every event then)."""
        return pl.concat(self.announced) if self.announced else empty

    def sample(self) -> EventSample | None:
        """The counts of every event and what the sample is, once sampling began; None when every row was kept."""
        if not self.sampling:
            return None
        base = aggregate_base_s(self._span_s())
        counts = compact(merge_event_counts(self.counts, base)).sort("origin", "line")  # one key per first line: a fixed order
        origins = tuple(sorted({str(o) for o in counts.get_column("origin").unique().to_list()}))
        kept = sum(p.height for p in (*self.priority, *self.others))
        return EventSample(EventAggregates(base, counts, origins), self.rows, kept,
                           0.5 ** self.levels["priority"], 0.5 ** self.levels["others"])

    def _span_s(self) -> float:
        return (self.high - self.low).total_seconds() if self.low is not None and self.high is not None else 0.0

    def _take(self, rows: pl.DataFrame) -> None:
        """Count a chunk's events and keep its sample."""
        low, high = rows.select(pl.col("ts").min().alias("low"), pl.col("ts").max().alias("high")).row(0)
        if low is not None:
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
        tagged = tag_events(rows)
        base = aggregate_base_s(self._span_s())
        chunk = aggregate_events(tagged.lazy(), base)
        self.counts.append(compact(chunk))
        self.counts_rows += chunk.height
        if self.counts_rows > self.merge_at or base != self.counts_bucket_s:  # the span grew: coarsen what is held
            merged = compact(merge_event_counts(self.counts, base))
            self.counts, self.counts_rows, self.counts_bucket_s = [merged], merged.height, base
            self.merge_at = max(MERGE_ROWS, 2 * merged.height)
        announced = changes_from_messages(rows)  # from every event: the sample may miss a deploy line
        if announced.height:
            self.announced.append(compact(announced))
            self.announced_rows += announced.height
            if self.announced_rows > MAX_CHANGE_ROWS:
                self.announced = [dedupe_changes(pl.concat(self.announced))]
                self.announced_rows = self.announced[0].height
        columns = rows.columns
        for group, part in (("priority", tagged.filter(pl.col("_priority"))), ("others", tagged.filter(~pl.col("_priority")))):
            kept = getattr(self, group)
            kept.append(compact(part.filter(self._kept_expr(group)).select(columns)))
            self._thin(group)

    def _kept_expr(self, group: str) -> pl.Expr:
        return pl.col("line").hash(SAMPLE_SEED) % (1 << self.levels[group]) == 0

    def _thin(self, group: str) -> None:
        assert self.max_rows is not None
        cap = max(1, self.max_rows // 2)
        parts: list[pl.DataFrame] = getattr(self, group)
        while sum(p.height for p in parts) > cap:
            self.levels[group] += 1
            parts = [compact(p.filter(self._kept_expr(group))) for p in parts]
        setattr(self, group, parts)
