"""Jaeger and Zipkin JSON: golden fields from small hand-written files shaped like the official
examples (Jaeger query API envelope with processes; Zipkin v2 span array with a shared span)."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from rca.parsers.loader import load_dataset

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs

JAEGER = {
    "data": [{
        "traceID": "5b8efff798038103",  # old %x id with its zero high half dropped
        "spans": [
            {"traceID": "5b8efff798038103", "spanID": "eee19b7ec3c1b174", "operationName": "GET /api/x/{id}", "references": [],
             "startTime": T0_US, "duration": 100_000, "processID": "p1",
             "tags": [{"key": "span.kind", "type": "string", "value": "server"}, {"key": "http.method", "type": "string", "value": "GET"},
                      {"key": "http.status_code", "type": "int64", "value": 500}, {"key": "http.route", "type": "string", "value": "/api/x/{id}"},
                      {"key": "http.client_ip", "type": "string", "value": "203.0.113.9"}, {"key": "error", "type": "bool", "value": True}]},
            {"traceID": "5b8efff798038103", "spanID": "1", "operationName": "SELECT x",
             "references": [{"refType": "CHILD_OF", "traceID": "5b8efff798038103", "spanID": "eee19b7ec3c1b174"}],
             "startTime": T0_US + 10_000, "duration": 60_000, "processID": "p1",
             "tags": [{"key": "span.kind", "type": "string", "value": "client"}, {"key": "db.system", "type": "string", "value": "postgresql"}]},
        ],
        "processes": {"p1": {"serviceName": "api", "tags": [{"key": "service.version", "type": "string", "value": "2.0.1"},
                                                             {"key": "hostname", "type": "string", "value": "api-7"}]}},
        "warnings": None,
    }],
    "total": 0, "limit": 0, "offset": 0, "errors": None,
}

ZIPKIN = [
    {"traceId": "86154a4ba6e91385", "id": "86154a4ba6e91385", "kind": "SERVER", "name": "get /api/orders", "timestamp": T0_US,
     "duration": 200_000, "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1"},
     "tags": {"http.method": "GET", "http.path": "/api/orders/42", "http.status_code": "200"}},
    {"traceId": "86154a4ba6e91385", "parentId": "86154a4ba6e91385", "id": "4d1e00c0db9010db", "kind": "CLIENT", "name": "get",
     "timestamp": T0_US + 10_000, "duration": 150_000, "localEndpoint": {"serviceName": "frontend"}, "remoteEndpoint": {"serviceName": "backend"}},
    {"traceId": "86154a4ba6e91385", "parentId": "86154a4ba6e91385", "id": "4d1e00c0db9010db", "kind": "SERVER", "name": "get /api",
     "timestamp": T0_US + 20_000, "duration": 120_000, "shared": True, "localEndpoint": {"serviceName": "backend"},
     "tags": {"http.route": "/api", "error": "boom"}},
    {"traceId": "86154a4ba6e91385", "parentId": "4d1e00c0db9010db", "id": "00000000000000aa", "name": "query",
     "timestamp": T0_US + 30_000, "duration": 50_000, "localEndpoint": {"serviceName": "backend"}},
]


def test_jaeger_query_envelope(tmp_path):
    path = tmp_path / "trace.json"
    path.write_bytes(orjson.dumps(JAEGER, option=orjson.OPT_INDENT_2))
    data = load_dataset([str(path)])
    assert data.inputs[0].format == "jaeger" and data.inputs[0].rejected == 0
    spans = data.spans.sort("span_id", descending=True)
    root, child = spans.rows(named=True)
    assert root["trace_id"] == "00000000000000005b8efff798038103" and child["span_id"] == "0000000000000001"
    assert child["parent_span_id"] == root["span_id"] and child["kind"] == "client" and child["db_system"] == "postgresql"
    assert (root["service"], root["service_version"], root["host"], root["status"]) == ("api", "2.0.1", "api-7", "error")
    assert root["duration_ms"] == pytest.approx(100.0) and root["self_ms"] == pytest.approx(40.0)
    request = data.requests.row(0, named=True)
    assert (request["endpoint"], request["method"], request["status"], request["source"]) == ("/api/x/{id}", "GET", 500, "203.0.113.9")


def test_zipkin_v2_with_shared_span(tmp_path):
    path = tmp_path / "zipkin.json"
    path.write_bytes(orjson.dumps([ZIPKIN]))  # /api/v2/traces shape: an array of arrays
    data = load_dataset([str(path)])
    assert data.inputs[0].format == "zipkin" and data.inputs[0].rejected == 0
    spans = {(r["service"], r["kind"]): r for r in data.spans.iter_rows(named=True)}
    assert len(spans) == 4 and not any("orphan" in w for w in data.inputs[0].warnings)
    client, server = spans[("frontend", "client")], spans[("backend", "server")]
    assert server["parent_span_id"] == client["span_id"] != server["span_id"] == "4d1e00c0db9010db"
    assert server["status"] == "error" and server["self_ms"] == pytest.approx(70.0)
    assert client["self_ms"] == pytest.approx(30.0)  # 150 ms minus the shared server half's 120 ms
    root = spans[("frontend", "server")]
    assert root["trace_id"] == "000000000000000086154a4ba6e91385" and root["url_path"] == "/api/orders/42"
    requests = {r["service"]: r for r in data.requests.iter_rows(named=True)}
    assert requests["backend"]["source"] == "frontend" and requests["backend"]["endpoint"] == "/api"
    assert requests["frontend"]["status"] == 200


def test_bad_jaeger_and_zipkin_are_counted(tmp_path):
    bad = tmp_path / "z.jsonl"
    lines = [orjson.dumps(s) for s in ZIPKIN[:1]] + [b"{broken", orjson.dumps({"traceId": "ab", "localEndpoint": {}})]
    bad.write_bytes(b"\n".join(lines))
    data = load_dataset([str(bad)])
    assert data.inputs[0].format == "zipkin" and data.inputs[0].rejected == 2 and data.spans.height == 1


def _documents(traces: int, seed: int) -> tuple[bytes, bytes]:
    """A Jaeger envelope and a Zipkin array of arrays of `traces` traces (3 to 9 spans each, by seed), with
    strings holding quotes, brackets and backslashes, in one line or indented."""
    import random

    rng = random.Random(seed)
    jaeger, zipkin = [], []
    for t in range(traces):
        trace = f"{rng.getrandbits(128):032x}"
        ids = [f"{rng.getrandbits(64):016x}" for _ in range(rng.randint(3, 9))]
        name = rng.choice(['GET /a/{id}', 'q "x" [1], {2}', 'path\\to\\"it"', "ok"])
        jaeger.append({"traceID": trace, "processes": {"p1": {"serviceName": f"svc-{t % 4}", "tags": []}}, "spans": [
            {"traceID": trace, "spanID": sid, "operationName": name, "processID": "p1", "startTime": T0_US + t * 1000 + k, "duration": 10 + k,
             "references": [{"refType": "CHILD_OF", "traceID": trace, "spanID": ids[0]}] if k else [],
             "tags": [{"key": "span.kind", "type": "string", "value": "server" if k == 0 else "client"}]} for k, sid in enumerate(ids)]})
        zipkin.append([{"traceId": trace, "id": sid, "name": name, "kind": "SERVER" if k == 0 else "CLIENT", "timestamp": T0_US + t * 1000 + k,
                        "duration": 10 + k, "localEndpoint": {"serviceName": f"svc-{t % 4}"}, **({"parentId": ids[0]} if k else {})}
                       for k, sid in enumerate(ids)])
    option = orjson.OPT_INDENT_2 if seed % 2 else 0
    return orjson.dumps({"data": jaeger, "total": 0, "errors": None}, option=option), orjson.dumps(zipkin, option=option)


@pytest.mark.parametrize("seed", [1, 2])
def test_big_jaeger_and_zipkin_documents_are_read_in_runs_of_elements(tmp_path, monkeypatch, seed):
    """Read a run of traces at a time (never whole: the whole-document reader is forbidden), they give the
    spans of one run holding everything; past the span bound, whole traces."""
    from polars.testing import assert_frame_equal

    from rca.parsers import ParseOptions, jaeger, json_arrays, zipkin

    documents = dict(zip(("jaeger.json", "zipkin.json"), _documents(300, seed), strict=True))
    for name, data in documents.items():
        (tmp_path / name).write_bytes(data)
    whole = {name: load_dataset([str(tmp_path / name)]) for name in documents}

    def forbidden(*args, **kwargs):
        raise AssertionError("read whole")

    monkeypatch.setattr(jaeger, "read_payload", forbidden)
    monkeypatch.setattr(zipkin, "_spans", forbidden)
    monkeypatch.setattr(json_arrays, "BATCH_BYTES", 5_000)
    for name in documents:
        runs = load_dataset([str(tmp_path / name)])
        assert runs.inputs[0].format == name.split(".")[0] and runs.inputs[0].rejected == 0
        assert_frame_equal(runs.spans, whole[name].spans)
        bounded = load_dataset([str(tmp_path / name)], ParseOptions(max_spans=400))
        kept = bounded.spans.group_by("trace_id").len().join(whole[name].spans.group_by("trace_id").len(), on="trace_id")
        assert 0 < bounded.spans.height <= 400 and (kept["len"] == kept["len_right"]).all()  # whole traces


def test_a_document_cut_short_keeps_the_whole_traces_before_the_cut(tmp_path):
    data, _ = _documents(50, 3)
    path = tmp_path / "jaeger.json"
    path.write_bytes(data[: len(data) // 2])
    result = load_dataset([str(path)])
    assert 0 < result.spans["trace_id"].n_unique() < 50
    assert any("ends before its array" in w for w in result.inputs[0].warnings)


def test_a_run_whose_spans_all_lack_a_column_stacks_with_the_others(tmp_path, monkeypatch):
    """A run of traces with no parent span (or no db system, ...) anywhere gave all-null untyped columns that
    could not be stacked with the next run's: the whole file was lost ('could not be parsed')."""
    from rca.parsers import json_arrays

    span = {"traceID": "a" * 32, "spanID": "1" * 16, "operationName": "x", "processID": "p1", "startTime": T0_US, "duration": 5, "references": [], "tags": []}
    child = {**span, "spanID": "3" * 16, "references": [{"refType": "CHILD_OF", "traceID": "a" * 32, "spanID": "1" * 16}],
             "tags": [{"key": "span.kind", "type": "string", "value": "client"}, {"key": "db.system", "type": "string", "value": "redis"}]}
    processes = {"p1": {"serviceName": "api", "tags": []}}
    traces = [{"traceID": "b" * 32, "processes": processes, "spans": [{**span, "traceID": "b" * 32}]},
              {"traceID": "a" * 32, "processes": processes, "spans": [span, child]}]
    path = tmp_path / "jaeger.json"
    path.write_bytes(orjson.dumps({"data": traces}))
    monkeypatch.setattr(json_arrays, "BATCH_BYTES", 200)  # one trace a run
    data = load_dataset([str(path)])
    assert data.spans.height == 3 and data.inputs[0].rejected == 0
    assert data.spans.filter(pl.col("kind") == "client")["db_system"].to_list() == ["redis"]
