"""OTLP parsing: the spec's example, hex ids (and the json_format base64 trap), protobuf round trip,
self time, broken input, and a trace-only dependency slowdown."""

from __future__ import annotations

import struct

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from rca.parsers.loader import load_dataset

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def kv(key, value):
    return KeyValue(key=key, value=AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value))


def sample_traces() -> TracesData:
    root = Span(trace_id=TRACE, span_id=bytes.fromhex("eee19b7ec3c1b174"), name="GET /api/x/{id}", kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=T0, end_time_unix_nano=T0 + 100_000_000,
                attributes=[kv("http.route", "/api/x/{id}"), kv("http.request.method", "GET"), kv("http.response.status_code", 200),
                            kv("client.address", "198.51.100.7"), kv("url.path", "/api/x/5")])
    # two overlapping children: 10-50 ms and 30-70 ms -> union 60 ms -> root self time 40 ms
    a = Span(trace_id=TRACE, span_id=bytes.fromhex("0000000000000001"), parent_span_id=root.span_id, name="SELECT x", kind=Span.SPAN_KIND_CLIENT,
             start_time_unix_nano=T0 + 10_000_000, end_time_unix_nano=T0 + 50_000_000, attributes=[kv("db.system", "postgresql"), kv("peer.service", "postgres")])
    b = Span(trace_id=TRACE, span_id=bytes.fromhex("0000000000000002"), parent_span_id=root.span_id, name="GET", kind=Span.SPAN_KIND_CLIENT,
             start_time_unix_nano=T0 + 30_000_000, end_time_unix_nano=T0 + 70_000_000, attributes=[kv("db.system.name", "redis")])
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=[root, a, b])])
    resource.resource.attributes.extend([kv("service.name", "api"), kv("service.version", "1.2.3"), kv("host.name", "api-1")])
    return TracesData(resource_spans=[resource])


def otlp_json(message: TracesData) -> bytes:
    """OTLP/JSON as the spec wants it: protojson, then ids rewritten from base64 to hex."""
    doc = json_format.MessageToDict(message)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex().upper()
    return orjson.dumps(doc)


def test_spec_example_ids_are_hex_not_json_format_base64(corpus):
    data = load_dataset([str(corpus / "otel-examples" / "trace.json")])
    span = data.spans.row(0, named=True)
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c" and len(span["trace_id"]) == 32
    assert span["span_id"] == "eee19b7ec3c1b174" and span["kind"] == "server"
    # the trap: protobuf's generic JSON mapping reads the same hex as base64 and makes a 24-byte id
    trapped = json_format.Parse((corpus / "otel-examples" / "trace.json").read_text(), TracesData())
    assert len(trapped.resource_spans[0].scope_spans[0].spans[0].trace_id) == 24
    assert "1 orphan span(s)" in " ".join(data.inputs[0].warnings)


@pytest.mark.parametrize("encoding", ["json", "proto", "proto-stream"])
def test_round_trip_both_encodings_agree(tmp_path, encoding):
    message = sample_traces()
    if encoding == "json":
        payload = otlp_json(message) + b"\n" + otlp_json(message)  # the same spans twice: duplicates kept once
    elif encoding == "proto":
        payload = message.SerializeToString()
    else:
        blob = message.SerializeToString()
        payload = struct.pack(">I", len(blob)) + blob
    path = tmp_path / f"traces.{encoding}"
    path.write_bytes(payload)
    data = load_dataset([str(path)])
    spans = data.spans.sort("span_id")
    assert spans["trace_id"].unique().to_list() == [TRACE.hex()]
    assert spans.height == 3
    root = spans.filter(spans["kind"] == "server").row(0, named=True)
    assert root["duration_ms"] == pytest.approx(100.0) and root["self_ms"] == pytest.approx(40.0)
    assert (root["http_route"], root["http_status"], root["service_version"], root["host"]) == ("/api/x/{id}", 200, "1.2.3", "api-1")
    dbs = set(spans["db_system"].drop_nulls().to_list())
    assert dbs == {"postgresql", "redis"}  # old and new semantic-convention names
    request = data.requests.row(0, named=True)
    assert (request["endpoint"], request["source"], request["method"], request["signal"]) == ("/api/x/{id}", "198.51.100.7", "GET", "trace")


def test_broken_spans_are_counted_not_fatal(tmp_path):
    spans = [
        {"traceId": "AA" * 16, "spanId": "01" * 8, "name": "root", "kind": 2, "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 10**7)},
        {"traceId": "AA" * 16, "spanId": "02" * 8, "parentSpanId": "09" * 8, "name": "orphan", "kind": 1, "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 10**6)},
        {"traceId": "AA" * 16, "spanId": "03" * 8, "parentSpanId": "01" * 8, "name": "skewed", "kind": 3, "startTimeUnixNano": str(T0 - 10**7), "endTimeUnixNano": str(T0 + 10**6)},
        {"traceId": "AA" * 16, "spanId": "04" * 8, "parentSpanId": "01" * 8, "name": "no end", "kind": 1, "startTimeUnixNano": str(T0), "endTimeUnixNano": "0"},
        {"traceId": "BB" * 16, "spanId": "05" * 8, "parentSpanId": "05" * 8, "name": "self parent", "kind": 1, "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5)},
    ]
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]}, "scopeSpans": [{"spans": spans}]}]}
    path = tmp_path / "broken.jsonl"
    path.write_bytes(orjson.dumps(doc) + b"\n{not json\n")
    data = load_dataset([str(path)])
    summary = data.inputs[0]
    text = " ".join(summary.warnings)
    for word in ("orphan", "clock skew", "no end", "themselves as parent"):
        assert word in text, (word, text)
    assert summary.rejected == 1 and summary.rejected_examples[0].line == 2
    assert data.spans.height == 5


