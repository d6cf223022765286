"""The `otlp-json` format: OTLP/JSON lines (the collector's file exporter) or one pretty-printed document.

Spans go through msgspec structs and columns (`json_spans`); logs, metrics and any line those structs
refuse through orjson and a dict walk (`add_span`, `common.log_event`, `common.metric_points`). A file of
`parallel.PARALLEL_MIN_BYTES` or more is cut at line ends and walked by worker processes.

With a bound on the spans kept (`ParseOptions.max_spans`, analysis), lines are read in blocks of
`BLOCK_BYTES`, never the whole file at once; a big file's blocks go to worker processes that, once the
input is past the bound, send back only what `bounded_spans.BoundedSpans` keeps of them (the requests of
every server span, the spans of the sampled traces), so this process never holds every span.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import polars as pl

from rca.model import Rejected
from rca.parsers import ParseOptions, ParseResult, Streamed, register
from rca.parsers.bounded_spans import BoundedSpans, reduce_block
from rca.parsers.lines import read_blocks, read_payload
from rca.parsers.otlp import json_spans as js
from rca.parsers.otlp import parallel
from rca.parsers.otlp.common import (
    ALIASES,
    ATTRIBUTE_COLUMNS,
    KIND_NAMES,
    KINDS,
    STATUS,
    STATUS_NAMES,
    any_value,
    attrs,
    concat_raw_spans,
    empty_span_columns,
    enum_value,
    hex_id,
    int_value,
    log_event,
    looks_like_otlp_json,
    metric_points,
    resource_fields,
    signal_frames,
    span_columns_frame,
)
from rca.parsers.sources import Sample, Source
from rca.parsers.spantree import finish_spans
from rca.parsers.spilled_spans import SpilledSpans, streamed_spans


class OtlpJsonParser:
    name = "otlp-json"
    description = "OpenTelemetry OTLP/JSON traces, logs and metrics (collector file exporter lines or one document)"

    def sniff(self, sample: Sample) -> float:
        return 0.97 if looks_like_otlp_json(sample.head) else 0.0

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        if options.max_spans is None:
            payload, warnings = read_payload(source)
        else:
            bounded = self._parse_bounded(source, options)
            if isinstance(bounded, ParseResult):
                return bounded
            payload, warnings = bounded
        parts = _split_lines(payload, parallel.PARALLEL_MIN_BYTES)
        if len(parts) == 1:
            walks = [walk_json(payload, 0, len(payload), 1)]
        else:
            walks = walk_in_processes(payload, parts)
        frames: dict[str, pl.DataFrame] = {}
        raws = [w.spans for w in walks if w.spans is not None]
        if raws:
            more, span_warnings = finish_spans(pl.concat(raws), source.origin)
            warnings += span_warnings
            frames.update({k: v.with_columns(origin=pl.lit(source.origin), signal=pl.lit("trace")) for k, v in more.items()})
        events = [e for w in walks for e in w.events]
        metrics = [m for w in walks for m in w.metrics]
        frames.update(signal_frames(events, metrics, source.origin))
        rejected = [r for w in walks for r in w.rejected][:5]
        return ParseResult(format=self.name, frames=frames, lines=sum(w.lines for w in walks), rejected=sum(w.bad for w in walks),
                           rejected_examples=rejected, warnings=warnings)


    def _parse_bounded(self, source: Source, options: ParseOptions) -> ParseResult | tuple[bytes, list[str]]:
        """The parse in blocks, keeping at most `options.max_spans` spans (`BoundedSpans`); when the input
        is one pretty-printed document, its bytes and warnings (parsed whole by `parse`: stdin is read once)."""
        warnings: list[str] = []
        blocks = read_blocks(source, BLOCK_BYTES, warnings)
        first = next(blocks, None)
        if first is None or not _one_document_a_line(first[0]):
            return b"".join(block for block, _ in _chain(first, blocks)) if first is not None else b"", warnings
        spans = BoundedSpans(source.origin, options.max_spans, options.max_request_rows, options.request_columns)
        walks = self._read_blocks(source, _chain(first, blocks), spans)
        sample = spans.finish_read()
        return self._walked(source, walks, sample.frames, warnings + sample.warnings, **sample.sampled())

    def stream(self, source: Source, options: ParseOptions) -> Streamed | None:
        """OTLP/JSON lines of a file as streams of every span and its requests, finished a group of whole
        traces at a time (`spilled_spans`) in bounded memory, in line order (`rca ingest`): the frames of
        `parse`. Logs, metrics and version changes come in memory with the rest (`remainder`). None for
        stdin and a pretty-printed document (read whole by `parse`)."""
        if source.path is None:
            return None
        warnings: list[str] = []
        blocks = read_blocks(source, BLOCK_BYTES, warnings)
        first = next(blocks, None)
        if first is None or not _one_document_a_line(first[0]):
            return None
        return streamed_spans(source.origin, lambda spans: self._walked(source, self._read_blocks(source, _chain(first, blocks), spans), {}, warnings))

    def _read_blocks(self, source: Source, blocks: Iterator[tuple[bytes, int]], spans: BoundedSpans | SpilledSpans) -> list[JsonWalk]:
        """Walk blocks of lines (in worker processes for a big file), their spans handed to `spans`."""
        walks: list[JsonWalk] = []

        def take(reply: parallel.Reply) -> None:
            walk, reduced = reply
            walks.append(walk)
            spans.take(reduced)

        parallel.decode_blocks((((self.name, number), block) for block, number in blocks), lambda: spans.wanted_level,
                               block_reply, take, *parallel.worker_count(source.size()))
        return walks

    def _walked(self, source: Source, walks: list[JsonWalk], frames: dict[str, pl.DataFrame], warnings: list[str], **sampled: Any) -> ParseResult:
        """The result of the walks of an input's blocks, given its span frames and warnings."""
        frames = {**frames, **signal_frames([e for w in walks for e in w.events], [m for w in walks for m in w.metrics], source.origin)}
        return ParseResult(format=self.name, frames=frames, lines=sum(w.lines for w in walks), rejected=sum(w.bad for w in walks),
                           rejected_examples=[r for w in walks for r in w.rejected][:5], warnings=warnings, **sampled)


