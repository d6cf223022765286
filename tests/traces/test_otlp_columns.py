"""The column-by-column protobuf decoder against the per-span walk on the full schema: random valid
messages (absent fields, empty names, every kind and status, string/int/double/bool/array/bytes
attribute values, long and non-ASCII strings, repeated alias keys) must give identical raw frames, and
the columns must really be used (no silent fallback); encodings the columns cannot hold exactly
(duplicated fields, odd-sized ids, a marker-valued id, multi-byte kinds) must fall back and still agree."""

from __future__ import annotations

import struct

import numpy as np
import polars as pl
import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status, TracesData

from rca.parsers import ParseOptions
from rca.parsers.otlp import columns as oc
from rca.parsers.otlp.common import RAW_SPAN_TYPES, empty_span_columns, span_columns_frame
from rca.parsers.otlp.protobuf import OtlpProtoParser
from rca.parsers.sources import Source

T0 = 1_767_225_600_000_000_000
KEYS = ["http.route", "http.request.method", "http.method", "http.response.status_code", "http.status_code", "url.path",
        "client.address", "net.sock.peer.addr", "peer.service", "service.peer.name", "db.system", "db.system.name",
        "user_agent.original", "db.operation", "server.port", "thread.id"]


def value(rng: np.random.Generator) -> AnyValue:
    pick = int(rng.integers(0, 9))
    if pick == 0:
        return AnyValue(int_value=int(rng.choice([0, 7, 200, 404, 5432, 1 << 20, 1 << 40, -3])))
    if pick == 1:
        return AnyValue(double_value=float(rng.choice([0.0, 1.5, 200.0, -2.25])))
    if pick == 2:
        return AnyValue(bool_value=bool(rng.integers(0, 2)))
    if pick == 3:
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=1)]))
    if pick == 4:
        return AnyValue(bytes_value=b"\x00\x01")
    if pick == 5:
        return AnyValue()  # set but empty
    if pick == 6:
        return AnyValue(string_value="é/" * int(rng.integers(60, 200)))  # a length varint of 2 bytes
    return AnyValue(string_value=str(rng.choice(["GET", "/api/x/{id}", "200", "", "postgresql", "10.0.0.1", "ünï"])))


def random_message(seed: int) -> TracesData:
    rng = np.random.default_rng(seed)
    resources = []
    for r in range(int(rng.integers(1, 4))):
        scopes = []
        for _ in range(int(rng.integers(0, 3))):
            spans = []
            for _ in range(int(rng.integers(0, 40))):
                span = Span(trace_id=rng.bytes(16), span_id=rng.bytes(8), start_time_unix_nano=T0 + int(rng.integers(0, 10**12)))
                span.end_time_unix_nano = span.start_time_unix_nano + int(rng.integers(0, 10**9)) if rng.random() < 0.95 else 0
                if rng.random() < 0.7:
                    span.parent_span_id = rng.bytes(8)
                if rng.random() < 0.9:
                    span.name = str(rng.choice(["GET /x", "SELECT", "ü" * 80]))
                span.kind = int(rng.integers(0, 6))
                if rng.random() < 0.5:
                    span.status.CopyFrom(Status(code=int(rng.integers(0, 3)), message="boom" if rng.random() < 0.5 else ""))
                for _ in range(int(rng.integers(0, 7))):
                    span.attributes.append(KeyValue(key=str(rng.choice(KEYS)), value=value(rng)))
                if rng.random() < 0.3:  # fields the columns do not declare: skipped, alignment kept
                    span.trace_state = "k=v"
                    span.flags = 0x301
                    span.dropped_attributes_count = 2
                    span.events.add(name="exception", time_unix_nano=T0, attributes=[KeyValue(key="http.route", value=AnyValue(string_value="not mine"))])
                    span.links.add(trace_id=rng.bytes(16), span_id=rng.bytes(8))
                spans.append(span)
            scopes.append(ScopeSpans(spans=spans))
        rs = ResourceSpans(scope_spans=scopes)
        if rng.random() < 0.8:
            rs.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value=f"svc{r}")),
                                           KeyValue(key="service.version", value=AnyValue(string_value="1.0"))])
        resources.append(rs)
    return TracesData(resource_spans=resources)


def slow_frame(blobs: list[bytes]) -> pl.DataFrame:
    cols = empty_span_columns()
    for number, blob in enumerate(blobs, start=1):
        OtlpProtoParser._walk_message(number, blob, Source("x", None), cols)  # type: ignore[arg-type]
    return span_columns_frame(cols).select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()])


def fast_frame(blobs: list[bytes]) -> pl.DataFrame:
    containers, scopes = [], []
    for number, blob in enumerate(blobs, start=1):
        c, s = oc.parse_top(blob)
        containers += c
        scopes += [oc.Scope(number, values, count) for values, count in s]
    core, attributes = oc.decode_batch(containers, sum(s.spans for s in scopes))  # raises rather than fall back
    return oc.spans_frame([core], [attributes], scopes).select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()])


