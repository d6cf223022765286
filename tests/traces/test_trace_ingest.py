"""`rca ingest` of trace files in bounded memory (parsers.spilled_spans): every span spilled by trace, finished a
group of whole traces at a time and written back in read order gives the frames of the whole parse, row for
row: spans (self time, duplicates), requests (callers), version changes (service.version and pod-template
hashes of services that never write one), integrity warnings, malformed lines counted; OTLP/JSON lines and
one unframed protobuf message; and `rca analyze` of the ingested frames reports what it does of the file."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rca.parsers import ParseOptions, ParseResult, spilled_spans
from rca.parsers.otlp import json as otlp_json
from rca.parsers.otlp import protobuf
from rca.parsers.otlp.common import RAW_SPAN_TYPES, SPAN_COLUMNS, span_columns_frame
from rca.parsers.sources import Source
from rca.parsers.spantree import finish_spans

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
T0 = 1_785_222_000_000_000_000  # ns


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many blocks, spills, groups and merge rounds from a small input."""
    monkeypatch.setattr(otlp_json, "BLOCK_BYTES", 60_000)
    monkeypatch.setattr(protobuf, "BLOCK_BYTES", 60_000)
    monkeypatch.setattr(spilled_spans, "BUCKETS", 64)
    monkeypatch.setattr(spilled_spans, "SPILL_SPANS", 700)
    monkeypatch.setattr(spilled_spans, "GROUP_SPANS", 500)
    monkeypatch.setattr(spilled_spans, "MERGE_ROWS", 3_000)


