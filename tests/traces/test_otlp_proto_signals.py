"""OTLP protobuf logs and metrics: the same messages serialized to protobuf (single and length-prefixed)
and to OTLP/JSON must give the same events and metrics frames; a mixed stream of traces, logs and
metrics is told apart per message; an ambiguous message asks for --signal, which then decides;
garbage bytes give one InputError naming the file and the message, and the CLI prints one line."""

from __future__ import annotations

import base64
import struct
import sys

import orjson
import polars as pl
import pytest
from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from rca.errors import InputError
from rca.parsers import ParseOptions
from rca.parsers.loader import load_dataset
from rca.parsers.otlp.signals import sniff_signal

T0 = 1_767_225_600_000_000_000
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def kv(key, **value):
    return KeyValue(key=key, value=AnyValue(**value))


def resource(service: str) -> Resource:
    return Resource(attributes=[kv("service.name", string_value=service), kv("host.name", string_value=f"{service}-1")])


def logs() -> LogsData:
    records = [
        LogRecord(time_unix_nano=T0, severity_number=9, severity_text="Information", body=AnyValue(string_value="started"),
                  attributes=[kv("http.route", string_value="/x"), kv("retries", int_value=3), kv("ok", bool_value=True)],
                  trace_id=TRACE, span_id=bytes(range(1, 9))),
        LogRecord(observed_time_unix_nano=T0 + 1000, severity_number=17, body=AnyValue(kvlist_value=KeyValueList(values=[kv("a", double_value=1.5)])),
                  event_name="db.failure", attributes=[kv("tags", array_value=ArrayValue(values=[AnyValue(string_value="x"), AnyValue(int_value=2)]))]),
        LogRecord(time_unix_nano=T0 + 2000, severity_text="WARNING", body=AnyValue(bytes_value=b"\x00\xff")),
        LogRecord(time_unix_nano=T0 + 3000, severity_number=21),
    ]
    return LogsData(resource_logs=[ResourceLogs(resource=resource("api"), scope_logs=[ScopeLogs(log_records=records)]),
                                   ResourceLogs(resource=resource("worker"), scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=T0, severity_number=5)])])])


def metrics() -> MetricsData:
    attrs = [kv("http.route", string_value="/x"), kv("code", int_value=200)]
    items = [
        Metric(name="queue.depth", unit="1", gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=T0, as_int=7, attributes=attrs),
                                                                     NumberDataPoint(time_unix_nano=T0 + 1, as_double=0.0)])),
        Metric(name="requests", sum=Sum(data_points=[NumberDataPoint(time_unix_nano=T0, as_double=12.5)], is_monotonic=True)),
        Metric(name="http.server.request.duration", unit="s", histogram=Histogram(data_points=[
            HistogramDataPoint(time_unix_nano=T0, count=4, sum=2.0, bucket_counts=[1, 3], explicit_bounds=[0.5], attributes=attrs),
            HistogramDataPoint(time_unix_nano=T0 + 1, count=2)])),  # no sum
        Metric(name="latency", exponential_histogram=ExponentialHistogram(data_points=[ExponentialHistogramDataPoint(time_unix_nano=T0, count=3, sum=0.3)])),
        Metric(name="gc", summary=Summary(data_points=[SummaryDataPoint(time_unix_nano=T0, count=5, sum=1.0),
                                                      SummaryDataPoint(time_unix_nano=T0 + 1, count=1, sum=0.0)])),
        Metric(name="empty.gauge", gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=T0)])),  # no value: no row
    ]
    return MetricsData(resource_metrics=[ResourceMetrics(resource=resource("api"), scope_metrics=[ScopeMetrics(metrics=items)])])


def otlp_json(message) -> bytes:
    """OTLP/JSON as the spec wants it: protojson with integer enums, ids rewritten from base64 to hex."""
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)
    for rl in doc.get("resourceLogs", ()):
        for sl in rl.get("scopeLogs", ()):
            for record in sl.get("logRecords", ()):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return orjson.dumps(doc)


def framed(*messages) -> bytes:
    return b"".join(struct.pack(">I", m.ByteSize()) + m.SerializeToString() for m in messages)


def load(tmp_path, name: str, payload: bytes, **options):
    path = tmp_path / name
    path.write_bytes(payload)
    return load_dataset([str(path)], ParseOptions(**options))


