"""Trace files in bounded memory (parsers.bounded_spans through the otlp-json reader): past the span bound,
the request aggregates count every server span, the spans kept are whole traces, the sample is the same
however the input is cut, malformed lines are still counted, and under the bound nothing changes."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rca.aggregates import aggregate_calls, aggregate_requests
from rca.parsers import ParseOptions, ParseResult
from rca.parsers.otlp import json as otlp_json
from rca.parsers.otlp import parallel
from rca.parsers.otlp.json import OtlpJsonParser
from rca.parsers.sources import Source

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _source(path: Path) -> Source:
    return Source(str(path), path, compression="gzip" if path.suffix == ".gz" else None)


def _parse(path: Path, **options: int | None) -> ParseResult:
    return OtlpJsonParser().parse(_source(path), ParseOptions(**options))  # type: ignore[arg-type]


def _with_bad_lines(path: Path, out: Path, every: int) -> tuple[Path, int]:
    """A copy of the traces with a malformed line after every `every` lines; the number of them."""
    lines = gzip.decompress(path.read_bytes()).splitlines()
    mixed = []
    for i, line in enumerate(lines, 1):
        mixed.append(line)
        if i % every == 0:
            mixed.append(b'{"resourceSpans": [{"scopeSpans": [')  # cut mid-document
    out.write_bytes(b"\n".join(mixed) + b"\n")
    return out, len(lines) // every


def _service_totals(counts: pl.DataFrame) -> pl.DataFrame:
    exact = ["requests", "errors", "client_errors", "with_status", "timed"]
    return (counts.filter(pl.col("dimension").is_in(["service", "host", "version"]))
            .group_by("signal", "service", "bucket", "dimension", "value").agg(pl.col(exact).sum())
            .sort("signal", "service", "bucket", "dimension", "value", nulls_last=True))


@pytest.mark.parametrize("scenario", ["cache-exhaustion", "third-party-surge"])
def test_past_the_bound_aggregates_count_every_request_and_the_spans_are_whole_traces(scenario: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(otlp_json, "BLOCK_BYTES", 200_000)  # many blocks: a trace may straddle two
    path = SAMPLES / scenario / "telemetry" / "traces.otlp.jsonl.gz"
    full = _parse(path)
    spans = full.frames["spans"]
    cap = spans.height // 5
    bounded = _parse(path, max_spans=cap, max_request_rows=10_000)
    kept = bounded.frames["spans"]
    assert bounded.trace_share is not None and bounded.trace_share < 0.5
    assert cap // 2 <= kept.height <= cap or kept["trace_id"].n_unique() < 50
    # whole traces: every span of a kept trace is kept, so every kept span's parent in the input is kept
    kept_traces = kept.select("trace_id").unique()
    assert_frame_equal(spans.join(kept_traces, on="trace_id", how="semi").select("trace_id", "span_id").sort("trace_id", "span_id"),
                       kept.select("trace_id", "span_id").sort("trace_id", "span_id"))
    parents = spans.filter(pl.col("parent_span_id").is_not_null()).join(kept_traces, on="trace_id", how="semi")
    assert parents.join(kept, left_on=["trace_id", "parent_span_id"], right_on=["trace_id", "span_id"], how="anti").height == \
        parents.join(spans, left_on=["trace_id", "parent_span_id"], right_on=["trace_id", "span_id"], how="anti").height
    # the requests: every server span counted, exactly, per bucket of each service, host and version
    sample = bounded.request_sample
    assert sample is not None and sample.rows == full.frames["requests"].height
    exact = aggregate_requests(full.frames["requests"], sample.aggregates.bucket_s)
    assert_frame_equal(_service_totals(sample.aggregates.counts), _service_totals(exact.counts))
    assert bounded.frames["requests"].height <= cap
    # version changes from every span, as the whole input gives them
    assert_frame_equal(bounded.frames["changes"].sort("ts", "service"), full.frames["changes"].sort("ts", "service"))
    # the calls to each dependency per bucket: every call
    calls = bounded.call_aggregates
    assert calls is not None
    every = aggregate_calls(spans, calls.bucket_s, str(path))
    assert_frame_equal(calls.counts.sort("dependency", "bucket"), every.sort("dependency", "bucket"), check_exact=False)
    assert calls.counts["calls"].sum() > 5 * kept.filter(pl.col("kind") == "client").height
    assert any("spans, over the" in w for w in bounded.warnings)


def test_the_sample_is_the_same_however_the_input_is_cut(monkeypatch: pytest.MonkeyPatch):
    path = SAMPLES / "user-surge" / "telemetry" / "traces.otlp.jsonl.gz"
    picks = []
    for block in (100_000, 700_000, 50_000_000):
        monkeypatch.setattr(otlp_json, "BLOCK_BYTES", block)
        result = _parse(path, max_spans=2_000)
        picks.append((result.trace_share, result.frames["spans"].select("trace_id", "span_id").sort("trace_id", "span_id")))
    for share, frame in picks[1:]:
        assert share == picks[0][0]
        assert_frame_equal(frame, picks[0][1])


def test_under_the_bound_nothing_changes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(otlp_json, "BLOCK_BYTES", 300_000)
    path = SAMPLES / "dependency-slowdown" / "telemetry" / "traces.otlp.jsonl.gz"
    full, bounded = _parse(path), _parse(path, max_spans=1_000_000, max_request_rows=1_000_000)
    assert bounded.request_sample is None and bounded.trace_share is None
    assert full.frames.keys() == bounded.frames.keys()
    for name, frame in full.frames.items():
        assert_frame_equal(bounded.frames[name], frame)
    assert (bounded.lines, bounded.warnings) == (full.lines, full.warnings)


def test_worker_processes_sample_the_blocks_and_malformed_lines_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Blocks decoded by worker processes (reduced there once sampling) give the sample and counts of the
    same parse in this process; the malformed lines of every block are counted."""
    path, bad = _with_bad_lines(SAMPLES / "feature-surge" / "telemetry" / "traces.otlp.jsonl.gz", tmp_path / "traces.jsonl", every=97)
    monkeypatch.setattr(otlp_json, "BLOCK_BYTES", 400_000)
    here = _parse(path, max_spans=1_500)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(otlp_json.os, "cpu_count", lambda: 2)
    workers = _parse(path, max_spans=1_500)
    full = _parse(path)
    for result in (here, workers):
        assert result.rejected == full.rejected == bad
        assert result.lines == full.lines
        assert result.request_sample is None or result.request_sample.rows == full.frames["requests"].height
    assert workers.trace_share == here.trace_share
    assert_frame_equal(workers.frames["spans"], here.frames["spans"])
    assert_frame_equal(workers.frames["requests"].sort("ts", "trace_id"), here.frames["requests"].sort("ts", "trace_id"))



