"""finish_spans: self time against a brute-force union of the children's intervals (random nested,
overlapping, skewed and zero-length children), on both ways `_children_ms` takes the running maximum
(one global cum_max on a per-parent key, and the per-parent window when spans are too long for the key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import rca.parsers.spantree as spantree
from rca.parsers.spantree import finish_spans

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def union_length(intervals: list[tuple[int, int]], lo: int, hi: int) -> int:
    """Length of the union of the intervals clipped to [lo, hi], by merging them in start order."""
    total, end = 0, lo
    for s, e in sorted((max(s, lo), min(e, hi)) for s, e in intervals):
        if e > max(s, end):
            total += e - max(s, end)
            end = e
    return total


def random_traces(seed: int, traces: int = 60, long_root_us: int = 0) -> tuple[pl.DataFrame, dict[str, float]]:
    """Traces of a root and up to 6 children (some with grandchildren), plus the expected self ms."""
    rng = np.random.default_rng(seed)
    rows, expected = [], {}

    def add(trace: str, span: str, parent: str | None, start: int, end: int) -> None:
        rows.append({"trace_id": trace, "span_id": span, "parent_span_id": parent, "service": "svc", "name": "op",
                     "kind": "server" if parent is None else "client",
                     "ts": T0 + timedelta(microseconds=start), "end": T0 + timedelta(microseconds=end), "line": len(rows) + 1})

    for t in range(traces):
        trace = f"{t:032x}"
        root_end = int(rng.integers(1_000, 100_000)) + long_root_us
        add(trace, f"{t:08x}00000000", None, 0, root_end)
        kids = []
        for c in range(int(rng.integers(0, 7))):
            # children may start before the parent or end after it (clock skew): clipped to the parent
            s = int(rng.integers(-5_000, root_end))
            e = s + int(rng.integers(0, 40_000))
            span = f"{t:08x}{c + 1:08x}"
            add(trace, span, f"{t:08x}00000000", s, e)
            kids.append((span, s, e))
            if rng.random() < 0.3:  # a grandchild inside the child: counts for the child only
                add(trace, f"{t:08x}{c + 100:08x}", span, s + (e - s) // 4, s + (e - s) // 2)
        expected[f"{t:08x}00000000"] = (root_end - union_length([(s, e) for _, s, e in kids], 0, root_end)) / 1000.0
    return pl.DataFrame(rows), expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_self_time_is_duration_minus_union_of_children(seed):
    raw, expected = random_traces(seed)
    spans = finish_spans(raw, "x")[0]["spans"]
    got = dict(zip(spans["span_id"].to_list(), spans["self_ms"].to_list(), strict=True))
    for span, self_ms in expected.items():
        assert got[span] == pytest.approx(self_ms), span


def test_window_fallback_for_very_long_spans_agrees(monkeypatch):
    # children ending ~5000 years after their parent: parent number * bound no longer fits an Int64 key,
    # so the per-parent window is used
    years = 5000 * 365 * 86_400 * 1_000_000
    assert 16 * (1 << years.bit_length()) >= spantree._KEY_LIMIT
    raw, expected = random_traces(4, traces=20, long_root_us=years)
    spans = finish_spans(raw, "x")[0]["spans"]
    got = dict(zip(spans["span_id"].to_list(), spans["self_ms"].to_list(), strict=True))
    for span, self_ms in expected.items():
        assert got[span] == pytest.approx(self_ms), span
    # and the two ways agree on ordinary input
    raw, _ = random_traces(5)
    fast = finish_spans(raw, "x")[0]["spans"]
    monkeypatch.setattr(spantree, "_KEY_LIMIT", 0)
    slow = finish_spans(raw, "x")[0]["spans"]
    assert fast.equals(slow)


def test_row_order_and_duplicates_are_kept():
    raw, _ = random_traces(6, traces=10)
    doubled = pl.concat([raw, raw.head(3)])
    frames, warnings = finish_spans(doubled, "x")
    assert frames["spans"]["line"].to_list() == raw["line"].to_list()  # input order, first copy kept
    assert "3 duplicate span id(s) kept once" in warnings


def test_parent_join_falls_back_when_hashes_collide(monkeypatch):
    raw, _ = random_traces(7, traces=30)
    raw = pl.concat([raw, raw.head(2).with_columns(pl.lit(None, pl.String).alias("trace_id"))])  # null ids never match
    expected = finish_spans(raw, "x")
    # every key the same: rows multiply, the check sees it and the string join is used
    monkeypatch.setattr(pl.Expr, "hash", lambda self, *a, **k: pl.lit(1, dtype=pl.UInt64))
    collided = finish_spans(raw, "x")
    for name, frame in expected[0].items():
        assert frame.equals(collided[0][name]), name
    assert expected[1] == collided[1]
