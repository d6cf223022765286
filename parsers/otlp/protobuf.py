"""The `otlp-proto` format: OTLP protobuf messages, one or the file exporter's length-prefixed stream.

Each message's signal is told by its wire types (`signals`) or `--signal`. Spans are decoded column by
column (`columns`), a batch the columns cannot hold exactly span by span on the full schema; logs and
metrics through the OTLP/JSON shape `common` maps. A stream of `parallel.PARALLEL_MIN_BYTES` or more is
cut at message bounds and decoded by worker processes.

With a bound on the spans kept (`ParseOptions.max_spans`, analysis), a length-prefixed stream is read in
blocks of messages of about `BLOCK_BYTES` (never whole), reduced as `bounded_spans` keeps them (in worker
processes for a big file), as the OTLP/JSON reader does: an uncompressed file with its prefixes checked
first, a compressed file or stdin as it is decompressed (a cut stream keeps the messages before the cut);
a single message is cut as it is read into runs of its elements, each a message of its type (`split`).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from rca.errors import InputError
from rca.parsers import ParseOptions, ParseResult, Streamed, register
from rca.parsers.bounded_spans import BoundedSpans, reduce_block
from rca.parsers.lines import decompressed_blocks, read_payload
from rca.parsers.otlp import columns as oc
from rca.parsers.otlp import parallel
from rca.parsers.otlp.common import (
    ALIASES,
    ATTRIBUTE_COLUMNS,
    KINDS,
    STATUS,
    attrs,
    concat_raw_spans,
    empty_span_columns,
    log_event,
    metric_points,
    proto_value,
    resource_fields,
    signal_frames,
    span_columns_frame,
)
from rca.parsers.otlp.signals import (
    Blob,
    Corrupt,
    has_elements,
    key_values,
    log_json,
    metric_json,
    normalize_signal,
    sniff_signal,
)
from rca.parsers.sources import Sample, Source
from rca.parsers.spantree import finish_spans
from rca.parsers.spilled_spans import SpilledSpans, streamed_spans


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

        try:
            forced = normalize_signal(options.signal)
        except ValueError as exc:
            raise InputError(str(exc), file=source.origin) from None
        if options.max_spans is not None:
            bounded = self._parse_bounded(source, options, forced)
            if bounded is not None:
                return bounded
        payload, warnings = read_payload(source, binary=True)
        events: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        enabled = gc.isenabled()
        gc.disable()  # millions of small objects: generational collections would dominate
        try:
            bounds = _frame_bounds(payload)
            view = memoryview(payload)  # upb parses views: the messages are not copied out of the payload
            blobs = [view[start:end] for start, end in bounds]
            parts = _split_messages(blobs, parallel.PARALLEL_MIN_BYTES)
            if len(parts) == 1:
                pieces, messages = self.decode_messages(blobs, 1, source, forced, events, metrics)
            else:
                pieces, messages = decode_in_processes(view, bounds, parts, source, forced, events, metrics)
        finally:
            if enabled:
                gc.enable()
        frames: dict[str, pl.DataFrame] = {}
        if pieces:
            raw = concat_raw_spans(pieces)
            more, span_warnings = finish_spans(raw, source.origin)
            warnings += span_warnings
            frames = {k: v.with_columns(origin=pl.lit(source.origin), signal=pl.lit("trace")) for k, v in more.items()}
        frames.update(signal_frames(events, metrics, source.origin))
        return ParseResult(format=self.name, frames=frames, lines=messages, warnings=warnings)

    def _parse_bounded(self, source: Source, options: ParseOptions, forced: str | None) -> ParseResult | None:
        """The parse in blocks of messages keeping at most `options.max_spans` spans (`BoundedSpans`); None
        when the input is not a stream of length-prefixed messages (read whole by `parse`)."""
        spans = BoundedSpans(source.origin, options.max_spans, options.max_request_rows, options.request_columns)
        read = self._read_blocks(source, forced, spans)
        sample = spans.finish_read()
        return ParseResult(format=self.name, frames={**sample.frames, **signal_frames(read.events, read.metrics, source.origin)}, lines=read.messages,
                           warnings=read.warnings + sample.warnings, **sample.sampled())

    def stream(self, source: Source, options: ParseOptions) -> Streamed | None:
        """The messages of a file as streams of every span and its requests, finished a group of whole traces at
        a time (`spilled_spans`) in bounded memory, in message order (`rca ingest`): the frames of `parse`. Logs,
        metrics and version changes come in memory with the rest (`remainder`). None for stdin or a signal
        not known (read whole by `parse`)."""
        if source.path is None:
            return None
        try:
            forced = normalize_signal(options.signal)
        except ValueError:
            return None

        def read(spans: SpilledSpans) -> ParseResult:
            blocks = self._read_blocks(source, forced, spans)
            return ParseResult(format=self.name, frames=signal_frames(blocks.events, blocks.metrics, source.origin), lines=blocks.messages, warnings=blocks.warnings)

        return streamed_spans(source.origin, read)

    def _read_blocks(self, source: Source, forced: str | None, spans: BoundedSpans | SpilledSpans) -> _BlocksRead:
        """Decode the input in blocks of messages (in worker processes for a big file), spans handed to `spans`:
        a stream of length-prefixed messages, else one message cut into runs of its elements (`split`)."""
        read = _BlocksRead([], [], 0, [])
        blocks = _message_blocks(source, BLOCK_BYTES, read.warnings)
        signal = [forced]  # of the blocks as they are sent: one message cut into runs is told once, by its first run
        single = blocks is None
        if blocks is None:
            blocks = _single_message_blocks(source, BLOCK_BYTES, signal)

        def take(reply: parallel.Reply) -> None:
            (more_events, more_metrics, count), reduced = reply
            read.events.extend(more_events)
            read.metrics.extend(more_metrics)
            read.messages += count
            spans.take(reduced)

        parallel.decode_blocks((((self.name, bounds, number, signal[0], source.origin), block) for block, bounds, number in blocks), lambda: spans.wanted_level,
                               messages_reply, take, *parallel.worker_count(source.size()))
        if single:
            read.messages = min(read.messages, 1)  # its runs are one message
        return read

    def decode_messages(self, blobs: Sequence[Blob], first_number: int, source: Source, forced: str | None, events: list[dict[str, Any]],
                metrics: list[dict[str, Any]]) -> tuple[list[pl.DataFrame], int]:
        """Messages numbered from `first_number` -> raw span frames, in message order, and the message
        count; log and metric rows are appended
        to `events` and `metrics`. Spans: batches of messages column by column (`columns`),
        a batch the columns cannot hold exactly span by span."""
        from google.protobuf.message import DecodeError


        pieces: list[pl.DataFrame] = []
        batch: list[tuple[int, Blob, list[Any], list[tuple[dict[str, Any], int]]]] = []

        def not_protobuf(number: int, blob: Blob) -> None:
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
                    cols = empty_span_columns()
                    try:
                        walked = self._walk_message(number, blob, source, cols)
                    except InputError:
                        not_protobuf(number, blob)
                        raise
                    if walked:
                        pieces.append(span_columns_frame(cols))
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
    def _walk_message(number: int, blob: Blob, source: Source, cols: dict[str, list[Any]]) -> int:
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
            resource = resource_fields({kv.key: proto_value(kv.value) for kv in rs.resource.attributes})
            service, version, env, host = resource["service"], resource["service_version"], resource["deployment_environment"], resource["host"]
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found: dict[str, tuple[int, Any]] = {}
                    for kv in span.attributes:
                        hit = ATTRIBUTE_COLUMNS.get(kv.key)
                        if hit is not None and (hit[0] not in found or hit[1] < found[hit[0]][0]):
                            found[hit[0]] = (hit[1], proto_value(kv.value))
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


# Bytes of messages read (and decoded by one worker) at a time when the spans are bounded. Half OTLP/JSON's
# 8 MB: protobuf is denser (8 MB hold some 45k spans, JSON's 17k), and a worker's decode of 8 MB peaked near
# 270 MB, the reader and two workers near 1 GB on 1M spans; at 4 MB 0.77-0.79 GB, for some 10% more CPU.
BLOCK_BYTES = 4 * 1024 * 1024


@dataclass
class _BlocksRead:
    """What the blocks of an input gave besides spans: log events, metric points, messages, warnings."""

    events: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    messages: int
    warnings: list[str]


def _message_blocks(source: Source, size: int, warnings: list[str]) -> Iterator[tuple[bytes, list[tuple[int, int]], int]] | None:
    """Blocks of whole length-prefixed messages of about `size` bytes: (bytes, (start, end) of each message
    in them, number of the first message); None when the input is one message (read whole by `parse`). In
    an uncompressed file the prefixes are checked first by seeking from one to the next (they must tile it
    exactly); a compressed file or stdin is read once (`_streamed_message_blocks`)."""
    if source.path is None or source.compression is not None:
        head = source.sample().head
        # a stream of length-prefixed messages (the first under 16 MB, its first field the resource
        # message); one message alone starts with that field's tag and is read whole
        return _streamed_message_blocks(source, size, warnings) if head[:1] != b"\x0a" and head[4:5] == b"\x0a" else None
    try:
        total = source.path.stat().st_size
        with source.path.open("rb") as stream:
            pos = count = 0
            while pos + 4 <= total:
                stream.seek(pos)
                (length,) = struct.unpack(">I", stream.read(4))
                if length == 0 or pos + 4 + length > total:
                    break
                pos, count = pos + 4 + length, count + 1
    except OSError:
        return None
    if not count or pos != total:
        return None

    def blocks() -> Iterator[tuple[bytes, list[tuple[int, int]], int]]:
        number = 1
        with source.path.open("rb") as stream:  # type: ignore[union-attr]
            while True:
                data = stream.read(size)
                if not data:
                    return
                bounds, at = [], 0
                while True:  # whole messages: read on to the end of the last one started
                    if at + 4 > len(data):
                        data += stream.read(at + 4 - len(data))
                        if at + 4 > len(data):
                            break
                    (length,) = struct.unpack(">I", data[at : at + 4])
                    if at + 4 + length > len(data):
                        data += stream.read(at + 4 + length - len(data))
                    bounds.append((at + 4, at + 4 + length))
                    at += 4 + length
                    if at >= len(data):
                        break
                if source.on_read is not None:
                    source.on_read(stream.tell(), total)
                yield data, bounds, number
                number += len(bounds)

    return blocks()


def _single_message_blocks(source: Source, size: int, signal: list[str | None]) -> Iterator[tuple[bytes, list[tuple[int, int]], int]]:
    """One message (not length-prefixed) as blocks of one message each (`split.message_runs`: runs of its
    elements of about `size` bytes), all numbered 1, as it is read (never whole). `signal[0]`, when None,
    is set from the first run that tells it, so every run is decoded as the whole message would be. A
    stream that stops being a message is an input error naming it, as the whole message's decode is."""
    from rca.parsers.otlp.split import Malformed, message_runs

    try:
        with source.open() as stream:
            for run in message_runs(stream, size):
                if signal[0] is None:
                    with contextlib.suppress(Corrupt):  # the decode of the run says what is wrong with it
                        signal[0] = sniff_signal(run)
                yield run, [(0, len(run))], 1
    except Malformed as exc:
        raise InputError(f"protobuf message 1 is not OTLP TracesData, LogsData or MetricsData ({exc})", file=source.origin) from None
    except InputError:
        raise
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"corrupt or truncated {source.compression or ''} data ({exc})".replace("  ", " "), file=source.origin) from None