# Bytes of lines read (and walked by one worker) at a time when the spans are bounded: 8 MB of JSON are some
# 15k spans, so a worker's decode peaks at about 170 MB (240 MB at 16 MB, 290 MB at 32 MB; the blocks' fixed
# costs stay small), and every core gets blocks early.
BLOCK_BYTES = 8 * 1024 * 1024


def _chain(first: tuple[bytes, int], rest: Iterator[tuple[bytes, int]]) -> Iterator[tuple[bytes, int]]:
    yield first
    yield from rest


def _one_document_a_line(block: bytes) -> bool:
    """Whether the first line with text holds a whole JSON document (else: one pretty-printed document)."""
    first = _text_start(block, 0)
    end = block.find(b"\n", first)
    try:
        orjson.loads(block[first:end if end >= 0 else len(block)].strip())
        return True
    except orjson.JSONDecodeError:
        return False


def block_reply(block: bytes, first_number: int, level: int | None) -> parallel.Reply:
    """What a block of lines gives the reader: the walk without its spans, and its spans as
    `bounded_spans.reduce_block` gives them at `level`."""
    walk = walk_json(block, 0, len(block), first_number, per_line=True)
    return dataclasses.replace(walk, spans=None), reduce_block(walk.spans, level)


@dataclass
class JsonWalk:
    """What one walk over OTLP/JSON lines found: raw span columns (before `finish_spans`), log events,
    metric points, and the lines that were not OTLP documents."""

    spans: pl.DataFrame | None
    events: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    rejected: list[Rejected]
    bad: int
    lines: int


