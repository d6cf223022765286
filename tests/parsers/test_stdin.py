"""Standard input is read as it goes, a chunk at a time like a file (never whole), its sniffed head replayed:
every format gives the same rows from stdin as from the file, plain or compressed, with the analysis bounds."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import orjson
import polars as pl
import pytest

from rca.errors import InputError
from rca.parsers import ParseOptions, get_parser
from rca.parsers import lines as line_reader
from rca.parsers.loader import load_dataset
from rca.parsers.sources import stdin_source

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "dependency-slowdown" / "telemetry"
ANALYSIS = ParseOptions(max_request_rows=1_000_000, max_event_rows=1_000_000, max_spans=1_000_000)


class Pipe(io.RawIOBase):
    """A one-pass stream like a pipe, refusing a read of everything (what reading stdin whole does)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position, self.largest = data, 0, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size >= 0, "stdin read whole"
        self.largest = max(self.largest, size)
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk

    def seekable(self) -> bool:
        return False


def _frames(inputs: list[str], options: ParseOptions, stdin: Pipe | None = None) -> tuple[dict[str, pl.DataFrame], str]:
    data = load_dataset(inputs, options, stdin=stdin)
    # the service a file's name gives when its lines name none is no part of this comparison
    frames = {name: data.frame(name).drop("origin", "service", strict=False) for name in ("requests", "events", "spans") if data.frame(name).height}
    return frames, data.inputs[0].format


@pytest.mark.parametrize("name", ["access.log", "app.jsonl", "app.log", "traces.otlp.jsonl"])
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_stdin_is_read_in_chunks_and_gives_the_rows_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, packed: bool):
    monkeypatch.setattr(line_reader, "CHUNK_BYTES", 64 << 10)  # several chunks however small the sample
    content = b"\n".join(gzip.decompress((SAMPLES / f"{name}.gz").read_bytes()).split(b"\n")[:1500]) + b"\n"
    path = tmp_path / name
    path.write_bytes(content)
    expected, expected_format = _frames([str(path)], ANALYSIS)
    pipe = Pipe(gzip.compress(content) if packed else content)
    got, got_format = _frames(["-"], ANALYSIS, stdin=pipe)
    assert got_format == expected_format and got.keys() == expected.keys()
    for frame in expected:
        assert got[frame].equals(expected[frame]), frame
    assert pipe.position == len(pipe.data) and pipe.largest <= 8 << 20


def test_a_pretty_printed_otlp_document_on_stdin_is_read_once(tmp_path: Path):
    document = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                                   "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                                                              "name": "GET /x", "kind": 2, "startTimeUnixNano": "1544712660000000000",
                                                              "endTimeUnixNano": "1544712661000000000"}]}]}]}
    pipe = Pipe(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    assert load_dataset(["-"], ANALYSIS, stdin=pipe).spans.height == 1


def test_stdin_read_a_second_time_past_its_head_is_an_input_error():
    source = stdin_source(Pipe(b"2026-03-02 09:00:00 INFO started\n" * 10_000))
    assert source.sample().lines[0].endswith("started")
    parser = get_parser("text")
    assert parser.parse(source, ParseOptions()).lines == 10_000
    with pytest.raises(InputError, match="already read"):
        parser.parse(source, ParseOptions())


def test_stdin_redirected_from_a_file_has_its_size_and_a_pipe_none(tmp_path: Path):
    """`rca analyze - < file` plans its read as the file's (progress total, early sampling, worker processes)."""
    path = tmp_path / "app.log"
    path.write_bytes(b"2026-03-02 09:00:00 INFO started\n" * 1000)
    with path.open("rb") as stream:
        stream.seek(100)  # what is left of it
        assert stdin_source(stream).size() == path.stat().st_size - 100
    assert stdin_source(Pipe(path.read_bytes())).size() == 0
