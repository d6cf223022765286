"""Zipkin JSON lines (one span a line) read a block of lines at a time: the frames, counts and rejected
lines of the whole read, however the lines are cut into blocks, shared spans' halves in any blocks."""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from rca.parsers import ParseOptions, ParseResult, zipkin
from rca.parsers.sources import Source, stdin_source
from rca.parsers.zipkin import ZipkinParser

T0_US = 1_767_225_600_000_000
GARBAGE = [b"{broken", b"[1, 2]", b'{"traceId": "ab", "localEndpoint": {}}', b"   ", b"", b'"text"']


def _lines(seed: int, traces: int, garbage: int, shared: int) -> list[bytes]:
    """Zipkin spans of `traces` traces (a server root and client children, `shared` of them with a B3
    shared server half), one a line, with `garbage` malformed lines, shuffled by `seed` after the first."""
    rng = random.Random(seed)
    spans = []
    for t in range(traces):
        trace = f"{rng.getrandbits(64 if t % 2 else 128):0{16 if t % 2 else 32}x}"
        root = f"{rng.getrandbits(64):016x}"
        start = T0_US + t * 1000
        spans.append({"traceId": trace, "id": root, "name": "get /api/{id}", "kind": "SERVER", "timestamp": start, "duration": 900,
                      "localEndpoint": {"serviceName": f"svc-{t % 3}", "ipv4": "10.0.0.1"},
                      "tags": {"http.method": "GET", "http.path": f"/api/{t}", "http.status_code": rng.choice(["200", "500"])}})
        for k in range(rng.randint(1, 4)):
            child = f"{rng.getrandbits(64):016x}"
            spans.append({"traceId": trace, "id": child, "parentId": root, "name": "call", "kind": "CLIENT", "timestamp": start + k * 10,
                          "duration": 100 + k, "localEndpoint": {"serviceName": f"svc-{t % 3}"}, "remoteEndpoint": {"serviceName": "db"}})
            if t < shared and k == 0:  # the server half of this call, reusing its id
                spans.append({"traceId": trace, "id": child, "parentId": root, "name": "serve", "kind": "SERVER", "shared": True,
                              "timestamp": start + 20, "duration": 60, "localEndpoint": {"serviceName": "backend"},
                              **({"tags": {"error": "boom"}} if t % 2 else {})})
    lines = [orjson.dumps(s) for s in spans] + [rng.choice(GARBAGE) for _ in range(garbage)]
    rest = lines[1:]
    rng.shuffle(rest)
    return [lines[0], *rest]


def _parse(source: Source, options: ParseOptions | None = None) -> ParseResult:
    return ZipkinParser().parse(source, options or ParseOptions())


def _assert_same(got: ParseResult, expected: ParseResult) -> None:
    assert (got.lines, got.rejected, got.rejected_examples, got.warnings) == (expected.lines, expected.rejected, expected.rejected_examples, expected.warnings)
    assert got.frames.keys() == expected.frames.keys()
    for name, frame in expected.frames.items():
        assert_frame_equal(got.frames[name], frame)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), traces=st.integers(1, 60), garbage=st.integers(0, 8), shared=st.integers(0, 6),
       block=st.integers(100, 4_000), newline_at_end=st.booleans())
def test_json_lines_in_blocks_give_the_whole_read(seed: int, traces: int, garbage: int, shared: int, block: int, newline_at_end: bool):
    content = b"\n".join(_lines(seed, traces, garbage, shared)) + (b"\n" if newline_at_end else b"")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spans.jsonl"
        path.write_bytes(content)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(zipkin, "BLOCK_BYTES", 1 << 30)
            whole = _parse(Source(str(path), path))
            patch.setattr(zipkin, "BLOCK_BYTES", block)
            patch.setattr(zipkin, "_spans", None)  # the whole-input parse is not used past one block
            blocks = _parse(Source(str(path), path))
    _assert_same(blocks, whole)
    assert whole.rejected == sum(1 for line in content.split(b"\n") if line.strip() and line in GARBAGE)


def test_past_the_bound_json_lines_keep_whole_traces_and_count_every_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"\n".join(_lines(7, 400, 5, 20)) + b"\n")
    whole = _parse(Source(str(path), path))
    monkeypatch.setattr(zipkin, "BLOCK_BYTES", 20_000)
    bounded = _parse(Source(str(path), path), ParseOptions(max_spans=300))
    assert bounded.trace_share is not None and bounded.trace_share < 0.5 and bounded.rejected == whole.rejected > 0
    kept = bounded.frames["spans"].group_by("trace_id").len().join(whole.frames["spans"].group_by("trace_id").len(), on="trace_id")
    assert 0 < bounded.frames["spans"].height <= 300 and (kept["len"] == kept["len_right"]).all()  # whole traces
    assert bounded.request_sample is not None and bounded.request_sample.rows == whole.frames["requests"].height


def test_json_lines_on_stdin_are_read_in_blocks_with_a_shared_server_half_before_its_client(monkeypatch: pytest.MonkeyPatch):
    lines = _lines(3, 80, 2, 0)
    trace, root = orjson.loads(lines[0])["traceId"], orjson.loads(lines[0])["id"]
    server = {"traceId": trace, "id": "00000000000000aa", "parentId": root, "name": "serve", "kind": "SERVER", "shared": True,
              "timestamp": T0_US + 20, "duration": 60, "localEndpoint": {"serviceName": "backend"}}
    client = {**server, "kind": "CLIENT", "shared": False, "duration": 90, "localEndpoint": {"serviceName": "svc-0"}}
    content = b"\n".join([lines[0], orjson.dumps(server), *lines[1:], orjson.dumps(client)]) + b"\n"
    whole = _parse(Source("<stdin>", data=content))
    monkeypatch.setattr(zipkin, "BLOCK_BYTES", 2_000)
    piped = _parse(stdin_source(io.BufferedReader(io.BytesIO(content))))  # type: ignore[arg-type]
    _assert_same(piped, whole)
    halves = {r["kind"]: r for r in piped.frames["spans"].filter(piped.frames["spans"]["name"] == "serve").iter_rows(named=True)}
    assert halves["server"]["parent_span_id"] == halves["client"]["span_id"] != halves["server"]["span_id"] == "00000000000000aa"
