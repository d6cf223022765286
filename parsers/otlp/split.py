"""One big OTLP protobuf message (not length-prefixed) cut, as it is read, into smaller messages of its type.

`TracesData`, `LogsData` and `MetricsData` share one shape: field 1 repeats the resource messages; a
resource message holds its resource (field 1), its repeated scope messages (field 2) and a schema url
(field 3); a scope message holds its scope (field 1), its repeated spans, log records or metrics (field 2)
and a schema url. Repeated fields concatenate on the wire, so a run of consecutive resource messages is a
message of the same type, and so is one resource message holding a run of its scope messages after its
other fields, or one scope message holding a run of its elements after its scope: each span, log record
or metric decodes as it would in the whole message, with the same resource and scope. A resource or scope
message longer than the run size is cut one level down; an element is never cut (a run of one may pass
the size). Fields other than the repeated one (the resource, the scope, a schema url, unknown fields) head
every later run of their level; a field that comes after the repeated one (the schema url, as writers
order fields) is missing from the runs before it, which no reader here uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO


class Malformed(Exception):
    """The bytes are not a protobuf message (a bad key or varint, a length past the end)."""


class _Reader:
    """Sequential reads of a stream through a buffer of its own, with the offset read so far."""

    CHUNK = 1 << 20

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buffer = b""
        self.at = 0  # in `buffer`
        self.offset = 0  # in the stream

    def _fill(self, size: int) -> bool:
        """At least `size` bytes buffered from `at`; False when the stream ends first."""
        while len(self.buffer) - self.at < size:
            more = self.stream.read(max(self.CHUNK, size - (len(self.buffer) - self.at)))
            if not more:
                return False
            self.buffer = self.buffer[self.at :] + more
            self.at = 0
        return True

    def read(self, size: int) -> bytes:
        if not self._fill(size):
            raise Malformed(f"the input ends within a field of {size:,} bytes at byte {self.offset:,}")
        data = self.buffer[self.at : self.at + size]
        self.at += size
        self.offset += size
        return data

    def varint(self, at_end_ok: bool = False) -> int | None:
        """The next varint; None at the end of the stream when `at_end_ok` (and no byte of it was read)."""
        if not self._fill(10) and self.at >= len(self.buffer):
            if at_end_ok:
                return None
            raise Malformed(f"the input ends before a varint at byte {self.offset:,}")
        value = shift = 0
        buffer = self.buffer
        for index in range(self.at, min(self.at + 10, len(buffer))):
            byte = buffer[index]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.offset += index + 1 - self.at
                self.at = index + 1
                return value
            shift += 7
        raise Malformed(f"a varint cut short or longer than 10 bytes at byte {self.offset:,}")


def varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, body: bytes) -> bytes:
    """A length-delimited field."""
    return varint_bytes(number << 3 | 2) + varint_bytes(len(body)) + body


def message_runs(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Messages of about `size` bytes (each a valid message of the input's type) whose elements, in order,
    are those of the one message `stream` holds; Malformed where its bytes stop being a message."""
    yield from _runs(_Reader(stream), None, 0, lambda body: body, size)


def _runs(reader: _Reader, length: int | None, depth: int, wrap: Callable[[bytes], bytes], size: int) -> Iterator[bytes]:
    """The runs of the message body of `length` bytes (None: to the end of the stream) at `depth` (0 the
    top message, 1 a resource message, 2 a scope message), each turned into a top message by `wrap`."""
    repeated = 1 if depth == 0 else 2
    end = None if length is None else reader.offset + length
    context = b""  # the fields of this level that head every run (none at the top: its other fields go with the runs)
    run: list[bytes] = []
    held = 0
    while end is None or reader.offset < end:
        key = reader.varint(at_end_ok=end is None)
        if key is None:
            break
        number, wire = key >> 3, key & 7
        if wire == 0:
            raw = varint_bytes(key) + varint_bytes(reader.varint() or 0)
        elif wire in (1, 5):
            raw = varint_bytes(key) + reader.read(8 if wire == 1 else 4)
        elif wire == 2:
            count = reader.varint() or 0
            if end is not None and reader.offset + count > end:
                raise Malformed(f"a field of {count:,} bytes runs past its message at byte {reader.offset:,}")
            if number == repeated and depth < 2 and count > size:  # cut one level down
                if run:
                    yield wrap(context + b"".join(run))
                    run, held = [], 0
                head = context
                yield from _runs(reader, count, depth + 1, lambda body, head=head: wrap(head + _field(repeated, body)), size)  # type: ignore[misc]
                continue
            raw = varint_bytes(key) + varint_bytes(count) + reader.read(count)
        else:
            raise Malformed(f"wire type {wire} at byte {reader.offset:,}")
        if number != repeated and depth > 0:
            context += raw
            continue
        run.append(raw)
        held += len(raw)
        if held >= size:
            yield wrap(context + b"".join(run))
            run, held = [], 0
    if end is not None and reader.offset != end:
        raise Malformed(f"a field runs past its message at byte {reader.offset:,}")
    if run:
        yield wrap(context + b"".join(run))