def _streamed_message_blocks(source: Source, size: int, warnings: list[str]) -> Iterator[tuple[bytes, list[tuple[int, int]], int]]:
    """`_message_blocks` of a compressed file or stdin, read once as it is decompressed: blocks of whole
    messages of about `size` bytes. A truncated or corrupt stream (a prefix of 0, an end within a message)
    ends the blocks with a warning, the messages before it read (an input error when there are none)."""
    buffer = bytearray()
    number = 1
    at = 0  # where the next message's prefix starts in `buffer`
    bounds: list[tuple[int, int]] = []
    broken = ""
    for data, read, total in decompressed_blocks(source, warnings, size):
        buffer += data
        if source.on_read is not None:
            source.on_read(read, total)
        while not broken and at + 4 <= len(buffer):
            (length,) = struct.unpack_from(">I", buffer, at)
            if length == 0:
                broken = f"protobuf message {number + len(bounds):,} has length 0 (not a length-prefixed stream from there)"
            elif at + 4 + length <= len(buffer):
                bounds.append((at + 4, at + 4 + length))
                at += 4 + length
                if at >= size:  # cut as the file's blocks are: after the message that reaches `size`
                    yield bytes(buffer[:at]), bounds, number
                    number += len(bounds)
                    del buffer[:at]
                    at, bounds = 0, []
            else:
                break
        if broken:
            break
    if bounds:
        yield bytes(buffer[:at]), bounds, number
        number += len(bounds)
    if not broken and len(buffer) > at:
        broken = f"the input ends within protobuf message {number:,} ({len(buffer) - at:,} bytes of it)"
    if broken and number == 1:
        raise InputError(broken, file=source.origin)
    if broken:
        warnings.append(f"{broken}; read the {number - 1:,} message(s) before")


