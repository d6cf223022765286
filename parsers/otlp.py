"""OpenTelemetry OTLP: traces, logs and metrics, as OTLP/JSON (collector file exporter lines, or one
pretty-printed document) and as protobuf (`TracesData`/`LogsData`/`MetricsData` = the Export*ServiceRequest
messages, a single message or the file exporter's stream of 4-byte big-endian length-prefixed messages,
signals told apart per message by `parsers.otlp_signals` or `--signal`).

OTLP/JSON is read by hand, never by protobuf's generic JSON mapping (`json_format`), which reads trace
and span ids as base64 and silently yields wrong 24-byte ids from the hex strings OTLP/JSON uses:
spans by msgspec structs and columns (`parsers.otlp_json_spans`), logs, metrics and any line those
structs refuse by orjson and a dict walk. Ids are lower-cased hex; a value that is not 32/16 hex characters is tried as
base64 (Grafana Tempo's protojson), and `batches` is accepted as an alias of `resourceSpans`. Enums are
integers, 64-bit integers decimal strings (numbers accepted too). Semantic-convention renames are
mapped (`http.method` -> `http.request.method`, `peer.service`/`service.peer.name`, `db.system`/
`db.system.name`, ...). One file may mix signals: each line is dispatched on its top-level key. Log records and metric points
of both encodings go through one mapping (`log_event`, `_metric_points`, `signal_frames`).
Protobuf traces are decoded by upb column by column (`parsers.otlp_columns`: a reduced schema, one
repeated column per field for a batch of messages, numpy and polars assembly); a batch those columns
cannot hold exactly is walked span by span on opentelemetry-proto's full schema, filling column lists.
Both encodings cut a file of 64 MB or more into one part per core (at line ends, at message bounds),
decoded by worker processes beside this one (`rca.parsers.otlp_worker`): upb and the JSON walk hold the
GIL, so threads would not run side by side; a part's spans come back as Arrow IPC.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import polars as pl

from rca.errors import InputError
from rca.model import Rejected, conform
from rca.parsers import ParseOptions, ParseResult, register
from rca.parsers.lines import read_payload
from rca.parsers.sources import Sample, Source
from rca.parsers.spantree import finish_spans

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}
ALIASES = {
    "http_method": ("http.request.method", "http.method"),
    "http_route": ("http.route",),
    "http_status": ("http.response.status_code", "http.status_code"),
    "url_path": ("url.path", "http.target"),
    "client_address": ("client.address", "http.client_ip", "net.sock.peer.addr", "network.peer.address"),
    # a client span's target: its name, its address, else the host of the URL it called (finish_spans keeps the host)
    "peer_service": ("service.peer.name", "peer.service", "server.address", "net.peer.name", "url.full", "http.url"),
    "db_system": ("db.system.name", "db.system"),
    "user_agent": ("user_agent.original", "http.user_agent"),
}
RESOURCE_ALIASES = {
    "service": ("service.name",),
    "service_version": ("service.version",),
    "deployment_environment": ("deployment.environment.name", "deployment.environment"),
    "host": ("host.name", "k8s.pod.name", "service.instance.id"),
}
SPAN_COLUMNS = ("trace_id", "span_id", "parent_span_id", "service", "name", "kind", "start_ns", "end_ns", "status",
                *ALIASES, "service_version", "deployment_environment", "host", "line")
# the raw span frame every OTLP path hands to finish_spans
RAW_SPAN_TYPES: dict[str, pl.DataType] = {
    **dict.fromkeys(("trace_id", "span_id", "parent_span_id", "service", "name", "kind"), pl.String()),
    "start_ns": pl.Int64(), "end_ns": pl.Int64(), "status": pl.String(),
    **{c: (pl.Int32() if c == "http_status" else pl.String()) for c in ALIASES},
    "service_version": pl.String(), "deployment_environment": pl.String(), "host": pl.String(), "line": pl.Int64(),
    "ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
}
# attribute key -> (column, priority): the first alias listed wins when a span carries several
_ATTRIBUTE_COLUMNS = {name: (column, rank) for column, names in ALIASES.items() for rank, name in enumerate(names)}
_LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
_SEVERITY = [(21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE")]


def hex_id(value: Any, size: int) -> str | None:
    """An OTLP id as lower-case hex: hex text as is, base64 text decoded, bytes hexed."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex() if any(value) else None
    text = str(value)
    if len(text) == size * 2:
        try:
            int(text, 16)
            return text.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
        if len(raw) == size:
            return raw.hex()
    except (binascii.Error, ValueError):
        pass
    if all(c in "0123456789abcdefABCDEF" for c in text) and len(text) < size * 2:
        return text.lower().rjust(size * 2, "0")  # old Jaeger-style ids with leading zeros dropped
    return None


