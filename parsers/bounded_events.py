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
a message naming a resource: few, and the ones a responder reads) and a uniform sample of the others, each at most
`max_rows / 4` (so a sampled input holds no more rows than one just under the cap, beside its counts): a row stays
when the low `level` bits of a hash of its line number are zero, the level of each group rising by one
(halving it) each time it passes its cap. Which rows stay depends only on the final levels, not on the
chunking, so the same input always gives the same sample.

Bucket width: the widest that divides every analysis bucket the input's span could still choose
(`bounded.aggregate_base_s`), re-coarsened as the span read grows, as for requests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from rca.aggregates import bucket_floor_expr
from rca.messages import classify_expr, mask_expr
from rca.model import EVENT_AGGREGATES_SCHEMA, EventAggregates
from rca.parsers.bounded import EARLY_SAMPLING, SAMPLE_SEED, StringCodes, aggregate_base_s, compact
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


class Announcements:
    """The changes announced by an input's events (`changes_from_messages`), gathered chunk by chunk for
    readers that do not keep every event (a sample, a stream to disk): each chunk's own strings (views would
    keep the chunk alive), duplicates (the same release seen again) dropped past MAX_CHANGE_ROWS."""

    def __init__(self) -> None:
        self.parts: list[pl.DataFrame] = []
        self.rows = 0

    def add(self, events: pl.DataFrame) -> None:
        """Take the announcements of a chunk's events (EVENTS_SCHEMA)."""
        announced = changes_from_messages(events)
        if not announced.height:
            return
        self.parts.append(compact(announced))
        self.rows += announced.height
        if self.rows > MAX_CHANGE_ROWS:
            self.parts = [dedupe_changes(pl.concat(self.parts))]
            self.rows = self.parts[0].height

    def frame(self, empty: pl.DataFrame) -> pl.DataFrame:
        """Every announcement taken (`empty` when none)."""
        return pl.concat(self.parts) if self.parts else empty


# While reading, each bucket's count names its key by a number: the key without the bucket (KEY_COLUMNS, the shape
# by its hash) gets a dense id the first time it is seen (`_key_ids`, a join of the chunk's few distinct keys with the
# known ones: exact, no hash that could collide), and the keys table holds each key's strings once, with its example (its
# latest event). A bucket's row is then six numbers (~45 bytes, not ~150 with the strings' views), merges group by two
# integer columns, and the strings are joined once at the end (views of the keys table's buffers, not copies).
KEY_COLUMNS = ("signal", "origin", "service", "host", "level", "shape_id", "resource")
READ_KEY = (*KEY_COLUMNS, "bucket")
READ_COLUMNS = [*READ_KEY, "events", "first_ts", "last_ts", "line"]
COUNT_KEY = ("key_id", "bucket")
COUNT_COLUMNS = [*COUNT_KEY, "events", "first_ts", "last_ts", "line"]
COUNT_SCHEMA = {"key_id": pl.UInt32(), **{c: EVENT_AGGREGATES_SCHEMA[c] for c in COUNT_COLUMNS[1:]}}
KEYS_SCHEMA = {"key_id": pl.UInt32(), **{c: pl.UInt64() if c == "shape_id" else EVENT_AGGREGATES_SCHEMA[c] for c in KEY_COLUMNS},
               "line": pl.Int64(), "shape": pl.String(), "example": pl.String(), "logger": pl.String()}


