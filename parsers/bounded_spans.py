"""Spans of a big trace input in bounded memory: whole traces sampled by trace-id hash, every request counted.

A trace parser hands its raw spans (before `spantree.finish_spans`) block by block, as it reads. Up to
`max_spans` spans everything is kept and the input is finished as one frame, as a small input always was.
Past it:
- the requests rows of every server span (`spantree.span_requests`: endpoint, status, caller, release)
  go to `bounded.BoundedRequests`, which keeps them all up to `max_spans` rows (or the requests' own
  bound when lower) and past that a sample of whole traces' requests (hashed on the trace id) with exact
  per-bucket aggregates of every row: the request detectors (traffic, errors, latency, hosts, change
  effects) count every server span;
- where each service release was first seen is kept per block and merged (`spantree.release_sightings`),
  so the version changes are those of every span;
- the calls to each dependency per bucket (count and sum of log durations: `rca.aggregates.aggregate_calls`)
  of every span, so the span detectors' per-bucket series (the onset of a dependency's slowdown) count
  every call (`Dataset.call_aggregates`);
- the spans kept are those of the traces whose id hashes to 0 in its low `level` bits (`trace_kept`): a
  trace is kept or dropped whole, so parent/child trees stay complete for self time, fan-out, call waits,
  error origin and request shapes. `level` rises by one (halving the traces kept) each time the kept spans
  pass `max_spans` again, so which traces stay depends only on the final level, not on the blocks: the same
  input always gives the same sample, of between `max_spans / 2` and `max_spans` spans (fewer when a few
  huge traces hash alike).
Blocks decoded by worker processes arrive already reduced (`sample_block` at the level of the moment they
were sent), so this process never holds every span; a block sent before a level rose is thinned here.

What is not exact past the cap: the caller of a server span (its `source` when it has no client address)
is found only when its parent span is in the same block (a trace cut by a block boundary loses it), and a
service is versioned by its pods' template hash when none of its spans in the block carries
`service.version`. Integrity warnings (orphans, skew) are those of the sampled traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from rca.aggregates import merge_calls
from rca.model import REQUESTS_SCHEMA, CallAggregates
from rca.parsers import ParseOptions
from rca.parsers.bounded import BoundedRequests, RequestSample, aggregate_base_s, compact
from rca.parsers.spantree import finish_spans, merge_sightings, span_requests, version_changes

TRACE_SEED = 0x7ACE5  # the trace-id hash deciding which traces stay; fixed: the same input gives the same sample
MERGE_SIGHTINGS = 64  # release sightings (and call aggregates) of that many blocks are merged into one frame
CALL_BASE_S = 5  # calls are counted per 5 s at first (5 divides every analysis bucket), wider as the span read grows


def trace_kept(level: int) -> pl.Expr:
    """Whether a span's trace is in the sample at `level` (1 / 2**level of the trace ids)."""
    return pl.col("trace_id").hash(TRACE_SEED) % (1 << level) == 0


@dataclass(frozen=True)
class SpanBlock:
    """What a reader keeps of one block of raw spans once sampling: the spans of the traces kept at `level`,
    and, from every span of the block, its requests rows and release sightings."""

    raw: pl.DataFrame
    spans: int  # raw spans in the block
    requests: pl.DataFrame
    sightings: pl.DataFrame
    calls: pl.DataFrame  # CALL_AGGREGATES_SCHEMA at CALL_BASE_S
    level: int


def sample_block(raw: pl.DataFrame, level: int) -> SpanBlock:
    """`raw` reduced to what a sampling reader keeps of it (`SpanBlock`); runs in worker processes too."""
    requests, sightings, calls = span_requests(raw, CALL_BASE_S)
    return SpanBlock(compact(raw.filter(trace_kept(level))), raw.height, requests, sightings, calls, level)


# What a reader's worker sends back of a block's raw spans: (spans in the block, level) when reduced, else
# None; and the frames (raw spans, requests, sightings, calls; the last three None when not reduced).
Reduced = tuple[tuple[int, int] | None, list[pl.DataFrame | None]]


