"""Zipkin v2 JSON traces: `GET /api/v2/trace/{id}` (an array of spans), `/api/v2/traces` (an array of
arrays), or JSON lines of spans.

Span (`zipkin2-api.yaml`): `traceId` (16 or 32 hex, left-padded to 32), `id`, `parentId`, `name`, `kind`
(CLIENT|SERVER|PRODUCER|CONSUMER, absent = local), `timestamp` and `duration` in microseconds,
`localEndpoint.serviceName` as the service, `tags` (Brave: `http.method`, `http.path`, `http.route`,
`http.status_code`, `error`). `shared: true` marks a server half reusing the client's span id, so span
identity is (trace, id, kind): the client half of such a pair gets a derived id (the id's bits inverted)
and becomes the server half's parent, and children naming the shared id hang under the server half.
Tags use the OTLP semantic-convention alias table; `finish_spans` does the format-independent work.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import orjson

from rca.model import Rejected
from rca.parsers import ParseOptions, ParseResult, Streamed, register
from rca.parsers.bounded_spans import BoundedSpans
from rca.parsers.json_arrays import document_runs
from rca.parsers.lines import read_blocks
from rca.parsers.otlp.common import ALIASES, empty_span_columns, hex_id, pick, span_columns_frame
from rca.parsers.sources import Sample, Source
from rca.parsers.spilled_spans import SpilledSpans, streamed_spans

_ALIASES = {**ALIASES, "url_path": (*ALIASES["url_path"], "http.path")}
BLOCK_BYTES = 8 << 20  # of JSON lines read at a time: some 15k spans, a few hundred MB at most as objects


def _spans(payload: bytes) -> tuple[list[tuple[int, Any]], list[Rejected], int]:
    """(record number, span dict) pairs from a JSON array, an array of arrays, or JSON lines."""
    try:
        doc = orjson.loads(payload)
        flat = [s for item in doc for s in (item if isinstance(item, list) else [item])] if isinstance(doc, list) else [doc]
        return list(enumerate(flat, start=1)), [], 0
    except orjson.JSONDecodeError:
        pass
    return _line_records(payload, 1)


def _line_records(block: bytes, first_number: int) -> tuple[list[tuple[int, Any]], list[Rejected], int]:
    """(line number, span dict) of each line of JSON lines numbered from `first_number`, the first five
    lines that are not JSON, and how many are not."""
    out: list[tuple[int, Any]] = []
    rejected: list[Rejected] = []
    bad = 0
    for number, raw in enumerate(block.split(b"\n"), start=first_number):
        if not raw.strip():
            continue
        try:
            out.append((number, orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            bad += 1
            if len(rejected) < 5:
                rejected.append(Rejected(number, f"invalid JSON ({str(exc).split(':')[0]})"))
    return out, rejected, bad


def _twin(span_id: str) -> str:
    """The derived id of the client half of a shared span: every bit of the 64-bit id inverted."""
    return f"{int(span_id, 16) ^ 0xFFFFFFFFFFFFFFFF:016x}"


class ZipkinParser:
    name = "zipkin"
    description = "Zipkin v2 JSON spans (API /api/v2/trace(s) or UI download)"

    def sniff(self, sample: Sample) -> float:
        head = sample.head[:65536]
        if b'"traceId"' in head and b'"localEndpoint"' in head and b'"resourceSpans"' not in head:
            return 0.97
        return 0.0

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        spans = BoundedSpans(source.origin, options.max_spans, options.max_request_rows, options.request_columns)
        read = self._read(source, spans)
        sample = spans.finish_read()
        return dataclasses.replace(read, frames=dict(sample.frames), warnings=read.warnings + sample.warnings, **sample.sampled())

    def stream(self, source: Source, options: ParseOptions) -> Streamed | None:
        """A file's spans as streams of every span and its requests, finished a group of whole traces at a time
        (`spilled_spans`) in bounded memory, in read order (`rca ingest`): the frames of `parse`. Version
        changes come in memory with the rest (`remainder`). None for stdin (read by `parse`)."""
        if source.path is None:
            return None
        return streamed_spans(source.origin, lambda spans: self._read(source, spans))

    def _read(self, source: Source, spans: BoundedSpans | SpilledSpans) -> ParseResult:
        """Read the input's spans into `spans` (a block of lines or a run of an array's elements at a time: never
        the whole document in memory); the result without frames."""
        if source.sample().head.lstrip()[:1] == b"[":
            return self._read_in_batches(source, spans)
        warnings: list[str] = []
        blocks = read_blocks(source, BLOCK_BYTES, warnings)
        first = next(blocks, None)
        second = next(blocks, None) if first is not None else None
        if second is not None:  # JSON lines past one block: never the whole input in memory
            return self._read_lines(source, spans, itertools.chain((first, second), blocks), warnings)  # type: ignore[arg-type]
        records, rejected, bad = _spans(first[0] if first is not None else b"")
        cols = empty_span_columns()
        bad += _add_spans(records, cols, rejected, _shared_servers(records))
        if cols["trace_id"]:
            spans.add_raw(span_columns_frame(cols))
        return ParseResult(format=self.name, frames={}, lines=len(records) + bad, rejected=bad, rejected_examples=rejected, warnings=warnings)

    def _read_lines(self, source: Source, spans: BoundedSpans | SpilledSpans, blocks: Iterator[tuple[bytes, int]], warnings: list[str]) -> ParseResult:
        """`_read` of JSON lines of spans a block of lines at a time. The shared server spans of a file are found
        first (a quick pass over the lines naming `shared`), so a client half is told apart from its server
        half in whichever block each lies; on stdin (read once) only from the server halves read so far."""
        shared = _shared_servers_of_file(source) if source.path is not None else set()
        not_json: list[Rejected] = []
        not_spans: list[Rejected] = []
        records = bad = 0
        for block, first_number in blocks:
            lines, rejected, bad_lines = _line_records(block, first_number)
            del block
            not_json += rejected[: 5 - len(not_json)]
            shared |= _shared_servers(lines)
            cols = empty_span_columns()
            bad += bad_lines + _add_spans(lines, cols, not_spans, shared)
            records += len(lines)
            if cols["trace_id"]:
                spans.add_raw(span_columns_frame(cols))
        return ParseResult(format=self.name, frames={}, lines=records + bad, rejected=bad, rejected_examples=(not_json + not_spans)[:5], warnings=warnings)

    def _read_in_batches(self, source: Source, spans: BoundedSpans | SpilledSpans) -> ParseResult:
        """`_read` of an array of spans (or of traces, arrays of spans) a run of elements at a time
        (`json_arrays`). A shared span's halves are told apart within a run (a trace is one element of an
        array of traces)."""
        warnings: list[str] = []
        rejected: list[Rejected] = []
        records = bad = 0
        for run in document_runs(source, warnings, 0):
            if isinstance(run, str):
                bad += 1
                if len(rejected) < 5:
                    rejected.append(Rejected(records + 1, f"{run} in the spans after span {records:,}"))
                continue
            flat = [s for item in run for s in (item if isinstance(item, list) else [item])]
            cols = empty_span_columns()
            numbered = list(enumerate(flat, start=records + 1))
            bad += _add_spans(numbered, cols, rejected, _shared_servers(numbered))
            records += len(flat)
            if cols["trace_id"]:
                spans.add_raw(span_columns_frame(cols))
        return ParseResult(format=self.name, frames={}, lines=records + bad, rejected=bad, rejected_examples=rejected, warnings=warnings)


def _shared_servers(records: list[tuple[int, Any]]) -> set[tuple[Any, Any]]:
    """(traceId, id) of the shared server spans among `records`: their client halves get a derived id."""
    return {
        (s.get("traceId"), s.get("id")) for _, s in records
        if isinstance(s, dict) and s.get("shared") and str(s.get("kind") or "").upper() == "SERVER"
    }


def _shared_servers_of_file(source: Source) -> set[tuple[Any, Any]]:
    """`_shared_servers` of a file of JSON lines, from the few lines naming `shared` (read a block at a time;
    what an unreadable part hides is left to the read proper, which reports it)."""
    found: set[tuple[Any, Any]] = set()
    try:
        for block, _ in read_blocks(Source(source.origin, source.path, compression=source.compression), BLOCK_BYTES, []):
            lines = []
            at = block.find(b'"shared"')
            while at >= 0:
                end = block.find(b"\n", at)
                end = len(block) if end < 0 else end
                lines.append(block[block.rfind(b"\n", 0, at) + 1 : end])
                at = block.find(b'"shared"', end)
            if lines:
                found |= _shared_servers(_line_records(b"\n".join(lines), 1)[0])
    except Exception:  # an input error is the read proper's to report, in its place
        pass
    return found


def _add_spans(records: list[tuple[int, Any]], cols: dict[str, list[Any]], rejected: list[Rejected], shared: set[tuple[Any, Any]]) -> int:
    """The spans of `records` ((number, span) pairs) appended to `cols`, the client halves of the `shared`
    server spans under a derived id; returns how many were rejected (examples appended to `rejected`)."""
    bad = 0
    for number, span in records:
        if not isinstance(span, dict) or not span.get("traceId") or not span.get("id"):
            bad += 1
            if len(rejected) < 5:
                rejected.append(Rejected(number, "not a Zipkin span (no traceId/id)"))
            continue
        tags = span.get("tags") or {}
        kind = str(span.get("kind") or "").lower() or "internal"
        span_id = hex_id(span["id"], 8)
        parent = hex_id(span.get("parentId"), 8)
        if (span["traceId"], span["id"]) in shared and span_id:
            if kind == "client":
                span_id = _twin(span_id)
            elif kind == "server":
                parent = _twin(span_id)
        start_ns = int(span.get("timestamp") or 0) * 1000
        local = span.get("localEndpoint") or {}
        cols["trace_id"].append(hex_id(span["traceId"], 16))
        cols["span_id"].append(span_id)
        cols["parent_span_id"].append(parent)
        cols["service"].append(local.get("serviceName"))
        cols["name"].append(span.get("name"))
        cols["kind"].append(kind)
        cols["start_ns"].append(start_ns)
        cols["end_ns"].append(start_ns + int(span.get("duration") or 0) * 1000)
        cols["status"].append("error" if "error" in tags else "unset")
        for column, names in _ALIASES.items():
            cols[column].append(pick(tags, names))
        cols["service_version"].append(None)
        cols["deployment_environment"].append(None)
        cols["host"].append(local.get("ipv4") or local.get("ipv6"))
        cols["line"].append(number)
    return bad


register(ZipkinParser())