_KIND_NAMES = {f"SPAN_KIND_{v.upper()}": k for k, v in KINDS.items()}
_STATUS_NAMES = {f"STATUS_CODE_{v.upper()}": k for k, v in STATUS.items()}


def enum_value(value: Any, names: dict[str, int]) -> int:
    """OTLP/JSON enums are integers; protojson writers emit names: accept both, 0 when unreadable."""
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    return names.get(text.upper(), 0)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def any_value(value: dict[str, Any] | None) -> Any:
    """An OTLP/JSON AnyValue as a Python value."""
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: any_value(kv.get("value")) for kv in value["kvlistValue"].get("values", [])}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attrs(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    return {kv.get("key"): any_value(kv.get("value")) for kv in items or ()}


def _pick(attributes: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None:
            return value
    return None


def _empty_columns() -> dict[str, list[Any]]:
    return {c: [] for c in SPAN_COLUMNS}


def _add_span(cols: dict[str, list[Any]], resource: dict[str, Any], span: dict[str, Any], line: int) -> None:
    found: dict[str, tuple[int, Any]] = {}
    for kv in span.get("attributes") or ():
        hit = _ATTRIBUTE_COLUMNS.get(kv.get("key"))
        if hit is not None and (hit[0] not in found or hit[1] < found[hit[0]][0]):
            found[hit[0]] = (hit[1], any_value(kv.get("value")))
    cols["trace_id"].append(hex_id(span.get("traceId"), 16))
    cols["span_id"].append(hex_id(span.get("spanId"), 8))
    cols["parent_span_id"].append(hex_id(span.get("parentSpanId"), 8))
    cols["service"].append(resource.get("service"))
    cols["name"].append(span.get("name"))
    cols["kind"].append(KINDS.get(enum_value(span.get("kind"), _KIND_NAMES), "unspecified"))
    cols["start_ns"].append(_int(span.get("startTimeUnixNano")))
    cols["end_ns"].append(_int(span.get("endTimeUnixNano")))
    cols["status"].append(STATUS.get(enum_value((span.get("status") or {}).get("code"), _STATUS_NAMES), "unset"))
    for column in ALIASES:
        hit = found.get(column)
        cols[column].append(None if hit is None else hit[1])
    for column in ("service_version", "deployment_environment", "host"):
        cols[column].append(resource.get(column))
    cols["line"].append(line)


def _resource(resource_attrs: dict[str, Any]) -> dict[str, Any]:
    return {column: _pick(resource_attrs, names) for column, names in RESOURCE_ALIASES.items()}


_TEXT_ALIASES = tuple(c for c in ALIASES if c != "http_status")


def _text(value: Any) -> str | None:
    """An attribute value as column text: strings as they are, booleans lower-case, arrays and maps
    as JSON, other values by `str`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def text_series(name: str, values: list[Any]) -> pl.Series:
    """Attribute values -> a String column (`_text` for what is not a string already)."""
    try:
        return pl.Series(name, values, dtype=pl.String, strict=True)
    except TypeError:
        return pl.Series(name, [_text(v) for v in values], dtype=pl.String)


def status_series(values: list[Any]) -> pl.Series:
    """`http_status` values -> Int32: integers, or text that reads as one; null otherwise."""
    return pl.Series("http_status", [None if v is None else str(v) for v in values], dtype=pl.String).cast(pl.Int32, strict=False)


def _spans_frame(cols: dict[str, list[Any]]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {k: v for k, v in cols.items() if k not in ALIASES},
        schema_overrides={"start_ns": pl.Int64, "end_ns": pl.Int64, "line": pl.Int64},
        strict=False,
    )
    return frame.with_columns(
        status_series(cols["http_status"]),
        *(text_series(c, cols[c]) for c in _TEXT_ALIASES),
        (pl.col("start_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"),
        (pl.col("end_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("end"),
    )


def _severity(number: int, text: str | None) -> str | None:
    if text:
        upper = text.upper()
        upper = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "INFORMATION": "INFO", "NOTICE": "INFO"}.get(upper, upper)
        if upper in _LEVELS:
            return upper
    for low, name in _SEVERITY:
        if number >= low:
            return name
    return None


_OTLP_TOP_KEY = re.compile(rb'"(?:resourceSpans|resourceLogs|resourceMetrics|batches)"\s*:')


def looks_like_otlp_json(head: bytes) -> bool:
    """An OTLP/JSON document: a JSON object (first character `{`) with one of the top-level keys as a key
    (a quoted word followed by `:`), so a log line that merely mentions `"resourceSpans"` is not one."""
    text = head[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    return text[:1] == b"{" and _OTLP_TOP_KEY.search(text) is not None


class OtlpJsonParser:
    name = "otlp-json"
    description = "OpenTelemetry OTLP/JSON traces, logs and metrics (collector file exporter lines or one document)"

    def sniff(self, sample: Sample) -> float:
        return 0.97 if looks_like_otlp_json(sample.head) else 0.0

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        payload, warnings = read_payload(source)
        parts = _split_lines(payload, PARALLEL_MIN_BYTES)
        if len(parts) == 1:
            walks = [walk_json(payload, 0, len(payload), 1)]
        else:
            walks = _walk_in_processes(payload, parts)
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


def _documents(payload: bytes, start: int, stop: int, first_number: int, per_line: bool | None = None) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, document, error) per line of payload[start:stop], or once for a whole pretty-printed
    document. A document is a `otlp_json_spans.Document` when msgspec's structs accept it, else orjson's dict."""
    from rca.parsers.otlp_json_spans import DECODER

    if per_line is None:  # one document per line, unless the first line is not JSON on its own
        first = _BLANK.match(payload, start).end()  # the first line with text, found without copying the payload
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
            yield number, DECODER.decode(view[begin:end]), None  # no copy of the line
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

    from rca.parsers import otlp_json_spans as js

    cols = _empty_columns()
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
                resource = _resource(attrs((rs.get("resource") or {}).get("attributes")))
                for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                    for span in ss.get("spans") or ():
                        _add_span(cols, resource, span, number)
            for rl in doc.get("resourceLogs") or ():
                resource = _resource(attrs((rl.get("resource") or {}).get("attributes")))
                for sl in rl.get("scopeLogs") or ():
                    for rec in sl.get("logRecords") or ():
                        events.append(log_event(rec, resource, number))
            for rm in doc.get("resourceMetrics") or ():
                resource = _resource(attrs((rm.get("resource") or {}).get("attributes")))
                for sm in rm.get("scopeMetrics") or ():
                    for metric in sm.get("metrics") or ():
                        metrics.extend(_metric_points(metric, resource, number))
        if scopes:
            pieces.append(js.spans_frame(scopes))
    finally:
        if enabled:
            gc.enable()
    walked = bool(cols["trace_id"])
    if walked:
        pieces.append(_spans_frame(cols))
    raw = None
    if pieces:
        raw = pl.concat([p.select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()]) for p in pieces])
        if walked and len(pieces) > 1:
            raw = raw.sort("line", maintain_order=True)  # lines the structs did not take, back in place
    return JsonWalk(raw, events, metrics, rejected, bad, lines)


