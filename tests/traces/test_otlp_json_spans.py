"""OTLP/JSON spans through msgspec's structs and column comprehensions against the orjson dict walk:
random documents with the leniencies the parser promises (upper-case hex, base64 and short ids, enum
names and numbers, 64-bit integers as numbers or strings, `batches`, `instrumentationLibrarySpans`,
null and odd attribute values, repeated alias keys) must give identical raw frames; lines the structs
refuse fall back to the walk in place; mixed signals on one line still give events and metrics."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import polars as pl
import pytest

from rca.parsers import ParseOptions
from rca.parsers.otlp import json_spans as js
from rca.parsers.otlp.common import (
    RAW_SPAN_TYPES,
    attrs,
    empty_span_columns,
    resource_fields,
    span_columns_frame,
)
from rca.parsers.otlp.json import OtlpJsonParser, add_span
from rca.parsers.sources import Source

T0 = 1_767_225_600_000_000_000
KEYS = ["http.route", "http.request.method", "http.method", "http.response.status_code", "http.status_code", "url.path",
        "client.address", "peer.service", "service.peer.name", "db.system", "db.system.name", "user_agent.original", "other"]


def an_id(rng: np.random.Generator, size: int):
    raw = rng.bytes(size)
    pick = int(rng.integers(0, 6))
    return [raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), raw.hex().lstrip("0")[:-1] or "1", "", None][pick]


def a_value(rng: np.random.Generator):
    return [{"stringValue": "GET"}, {"stringValue": "/api/{id}"}, {"intValue": "200"}, {"intValue": 404}, {"doubleValue": 1.5},
            {"boolValue": True}, {"stringValue": None}, {}, {"arrayValue": {"values": [{"stringValue": "a"}]}},
            {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "1"}}]}}, {"bytesValue": "AAE="},
            {"stringValue": "ünï"}][int(rng.integers(0, 12))]


def random_document(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    resources = []
    for r in range(int(rng.integers(1, 3))):
        scopes = []
        for _ in range(int(rng.integers(1, 3))):
            spans = []
            for _ in range(int(rng.integers(0, 30))):
                start = T0 + int(rng.integers(0, 10**12))
                span = {"traceId": an_id(rng, 16), "spanId": an_id(rng, 8), "name": str(rng.choice(["GET /x", "SELECT", ""])),
                        "startTimeUnixNano": str(start) if rng.random() < 0.7 else start,
                        "endTimeUnixNano": str(start + int(rng.integers(0, 10**9))) if rng.random() < 0.9 else "oops",
                        "kind": [2, "2", "SPAN_KIND_CLIENT", "span_kind_server", 9, None][int(rng.integers(0, 6))]}
                if rng.random() < 0.6:
                    span["parentSpanId"] = an_id(rng, 8)
                if rng.random() < 0.5:
                    span["status"] = {"code": [0, 1, 2, "STATUS_CODE_ERROR"][int(rng.integers(0, 4))], "message": "x"}
                span["attributes"] = [{"key": str(rng.choice(KEYS)), "value": a_value(rng)} for _ in range(int(rng.integers(0, 6)))]
                span["unknownField"] = {"ignored": True}
                spans.append(span)
            scopes.append({"scope": {"name": "lib"}, "spans": spans})
        key = "instrumentationLibrarySpans" if rng.random() < 0.3 else "scopeSpans"
        rs = {key: scopes}
        if rng.random() < 0.8:
            rs["resource"] = {"attributes": [{"key": "service.name", "value": {"stringValue": f"svc{r}"}},
                                             {"key": "service.version", "value": {"stringValue": "1.0"}}]}
        resources.append(rs)
    return {"batches" if rng.random() < 0.2 else "resourceSpans": resources}


def walked(docs: list[dict]) -> pl.DataFrame:
    cols = empty_span_columns()
    for number, doc in enumerate(docs, start=1):
        for rs in doc.get("resourceSpans") or doc.get("batches") or ():
            resource = resource_fields(attrs((rs.get("resource") or {}).get("attributes")))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                for span in ss.get("spans") or ():
                    add_span(cols, resource, span, number)
    return span_columns_frame(cols).select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()])


def structs(docs: list[dict]) -> pl.DataFrame:
    scopes = []
    for number, doc in enumerate(docs, start=1):
        parsed = js.DECODER.decode(orjson.dumps(doc))  # raises rather than fall back
        for rs in parsed.resourceSpans or parsed.batches or ():
            resource = js.resource_of(rs)
            for ss in rs.scopeSpans or rs.instrumentationLibrarySpans or ():
                if ss.spans:
                    scopes.append((number, resource, ss.spans))
    return js.spans_frame(scopes).select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()])


@pytest.mark.parametrize("seed", range(10))
def test_structs_equal_the_dict_walk(seed):
    docs = [random_document(seed * 10 + i) for i in range(3)]
    slow, fast = walked(docs), structs(docs)
    if slow.height == 0:
        pytest.skip("no spans drawn")
    for column in slow.columns:
        assert slow[column].equals(fast[column]), (column, slow[column].head(5).to_list(), fast[column].head(5).to_list())


def test_refused_lines_fall_back_in_place_and_signals_mix(tmp_path):
    good = random_document(1)
    odd = {"resourceSpans": [{"resource": [], "scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "odd",
                                                                          "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}
    with pytest.raises(Exception, match="Expected `object"):  # an empty resource written as []
        js.DECODER.decode(orjson.dumps(odd))
    other = random_document(2)
    mixed = {"resourceSpans": other.get("resourceSpans") or other["batches"],
             "resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": str(T0), "severityNumber": 17, "body": {"stringValue": "boom"}}]}]}],
             "resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [{"timeUnixNano": str(T0), "asDouble": 2.5}]}}]}]}]}
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in (good, odd, mixed, random_document(3))) + b"\n")
    result = OtlpJsonParser().parse(Source(str(path), path), ParseOptions())
    lines = result.frames["spans"]["line"].to_list()
    assert lines == sorted(lines) and set(lines) == {1, 2, 3, 4}
    assert result.frames["spans"].filter(pl.col("line") == 2)["name"].to_list() == ["odd"]
    assert result.frames["events"]["level"].to_list() == ["ERROR"] and result.frames["metrics"]["value"].to_list() == [2.5]


def test_batches_of_spans_give_the_same_frames(tmp_path, monkeypatch):
    odd = {"resourceSpans": [{"resource": [], "scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "odd"}]}]}]}
    docs = [random_document(i) for i in range(8)]
    docs.insert(4, odd)  # a line for the dict walk among the batches
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")
    whole = OtlpJsonParser().parse(Source(str(path), path), ParseOptions())
    monkeypatch.setattr(js, "BATCH_SPANS", 7)
    batched = OtlpJsonParser().parse(Source(str(path), path), ParseOptions())
    for name, frame in whole.frames.items():
        assert frame.equals(batched.frames[name]), name
    assert whole.warnings == batched.warnings