def test_piped_traces_start_worker_processes_once_past_the_parallel_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """stdin from a pipe has no size: its first blocks are decoded here, and worker processes take the rest once
    PARALLEL_MIN_BYTES were read; the spans, requests and counts are those of the file read here alone."""
    import io

    from rca.parsers.sources import stdin_source

    path, bad = _with_bad_lines(SAMPLES / "feature-surge" / "telemetry" / "traces.otlp.jsonl.gz", tmp_path / "traces.jsonl", every=89)
    monkeypatch.setattr(otlp_json, "BLOCK_BYTES", 200_000)
    here = _parse(path, max_spans=1_500)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 500_000)
    monkeypatch.setattr(otlp_json.os, "cpu_count", lambda: 2)
    started: list[int] = []
    pool = parallel.BlockWorkers
    monkeypatch.setattr(parallel, "BlockWorkers", lambda count, redo: started.append(count) or pool(count, redo))
    piped = OtlpJsonParser().parse(stdin_source(io.BufferedReader(io.BytesIO(path.read_bytes()))), ParseOptions(max_spans=1_500))  # type: ignore[arg-type]
    assert started == [2]
    assert (piped.rejected, piped.lines, piped.trace_share) == (here.rejected, here.lines, here.trace_share) and piped.rejected == bad
    assert_frame_equal(piped.frames["spans"].drop("origin"), here.frames["spans"].drop("origin"))
    assert_frame_equal(piped.frames["requests"].drop("origin").sort("ts", "trace_id"), here.frames["requests"].drop("origin").sort("ts", "trace_id"))
    small = tmp_path / "small.jsonl"  # under the parallel size: no worker started
    small.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:20]))
    started.clear()
    OtlpJsonParser().parse(stdin_source(io.BufferedReader(io.BytesIO(small.read_bytes()))), ParseOptions(max_spans=1_500))  # type: ignore[arg-type]
    assert started == []