# The walk is Python (msgspec decodes in C, but each span's fields are then read one by one), so a big
# file is cut at line ends into one part per core, each walked by its own process. Below this size a
# process's start (importing polars, about half a second) costs more than it saves.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def _split_lines(payload: bytes, min_bytes: int) -> list[tuple[int, int, int]]:
    """(start, stop, first line number) of up to one part per core, cut after line ends; one part when
    the payload is small, is one pretty-printed document, or the machine has one core."""
    import os

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
    head_end = payload.find(b"\n", _BLANK.match(payload).end())
    try:
        orjson.loads(payload[: head_end if head_end >= 0 else len(payload)])
    except orjson.JSONDecodeError:
        return [(0, len(payload), 1)]
    return cuts


def _walk_in_processes(payload: bytes, parts: list[tuple[int, int, int]]) -> list[JsonWalk]:
    """Walk the first part here and each other part in a worker process, results in line order."""
    import dataclasses

    view = memoryview(payload)  # the parts are sent as slices, not copies
    mine, theirs = _in_workers(
        [(("json", number), view[start:stop]) for start, stop, number in parts[1:]],
        lambda: walk_json(payload, *parts[0], per_line=True),
        lambda walk, spans: dataclasses.replace(walk, spans=spans),
        lambda k: walk_json(payload, *parts[k + 1], per_line=True),
    )
    return [mine, *theirs]


