"""logfmt: lines matched whole by the chunk's usual key layouts give the columns the general way (every
pair extracted, pivoted) gives, for any values: quoted with spaces and escapes, bare, empty, holding `=`
or a stray quote, among lines of other layouts, repeated keys, odd spacing and plain text."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rca.parsers import logfmt as logfmt_module
from rca.parsers.logfmt import _one_layout, _pairs, _pairs_apart

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


ORDER = ("pre", "ts", "level", "service.name", "msg", "err")  # layouts below keep this order: read by one pattern
IN_ORDER = st.lists(st.sampled_from(ORDER), min_size=1, max_size=6, unique=True).map(lambda keys: sorted(keys, key=ORDER.index))
SHUFFLED = st.lists(st.sampled_from(ORDER), min_size=2, max_size=4, unique=True)  # the order broken: taken apart
ONE_ORDER_LINE = st.one_of(
    st.tuples(st.one_of(IN_ORDER, IN_ORDER, SHUFFLED), st.lists(VALUE, min_size=6, max_size=6)).map(
        lambda t: " ".join(f"{k}={v}" for k, v in zip(t[0], t[1], strict=False))),
    st.sampled_from(["plain text", "ts=1  msg=2", "ts=1 msg=x ", "msg=only"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(ONE_ORDER_LINE, min_size=1, max_size=40), sample=st.sampled_from([5, 200]))
def test_layouts_read_by_one_pattern_equal_the_pairs_taken_apart(monkeypatch, lines, sample):
    """Layouts that keep one key order are matched by one pattern whose keys missing from some layout are
    optional (first, inner or last ones): any subset of the keys in that order is read as taken apart,
    a line of another order or with fewer than two keys goes apart."""
    monkeypatch.setattr(logfmt_module, "LAYOUT_SAMPLE", sample)
    monkeypatch.setattr(logfmt_module, "LAYOUT_MIN_SHARE", 0.0)
    frame = pl.DataFrame({"line": range(1, len(lines) + 1), "text": lines}, schema={"line": pl.Int64, "text": pl.String})
    fast, fast_bad, fast_count = _pairs(frame)
    slow, slow_bad, slow_count = _pairs_apart(frame)
    assert _columns_sorted(fast).equals(_columns_sorted(slow)), (fast, slow)
    assert (fast_bad, fast_count) == (slow_bad, slow_count)


def test_one_layout_of_layouts_that_agree_on_an_order(monkeypatch):
    one = _one_layout([("ts", "level", "msg"), ("pre", "ts", "msg", "err"), ("ts", "level", "service.name", "msg")])
    assert one == (("pre", "ts", "level", "service.name", "msg", "err"), frozenset({"pre", "level", "service.name", "err"}))
    assert _one_layout([("ts", "level", "msg"), ("level", "ts", "msg")]) is None  # two orders
    assert _one_layout([("ts", "msg"), ("time", "msg")]) is None  # one key in common: a line needs two
    assert _one_layout([("ts", "msg")]) is None  # nothing to merge
    used: list[object] = []
    monkeypatch.setattr(logfmt_module, "_one_layout", lambda layouts: used.append(_one_layout(layouts)) or used[-1])
    texts = ["pre=1 ts=2 msg=a", 'ts=3 level=x msg="b c" err=', "ts=4 level=z msg=6", "ts=5 msg=7 level=y"]  # the last out of order
    frame = pl.DataFrame({"line": range(1, 61), "text": [texts[0]] * 30 + [texts[1]] * 28 + texts[2:]})
    flat, bad, count = _pairs(frame)
    assert used == [(("pre", "ts", "level", "msg", "err"), frozenset({"pre", "level", "err"}))]
    rows = flat.sort("\x00line").select("pre", "ts", "level", "msg", "err").rows()
    assert (rows[0], rows[30], rows[58], rows[59]) == (("1", "2", None, "a", None), (None, "3", "x", "b c", ""), (None, "4", "z", "6", None), (None, "5", "y", "7", None))
    assert (bad, count) == ([], 0)
