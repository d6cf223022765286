"""Text logs with NUL runs (logrotate copytruncate leaves a hole at the start; a crash, NUL blocks within):
read like the same log without them, in every reader path, with the skipped bytes and runs in one warning;
a binary file (control bytes among NULs, UTF-16, OTLP protobuf) is still refused or sniffed as before."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rca.errors import InputError
from rca.parsers import ParseOptions, sniff
from rca.parsers.loader import load_dataset
from rca.parsers.nul_runs import NulRuns
from rca.parsers.sources import Source

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "dependency-slowdown" / "telemetry"
ANALYSIS = ParseOptions(max_request_rows=1_000_000, max_event_rows=1_000_000, max_spans=1_000_000)


def _head_lines(name: str, count: int) -> list[bytes]:
    return gzip.decompress((SAMPLES / name).read_bytes()).split(b"\n")[:count]


def _logfmt_lines(count: int) -> list[bytes]:
    return [f'ts=2026-03-02T09:{i // 60:02d}:{i % 60:02d}Z level=info service=api msg="served {i}" status=200 duration_ms={i % 97}'.encode()
            for i in range(count)]


def _holed(lines: list[bytes], seed: int) -> tuple[bytes, int, int]:
    """The lines with a leading hole and NUL runs between some lines (sizes varied by seed): the bytes, how
    many NUL bytes and runs were put in."""
    rng = np.random.default_rng(seed)
    hole = int(rng.integers(70_000, 300_000))  # past the 64 KB sniffed head
    cuts = sorted(rng.choice(np.arange(1, len(lines)), size=2, replace=False).tolist())
    runs = [hole, *(int(rng.integers(1, 9000)) for _ in cuts)]
    parts, start = [b"\0" * hole], 0
    for cut, size in zip(cuts, runs[1:], strict=True):
        parts += [b"\n".join(lines[start:cut]) + b"\n", b"\0" * size]
        start = cut
    parts.append(b"\n".join(lines[start:]) + b"\n")
    return b"".join(parts), sum(runs), len(runs)


FORMATS = {
    "access.log": lambda: _head_lines("access.log.gz", 400),
    "app.jsonl": lambda: _head_lines("app.jsonl.gz", 300),
    "app.log": lambda: _head_lines("app.log.gz", 300),
    "traces.otlp.jsonl": lambda: _head_lines("traces.otlp.jsonl.gz", 20),
    "app.logfmt": lambda: _logfmt_lines(300),
}


def _frames(path: Path, options: ParseOptions) -> tuple[dict[str, pl.DataFrame], list[str], str]:
    data = load_dataset([str(path)], options)
    summary = data.inputs[0]
    frames = {name: data.frame(name).drop("origin", strict=False).sort("line") for name in ("requests", "events", "spans")
              if data.frame(name).height and "line" in data.frame(name).columns}
    frames.update({name: data.frame(name).drop("origin", strict=False) for name in ("spans",) if data.frame(name).height and "line" not in data.frame(name).columns})
    return frames, list(summary.warnings), summary.format


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("options", [ParseOptions(), ANALYSIS], ids=["ingest", "analyze"])
def test_a_log_with_nul_runs_reads_like_the_log_without_them(tmp_path: Path, name: str, packed: bool, options: ParseOptions):
    lines = FORMATS[name]()
    holed, nul_bytes, runs = _holed(lines, seed=len(name) + packed)
    clean = b"\n".join(lines) + b"\n"
    suffix = ".gz" if packed else ""
    (tmp_path / "clean").mkdir()
    (tmp_path / "holed").mkdir()
    clean_path, holed_path = tmp_path / "clean" / (name + suffix), tmp_path / "holed" / (name + suffix)
    clean_path.write_bytes(gzip.compress(clean) if packed else clean)
    holed_path.write_bytes(gzip.compress(holed) if packed else holed)
    expected, expected_warnings, expected_format = _frames(clean_path, options)
    got, warnings, got_format = _frames(holed_path, options)
    assert got_format == expected_format != "unreadable"
    assert expected and got.keys() == expected.keys()
    for frame in expected:
        assert got[frame].equals(expected[frame]), frame
    note = f"skipped {nul_bytes:,} NUL byte(s) in {runs:,} run(s)"
    assert [w for w in warnings if w not in expected_warnings] == [next(w for w in warnings if w.startswith(note))]


def test_a_hole_within_a_line_joins_its_two_parts_and_the_lines_keep_their_numbers(tmp_path: Path):
    lines = _head_lines("access.log.gz", 50)
    cut = lines[10][: len(lines[10]) // 2]  # a crash: the block holding the rest of the line was never written
    path = tmp_path / "access.log"
    path.write_bytes(b"\n".join([*lines[:10], cut + b"\0" * 4096 + lines[11], *lines[12:]]) + b"\n")
    data = load_dataset([str(path)])
    assert data.inputs[0].lines == 49  # the torn line and the next are one line, as `grep -n` numbers them
    numbers = set(data.requests["line"].to_list())
    assert set(range(1, 11)) | set(range(12, 50)) <= numbers and numbers <= set(range(1, 50))
    assert any("4,096 NUL byte(s) in 1 run(s)" in w for w in data.inputs[0].warnings)


def test_runs_are_counted_once_across_blocks():
    runs = NulRuns()
    data = b"\0" * 10 + b"a\n" + b"\0" * 5 + b"b\n\0"
    kept = b"".join(runs.strip(data[i : i + 3]) for i in range(0, len(data), 3))
    assert (kept, runs.bytes, runs.runs) == (b"a\nb\n", 16, 3)


@pytest.mark.parametrize(
    "content",
    [
        b"\x7fELF\x02\x01\x01" + b"\0" * 9 + bytes(range(1, 64)) * 40 + b"\0" * 300,  # an executable
        "2026-03-02 09:00:00 INFO served\n".encode("utf-16-le") * 200,  # UTF-16: a NUL every other byte
        b"\0" * 100_000 + bytes(range(256)) * 200,  # a hole, then binary
    ],
    ids=["elf", "utf16", "hole-then-binary"],
)
def test_binary_files_are_still_refused(tmp_path: Path, content: bytes):
    path = tmp_path / "x.log"
    path.write_bytes(content)
    assert Source(origin=str(path), path=path).sample().is_binary
    with pytest.raises(InputError, match="binary"):
        load_dataset([str(path)])


def test_otlp_protobuf_is_still_sniffed_as_protobuf(tmp_path: Path):
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

    spans = [Span(trace_id=bytes([i]) * 16, span_id=bytes([i]) * 8, name=f"GET /x/{i}", start_time_unix_nano=10**18 + i,
                  end_time_unix_nano=10**18 + i + 10**6) for i in range(1, 50)]
    message = TracesData(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()
    path = tmp_path / "traces.pb"
    path.write_bytes(len(message).to_bytes(4, "big") + message)
    sample = Source(origin=str(path), path=path).sample()
    parser, _ = sniff(sample)
    assert parser is not None and parser.name == "otlp-proto"
    assert load_dataset([str(path)]).spans.height == 49


def test_a_bz2_access_log_is_read_in_chunks_like_the_plain_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import bz2

    from rca.parsers import lines as line_reader

    lines = _head_lines("access.log.gz", 400)
    holed, _, _ = _holed(lines, seed=5)
    (tmp_path / "access.log").write_bytes(holed)
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "access.log").write_bytes(bz2.compress(holed))
    plain = load_dataset([str(tmp_path / "access.log")], ANALYSIS)

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("read whole")

    monkeypatch.setattr(line_reader, "CHUNK_BYTES", 20_000)
    monkeypatch.setattr("rca.parsers.access_log.read_lines", whole)
    packed = load_dataset([str(tmp_path / "packed" / "access.log")], ANALYSIS)
    assert packed.requests.drop("origin").equals(plain.requests.drop("origin")) and packed.requests.height == 400