def add_span(cols: dict[str, list[Any]], resource: dict[str, Any], span: dict[str, Any], line: int) -> None:
    found: dict[str, tuple[int, Any]] = {}
    for kv in span.get("attributes") or ():
        hit = ATTRIBUTE_COLUMNS.get(kv.get("key"))
        if hit is not None and (hit[0] not in found or hit[1] < found[hit[0]][0]):
            found[hit[0]] = (hit[1], any_value(kv.get("value")))
    cols["trace_id"].append(hex_id(span.get("traceId"), 16))
    cols["span_id"].append(hex_id(span.get("spanId"), 8))
    cols["parent_span_id"].append(hex_id(span.get("parentSpanId"), 8))
    cols["service"].append(resource.get("service"))
    cols["name"].append(span.get("name"))
    cols["kind"].append(KINDS.get(enum_value(span.get("kind"), KIND_NAMES), "unspecified"))
    cols["start_ns"].append(int_value(span.get("startTimeUnixNano")))
    cols["end_ns"].append(int_value(span.get("endTimeUnixNano")))
    cols["status"].append(STATUS.get(enum_value((span.get("status") or {}).get("code"), STATUS_NAMES), "unset"))
    for column in ALIASES:
        value = found.get(column)
        cols[column].append(None if value is None else value[1])
    for column in ("service_version", "deployment_environment", "host"):
        cols[column].append(resource.get(column))
    cols["line"].append(line)