def same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    a, b = a.drop("origin"), b.drop("origin")
    assert a.columns == b.columns
    for column in a.columns:
        assert a[column].equals(b[column]), (column, a[column].to_list(), b[column].to_list())


@pytest.mark.parametrize("encoding", ["proto", "proto-stream"])
def test_protobuf_logs_equal_the_json_path(tmp_path, encoding):
    message = logs()
    proto = message.SerializeToString() if encoding == "proto" else framed(message)
    from_proto = load(tmp_path, "logs.pb", proto).events
    from_json = load(tmp_path, "logs.json", otlp_json(message)).events
    assert from_proto.height == 5
    same(from_proto, from_json)
    first = from_proto.row(0, named=True)
    assert (first["level"], first["service"], first["host"], first["message"], first["trace_id"], first["signal"]) == (
        "INFO", "api", "api-1", "started", TRACE.hex(), "otlp_log")
    assert from_proto["level"].to_list() == ["INFO", "ERROR", "WARN", "FATAL", "DEBUG"]
    assert '"event.name":"db.failure"' in from_proto["attributes"][1]


@pytest.mark.parametrize("encoding", ["proto", "proto-stream"])
def test_protobuf_metrics_equal_the_json_path(tmp_path, encoding):
    message = metrics()
    proto = message.SerializeToString() if encoding == "proto" else framed(message)
    from_proto = load(tmp_path, "metrics.pb", proto).metrics
    from_json = load(tmp_path, "metrics.json", otlp_json(message)).metrics
    same(from_proto, from_json)
    values: dict[str, list[float]] = {}
    for row in from_proto.iter_rows(named=True):
        values.setdefault(row["name"], []).append(row["value"])
    assert values["queue.depth"] == [7.0, 0.0] and values["requests"] == [12.5]
    assert values["http.server.request.duration.count"] == [4.0, 2.0]
    assert values["http.server.request.duration.sum"] == [2.0] and values["http.server.request.duration.avg"] == [0.5]  # no sum: no row
    assert values["latency.sum"] == [0.3] and values["gc.sum"] == [1.0] and values["gc.count"] == [5.0, 1.0]
    assert "empty.gauge" not in values


def test_mixed_stream_is_told_apart_per_message(tmp_path):
    from tests.traces.test_otlp import sample_traces

    data = load(tmp_path, "mixed.pb", framed(logs(), sample_traces(), metrics(), logs()))
    assert data.spans.height == 3 and set(data.spans["line"].to_list()) == {2}
    assert data.events.height == 10 and set(data.events["line"].to_list()) == {1, 4}
    assert set(data.metrics["line"].to_list()) == {3}
    assert data.inputs[0].format == "otlp-proto"
    assert [sniff_signal(m.SerializeToString()) for m in (logs(), sample_traces(), metrics())] == ["logs", "traces", "metrics"]


def ambiguous() -> MetricsData:
    # a metric of a 16-byte name, an 8-byte description and a gauge has the wire shape of a span
    # without times (trace id, span id, name): no schema rules either out
    metric = Metric(name="a" * 16, description="b" * 8, gauge=Gauge(data_points=[NumberDataPoint(as_double=1.0)]))
    return MetricsData(resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[metric])])])


def test_ambiguous_message_asks_for_signal_which_decides(tmp_path):
    payload = framed(metrics(), ambiguous())
    with pytest.raises(InputError) as caught:
        load(tmp_path, "ambiguous.pb", payload)
    assert "ambiguous.pb" in str(caught.value) and "protobuf message 2" in str(caught.value) and "--signal metrics" in str(caught.value)
    data = load(tmp_path, "ambiguous.pb", payload, signal="metrics")
    assert "a" * 16 in set(data.metrics["name"].to_list()) and data.spans.height == 0
    with pytest.raises(InputError, match="--signal must be one of"):
        load(tmp_path, "ambiguous.pb", payload, signal="profiles")


@pytest.mark.parametrize("garbage", [b"\x0a\xff\xff\xff\xff\x0f" + b"\x01" * 40, b"\x0a\x05\xff\xff\xff\xff\xff" * 10])
def test_garbage_bytes_give_one_input_error_with_file_and_message(tmp_path, garbage):
    payload = framed(metrics()) + struct.pack(">I", len(garbage)) + garbage
    with pytest.raises(InputError) as caught:
        load(tmp_path, "garbage.pb", payload)
    assert "garbage.pb: protobuf message 2 is not OTLP" in str(caught.value)