def tag_events(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` with the key columns an event is counted under (`shape`, its hash `shape_id`, `resource`) and
    `_priority` (WARN or worse, or a resource message: kept before the others). The regexes run once per
    distinct message."""
    codes, distinct = by_distinct(rows.get_column("message"))
    message = pl.col("message")
    tags = pl.concat([distinct.to_frame("message"), pl.DataFrame({"message": [None]}, schema={"message": pl.String})]).select(
        mask_expr(message).alias("shape"), classify_expr(message).alias("resource")).with_columns(pl.col("shape").hash(SAMPLE_SEED).alias("shape_id"))
    at = codes.fill_null(len(distinct))
    return rows.with_columns(*(tags.get_column(c).gather(at) for c in ("shape", "shape_id", "resource"))).with_columns(
        (pl.col("level").is_in(PRIORITY_LEVELS).fill_null(False) | pl.col("resource").is_not_null()).alias("_priority")
    )


def aggregate_events(tagged: pl.DataFrame, bucket_s: int) -> pl.DataFrame:
    """Counts of tagged events (`tag_events`) per READ_KEY at buckets of `bucket_s` seconds."""
    return tagged.lazy().with_columns(bucket_floor_expr(bucket_s).alias("bucket")).group_by(READ_KEY).agg(
        pl.len().cast(pl.Int64).alias("events"), pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts"), pl.col("line").min(),
    ).select(READ_COLUMNS).collect()


def merge_event_counts(frames: list[pl.DataFrame], bucket_s: int) -> pl.DataFrame:
    """Event counts (COUNT_COLUMNS) of several chunks of one input summed per key, at buckets of `bucket_s`
    seconds (a multiple of theirs), in line order."""
    return (
        pl.concat(frames).lazy().with_columns(bucket_floor_expr(bucket_s, "bucket").alias("bucket"))
        .group_by(COUNT_KEY)
        .agg(pl.col("events").sum(), pl.col("first_ts").min(), pl.col("last_ts").max(), pl.col("line").min())
        .select(COUNT_COLUMNS).sort("line").collect()
    )


def latest_examples(tagged: pl.DataFrame) -> pl.DataFrame:
    """Per KEY_COLUMNS of tagged events, the latest event's line, shape, message (`example`) and logger: the
    latest, as a burst that explains an incident is most often at the end of its log."""
    latest = pl.col("line").arg_max()
    return tagged.group_by(KEY_COLUMNS).agg(pl.col("line").max(), pl.col("shape").get(latest), pl.col("message").get(latest).alias("example"),
                                            pl.col("logger").get(latest))


class BoundedEvents:
    """Accumulates an input's event rows chunk by chunk: all of them up to `max_rows`; beyond, exact counts
    of every event and a sample of the rows (see the module docstring). `max_rows` None keeps every row."""

    def __init__(self, max_rows: int | None):
        self.max_rows = max_rows
        self.parts: list[pl.DataFrame] = []  # every row, until sampling begins
        self.priority: list[pl.DataFrame] = []  # then the kept rows of each group, their strings as codes
        self.others: list[pl.DataFrame] = []
        self.codes = {"priority": StringCodes(), "others": StringCodes()}
        self.levels = {"priority": 0, "others": 0}
        self.rows = 0
        self.kept = 0
        self.sampling = False
        self.low: datetime | None = None
        self.high: datetime | None = None
        self.counts: list[pl.DataFrame] = []  # per chunk, merged now and then
        # counts of complete buckets, merged once (a late row of one still counts: the final merge sums all)
        self.settled: list[pl.DataFrame] = []
        self.counts_rows = 0
        self.merge_at = MERGE_ROWS
        self.counts_bucket_s = 0
        self.announced = Announcements()  # by any event once sampling began
        self.keys = pl.DataFrame(schema=KEYS_SCHEMA)  # each key counted (KEY_COLUMNS) once: its id and latest example

    def add(self, rows: pl.DataFrame, read_share: float | None = None) -> None:
        """Take one chunk's event rows (EVENTS_SCHEMA, with `origin` and `line`), in line order. `read_share`: the
        share of the input read once this chunk is (bytes read / size), when known: an input whose first chunk
        projects past EARLY_SAMPLING times `max_rows` is counted and sampled from that chunk on, rather than held
        whole up to `max_rows` first (the same counts and rows: sampling from the start is what the switch replays)."""
        if not rows.height:
            return
        self.rows += rows.height
        if self.max_rows is None:
            self.parts.append(rows)
            return
        if not self.sampling and self.kept == 0 and read_share is not None and 0 < read_share < 1:
            self.sampling = rows.height / read_share > EARLY_SAMPLING * self.max_rows
        if not self.sampling:
            self.parts.append(rows)
            self.kept += rows.height
            if self.kept > self.max_rows:  # from here on: counts of every event, a sample of the rows
                self.sampling = True
                parts, self.parts = self.parts, []
                while parts:  # as they came, each let go once taken
                    self._take(parts.pop(0))
            return
        self._take(rows)

    def frame(self, empty: pl.DataFrame) -> pl.DataFrame:
        """The kept rows, in line order (`empty` when none)."""
        if not self.sampling:
            return pl.concat(self.parts) if self.parts else empty
        kept = [self.codes[group].decode(pl.concat(parts)) for group, parts in (("priority", self.priority), ("others", self.others)) if parts]
        return pl.concat(kept).sort("line") if kept else empty

    def changes(self, empty: pl.DataFrame) -> pl.DataFrame:
        """The changes announced by the events not kept (and by the kept ones): `changes_from_messages` of
        every event once sampling began (`empty` before: the kept rows are every event then)."""
        return self.announced.frame(empty)

    def sample(self) -> EventSample | None:
        """The counts of every event and what the sample is, once sampling began; None when every row was kept."""
        if not self.sampling:
            return None
        base = aggregate_base_s(self._span_s())
        if base != self.counts_bucket_s:
            self.counts, self.settled = [*self.settled, *self.counts], []
        pieces = [p for p in (*self.settled, compact(merge_event_counts(self.counts, base)) if self.counts else None) if p is not None and p.height]
        ranges = [p.select(pl.col("bucket").min().alias("low"), pl.col("bucket").max().alias("high")).row(0) for p in pieces]
        if any(later[0] <= earlier[1] for earlier, later in itertools.pairwise(ranges)):
            pieces = [compact(merge_event_counts(pieces, base))]  # a row came late for a settled bucket: sum them all
        # one key per first line: ordered by it, the same however the input was cut (the pieces are, one after another, unless rows came out of order)
        counts = pl.concat(pieces, rechunk=False) if pieces else pl.DataFrame(schema=COUNT_SCHEMA)
        if not counts.get_column("line").is_sorted():
            counts = counts.sort("line")
        counts = counts.join(self.keys.drop("line"), on="key_id", how="left", maintain_order="left").select(list(EVENT_AGGREGATES_SCHEMA))
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
        ids = self._key_ids(latest_examples(tagged))
        chunk = aggregate_events(tagged, base).join(ids, on=list(KEY_COLUMNS), how="left", nulls_equal=True).select(COUNT_COLUMNS)
        self.counts.append(chunk)
        self.counts_rows += chunk.height
        if self.counts_rows > self.merge_at or base != self.counts_bucket_s:
            if base != self.counts_bucket_s:  # the span grew: coarsen all that is held (a coarse bucket may span settled and open ones)
                self.counts, self.settled = [*self.settled, *self.counts], []
            merged = merge_event_counts(self.counts, base)
            if low is not None:  # buckets ending before this chunk's first event are complete (logs run in time order)
                behind = pl.col("bucket") + pl.duration(seconds=base) <= pl.lit(low)
                self.settled.append(compact(merged.filter(behind)))
                merged = merged.filter(~behind)
            self.counts, self.counts_rows, self.counts_bucket_s = [compact(merged)], merged.height, base  # sorted by line
            self.merge_at = max(MERGE_ROWS, 2 * merged.height)
        self.announced.add(rows)  # from every event: the sample may miss a deploy line
        columns = rows.columns
        for group, part in (("priority", tagged.filter(pl.col("_priority"))), ("others", tagged.filter(~pl.col("_priority")))):
            kept = getattr(self, group)
            kept.append(self.codes[group].encode(part.filter(self._kept_expr(group)).select(columns)))
            self._thin(group)

    def _key_ids(self, examples: pl.DataFrame) -> pl.DataFrame:
        """The id of each key of a chunk's `latest_examples` (KEY_COLUMNS and `key_id`): a known key's, else the next
        free one; the keys table takes the new keys and, for the known ones, the later example."""
        known = examples.join(self.keys.select(*KEY_COLUMNS, "key_id"), on=list(KEY_COLUMNS), how="left", nulls_equal=True)
        fresh = known.filter(pl.col("key_id").is_null()).drop("key_id").with_row_index("key_id", offset=self.keys.height)
        latest = pl.concat([known.filter(pl.col("key_id").is_not_null()), fresh], how="diagonal").select(list(KEYS_SCHEMA))
        table = pl.concat([self.keys, latest])
        if table.height > self.keys.height + fresh.height:  # a known key seen again: its latest example stays
            table = table.sort("key_id", "line").unique("key_id", keep="last", maintain_order=True)
        self.keys = compact(table)
        return latest.select(*KEY_COLUMNS, "key_id")

    def _kept_expr(self, group: str) -> pl.Expr:
        return pl.col("line").hash(SAMPLE_SEED) % (1 << self.levels[group]) == 0

    def _thin(self, group: str) -> None:
        assert self.max_rows is not None
        cap = max(1, self.max_rows // 4)
        parts: list[pl.DataFrame] = getattr(self, group)
        while sum(p.height for p in parts) > cap:
            self.levels[group] += 1
            parts = self.codes[group].thinned([p.filter(self._kept_expr(group)) for p in parts])
        setattr(self, group, parts)