def test_trace_only_dependency_slowdown_ranks_the_dependency(tmp_path):
    from rca.pipeline import analyze
    from rca.simulate import generate
    from rca.truth import matches

    incident = generate("dependency-slowdown", 3, minutes=60, scale=0.5, formats=("traces",), trace_sample=0.3)
    incident.write(tmp_path)
    report = analyze([str(tmp_path / "telemetry")])
    assert report.incident_detected
    assert matches(report.hypotheses[0], incident.truth["root_cause"]), [(h.kind, h.subject) for h in report.hypotheses[:3]]


def test_spec_logs_and_metrics_examples(corpus):
    logs = load_dataset([str(corpus / "otel-examples" / "logs.json")])
    event = logs.events.row(0, named=True)
    assert (event["level"], event["service"], event["signal"]) == ("INFO", "my.service", "otlp_log")  # "Information" normalized
    assert event["trace_id"] == "5b8efff798038103d269b633813fc60c"
    metrics = load_dataset([str(corpus / "otel-examples" / "metrics.json")])
    values = {r["name"]: r["value"] for r in metrics.metrics.iter_rows(named=True)}
    assert values["my.counter"] == 5.0 and values["my.gauge"] == 10.0
    assert values["my.histogram.count"] == 2.0 and values["my.histogram.sum"] == 2.0 and values["my.histogram.avg"] == 1.0
    assert set(metrics.metrics["signal"].to_list()) == {"metric"}


def test_third_party_surge_links_the_db_slowdown_to_the_surging_caller(tmp_path):
    from rca.pipeline import analyze
    from rca.simulate import generate
    from rca.truth import matches

    incident = generate("third-party-surge", 1, minutes=60, scale=0.5)
    incident.write(tmp_path)
    report = analyze([str(tmp_path / "telemetry")])
    accept = set(incident.truth["root_cause"]["accept"])
    slowed = {f.subject for f in report.findings if f.kind == "self_time_shift" and f.signal == "trace"}
    assert "postgres" in slowed
    callers = [f for f in report.findings if f.kind == "caller_share" and f.details.dependency == "postgres"]
    assert callers and callers[0].subject in accept and callers[0].share_explained > 0.5
    assert matches(report.hypotheses[0], incident.truth["root_cause"])


@pytest.mark.parametrize("cores", [2, 3])
def test_a_big_file_walked_in_parts_by_processes_gives_the_same_frames(tmp_path, corpus, monkeypatch, cores):
    """OTLP/JSON files above PARALLEL_MIN_BYTES are cut at line ends and walked by several processes:
    spans, events, metrics, line numbers and rejected lines must equal the one-process walk."""
    import os

    import rca.parsers.otlp.json as otlp_json_format
    from rca.parsers.otlp import parallel

    lines = []
    for i in range(40):
        message = sample_traces()
        for span in message.resource_spans[0].scope_spans[0].spans:
            span.trace_id = i.to_bytes(16, "big")
            span.start_time_unix_nano += i * 60_000_000_000
            span.end_time_unix_nano += i * 60_000_000_000
        lines.append(otlp_json(message).decode())
        if i % 9 == 0:
            lines += ["", "{not json", orjson.dumps(orjson.loads((corpus / "otel-examples" / "logs.json").read_bytes())).decode()]
        if i % 13 == 0:
            lines.append(orjson.dumps(orjson.loads((corpus / "otel-examples" / "metrics.json").read_bytes())).decode())
    path = tmp_path / "traces.otlp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    whole = load_dataset([str(path)])
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert len(otlp_json_format._split_lines(path.read_bytes(), 1)) == cores
    here = []  # parts walked in this process: the first only (no worker fell back)
    real = otlp_json_format.walk_json
    monkeypatch.setattr(otlp_json_format, "walk_json", lambda payload, start, *a, **k: here.append(start) or real(payload, start, *a, **k))
    parts = load_dataset([str(path)])
    assert here == [0]
    for name in ("spans", "requests", "events", "metrics", "changes"):
        assert parts.frame(name).equals(whole.frame(name)), name
    assert whole.spans.height == 120 and whole.events.height > 0 and whole.metrics.height > 0
    assert parts.inputs[0].rejected == whole.inputs[0].rejected == 5
    assert parts.inputs[0].rejected_examples == whole.inputs[0].rejected_examples