def messages_reply(block: bytes, bounds: list[tuple[int, int]], first_number: int, forced: str | None, origin: str,
                   level: int | None) -> parallel.Reply:
    """What a block of messages gives the reader: its log events, metric points and message count, and its
    spans as `bounded_spans.reduce_block` gives them at `level`. An input error in it is raised."""
    import gc

    view = memoryview(block)
    events: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        pieces, messages = OtlpProtoParser().decode_messages([view[a:b] for a, b in bounds], first_number, Source(origin, None), forced, events, metrics)
    finally:
        if enabled:
            gc.enable()
    return (events, metrics, messages), reduce_block(concat_raw_spans(pieces) if pieces else None, level)


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
    cuts: list[tuple[int, int]] = []
    start = seen = 0
    for index, blob in enumerate(blobs):
        seen += len(blob)
        if len(cuts) < len(bounds) and seen >= bounds[len(cuts)] and index + 1 < len(blobs):
            cuts.append((start, index + 1))
            start = index + 1
    cuts.append((start, len(blobs)))
    return cuts


def decode_in_processes(view: memoryview, bounds: list[tuple[int, int]], parts: list[tuple[int, int]], source: Source,
                         forced: str | None, events: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> tuple[list[pl.DataFrame], int]:
    """`OtlpProtoParser.decode_messages` of the first part here and of each other part in a worker process, as
    `_walk_in_processes` does for OTLP/JSON: results in message order."""
    blobs = [view[start:end] for start, end in bounds]

    def request(start: int, stop: int) -> tuple[Any, memoryview]:
        low, high = bounds[start][0], bounds[stop - 1][1]  # the part's bytes, sent as they are with the bounds in them
        return ("proto", [(a - low, b - low) for a, b in bounds[start:stop]], start + 1, forced), view[low:high]

    def decode(start: int, stop: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[pl.DataFrame], int]:
        more_events: list[dict[str, Any]] = []
        more_metrics: list[dict[str, Any]] = []
        frames, count = OtlpProtoParser().decode_messages(blobs[start:stop], start + 1, source, forced, more_events, more_metrics)
        return more_events, more_metrics, frames, count

    def unpack(rest: Any, frame: pl.DataFrame | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[pl.DataFrame], int]:
        more_events, more_metrics, count = rest
        return more_events, more_metrics, [] if frame is None else [frame], count

    mine, theirs = parallel.in_workers([request(*part) for part in parts[1:]], lambda: decode(*parts[0]), unpack,
                               lambda k: decode(*parts[k + 1]))
    pieces: list[pl.DataFrame] = []
    messages = 0
    for more_events, more_metrics, frames, count in [mine, *theirs]:
        events += more_events
        metrics += more_metrics
        pieces += frames
        messages += count
    return pieces, messages


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


def _parse_message(cls: Any, number: int, blob: Blob, source: Source) -> Any:
    """Message `number` of a protobuf file parsed as `cls`; InputError naming it when it is not one."""
    message = cls()
    try:
        message.ParseFromString(blob)
    except Exception:  # protobuf raises DecodeError, a message subclass of Exception
        raise InputError(f"protobuf message {number} is not a valid {cls.__name__} message", file=source.origin) from None
    return message


def _proto_logs(number: int, blob: Blob, source: Source) -> list[dict[str, Any]]:
    """A LogsData message -> events rows, through the OTLP/JSON shape the JSON path maps."""
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

    message = _parse_message(LogsData, number, blob, source)
    out: list[dict[str, Any]] = []
    for rl in message.resource_logs:
        resource = resource_fields(attrs(key_values(rl.resource.attributes)))
        for sl in rl.scope_logs:
            out.extend(log_event(log_json(record), resource, number) for record in sl.log_records)
    return out


def _proto_metrics(number: int, blob: Blob, source: Source) -> list[dict[str, Any]]:
    """A MetricsData message -> metric rows, through the OTLP/JSON shape the JSON path maps."""
    from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData

    message = _parse_message(MetricsData, number, blob, source)
    out: list[dict[str, Any]] = []
    for rm in message.resource_metrics:
        resource = resource_fields(attrs(key_values(rm.resource.attributes)))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.extend(metric_points(metric_json(metric), resource, number))
    return out


def _looks_like_otlp(head: bytes) -> bool:
    # Traces/Logs/MetricsData field 1 (the resource messages), wire type 2: tag 0x0a, directly or
    # after a 4-byte length prefix
    return head[:1] == b"\x0a" or (len(head) > 4 and head[4:5] == b"\x0a")


register(OtlpProtoParser())