def _documents(payload: bytes, start: int, stop: int, first_number: int, per_line: bool | None = None) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, document, error) per line of payload[start:stop], or once for a whole pretty-printed
    document. A document is a `json_spans.Document` when msgspec's structs accept it, else orjson's dict."""
    if per_line is None:  # one document per line, unless the first line is not JSON on its own
        first = _text_start(payload, start)  # the first line with text, found without copying the payload
        end = payload.find(b"\n", first, stop)
        try:
            orjson.loads(payload[first:end if end >= 0 else stop].strip())
            per_line = True
        except orjson.JSONDecodeError:
            per_line = False
    view = memoryview(payload)
    for number, begin, end in _line_spans(payload, start, stop, first_number) if per_line else [(first_number, start, stop)]:
        if _BLANK.fullmatch(payload, begin, end):
            continue
        try:
            yield number, js.DECODER.decode(view[begin:end]), None  # no copy of the line
            continue
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        try:
            yield number, orjson.loads(view[begin:end]), None
        except orjson.JSONDecodeError as exc:
            yield number, None, f"invalid JSON ({str(exc).split(':')[0]})"


def walk_json(payload: bytes, start: int, stop: int, first_number: int, per_line: bool | None = None) -> JsonWalk:
    """Walk the OTLP/JSON lines of payload[start:stop] (numbered from `first_number`); `per_line`
    None: tell lines from one pretty-printed document by the first line."""
    import gc

    cols = empty_span_columns()
    scopes: list[tuple[int, dict[str, Any], list[Any]]] = []
    pieces: list[pl.DataFrame] = []
    pending = 0
    events: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    bad = lines = 0
    enabled = gc.isenabled()
    gc.disable()  # the walk allocates many small objects; collection pauses would dominate
    try:
        for number, doc, error in _documents(payload, start, stop, first_number, per_line):
            lines += 1
            if isinstance(doc, js.Document):
                for rs in doc.resourceSpans or doc.batches or ():
                    resource = js.resource_of(rs)
                    for ss in rs.scopeSpans or rs.instrumentationLibrarySpans or ():
                        if ss.spans:
                            scopes.append((number, resource, ss.spans))
                            pending += len(ss.spans)
                if pending >= js.BATCH_SPANS:  # columns per batch: the structs are freed and their memory reused
                    pieces.append(js.spans_frame(scopes))
                    scopes, pending = [], 0
                doc = js.raw_of(doc)
                if doc is None:
                    continue
            if error or not isinstance(doc, dict):
                bad += 1
                if len(rejected) < 5:
                    rejected.append(Rejected(number, error or "not an OTLP document"))
                continue
            for rs in doc.get("resourceSpans") or doc.get("batches") or ():
                resource = resource_fields(attrs((rs.get("resource") or {}).get("attributes")))
                for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                    for span in ss.get("spans") or ():
                        add_span(cols, resource, span, number)
            for rl in doc.get("resourceLogs") or ():
                resource = resource_fields(attrs((rl.get("resource") or {}).get("attributes")))
                for sl in rl.get("scopeLogs") or ():
                    for rec in sl.get("logRecords") or ():
                        events.append(log_event(rec, resource, number))
            for rm in doc.get("resourceMetrics") or ():
                resource = resource_fields(attrs((rm.get("resource") or {}).get("attributes")))
                for sm in rm.get("scopeMetrics") or ():
                    for metric in sm.get("metrics") or ():
                        metrics.extend(metric_points(metric, resource, number))
        if scopes:
            pieces.append(js.spans_frame(scopes))
    finally:
        if enabled:
            gc.enable()
    walked = bool(cols["trace_id"])
    if walked:
        pieces.append(span_columns_frame(cols))
    raw = None
    if pieces:
        raw = concat_raw_spans(pieces)
        if walked and len(pieces) > 1:
            raw = raw.sort("line", maintain_order=True)  # lines the structs did not take, back in place
    return JsonWalk(raw, events, metrics, rejected, bad, lines)


def _split_lines(payload: bytes, min_bytes: int) -> list[tuple[int, int, int]]:
    """(start, stop, first line number) of up to one part per core, cut after line ends; one part when
    the payload is small, is one pretty-printed document, or the machine has one core."""

    cores = min(os.cpu_count() or 1, 8)
    if cores < 2 or len(payload) < min_bytes or payload.count(b"\n", 0, 1 << 20) == 0:
        return [(0, len(payload), 1)]
    # the first part is walked here while the workers start up and ship their results back (about a
    # second for 500k spans), so it is given a larger share: weight 1.4 against 1 for each worker
    weights = [1.4] + [1.0] * (cores - 1)
    bounds = [sum(weights[:k]) / sum(weights) for k in range(1, cores)]
    cuts, start, number = [], 0, 1
    for bound in bounds:
        cut = payload.find(b"\n", max(start, int(len(payload) * bound)))
        if cut < 0:
            break
        cuts.append((start, cut + 1, number))
        number += payload.count(b"\n", start, cut + 1)
        start = cut + 1
    cuts.append((start, len(payload), number))
    # a whole-document file (first line not JSON) must not be cut: walk it in one piece
    head_end = payload.find(b"\n", _text_start(payload, 0))
    try:
        orjson.loads(payload[: head_end if head_end >= 0 else len(payload)])
    except orjson.JSONDecodeError:
        return [(0, len(payload), 1)]
    return cuts


def walk_in_processes(payload: bytes, parts: list[tuple[int, int, int]]) -> list[JsonWalk]:
    """Walk the first part here and each other part in a worker process, results in line order."""
    import dataclasses

    view = memoryview(payload)  # the parts are sent as slices, not copies
    mine, theirs = parallel.in_workers(
        [(("json", number), view[start:stop]) for start, stop, number in parts[1:]],
        lambda: walk_json(payload, *parts[0], per_line=True),
        lambda walk, spans: dataclasses.replace(walk, spans=spans),
        lambda k: walk_json(payload, *parts[k + 1], per_line=True),
    )
    return [mine, *theirs]


_BLANK = re.compile(rb"\s*")


def _text_start(payload: bytes, start: int) -> int:
    """Where the text after `start` begins (blank characters skipped)."""
    blank = _BLANK.match(payload, start)
    return blank.end() if blank else start


def _line_spans(payload: bytes, start: int, stop: int, number: int) -> Iterator[tuple[int, int, int]]:
    """(line number, start, end) of each line of payload[start:stop], as `split(b"\\n")` would cut them."""
    while True:
        end = payload.find(b"\n", start, stop)
        if end < 0:
            if start < stop or number == 1:
                yield number, start, stop
            return
        yield number, start, end
        start, number = end + 1, number + 1


register(OtlpJsonParser())