def _as_protobuf(path: Path, out: Path) -> Path:
    """The OTLP/JSON lines of `path` as the file exporter's length-prefixed protobuf messages, one a line."""
    import base64
    import struct

    import orjson
    from google.protobuf import json_format
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    frames = []
    for line in gzip.decompress(path.read_bytes()).splitlines():
        doc = orjson.loads(line)
        for rs in doc.get("resourceSpans", ()):
            for ss in rs.get("scopeSpans", ()):
                for span in ss.get("spans", ()):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if span.get(key):
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
        blob = json_format.ParseDict(doc, TracesData(), ignore_unknown_fields=True).SerializeToString()
        frames.append(struct.pack(">I", len(blob)) + blob)
    out.write_bytes(b"".join(frames))
    return out


def test_protobuf_blocks_keep_the_same_traces_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from rca.parsers.otlp import protobuf
    from rca.parsers.otlp.protobuf import OtlpProtoParser

    json_path = SAMPLES / "dependency-slowdown" / "telemetry" / "traces.otlp.jsonl.gz"
    proto_path = _as_protobuf(json_path, tmp_path / "traces.pb")
    monkeypatch.setattr(protobuf, "BLOCK_BYTES", 100_000)
    monkeypatch.setattr(otlp_json, "BLOCK_BYTES", 100_000)

    def proto(**options: int) -> ParseResult:
        return OtlpProtoParser().parse(Source(str(proto_path), proto_path), ParseOptions(**options))  # type: ignore[arg-type]

    full, under = proto(), proto(max_spans=1_000_000)
    for name, frame in full.frames.items():  # under the bound: as before
        assert_frame_equal(under.frames[name], frame)
    from_json = _parse(json_path, max_spans=1_000)
    from_proto = proto(max_spans=1_000)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(otlp_json.os, "cpu_count", lambda: 2)
    in_workers = proto(max_spans=1_000)
    for result in (from_proto, in_workers):
        assert result.trace_share == from_json.trace_share is not None
        assert result.lines == full.lines
        assert_frame_equal(result.frames["spans"].select("trace_id", "span_id").sort("trace_id", "span_id"),
                           from_json.frames["spans"].select("trace_id", "span_id").sort("trace_id", "span_id"))
        assert result.request_sample is not None and result.request_sample.rows == full.frames["requests"].height
    assert_frame_equal(in_workers.frames["spans"], from_proto.frames["spans"])