def _record(number: int, body: bytes) -> bytes:
    return bytes([number << 3 | 2]) + _varint(len(body)) + body


def _varint(value: int) -> bytes:
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


@pytest.mark.parametrize("element", [
    Span(trace_id=TRACE, span_id=bytes(range(1, 9)), name="a", start_time_unix_nano=T0, end_time_unix_nano=T0 + 1000),
    LogRecord(time_unix_nano=T0, severity_number=9, body=AnyValue(string_value="x")),
])
def test_scope_broken_after_its_first_element_gives_the_not_otlp_message(tmp_path, element):
    # the sniff stops at the element that decides; the decoder fails on the rest of the scope (a
    # record claiming 127 bytes where 2 are left) and the error is the one the whole scope's walk gives
    scope = _record(2, element.SerializeToString()) + b"\x12\x7f\x01\x02"
    garbage = _record(1, _record(2, scope))
    assert sniff_signal(garbage) in ("traces", "logs")
    payload = framed(metrics()) + struct.pack(">I", len(garbage)) + garbage
    with pytest.raises(InputError) as caught:
        load(tmp_path, "broken.pb", payload)
    assert "broken.pb: protobuf message 2 is not OTLP TracesData, LogsData or MetricsData (truncated field)" in str(caught.value)


def test_cli_prints_one_line_for_garbage(tmp_path, capsys, monkeypatch):
    from rca.cli import main

    path = tmp_path / "garbage.pb"
    garbage = b"\x0a\x05\xff\xff\xff\xff\xff" * 10
    path.write_bytes(framed(metrics()) + struct.pack(">I", len(garbage)) + garbage)
    monkeypatch.setattr(sys, "argv", ["rca", "analyze", str(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2
    assert len(err) == 1 and err[0].startswith("rca: error:") and "garbage.pb: protobuf message 2" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("cores", [2, 3])
def test_big_protobuf_decoded_in_parts_by_processes_gives_the_same_frames(tmp_path, monkeypatch, cores):
    """A protobuf stream above PARALLEL_MIN_BYTES is cut at message bounds, the parts after the first
    decoded by worker processes: spans, events, metrics, message numbers and the message count equal
    the one-process decode, and an error in a worker's part is the error raised, in message order."""
    import itertools
    import os

    import rca.parsers.otlp.protobuf as otlp
    from rca.parsers.otlp import parallel
    from tests.traces.test_otlp import sample_traces

    messages = []
    for i in range(30):
        message = sample_traces()
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    span.trace_id = i.to_bytes(16, "big")
        messages.append(message)
        if i % 7 == 0:
            messages.append(logs())
        if i % 11 == 0:
            messages.append(metrics())
    path = tmp_path / "stream.pb"
    path.write_bytes(framed(*messages))
    whole = load(tmp_path, "stream.pb", path.read_bytes())
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    blobs = list(otlp._frames(path.read_bytes()))
    parts = otlp._split_messages(blobs, 1)
    assert len(parts) == cores and parts[0][0] == 0 and parts[-1][1] == len(blobs)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    here = []  # parts decoded in this process: the first only (no worker fell back)
    real = otlp.OtlpProtoParser.decode_messages
    monkeypatch.setattr(otlp.OtlpProtoParser, "decode_messages", lambda self, blobs, first, *a: here.append(first) or real(self, blobs, first, *a))
    split = load(tmp_path, "stream.pb", path.read_bytes())
    assert here == [1]
    monkeypatch.setattr(otlp.OtlpProtoParser, "decode_messages", real)
    for name in ("spans", "requests", "events", "metrics", "changes"):
        assert split.frame(name).equals(whole.frame(name)), name
    assert whole.spans.height > 0 and whole.events.height > 0 and whole.metrics.height > 0
    assert split.inputs[0].lines == whole.inputs[0].lines == len(messages)
    # garbage in the last part (a worker's) and in the first: each the error of its own message number
    garbage = b"\x0a\x05\xff\xff\xff\xff\xff" * 10
    for at in (len(messages) - 1, 1):
        payload = framed(*messages[:at]) + struct.pack(">I", len(garbage)) + garbage + framed(*messages[at:])
        with pytest.raises(InputError, match=f"protobuf message {at + 1} is not OTLP"):
            load(tmp_path, "garbage.pb", payload)
