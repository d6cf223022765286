"""Span detectors on hand-built traces: a database that slows and gets called three times per request
after minute 40 (self-time shift with onset, fan-out growth, caller share), and failing traces whose
deepest error is the database call (error origin). Windows are built by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from rca.detectors.spans import detect_spans
from rca.model import AnalysisContext, Dataset, Window
from rca.parsers.spantree import finish_spans

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ONSET = T0 + timedelta(minutes=40)


def build() -> Dataset:
    rng = np.random.default_rng(7)
    rows: list[dict] = []
    for i in range(1200):  # one trace every 3 s for an hour
        start = T0 + timedelta(seconds=3 * i)
        after = start >= ONSET
        caller = "203.0.113.5" if after and i % 2 else f"198.51.100.{i % 50}"
        trace = f"{i:032x}"
        root = f"{i:08x}00000000"
        calls = 3 if after else 1
        db_ms = (30.0 if after else 5.0) + float(rng.uniform(0, 2))
        failing = after and i % 10 == 0
        total = 10 + calls * db_ms
        rows.append({"trace_id": trace, "span_id": root, "parent_span_id": None, "service": "api", "name": "GET /x", "kind": "server",
                     "ts": start, "end": start + timedelta(milliseconds=total), "status": "error" if failing else "unset",
                     "http_route": "/x", "client_address": caller, "peer_service": None, "db_system": None})
        for c in range(calls):
            s = start + timedelta(milliseconds=5 + c * db_ms)
            rows.append({"trace_id": trace, "span_id": f"{i:08x}{c + 1:08x}", "parent_span_id": root, "service": "api",
                         "name": "SELECT orders", "kind": "client", "ts": s, "end": s + timedelta(milliseconds=db_ms),
                         "status": "error" if failing and c == calls - 1 else "unset", "http_route": None, "client_address": None,
                         "peer_service": "postgres", "db_system": "postgresql"})
    raw = pl.DataFrame(rows).with_columns(pl.col("ts", "end").dt.cast_time_unit("us"))
    frames, warnings = finish_spans(raw, "hand.json")
    assert warnings == []
    return Dataset(spans=frames["spans"].with_columns(origin=pl.lit("hand.json"), signal=pl.lit("trace")))


def test_span_detectors_find_slowdown_fanout_caller_and_error_origin():
    context = AnalysisContext(bucket_s=60, span=Window(T0, T0 + timedelta(hours=1)), baseline=Window(T0, ONSET - timedelta(minutes=5)),
                              incident=Window(ONSET, T0 + timedelta(hours=1)))
    findings = detect_spans(build(), context)
    by_kind = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    shift = next(f for f in by_kind["self_time_shift"] if f.subject == "postgres")
    assert shift.signal == "trace" and shift.dimension == "operation" and shift.magnitude > 4
    assert shift.onset is not None and abs((shift.onset - ONSET).total_seconds()) <= 2 * 60
    assert shift.series is not None and len(shift.series.values) >= 55
    fan = next(f for f in by_kind["fanout_growth"] if f.subject == "postgres")
    assert 2.5 <= fan.magnitude <= 3.5
    callers = [f for f in by_kind.get("caller_share", []) if f.details.dependency == "postgres"]
    assert callers and callers[0].subject == "203.0.113.5" and callers[0].share_explained > 0.5
    origin = by_kind["error_origin"][0]
    assert "postgres" in origin.subject or "SELECT orders" in origin.subject


def test_quiet_traces_give_no_span_findings():
    data = build()
    quiet = data.spans.filter(pl.col("ts") < ONSET)
    context = AnalysisContext(bucket_s=60, span=Window(T0, ONSET), baseline=Window(T0, T0 + timedelta(minutes=20)),
                              incident=Window(T0 + timedelta(minutes=20), ONSET))
    assert detect_spans(Dataset(spans=quiet), context) == []
