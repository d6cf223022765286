"""A metrics CSV read a block of rows at a time: the metric points, line numbers and rejected rows of the
whole read, however the rows are cut into blocks (quoted fields holding commas and line breaks included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from rca.errors import InputError
from rca.parsers import ParseOptions, ParseResult, metrics_csv
from rca.parsers.metrics_csv import MetricsCsvParser
from rca.parsers.sources import Source

TIMES = st.sampled_from(["2026-01-05T10:00:00Z", "1767607260", "1767607260123", "2026-01-05 10:02:03.5+01:00", "not-a-time", ""])
VALUES = st.sampled_from(["0.42", "17", "-3e2", "oops", ""])
WORDS = st.sampled_from(["web-1", "api", '"a, b"', '"line\nbreak"', '"say ""hi"""', ""])
ROWS = st.tuples(TIMES, st.sampled_from(["cpu", "mem", "", '"x,y"']), VALUES, WORDS, WORDS).map(lambda r: ",".join(r))


def _parse(path: Path) -> ParseResult:
    return MetricsCsvParser().parse(Source(str(path), path), ParseOptions())


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.one_of(ROWS, st.just("")), max_size=60), block=st.integers(1, 400), crlf=st.booleans())
def test_blocks_of_rows_give_the_whole_read(rows: list[str], block: int, crlf: bool):
    end = "\r\n" if crlf else "\n"
    content = (end.join(["ts,name,value,host,service", *rows]) + end).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "metrics.csv"
        path.write_bytes(content)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(metrics_csv, "BLOCK_BYTES", 1 << 30)
            whole = _parse(path)
            patch.setattr(metrics_csv, "BLOCK_BYTES", block)
            blocks = _parse(path)
    assert (blocks.lines, blocks.rejected, blocks.rejected_examples) == (whole.lines, whole.rejected, whole.rejected_examples)
    assert_frame_equal(blocks.frames["metrics"], whole.frames["metrics"])


def test_an_empty_or_headless_file_is_one_clear_error(tmp_path: Path):
    for content in (b"", b"ts,value\n1,2\n"):
        path = tmp_path / "metrics.csv"
        path.write_bytes(content)
        with pytest.raises(InputError):
            _parse(path)


def test_a_quote_left_open_rejects_its_row_not_the_file(tmp_path: Path):
    """A row cut short inside a quote (or a stray `"`) made the CSV reader refuse the whole file; now that row is
    rejected and counted with its line, the rows around it kept, and a warning names the line."""
    path = tmp_path / "metrics.csv"
    path.write_bytes(b'ts,name,value,host\n1767607200,cpu,1,h\n1767607260,cpu,"1,h\n1767607320,cpu,2,h\n')
    result = _parse(path)
    assert result.frames["metrics"]["line"].to_list() == [2, 4]
    assert result.frames["metrics"]["value"].to_list() == [1.0, 2.0]
    assert (result.lines, result.rejected) == (3, 1)
    assert result.rejected_examples[0].line == 3
    assert any("line 3: a quote left open" in w for w in result.warnings)
