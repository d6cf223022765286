"""`read_lines` reads each line whole, whatever control bytes it holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rca.parsers.lines import read_lines
from rca.parsers.sources import Source


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab \t\x01\x1c\x1d\x1e\x1f\u00e9"), max_size=12), min_size=1, max_size=12))
def test_lines_holding_separator_bytes_are_read_whole(lines):
    """A unit separator (or another ASCII separator, SOH) in a line neither splits nor cuts it, nor fails
    the read when the first line holds one: the line numbers and texts are the lines', blank ones null."""
    lines = [*lines, "end"]
    read = read_lines(Source(origin="x.log", data=("\n".join(lines) + "\n").encode()))
    assert read.frame.get_column("text").to_list() == [line or None for line in lines]
    assert read.frame.get_column("line").to_list() == list(range(1, len(lines) + 1))
