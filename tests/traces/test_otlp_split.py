"""One big OTLP protobuf message (not length-prefixed) cut as it is read into runs of its elements: each run a
message of its type, the runs' elements in order with their resource and scope those of the whole message;
its analysis gives the frames of the whole read; bytes that stop being a message are an input error."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData
from polars.testing import assert_frame_equal

from rca.errors import InputError
from rca.parsers import ParseOptions
from rca.parsers.otlp import protobuf
from rca.parsers.otlp.protobuf import OtlpProtoParser
from rca.parsers.otlp.split import Malformed, message_runs
from rca.parsers.sources import Source

T0 = 1_767_225_600_000_000_000
SHAPES = st.lists(st.lists(st.integers(0, 40), min_size=0, max_size=4), min_size=1, max_size=5)  # spans per scope, per resource


def _attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _traces(shape: list[list[int]]) -> TracesData:
    resources = []
    n = 0
    for r, scopes in enumerate(shape):
        rs = ResourceSpans(schema_url=f"https://schema/{r}")
        rs.resource.attributes.extend([_attribute("service.name", f"svc-{r}"), _attribute("host.name", f"h-{r}")])
        for s, count in enumerate(scopes):
            spans = []
            for _ in range(count):
                n += 1
                spans.append(Span(trace_id=(n // 3 + 1).to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=f"op {n % 5}",
                                  kind=Span.SPAN_KIND_SERVER if n % 3 == 0 else Span.SPAN_KIND_CLIENT, start_time_unix_nano=T0 + n * 1_000_000,
                                  end_time_unix_nano=T0 + n * 1_000_000 + 5_000_000, attributes=[_attribute("http.route", f"/r/{n % 7}")]))
            rs.scope_spans.append(ScopeSpans(scope=InstrumentationScope(name=f"scope-{r}-{s}"), spans=spans, schema_url="x"))
        resources.append(rs)
    return TracesData(resource_spans=resources)


def _flat_spans(message: TracesData) -> list[tuple[bytes, str, bytes]]:
    return [(rs.resource.SerializeToString(), ss.scope.name, span.SerializeToString()) for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]


@settings(max_examples=60, deadline=None)
@given(shape=SHAPES, size=st.integers(1, 3_000))
def test_runs_are_messages_of_the_elements_in_order_with_their_resource_and_scope(shape: list[list[int]], size: int):
    whole = _traces(shape)
    runs = list(message_runs(io.BytesIO(whole.SerializeToString()), size))
    assert all(len(run) <= 2 * size + 2_000 for run in runs)
    got = [span for run in runs for span in _flat_spans(TracesData.FromString(run))]
    assert got == _flat_spans(whole)


@settings(max_examples=30, deadline=None)
@given(records=st.lists(st.integers(0, 30), min_size=1, max_size=4), size=st.integers(1, 1_000))
def test_log_records_are_cut_alike(records: list[int], size: int):
    whole = LogsData(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(scope=InstrumentationScope(name=f"s{i}"), log_records=[
        LogRecord(time_unix_nano=T0 + k, severity_text="ERROR", body=AnyValue(string_value=f"boom {i} {k}")) for k in range(count)])])
        for i, count in enumerate(records)])
    runs = [LogsData.FromString(run) for run in message_runs(io.BytesIO(whole.SerializeToString()), size)]
    flat = [(sl.scope.name, rec.SerializeToString()) for message in runs for rl in message.resource_logs for sl in rl.scope_logs for rec in sl.log_records]
    assert flat == [(sl.scope.name, rec.SerializeToString()) for rl in whole.resource_logs for sl in rl.scope_logs for rec in sl.log_records]


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_bytes_that_are_no_message_raise_malformed_only(data: bytes):
    try:
        for _ in message_runs(io.BytesIO(data), 50):
            pass
    except Malformed:
        pass


def test_one_big_message_is_analysed_in_runs_with_the_frames_of_the_whole_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "traces.pb"
    path.write_bytes(_traces([[300, 40], [5], [120, 0, 60], [250]]).SerializeToString())
    whole = OtlpProtoParser().parse(Source(str(path), path), ParseOptions())

    def forbidden(*args, **kwargs):
        raise AssertionError("read whole")

    monkeypatch.setattr(protobuf, "read_payload", forbidden)
    monkeypatch.setattr(protobuf, "BLOCK_BYTES", 3_000)
    runs = OtlpProtoParser().parse(Source(str(path), path), ParseOptions(max_spans=1_000_000, max_request_rows=1_000_000))
    assert (runs.lines, runs.rejected, runs.trace_share) == (whole.lines, whole.rejected, None) == (1, 0, None)
    assert runs.frames.keys() == whole.frames.keys()
    for name, frame in whole.frames.items():
        assert_frame_equal(runs.frames[name], frame)
    bounded = OtlpProtoParser().parse(Source(str(path), path), ParseOptions(max_spans=300))
    assert bounded.trace_share is not None and 0 < bounded.frames["spans"].height <= 300


def test_a_big_message_cut_short_is_one_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(protobuf, "BLOCK_BYTES", 2_000)
    data = _traces([[200], [200]]).SerializeToString()
    path = tmp_path / "traces.pb"
    path.write_bytes(data[: len(data) - 7])
    with pytest.raises(InputError, match="message 1"):
        OtlpProtoParser().parse(Source(str(path), path), ParseOptions(max_spans=1_000_000))
