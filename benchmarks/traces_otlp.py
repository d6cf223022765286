"""Benchmark: OTLP traces decoded into canonical frames (spans + requests + self time), protobuf and JSON.

Generates N spans once (default 1,000,000: 1,000 length-prefixed TracesData messages of 1,000 spans, 4
services, 4 attributes a span, server/client mix, hex ids in JSON), then times 3 runs of each parser and
of the floor, a bare `TracesData.ParseFromString` loop over the same messages, and prints medians,
spans/s and the ratio to the floor. Usage: `python benchmarks/traces_otlp.py [spans]`.
"""

from __future__ import annotations

import base64
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import orjson
from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from parsers import ParseOptions
from parsers.otlp import OtlpJsonParser, OtlpProtoParser
from parsers.sources import Source

T0 = 1_767_225_600_000_000_000
PER_MESSAGE = 1000


def _kv(key: str, value: str | int) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value))


def message(index: int) -> TracesData:
    """One TracesData of PER_MESSAGE spans: traces of a server span and three client children."""
    resources = []
    for s, service in enumerate(("api", "users", "orders", "search")):
        spans = []
        for i in range(PER_MESSAGE // 4):
            n = index * PER_MESSAGE + s * (PER_MESSAGE // 4) + i
            trace = n // 4
            start = T0 + n * 1_000_000
            if n % 4 == 0:
                spans.append(Span(trace_id=trace.to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"), name="GET /api/x/{id}",
                                  kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start, end_time_unix_nano=start + 50_000_000,
                                  attributes=[_kv("http.route", "/api/x/{id}"), _kv("http.request.method", "GET"),
                                              _kv("http.response.status_code", 200), _kv("client.address", f"10.0.{n % 256}.{n % 7}")]))
            else:
                spans.append(Span(trace_id=trace.to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"),
                                  parent_span_id=(trace * 4 + 1).to_bytes(8, "big"), name="SELECT x", kind=Span.SPAN_KIND_CLIENT,
                                  start_time_unix_nano=start, end_time_unix_nano=start + 5_000_000,
                                  attributes=[_kv("db.system", "postgresql"), _kv("peer.service", "postgres"),
                                              _kv("db.operation", "SELECT"), _kv("server.port", 5432)]))
        rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
        rs.resource.attributes.extend([_kv("service.name", service), _kv("service.version", "1.0.0"), _kv("host.name", f"{service}-1")])
        resources.append(rs)
    return TracesData(resource_spans=resources)


def to_json(msg: TracesData) -> bytes:
    doc = json_format.MessageToDict(msg)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(doc)


def timed(fn) -> float:
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    count = max(1, total // PER_MESSAGE)
    base = [message(i) for i in range(min(count, 50))]
    blobs = [base[i % len(base)].SerializeToString() for i in range(count)]
    jsons = [to_json(m) for m in base]
    with tempfile.TemporaryDirectory() as tmp:
        proto_path, json_path = Path(tmp) / "traces.pb", Path(tmp) / "traces.jsonl"
        proto_path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in blobs))
        json_path.write_bytes(b"\n".join(jsons[i % len(jsons)] for i in range(count)) + b"\n")
        spans = count * PER_MESSAGE

        def floor() -> None:
            for blob in blobs:
                TracesData().ParseFromString(blob)

        def proto() -> None:
            result = OtlpProtoParser().parse(Source(str(proto_path), proto_path), ParseOptions())
            assert result.frames["spans"].height > 0

        def js() -> None:
            result = OtlpJsonParser().parse(Source(str(json_path), json_path), ParseOptions())
            assert result.frames["spans"].height > 0

        t_floor, t_proto, t_json = timed(floor), timed(proto), timed(js)
    print(f"spans: {spans:,}")
    print(f"ParseFromString floor : {t_floor:6.2f} s  {spans / t_floor:>12,.0f} spans/s")
    print(f"OTLP protobuf -> frames: {t_proto:6.2f} s  {spans / t_proto:>12,.0f} spans/s  ({t_proto / t_floor:.1f}x the floor)")
    print(f"OTLP JSON -> frames    : {t_json:6.2f} s  {spans / t_json:>12,.0f} spans/s  ({t_json / t_floor:.1f}x the floor)")


if __name__ == "__main__":
    main()