def _in_workers(requests: list[tuple[Any, bytes | memoryview]], here: Callable[[], Any],
                unpack: Callable[[Any, pl.DataFrame | None], Any], redo: Callable[[int], Any]) -> tuple[Any, list[Any]]:
    """`here()` in this process while a worker process (`rca.parsers.otlp_worker` in a fresh interpreter:
    neither forking running polars threads nor re-importing the caller's main module) handles each
    request; returns `here()`'s result and `unpack(rest, frame)` of each worker's reply, in request
    order. Requests and replies travel through temporary files, not pipes a thread of this process
    would have to pump while the decode holds the GIL. A worker that fails (an input error in its part
    included) leaves its part to `redo(k)` here, so errors are raised in order; if `here()` raises,
    the workers are stopped."""
    import subprocess
    import tempfile

    from rca.parsers.otlp_worker import read_part, send_part

    command = _worker_command()
    workers = []
    for meta, raw in requests:
        given, taken = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed below, after the worker)
        send_part(given, meta, raw)
        given.seek(0)
        workers.append((subprocess.Popen(command, stdin=given, stdout=taken, stderr=subprocess.DEVNULL), given, taken))
    try:
        mine = here()
    except BaseException:
        for child, given, taken in workers:
            child.kill()
            child.wait()
            given.close()
            taken.close()
        raise
    theirs = []
    for k, (child, given, taken) in enumerate(workers):
        with given, taken:
            try:
                if child.wait() != 0:
                    raise RuntimeError(child.returncode)
                taken.seek(0)
                theirs.append(unpack(*read_part(taken)))
            except Exception:  # the worker died, wrote nothing readable or met an input error: its part here
                theirs.append(redo(k))
    return mine, theirs


def _split_messages(blobs: list[memoryview], min_bytes: int) -> list[tuple[int, int]]:
    """(start, stop) message ranges of up to one part per core, cut by bytes; one part when the messages
    are small or the machine has one core. The first part, decoded here while a worker starts (about
    half a second importing polars and protobuf) and ships its frame back, is given weight 1.6 against
    1 for each worker."""
    import os

    cores = min(os.cpu_count() or 1, 8)
    total = sum(len(b) for b in blobs)
    if cores < 2 or total < min_bytes or len(blobs) < cores:
        return [(0, len(blobs))]
    weights = [1.6] + [1.0] * (cores - 1)
    bounds = [total * sum(weights[:k]) / sum(weights) for k in range(1, cores)]
    cuts, start, seen = [], 0, 0
    for index, blob in enumerate(blobs):
        seen += len(blob)
        if len(cuts) < len(bounds) and seen >= bounds[len(cuts)] and index + 1 < len(blobs):
            cuts.append((start, index + 1))
            start = index + 1
    cuts.append((start, len(blobs)))
    return cuts