def _raw_spans(seed: int) -> pl.DataFrame:
    """Random traces whose spans are scattered over the input: parents before or after their children, a
    duplicate span, an orphan, a child outside its parent; one service writes service.version from its
    second release on, one never does (its pods name the release), the others never do (their pods name the release)."""
    rng = random.Random(seed)
    cols: dict[str, list] = {c: [] for c in SPAN_COLUMNS}
    rows = []
    for trace in range(rng.randint(150, 300)):
        t = T0 + trace * 700_000_000
        depth_spans = [(f"{trace:032x}", f"{trace:08x}{0:08x}", None, "api", "server", t, t + 90_000_000)]
        for k in range(1, rng.randint(2, 9)):
            parent = rng.choice(depth_spans)
            start = parent[5] + rng.randint(-5, 60) * 1_000_000
            kind = rng.choice(["client", "server", "internal"])
            service = parent[3] if kind != "server" else rng.choice(["users", "orders", "search"])
            depth_spans.append((parent[0], f"{trace:08x}{k:08x}", parent[1], service, kind, start, start + rng.randint(1, 40) * 1_000_000))
        if trace % 37 == 5:
            depth_spans.append(depth_spans[-1])  # a duplicate
        if trace % 41 == 3:
            depth_spans.append((f"{trace:032x}", f"{trace:08x}{99:08x}", f"{trace:08x}{98:08x}", "users", "client", t, t + 1_000_000))  # an orphan
        rows += depth_spans
    rng.shuffle(rows)  # traces scattered: a trace's spans in any block, anywhere in the input
    for line, (trace_id, span_id, parent, service, kind, start, end) in enumerate(rows, 1):
        late = start > T0 + 100 * 700_000_000
        pod = {"api": f"api-{'5f6c7d8b9q' if late else '7d4b9c8f6d'}-x2k9p", "users": f"users-{'bcdfghjk' if late else 'mnpqrstv'}-m4n5p",
               "orders": "orders-bcdfgh-x2k9p"}.get(service)
        values = {"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "service": service, "name": f"{kind} op", "kind": kind,
                  "start_ns": start, "end_ns": end, "status": "error" if line % 53 == 0 else "unset", "http_route": "/api/{id}" if kind == "server" else None,
                  "http_status": 500 if line % 53 == 0 else 200, "url_path": f"/api/{line}", "peer_service": "users" if kind == "client" else None,
                  "service_version": "2.0" if service == "orders" and late else None, "host": pod, "line": line}
        for column in SPAN_COLUMNS:
            cols[column].append(values.get(column))
    return span_columns_frame(cols).select(list(RAW_SPAN_TYPES))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spans_finished_by_groups_of_traces_are_those_of_the_whole_input(seed: int, small_parts: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(spilled_spans, "GROUP_SPANS", 200)
    raw = _raw_spans(seed)
    whole, warnings = finish_spans(raw, "x")
    spans = spilled_spans.SpilledSpans("x")
    at = 0
    rng = random.Random(seed)
    while at < raw.height:  # blocks of varied sizes
        size = rng.randint(1, 400)
        spans.add_raw(raw.slice(at, size))
        at += size
    parts = list(spans.frames())
    assert len(spans.groups()) > 2 and len(parts) > 2
    for name in ("spans", "requests"):
        got = pl.concat([p[name] for p in parts if name in p])
        assert_frame_equal(got, whole[name].with_columns(origin=pl.lit("x"), signal=pl.lit("trace")))
    assert_frame_equal(spans.whole.changes("x"), whole["changes"])
    assert whole["changes"]["subject"].to_list() == ["5f6c7d8b9q", "bcdfghjk"]  # pod hashes of the services writing no version
    orders = whole["requests"].filter(pl.col("service") == "orders")["version"]
    assert orders.null_count() and set(orders.drop_nulls()) == {"2.0"}  # its version seen late: never its pod hash, in any group
    assert spans.whole.warnings() == warnings and any("duplicate" in w for w in warnings) and any("orphan" in w for w in warnings)
    assert not Path(spans.directory.name).exists()


def test_a_small_input_is_finished_in_memory_as_the_whole_parse_finishes_it():
    raw = _raw_spans(4)
    whole, warnings = finish_spans(raw, "x")
    spans = spilled_spans.SpilledSpans("x")
    spans.add_raw(raw)
    (part,) = list(spans.frames())
    assert not spans.spills
    for name in ("spans", "requests"):
        assert_frame_equal(part[name], whole[name].with_columns(origin=pl.lit("x"), signal=pl.lit("trace")))
    assert_frame_equal(spans.whole.changes("x"), whole["changes"])
    assert spans.whole.warnings() == warnings


def _streamed(parser: otlp_json.OtlpJsonParser | protobuf.OtlpProtoParser, path: Path) -> tuple[dict[str, pl.DataFrame], ParseResult]:
    streamed = parser.stream(Source(str(path), path), ParseOptions())
    assert streamed is not None
    frames = pl.collect_all(list(streamed.rows.values()))  # together, as `rca ingest` sinks them
    return dict(zip(streamed.rows, frames, strict=True)), streamed.remainder()


def _assert_same(whole: ParseResult, frames: dict[str, pl.DataFrame], rest: ParseResult) -> None:
    for name in ("spans", "requests"):
        assert_frame_equal(frames[name], whole.frames[name])
    assert_frame_equal(rest.frames["changes"], whole.frames["changes"])
    assert (rest.lines, rest.rejected, rest.rejected_examples, rest.warnings) == (whole.lines, whole.rejected, whole.rejected_examples, whole.warnings)


def test_otlp_json_lines_stream_the_frames_of_the_whole_parse_malformed_lines_counted(tmp_path: Path, small_parts: None):
    lines = gzip.decompress((SAMPLES / "cache-exhaustion" / "telemetry" / "traces.otlp.jsonl.gz").read_bytes()).splitlines(keepends=True)
    lines.insert(len(lines) // 2, b'{"resourceSpans": [{"scopeSpans": [\n')  # cut mid-document
    path = tmp_path / "traces.otlp.jsonl"
    path.write_bytes(b"".join(lines))
    parser = otlp_json.OtlpJsonParser()
    whole = parser.parse(Source(str(path), path), ParseOptions())
    frames, rest = _streamed(parser, path)
    _assert_same(whole, frames, rest)
    assert rest.rejected == 1 and rest.rejected_examples[0].line == len(lines) // 2 + 1
    assert whole.frames["changes"].height and whole.frames["requests"]["source"].null_count() < whole.frames["requests"].height


def test_one_unframed_protobuf_message_streams_the_frames_of_the_whole_parse(tmp_path: Path, small_parts: None):
    import struct

    from tests.traces.test_bounded_spans import _as_protobuf

    framed = _as_protobuf(SAMPLES / "dependency-slowdown" / "telemetry" / "traces.otlp.jsonl.gz", tmp_path / "framed.pb").read_bytes()
    blobs, at = [], 0
    while at < len(framed):
        (size,) = struct.unpack(">I", framed[at : at + 4])
        blobs.append(framed[at + 4 : at + 4 + size])
        at += 4 + size
    path = tmp_path / "traces.pb"
    path.write_bytes(b"".join(blobs))  # repeated fields concatenate on the wire: one TracesData of them all
    parser = protobuf.OtlpProtoParser()
    whole = parser.parse(Source(str(path), path), ParseOptions())
    frames, rest = _streamed(parser, path)
    assert whole.frames["spans"].height > 2_000 and rest.lines == 1
    _assert_same(whole, frames, rest)


def test_ingest_then_analyze_of_a_trace_file_reports_what_analyze_of_the_file_does(tmp_path: Path, small_parts: None):
    from typer.testing import CliRunner

    from rca.cli import app

    runner = CliRunner()
    traces = SAMPLES / "dependency-slowdown" / "telemetry" / "traces.otlp.jsonl.gz"
    out = tmp_path / "frames"
    ingested = runner.invoke(app, ["ingest", "-q", str(traces), "--out", str(out)])
    assert ingested.exit_code == 0, ingested.output
    assert sorted(p.name for p in out.iterdir()) == ["changes.parquet", "requests.0.parquet", "spans.0.parquet"]
    direct = orjson.loads(runner.invoke(app, ["analyze", str(traces), "-f", "json", "-q"]).stdout)
    again = orjson.loads(runner.invoke(app, ["analyze", str(out), "-f", "json", "-q"]).stdout)
    assert direct["hypotheses"] and again["hypotheses"] == direct["hypotheses"]
    assert {k: v for k, v in again.items() if k not in ("inputs", "hypotheses")} == {k: v for k, v in direct.items() if k not in ("inputs", "hypotheses")}


def test_zipkin_lines_and_arrays_and_jaeger_envelopes_stream_the_frames_of_the_whole_parse(tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch):
    """Zipkin JSON lines (shared spans' halves in any block, malformed lines), a Zipkin array of traces and a
    Jaeger envelope (read a run of traces at a time)."""
    from rca.parsers import json_arrays, zipkin
    from rca.parsers.jaeger import JaegerParser
    from tests.traces.test_jaeger_zipkin import _documents
    from tests.traces.test_zipkin_lines import _lines

    monkeypatch.setattr(zipkin, "BLOCK_BYTES", 20_000)
    monkeypatch.setattr(json_arrays, "BATCH_BYTES", 20_000)
    jaeger_doc, zipkin_doc = _documents(150, 1)
    inputs = {"zipkin.jsonl": (zipkin.ZipkinParser(), b"\n".join(_lines(3, 250, 7, 30)) + b"\n"), "zipkin.json": (zipkin.ZipkinParser(), zipkin_doc),
              "jaeger.json": (JaegerParser(), jaeger_doc)}
    for name, (parser, data) in inputs.items():
        path = tmp_path / name
        path.write_bytes(data)
        whole = parser.parse(Source(str(path), path), ParseOptions())
        frames, rest = _streamed(parser, path)
        assert whole.frames["spans"].height > 600, name
        _assert_same(whole, frames, rest)
    assert rest.rejected == 0 and whole.rejected == 0
