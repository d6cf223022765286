"""logfmt: lines matched whole by the chunk's usual key layouts give the columns the general way (every
pair extracted, pivoted) gives, for any values: quoted with spaces and escapes, bare, empty, holding `=`
or a stray quote, among lines of other layouts, repeated keys, odd spacing and plain text."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rca.parsers import logfmt as logfmt_module
from rca.parsers.logfmt import _pairs, _pairs_apart

TEMPLATES = [("ts", "level", "msg"), ("ts", "level", "service.name", "msg", "duration_ms"), ("time", "caller", "err", "component"), ("a", "a", "b")]
BARE = st.text(alphabet='abz09.:/-_=@{}"\\', max_size=8)
QUOTED = st.text(alphabet='ab z"\\=é', max_size=10).map(lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
ODD = st.sampled_from(['"unterminated', 'x"y', '"a" b', '"a"b', '\\"', '""', " ", "="])
VALUE = st.one_of(BARE, QUOTED, QUOTED, ODD)
LINE = st.one_of(
    st.tuples(st.sampled_from(TEMPLATES), st.lists(VALUE, min_size=5, max_size=5)).map(lambda t: " ".join(f"{k}={v}" for k, v in zip(t[0], t[1], strict=False))),
    st.sampled_from(["plain text", "  ts=1 level=info", "ts=1  level=2", "ts=1 level=info ", "only=one", "", "k=v k2=v2 trailing words"]),
)


def _columns_sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(sorted(frame.columns))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(LINE, min_size=1, max_size=40), sample=st.sampled_from([1, 5, 200]))
def test_whole_line_layouts_equal_the_pairs_taken_apart(monkeypatch, lines, sample):
    monkeypatch.setattr(logfmt_module, "LAYOUT_SAMPLE", sample)
    frame = pl.DataFrame({"line": range(1, len(lines) + 1), "text": lines}, schema={"line": pl.Int64, "text": pl.String})
    fast, fast_bad, fast_count = _pairs(frame)
    slow, slow_bad, slow_count = _pairs_apart(frame)
    assert _columns_sorted(fast).equals(_columns_sorted(slow)), (fast, slow)
    assert (fast_bad, fast_count) == (slow_bad, slow_count)