def reduce_block(raw: pl.DataFrame | None, level: int | None) -> Reduced:
    """A block's raw spans as a reader's worker returns them: every one (`level` None: not sampling yet),
    else reduced to the traces kept at `level` with the requests and sightings of every span (`sample_block`)."""
    if raw is None or level is None:
        return None, [raw, None, None, None]
    block = sample_block(raw, level)
    return (block.spans, block.level), [block.raw, block.requests, block.sightings, block.calls]


@dataclass(frozen=True)
class SpanSample:
    """An input's trace frames (spans, requests, changes), warnings, and what was sampled."""

    frames: dict[str, pl.DataFrame]
    warnings: list[str]
    request_sample: RequestSample | None  # set when the requests were sampled too (aggregates of them all)
    trace_share: float | None  # share of the traces kept, when spans were sampled
    call_aggregates: CallAggregates | None  # calls per dependency and bucket of every span, when spans were sampled

    def sampled(self) -> dict[str, Any]:
        """What the parse result says of the sample (`ParseResult`'s request_sample, trace_share, call_aggregates)."""
        return {"request_sample": self.request_sample, "trace_share": self.trace_share, "call_aggregates": self.call_aggregates}


NOTHING_SAMPLED = SpanSample({}, [], None, None, None)  # an input without spans


def finish_bounded(raw: pl.DataFrame, origin: str, options: ParseOptions) -> SpanSample:
    """The frames of an input's raw spans read whole (one JSON document), bounded as `options` says: the
    analysis past `max_spans` is that of the blocked readers (the document itself was held whole)."""
    spans = BoundedSpans(origin, options.max_spans, options.max_request_rows, options.request_columns)
    spans.add_raw(raw)
    return spans.finish(raw.clear())