def _worker_command() -> list[str]:
    """A fresh interpreter running `rca.parsers.otlp_worker` from this very code, wherever it was imported from."""
    import sys
    from pathlib import Path

    # rca/parsers/otlp.py -> the folder holding the rca package (not resolved: in a source checkout
    # rca/parsers is a link to the top-level parsers/ folder, and the worker must import it as rca.parsers)
    root = str(Path(__file__).absolute().parent.parent.parent)
    return [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {root!r}); from rca.parsers.otlp_worker import main; main()"]


def _decode_in_processes(view: memoryview, bounds: list[tuple[int, int]], parts: list[tuple[int, int]], source: Source,
                         forced: str | None, events: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> tuple[list[pl.DataFrame], int]:
    """`OtlpProtoParser._decode` of the first part here and of each other part in a worker process, as
    `_walk_in_processes` does for OTLP/JSON: results in message order."""
    blobs = [view[start:end] for start, end in bounds]

    def request(start: int, stop: int) -> tuple[Any, memoryview]:
        low, high = bounds[start][0], bounds[stop - 1][1]  # the part's bytes, sent as they are with the bounds in them
        return ("proto", [(a - low, b - low) for a, b in bounds[start:stop]], start + 1, forced), view[low:high]

    def decode(start: int, stop: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[pl.DataFrame], int]:
        more_events: list[dict[str, Any]] = []
        more_metrics: list[dict[str, Any]] = []
        frames, count = OtlpProtoParser()._decode(blobs[start:stop], start + 1, source, forced, more_events, more_metrics)
        return more_events, more_metrics, frames, count

    def unpack(rest: Any, frame: pl.DataFrame | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[pl.DataFrame], int]:
        more_events, more_metrics, count = rest
        return more_events, more_metrics, [] if frame is None else [frame], count

    mine, theirs = _in_workers([request(*part) for part in parts[1:]], lambda: decode(*parts[0]), unpack,
                               lambda k: decode(*parts[k + 1]))
    pieces: list[pl.DataFrame] = []
    messages = 0
    for more_events, more_metrics, frames, count in [mine, *theirs]:
        events += more_events
        metrics += more_metrics
        pieces += frames
        messages += count
    return pieces, messages


def log_event(rec: dict[str, Any], resource: dict[str, Any], line: int) -> dict[str, Any]:
    """One OTLP/JSON-shaped LogRecord (dict) -> an events row before framing (shared by JSON and protobuf)."""
    ts = int(rec.get("timeUnixNano") or rec.get("observedTimeUnixNano") or 0)
    extra = attrs(rec.get("attributes"))
    if rec.get("eventName"):
        extra["event.name"] = rec["eventName"]
    body = any_value(rec.get("body"))
    return {
        "ts_ns": ts, "level": _severity(int(rec.get("severityNumber", 0) or 0), rec.get("severityText")),
        "service": resource["service"], "host": resource["host"], "logger": None,
        "message": body if isinstance(body, str) else (None if body is None else orjson.dumps(body).decode()),
        "attributes": orjson.dumps(extra, default=str).decode() if extra else None,
        "trace_id": hex_id(rec.get("traceId"), 16), "line": line,
    }


def signal_frames(events: list[dict[str, Any]], metrics: list[dict[str, Any]], origin: str) -> dict[str, pl.DataFrame]:
    """Events and metric rows -> the canonical `events` and `metrics` frames (shared by JSON and protobuf)."""
    frames: dict[str, pl.DataFrame] = {}
    if events:
        frame = pl.DataFrame(events).with_columns(
            (pl.col("ts_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"), origin=pl.lit(origin), signal=pl.lit("otlp_log"))
        frames["events"] = conform(frame, "events")  # type: ignore[assignment]
    if metrics:
        frame = pl.DataFrame(metrics).with_columns(
            (pl.col("ts_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"), origin=pl.lit(origin), signal=pl.lit("metric"))
        frames["metrics"] = conform(frame, "metrics")  # type: ignore[assignment]
    return frames


_BLANK = re.compile(rb"\s*")


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


def _metric_points(metric: dict[str, Any], resource: dict[str, Any], line: int) -> list[dict[str, Any]]:
    name, unit = metric.get("name"), metric.get("unit")
    out = []
    for kind in ("gauge", "sum"):
        for point in (metric.get(kind) or {}).get("dataPoints") or ():
            value = point.get("asDouble", point.get("asInt"))
            if value is None:
                continue
            a = attrs(point.get("attributes"))
            out.append({"ts_ns": int(point.get("timeUnixNano", 0) or 0), "name": name, "value": float(value), "unit": unit,
                        "service": resource["service"], "host": resource["host"],
                        "attributes": orjson.dumps(a, default=str).decode() if a else None, "line": line})
    for kind in ("histogram", "exponentialHistogram", "summary"):
        for point in (metric.get(kind) or {}).get("dataPoints") or ():
            count = float(point.get("count", 0) or 0)
            total = point.get("sum")
            a = attrs(point.get("attributes"))
            base = {"ts_ns": int(point.get("timeUnixNano", 0) or 0), "unit": unit, "service": resource["service"], "host": resource["host"],
                    "attributes": orjson.dumps(a, default=str).decode() if a else None, "line": line}
            out.append({**base, "name": f"{name}.count", "value": count, "unit": "1"})
            if total is not None:
                out.append({**base, "name": f"{name}.sum", "value": float(total)})
                if count:
                    out.append({**base, "name": f"{name}.avg", "value": float(total) / count})
    return out


class OtlpProtoParser:
    name = "otlp-proto"
    description = ("OpenTelemetry OTLP protobuf traces, logs and metrics (TracesData/LogsData/MetricsData = Export*ServiceRequest; "
                   "single or length-prefixed stream; signal told by wire types or --signal)")

    def sniff(self, sample: Sample) -> float:
        head = sample.head
        if len(head) < 8 or head.lstrip()[:1] in (b"{", b"["):
            return 0.0
        return 0.9 if _looks_like_otlp(head) else 0.0

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        import gc

        from rca.parsers.otlp_signals import normalize_signal

        try:
            forced = normalize_signal(options.signal)
        except ValueError as exc:
            raise InputError(str(exc), file=source.origin) from None
        payload, warnings = read_payload(source)
        events: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        enabled = gc.isenabled()
        gc.disable()  # millions of small objects: generational collections would dominate
        try:
            bounds = _frame_bounds(payload)
            view = memoryview(payload)  # upb parses views: the messages are not copied out of the payload
            blobs = [view[start:end] for start, end in bounds]
            parts = _split_messages(blobs, PARALLEL_MIN_BYTES)
            if len(parts) == 1:
                pieces, messages = self._decode(blobs, 1, source, forced, events, metrics)
            else:
                pieces, messages = _decode_in_processes(view, bounds, parts, source, forced, events, metrics)
        finally:
            if enabled:
                gc.enable()
        frames: dict[str, pl.DataFrame] = {}
        if pieces:
            raw = pl.concat([p.select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()]) for p in pieces])
            more, span_warnings = finish_spans(raw, source.origin)
            warnings += span_warnings
            frames = {k: v.with_columns(origin=pl.lit(source.origin), signal=pl.lit("trace")) for k, v in more.items()}
        frames.update(signal_frames(events, metrics, source.origin))
        return ParseResult(format=self.name, frames=frames, lines=messages, warnings=warnings)

    def _decode(self, blobs: list[memoryview] | list[bytes], first_number: int, source: Source, forced: str | None, events: list[dict[str, Any]],
                metrics: list[dict[str, Any]]) -> tuple[list[pl.DataFrame], int]:
        """Messages numbered from `first_number` -> raw span frames, in message order, and the message
        count; log and metric rows are appended
        to `events` and `metrics`. Spans: batches of messages column by column (`parsers.otlp_columns`),
        a batch the columns cannot hold exactly span by span."""
        from google.protobuf.message import DecodeError

        from rca.parsers import otlp_columns as oc
        from rca.parsers.otlp_signals import Corrupt, has_elements, sniff_signal

        pieces: list[pl.DataFrame] = []
        batch: list[tuple[int, bytes, list[Any], list[tuple[dict[str, Any], int]]]] = []

        def not_protobuf(number: int, blob: bytes) -> None:
            """A sniffed message that failed to decode: the error the sniff gives when it reads every
            element record of the first scope (it stops at the first that decides)."""
            if forced is None:
                try:
                    sniff_signal(blob, strict=True)
                except Corrupt as exc:
                    raise InputError(f"protobuf message {number} is not OTLP TracesData, LogsData or MetricsData ({exc})",
                                     file=source.origin) from None

        def flush() -> None:
            if not batch:
                return
            spans = sum(count for *_, scopes in batch for _, count in scopes)
            try:
                core, attributes = oc.decode_batch([c for _, _, containers, _ in batch for c in containers], spans)
                scopes = [oc.Scope(number, values, count) for number, _, _, sc in batch for values, count in sc]
                pieces.append(oc.spans_frame([core], [attributes], scopes))
            except (oc.Misaligned, DecodeError, pl.exceptions.PolarsError):
                for number, blob, _, _ in batch:
                    cols = _empty_columns()
                    try:
                        walked = self._walk_message(number, blob, source, cols)
                    except InputError:
                        not_protobuf(number, blob)
                        raise
                    if walked:
                        pieces.append(_spans_frame(cols))
            batch.clear()

        messages = pending = 0
        for number, blob in enumerate(blobs, start=first_number):
            messages += 1
            signal = forced
            if signal is None:
                try:
                    signal = sniff_signal(blob)
                    if signal is None and has_elements(blob):
                        raise InputError(f"cannot tell whether protobuf message {number} holds traces, logs or metrics",
                                         file=source.origin, hint="pass --signal traces, --signal logs or --signal metrics")
                except Corrupt as exc:
                    raise InputError(f"protobuf message {number} is not OTLP TracesData, LogsData or MetricsData ({exc})",
                                     file=source.origin) from None
                if signal is None:
                    continue  # no span, log record or metric in it
            try:
                if signal == "logs":
                    events.extend(_proto_logs(number, blob, source))
                    continue
                if signal == "metrics":
                    metrics.extend(_proto_metrics(number, blob, source))
                    continue
                try:
                    containers, scopes = oc.parse_top(blob)
                except Exception:  # protobuf raises DecodeError, a message subclass of Exception
                    raise InputError(f"protobuf message {number} is not a valid TracesData message", file=source.origin) from None
            except InputError:
                not_protobuf(number, blob)
                raise
            if scopes:
                batch.append((number, blob, containers, scopes))
                pending += sum(count for _, count in scopes)
            if pending >= oc.BATCH_SPANS:
                flush()
                pending = 0
        flush()
        return pieces, messages

    @staticmethod
    def _walk_message(number: int, blob: bytes, source: Source, cols: dict[str, list[Any]]) -> int:
        """Decode one message with the full schema and append one value per span to each column list;
        the span count. The exact path for what the columns cannot hold."""
        from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

        trace_ids, span_ids, parents, services, names = cols["trace_id"], cols["span_id"], cols["parent_span_id"], cols["service"], cols["name"]
        kinds, starts, ends, statuses, lines = cols["kind"], cols["start_ns"], cols["end_ns"], cols["status"], cols["line"]
        versions, envs, hosts = cols["service_version"], cols["deployment_environment"], cols["host"]
        alias_columns = [(column, cols[column]) for column in ALIASES]
        message = TracesData()
        try:
            message.ParseFromString(blob)
        except Exception:  # protobuf raises DecodeError, a message subclass of Exception
            raise InputError(f"protobuf message {number} is not a valid TracesData message", file=source.origin) from None
        before = len(trace_ids)
        for rs in message.resource_spans:
            resource = _resource({kv.key: _proto_value(kv.value) for kv in rs.resource.attributes})
            service, version, env, host = resource["service"], resource["service_version"], resource["deployment_environment"], resource["host"]
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found: dict[str, tuple[int, Any]] = {}
                    for kv in span.attributes:
                        hit = _ATTRIBUTE_COLUMNS.get(kv.key)
                        if hit is not None and (hit[0] not in found or hit[1] < found[hit[0]][0]):
                            found[hit[0]] = (hit[1], _proto_value(kv.value))
                    trace_ids.append(span.trace_id.hex() or None)
                    span_ids.append(span.span_id.hex() or None)
                    parents.append(span.parent_span_id.hex() or None)
                    services.append(service)
                    names.append(span.name)
                    kinds.append(KINDS.get(span.kind, "unspecified"))
                    starts.append(span.start_time_unix_nano)
                    ends.append(span.end_time_unix_nano)
                    statuses.append(STATUS.get(span.status.code, "unset"))
                    for column, values in alias_columns:
                        hit2 = found.get(column)
                        values.append(None if hit2 is None else hit2[1])
                    versions.append(version)
                    envs.append(env)
                    hosts.append(host)
                    lines.append(number)
        return len(trace_ids) - before


def _proto_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which in ("array_value", "kvlist_value", "bytes_value"):
        return str(getattr(value, which))
    return getattr(value, which)


def _frames(payload: bytes) -> Iterator[bytes]:
    """Length-prefixed messages when the prefixes tile the payload exactly, else one message."""
    for start, end in _frame_bounds(payload):
        yield payload[start:end]


def _frame_bounds(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) of each message of `_frames` in the payload."""
    pos, bounds = 0, []
    while pos + 4 <= len(payload):
        (size,) = struct.unpack(">I", payload[pos : pos + 4])
        if size == 0 or pos + 4 + size > len(payload):
            break
        bounds.append((pos + 4, pos + 4 + size))
        pos += 4 + size
    return bounds if bounds and pos == len(payload) else [(0, len(payload))]


def _parse_message(cls: Any, number: int, blob: bytes, source: Source) -> Any:
    """Message `number` of a protobuf file parsed as `cls`; InputError naming it when it is not one."""
    message = cls()
    try:
        message.ParseFromString(blob)
    except Exception:  # protobuf raises DecodeError, a message subclass of Exception
        raise InputError(f"protobuf message {number} is not a valid {cls.__name__} message", file=source.origin) from None
    return message


def _proto_logs(number: int, blob: bytes, source: Source) -> list[dict[str, Any]]:
    """A LogsData message -> events rows, through the OTLP/JSON shape the JSON path maps."""
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

    from rca.parsers.otlp_signals import key_values, log_json

    message = _parse_message(LogsData, number, blob, source)
    out = []
    for rl in message.resource_logs:
        resource = _resource(attrs(key_values(rl.resource.attributes)))
        for sl in rl.scope_logs:
            out.extend(log_event(log_json(record), resource, number) for record in sl.log_records)
    return out


def _proto_metrics(number: int, blob: bytes, source: Source) -> list[dict[str, Any]]:
    """A MetricsData message -> metric rows, through the OTLP/JSON shape the JSON path maps."""
    from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData

    from rca.parsers.otlp_signals import key_values, metric_json

    message = _parse_message(MetricsData, number, blob, source)
    out = []
    for rm in message.resource_metrics:
        resource = _resource(attrs(key_values(rm.resource.attributes)))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.extend(_metric_points(metric_json(metric), resource, number))
    return out


def _looks_like_otlp(head: bytes) -> bool:
    # Traces/Logs/MetricsData field 1 (the resource messages), wire type 2: tag 0x0a, directly or
    # after a 4-byte length prefix
    return head[:1] == b"\x0a" or (len(head) > 4 and head[4:5] == b"\x0a")


register(OtlpJsonParser())
register(OtlpProtoParser())