@pytest.mark.parametrize("seed", range(12))
def test_columns_equal_the_per_span_walk(seed):
    blobs = [random_message(seed * 10 + i).SerializeToString() for i in range(3)]
    slow, fast = slow_frame(blobs), fast_frame(blobs)
    if slow.height == 0:
        pytest.skip("no spans drawn")
    for column in slow.columns:
        assert slow[column].equals(fast[column]), (column, slow[column].head(5).to_list(), fast[column].head(5).to_list())



@pytest.mark.parametrize("seed", range(4))
def test_spans_without_two_aliases_of_a_column_equal_the_walk(seed):
    # no span carries two aliases of one column: the decoder keeps the attributes in wire order, unsorted
    from rca.parsers.otlp.common import ATTRIBUTE_COLUMNS

    messages = [random_message(seed * 10 + i) for i in range(3)]
    for message in messages:
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    kept, seen = [], set()
                    for kv in span.attributes:
                        column = ATTRIBUTE_COLUMNS.get(kv.key, (kv.key,))[0]
                        if column not in seen:
                            seen.add(column)
                            kept.append(kv)
                    del span.attributes[:]
                    span.attributes.extend(kept)
    blobs = [m.SerializeToString() for m in messages]
    slow, fast = slow_frame(blobs), fast_frame(blobs)
    assert slow.height and slow.equals(fast)

def field(number: int, wire: int, payload: bytes) -> bytes:
    tag = bytes([number << 3 | wire])
    return tag + (bytes([len(payload)]) + payload if wire == 2 else payload)


def one_span_message(span_bytes: bytes) -> bytes:
    scope = field(2, 2, span_bytes)
    return field(1, 2, field(2, 2, scope))


TIMES = field(7, 1, struct.pack("<Q", T0)) + field(8, 1, struct.pack("<Q", T0 + 1000))
GOOD = field(1, 2, b"\x11" * 16) + field(2, 2, b"\x22" * 8) + field(5, 2, b"op") + TIMES
ODD = {
    "duplicated name": GOOD + field(5, 2, b"other"),
    "12-byte trace id": field(1, 2, b"\x11" * 12) + field(2, 2, b"\x22" * 8) + TIMES,
    "marker-valued span id": field(1, 2, b"\x11" * 16) + field(2, 2, b"\xff" * 8) + TIMES,
    "kind 200 (two varint bytes)": GOOD + b"\x30\xc8\x01",
    "name equal to the marker": field(1, 2, b"\x11" * 16) + field(2, 2, b"\x22" * 8) + field(5, 2, b"\x00") + TIMES,
    "attribute without a value": GOOD + field(9, 2, field(1, 2, b"http.route")),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_encodings_the_columns_cannot_hold_fall_back_and_agree(tmp_path, case):
    blobs = [random_message(99).SerializeToString(), one_span_message(ODD[case])]
    with pytest.raises((oc.Misaligned, DecodeError)):  # a 12-byte id is not whole fixed64s: upb refuses
        fast_frame(blobs)
    path = tmp_path / "odd.pb"
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in blobs))
    result = OtlpProtoParser().parse(Source(str(path), path), ParseOptions())
    via_parser = result.frames["spans"]
    expected = slow_frame(blobs)
    assert via_parser.height == expected.unique(subset=["trace_id", "span_id", "kind"]).height
    assert sorted(via_parser["span_id"].drop_nulls().to_list()) == sorted(set(expected["span_id"].drop_nulls().to_list()))


def test_batches_and_message_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(oc, "BATCH_SPANS", 25)  # several batches, one of them falling back
    blobs = [random_message(i).SerializeToString() for i in range(6)] + [one_span_message(ODD["duplicated name"])]
    blobs += [random_message(i).SerializeToString() for i in range(6, 9)]
    path = tmp_path / "many.pb"
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in blobs))
    result = OtlpProtoParser().parse(Source(str(path), path), ParseOptions())
    expected = slow_frame(blobs)
    spans = result.frames["spans"]
    assert result.lines == len(blobs)
    assert spans["line"].to_list() == expected.unique(subset=["trace_id", "span_id", "kind"], keep="first", maintain_order=True)["line"].to_list()


def test_the_first_message_in_error_is_reported(tmp_path, monkeypatch):
    # message 2's batch parses (values are bytes to upb) but fails in polars (broken UTF-8 in a string
    # value), and its walk on the full schema refuses it; message 3 is garbage the sniff refuses: the
    # error of message 2 is the one raised (the first message in error, whatever stage finds it)
    from rca.errors import InputError

    monkeypatch.setattr(oc, "BATCH_SPANS", 1)
    broken = GOOD + field(9, 2, field(1, 2, b"http.route") + field(2, 2, field(1, 2, b"\xff\xfe")))
    garbage = b"\x0a\x05\xff\xff\xff\xff\xff" * 10
    blobs = [random_message(1).SerializeToString(), one_span_message(broken), garbage]
    with pytest.raises(pl.exceptions.PolarsError):
        fast_frame(blobs[1:2])
    path = tmp_path / "order.pb"
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in blobs))
    with pytest.raises(InputError, match="protobuf message 2 is not a valid TracesData message"):
        OtlpProtoParser().parse(Source(str(path), path), ParseOptions())
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in blobs[::2]))  # without message 2: the garbage's error
    with pytest.raises(InputError, match="protobuf message 2 is not OTLP"):
        OtlpProtoParser().parse(Source(str(path), path), ParseOptions())