class BoundedSpans:
    """Accumulates an input's raw spans block by block: all of them up to `max_spans`, then the spans of a
    sample of whole traces, and the requests of every server span (see the module docstring)."""

    def __init__(self, origin: str, max_spans: int | None, max_request_rows: int | None, request_columns: tuple[str, ...] | None = None):
        self.origin = origin
        self.max_spans = max_spans
        self.parts: list[pl.DataFrame] = []
        self.kept = 0
        self.spans = 0
        self.level = 0
        self.sampling = False
        # a trace input's requests rows are bounded by its spans' bound too: the request detectors count from
        # the aggregates past it, and the rows (a sample of whole traces' requests) serve drill-down and tests
        bound = max_spans if max_request_rows is None else max_request_rows if max_spans is None else min(max_spans, max_request_rows)
        self.requests = BoundedRequests(bound, sample_key="trace_id")
        self.sightings: list[pl.DataFrame] = []
        self.calls: list[pl.DataFrame] = []  # calls per dependency and bucket of every span (CALL_AGGREGATES_SCHEMA)
        self.calls_s = CALL_BASE_S
        # the requests columns read later (the others stay null); `trace_id` decides the requests' sample
        self.columns = None if request_columns is None else [c for c in REQUESTS_SCHEMA if c in (*request_columns, "line", "trace_id")]

    def add_raw(self, raw: pl.DataFrame) -> None:
        """Take a block of raw spans, every one of them."""
        if not raw.height:
            return
        if self.sampling:
            self.add_block(sample_block(raw, self.level))
            return
        self.spans += raw.height
        self.parts.append(raw)
        self.kept += raw.height
        if self.max_spans is not None and self.kept > self.max_spans:  # from here on: every request, a sample of the traces
            self.sampling = True
            held, self.parts, self.kept = pl.concat(self.parts), [], 0
            self.spans -= held.height
            self.add_block(sample_block(held, self.level))  # one frame: a caller in an earlier block is still found

    def take(self, reduced: Reduced) -> None:
        """Take a block as `reduce_block` gave it."""
        sampled, (raw, requests, sightings, calls) = reduced
        if sampled is None:
            if raw is not None:
                self.add_raw(raw)
            return
        assert raw is not None and requests is not None and sightings is not None and calls is not None
        self.add_block(SpanBlock(raw, sampled[0], requests, sightings, calls, sampled[1]))

    @property
    def wanted_level(self) -> int | None:
        """The level a block read now is reduced at (None: keep every span, not sampling yet)."""
        return self.level if self.sampling else None

    def add_block(self, block: SpanBlock) -> None:
        """Take a block already reduced (`sample_block`), by a worker process or here."""
        self.sampling = True
        self.spans += block.spans
        if block.requests.height:
            rows = block.requests.with_columns(origin=pl.lit(self.origin), signal=pl.lit("trace"))
            self.requests.add(rows if self.columns is None else rows.select(self.columns))
        if block.sightings.height:
            self.sightings.append(block.sightings)
            if len(self.sightings) >= MERGE_SIGHTINGS:
                self.sightings = [merge_sightings(self.sightings)]
        if block.calls.height:
            self.calls.append(block.calls)
            if len(self.calls) >= MERGE_SIGHTINGS:
                self._merge_calls()
        raw = block.raw if block.level == self.level else compact(block.raw.filter(trace_kept(self.level)))
        if raw.height:
            self.parts.append(raw)
            self.kept += raw.height
        self._thin()

    def _merge_calls(self) -> None:
        """The call aggregates so far as one frame, at the widest width every analysis bucket of their span
        is a multiple of (so they stay a few buckets per dependency and per analysis bucket)."""
        merged = merge_calls(self.calls, self.calls_s)
        if merged.height:
            low, high = merged.select(pl.col("bucket").min().alias("low"), pl.col("bucket").max().alias("high")).row(0)
            self.calls_s = max(self.calls_s, aggregate_base_s((high - low).total_seconds()))
            merged = merge_calls([merged], self.calls_s)
        self.calls = [merged]

    def _thin(self) -> None:
        assert self.max_spans is not None
        while self.kept > self.max_spans:
            self.level += 1
            self.parts = [compact(p.filter(trace_kept(self.level))) for p in self.parts]
            self.kept = sum(p.height for p in self.parts)

    def finish_read(self) -> SpanSample:
        """`finish` of what the blocks gave; NOTHING_SAMPLED when they held no span."""
        if not self.spans:
            return NOTHING_SAMPLED
        from rca.parsers.otlp.common import concat_raw_spans, empty_span_columns, span_columns_frame

        return self.finish(concat_raw_spans([span_columns_frame(empty_span_columns())]))

    def finish(self, empty_raw: pl.DataFrame) -> SpanSample:
        """The input's frames: as `finish_spans` makes them when every span was kept; else those of the
        sampled traces, with the requests and version changes of every span."""
        raw = pl.concat(self.parts) if self.parts else empty_raw
        self.parts = []
        frames, warnings = finish_spans(raw, self.origin)
        frames = {k: v.with_columns(origin=pl.lit(self.origin), signal=pl.lit("trace")) for k, v in frames.items()}
        if not self.sampling:
            return SpanSample(frames, warnings, None, None, None)
        share = 0.5**self.level
        frames["changes"] = version_changes(merge_sightings(self.sightings), self.origin)
        requests = self.requests.frame(pl.DataFrame(schema=REQUESTS_SCHEMA))
        frames["requests"] = requests.select([(pl.col(c) if c in requests.columns else pl.lit(None, t)).alias(c) for c, t in REQUESTS_SCHEMA.items()])
        request_sample = self.requests.sample()
        self._merge_calls()
        calls = CallAggregates(self.calls_s, self.calls[0].with_columns(origin=pl.lit(self.origin)))
        requests_note = (f"every one of its {self.requests.rows:,} requests analysed" if request_sample is None else
                         f"its {self.requests.rows:,} requests counted exactly (see below)")
        note = (
            f"{self.spans:,} spans, over the {self.max_spans:,} kept in memory: the spans of {share:.2%} of the traces "
            f"(by trace-id hash, whole traces: {frames['spans'].height:,} spans) kept for the span findings (self time, fan-out, "
            f"callers, call waits, error origin, request shapes, call drops: their counts are of the sample, their basis says so); "
            f"{requests_note} and its version changes found over every span"
        )
        warnings = [note, *(f"in the sampled traces: {w}" for w in warnings)]
        return SpanSample(frames, warnings, request_sample, share, calls)
