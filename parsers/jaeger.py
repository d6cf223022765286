"""Jaeger JSON traces: the UI's "Download JSON" and the `jaeger-query` `/api/traces` envelope.

Shape (jaeger `model/json/model.go`): `{"data": [trace, ...]}` (or a bare trace, or a list of traces),
each trace with `spans[]` and `processes{id: {serviceName, tags[]}}`. A span's service lives in its
process; its parent is the first `CHILD_OF` reference (else the first reference, else `parentSpanID`);
`startTime` and `duration` are microseconds; kind comes from the `span.kind` tag and error from
`error=true` or `otel.status_code=ERROR`. Old Jaeger printed ids without leading zeros: ids are
left-padded to 32/16 hex. Tags use the same semantic-convention alias table as OTLP. Columns are filled
as lists and turned into one frame, then `parsers.spantree.finish_spans` does the format-independent work.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast

import orjson

from rca.model import Rejected
from rca.parsers import ParseOptions, ParseResult, Streamed, register
from rca.parsers.bounded_spans import NOTHING_SAMPLED, BoundedSpans, finish_bounded
from rca.parsers.json_arrays import document_runs
from rca.parsers.lines import read_payload
from rca.parsers.otlp.common import ALIASES, empty_span_columns, hex_id, pick, span_columns_frame
from rca.parsers.sources import Sample, Source
from rca.parsers.spilled_spans import SpilledSpans, streamed_spans

_KINDS = {"server", "client", "producer", "consumer", "internal"}


def _tags(items: Any) -> dict[str, Any]:
    return {cast(str, t.get("key")): t.get("value") for t in items or () if isinstance(t, dict)}


def _traces(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return [t for t in doc["data"] if isinstance(t, dict)]
    if isinstance(doc, dict) and "spans" in doc:
        return [doc]
    if isinstance(doc, list):
        return [t for t in doc if isinstance(t, dict) and "spans" in t]
    return []


def _status(tags: dict[str, Any]) -> str:
    error = tags.get("error")
    if error is True or str(error).lower() == "true" or str(tags.get("otel.status_code", "")).upper() == "ERROR":
        return "error"
    if str(tags.get("otel.status_code", "")).upper() == "OK":
        return "ok"
    return "unset"


def _parent(span: dict[str, Any]) -> Any:
    refs = [r for r in span.get("references") or () if isinstance(r, dict)]
    for ref in refs:
        if ref.get("refType", "CHILD_OF") == "CHILD_OF":
            return ref.get("spanID")
    if refs:
        return refs[0].get("spanID")
    return span.get("parentSpanID")


class JaegerParser:
    name = "jaeger"
    description = "Jaeger JSON traces (UI download or jaeger-query /api/traces)"

    def sniff(self, sample: Sample) -> float:
        head = sample.head[:65536]
        if b'"traceID"' in head and (b'"operationName"' in head or b'"processes"' in head):
            return 0.97
        return 0.0

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        depth = _array_depth(source.sample().head)
        if depth is not None:
            return self._parse_in_batches(source, options, depth)
        payload, warnings = read_payload(source)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            reason = f"invalid JSON ({str(exc).split(':')[0]})"
            return ParseResult(format=self.name, frames={}, lines=1, rejected=1, rejected_examples=[Rejected(1, reason)], warnings=warnings)
        cols = empty_span_columns()
        rejected: list[Rejected] = []
        records, bad = _add_spans(_traces(doc), cols, rejected, 0)
        if records == 0 and not _traces(doc):
            bad += 1
            rejected.append(Rejected(1, "not a Jaeger trace document (no data[] or spans[])"))
        sample = finish_bounded(span_columns_frame(cols), source.origin, options) if cols["trace_id"] else NOTHING_SAMPLED
        warnings += sample.warnings
        return ParseResult(format=self.name, frames=dict(sample.frames), lines=max(records, 1), rejected=bad, rejected_examples=rejected, warnings=warnings,
                           **sample.sampled())

    def _parse_in_batches(self, source: Source, options: ParseOptions, depth: int) -> ParseResult:
        """`parse` of a list of traces (bare, or the `data` of the API's envelope) a run of traces at a time
        (`json_arrays`), their spans kept as `BoundedSpans` keeps them: never the whole document in memory."""
        spans = BoundedSpans(source.origin, options.max_spans, options.max_request_rows, options.request_columns)
        read = self._read_in_batches(source, spans, depth)
        sample = spans.finish_read()
        return dataclasses.replace(read, frames=dict(sample.frames), warnings=read.warnings + sample.warnings, **sample.sampled())

    def stream(self, source: Source, options: ParseOptions) -> Streamed | None:
        """A list of traces as streams of every span and its requests, finished a group of whole traces at a
        time (`spilled_spans`) in bounded memory, in read order (`rca ingest`): the frames of `parse`. Version
        changes come in memory with the rest (`remainder`). None for stdin and a single trace (read whole)."""
        depth = _array_depth(source.sample().head)
        if source.path is None or depth is None:
            return None
        return streamed_spans(source.origin, lambda spans: self._read_in_batches(source, spans, depth))

    def _read_in_batches(self, source: Source, spans: BoundedSpans | SpilledSpans, depth: int) -> ParseResult:
        """Read the spans of a list of traces into `spans` a run of traces at a time; the result without frames."""
        warnings: list[str] = []
        rejected: list[Rejected] = []
        records = bad = 0
        for run in document_runs(source, warnings, depth):
            if isinstance(run, str):
                bad += 1
                if len(rejected) < 5:
                    rejected.append(Rejected(records + 1, f"{run} in the traces after span {records:,}"))
                continue
            cols = empty_span_columns()
            records, more_bad = _add_spans([t for t in run if isinstance(t, dict) and "spans" in t], cols, rejected, records)
            bad += more_bad
            if cols["trace_id"]:
                spans.add_raw(span_columns_frame(cols))
        if records == 0 and not bad:
            bad += 1
            rejected.append(Rejected(1, "not a Jaeger trace document (no data[] or spans[])"))
        return ParseResult(format=self.name, frames={}, lines=max(records, 1), rejected=bad, rejected_examples=rejected, warnings=warnings)


_ENVELOPE = re.compile(rb'\A\s*\{\s*"data"\s*:\s*\[')


def _array_depth(head: bytes) -> int | None:
    """Where a Jaeger document's list of traces is: 1 in the API's envelope (`{"data": [...]}`, data first),
    0 for a bare list; None for anything else (a single trace: read whole)."""
    if _ENVELOPE.match(head):
        return 1
    return 0 if head.lstrip()[:1] == b"[" else None


def _add_spans(traces: list[dict[str, Any]], cols: dict[str, list[Any]], rejected: list[Rejected], records: int) -> tuple[int, int]:
    """The spans of `traces` appended to `cols`, numbered on from `records`; returns the last number and how
    many spans were rejected (examples appended to `rejected`)."""
    bad = 0
    for trace in traces:
        processes = trace.get("processes") or {}
        for span in trace.get("spans") or ():
            records += 1
            if not isinstance(span, dict) or span.get("spanID") is None:
                bad += 1
                if len(rejected) < 5:
                    rejected.append(Rejected(records, "span without spanID"))
                continue
            tags = _tags(span.get("tags"))
            process = span.get("process") or processes.get(span.get("processID")) or {}
            ptags = _tags(process.get("tags"))
            start_ns = int(span.get("startTime") or 0) * 1000
            kind = str(tags.get("span.kind", "")).lower()
            cols["trace_id"].append(hex_id(span.get("traceID") or trace.get("traceID"), 16))
            cols["span_id"].append(hex_id(span.get("spanID"), 8))
            cols["parent_span_id"].append(hex_id(_parent(span), 8))
            cols["service"].append(process.get("serviceName"))
            cols["name"].append(span.get("operationName"))
            cols["kind"].append(kind if kind in _KINDS else "unspecified")
            cols["start_ns"].append(start_ns)
            cols["end_ns"].append(start_ns + int(span.get("duration") or 0) * 1000)
            cols["status"].append(_status(tags))
            for column, names in ALIASES.items():
                cols[column].append(pick(tags, names))
            cols["service_version"].append(pick(ptags, ("service.version",)))
            cols["deployment_environment"].append(pick(ptags, ("deployment.environment.name", "deployment.environment")))
            cols["host"].append(pick(ptags, ("host.name", "hostname", "ip")))
            cols["line"].append(records)
    return records, bad


register(JaegerParser())