def test_a_zipkin_document_past_the_bound_keeps_whole_traces_and_counts_every_request(tmp_path: Path):
    import orjson

    from rca.parsers.zipkin import ZipkinParser

    spans = []
    for t in range(300):  # a server span calling a client span, per trace
        trace = f"{t + 1:032x}"
        spans.append({"traceId": trace, "id": f"{2 * t + 1:016x}", "name": "get /api/x", "kind": "SERVER", "timestamp": 1_767_225_600_000_000 + t * 1_000_000,
                      "duration": 20_000, "localEndpoint": {"serviceName": "api"}, "tags": {"http.method": "GET", "http.route": "/api/x",
                                                                                            "http.status_code": "500" if t % 7 == 0 else "200"}})
        spans.append({"traceId": trace, "id": f"{2 * t + 2:016x}", "parentId": f"{2 * t + 1:016x}", "name": "select", "kind": "CLIENT",
                      "timestamp": 1_767_225_600_002_000 + t * 1_000_000, "duration": 5_000, "localEndpoint": {"serviceName": "api"},
                      "remoteEndpoint": {"serviceName": "postgres"}})
    path = tmp_path / "zipkin.json"
    path.write_bytes(orjson.dumps(spans))
    result = ZipkinParser().parse(Source(str(path), path), ParseOptions(max_spans=100))
    kept = result.frames["spans"]
    assert result.trace_share is not None and 50 <= kept.height <= 100
    assert kept.group_by("trace_id").len()["len"].to_list() == [2] * (kept.height // 2)  # both spans of every kept trace
    sample = result.request_sample
    assert sample is not None and sample.rows == 300
    service = sample.aggregates.counts.filter(pl.col("dimension") == "service")
    assert (service["requests"].sum(), service["errors"].sum()) == (300, len(range(0, 300, 7)))


@pytest.mark.parametrize("scenario", ["dependency-slowdown", "feature-surge"])
def test_a_dependency_slowdown_found_in_the_sampled_traces_has_the_onset_of_every_call(scenario: str):
    """The onset of a self-time shift is fitted on every call's per-bucket counts and log durations (the
    call aggregates), not on the few sampled calls a bucket: the same as from every span."""
    from rca.model import ANALYZED_REQUEST_COLUMNS
    from rca.pipeline import AnalyzeOptions, analyze_dataset, load

    path = str(SAMPLES / scenario / "telemetry" / "traces.otlp.jsonl.gz")
    onsets = []
    for cap in (None, 2_000):
        dataset = load([path], AnalyzeOptions(), request_columns=ANALYZED_REQUEST_COLUMNS, max_request_rows=1_000_000, max_spans=cap)
        assert (dataset.call_aggregates is None) == (cap is None)
        report = analyze_dataset(dataset, AnalyzeOptions())
        onsets.append({f.subject: (f.onset, f.details.basis) for f in report.findings if f.kind == "self_time_shift"})  # type: ignore[attr-defined]
    full, sampled = onsets
    common = full.keys() & sampled.keys()
    assert common
    for dependency in common:
        assert sampled[dependency][0] == full[dependency][0]
        assert full[dependency][1] is None and "the onset from every call" in sampled[dependency][1]


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_a_truncated_gzip_trace_file_gives_the_spans_before_the_cut(tmp_path: Path, cut: float):
    """A gzip cut short (a copy interrupted, a disk full) is read up to the cut with a warning, as logs are,
    not dropped whole: the blocks are decompressed as line_chunks does it."""
    from rca.parsers.loader import load_dataset

    whole = Path(__file__).resolve().parents[2] / "samples" / "third-party-surge" / "telemetry" / "traces.otlp.jsonl.gz"
    data = whole.read_bytes()
    truncated = tmp_path / "traces.otlp.jsonl.gz"
    truncated.write_bytes(data[: int(len(data) * cut)])
    options = ParseOptions(max_spans=250_000)  # as `rca analyze` reads trace files: in blocks
    full = load_dataset([str(whole)], options).spans.height
    dataset = load_dataset([str(truncated)], options)
    [summary] = dataset.inputs
    assert 0 < dataset.spans.height < full
    assert any("truncated gzip data" in w for w in summary.warnings)


@pytest.mark.parametrize("via", ["gzip", "stdin", "stdin-gzip"])
def test_compressed_or_piped_protobuf_is_read_in_blocks_as_the_file_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str):
    """A gzip'd length-prefixed protobuf file, or one on stdin, goes through the blocks of the bounded path
    (never read whole) and keeps the spans the uncompressed file keeps."""
    import io

    from rca.parsers.otlp import protobuf
    from rca.parsers.otlp.protobuf import OtlpProtoParser
    from rca.parsers.sources import stdin_source

    proto_path = _as_protobuf(SAMPLES / "dependency-slowdown" / "telemetry" / "traces.otlp.jsonl.gz", tmp_path / "traces.pb")
    monkeypatch.setattr(protobuf, "BLOCK_BYTES", 100_000)
    options = ParseOptions(max_spans=1_000, max_request_rows=1_000_000)
    expected = OtlpProtoParser().parse(Source(str(proto_path), proto_path), options)
    data = proto_path.read_bytes()
    packed = gzip.compress(data) if via.endswith("gzip") else data
    if via == "gzip":
        (tmp_path / "traces.pb.gz").write_bytes(packed)
        source = Source(str(tmp_path / "traces.pb.gz"), tmp_path / "traces.pb.gz", compression="gzip")
    else:
        source = stdin_source(io.BytesIO(packed))

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("read whole")

    monkeypatch.setattr(protobuf, "read_payload", whole)
    got = OtlpProtoParser().parse(source, options)
    assert got.lines == expected.lines and got.trace_share == expected.trace_share is not None
    for name, frame in expected.frames.items():
        assert_frame_equal(got.frames[name].drop("origin"), frame.drop("origin"))
    assert got.request_sample is not None and expected.request_sample is not None
    assert got.request_sample.rows == expected.request_sample.rows


def test_a_truncated_compressed_protobuf_keeps_the_messages_before_the_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from rca.parsers.otlp import protobuf
    from rca.parsers.otlp.protobuf import OtlpProtoParser

    proto_path = _as_protobuf(SAMPLES / "dependency-slowdown" / "telemetry" / "traces.otlp.jsonl.gz", tmp_path / "traces.pb")
    monkeypatch.setattr(protobuf, "BLOCK_BYTES", 100_000)
    data = proto_path.read_bytes()
    cut = tmp_path / "cut.pb.gz"
    cut.write_bytes(gzip.compress(data[: len(data) * 2 // 3]))
    result = OtlpProtoParser().parse(Source(str(cut), cut, compression="gzip"), ParseOptions(max_spans=1_000_000))
    whole = OtlpProtoParser().parse(Source(str(proto_path), proto_path), ParseOptions(max_spans=1_000_000))
    assert 0 < result.lines < whole.lines and result.frames["spans"].height > 0
    assert any(f"read the {result.lines:,} message(s) before" in w for w in result.warnings)
