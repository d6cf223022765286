"""Calls that vanish: a service whose code throws stops making the calls it used to make while its own
load is steady. Generated traces; names, rates and the share of calls lost vary by seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.detectors.call_drops import detect_call_drops
from rca.model import AnalysisContext, Dataset, Window
from rca.parsers.spantree import finish_spans
from rca.ranking.kinds.service_fault import service_evidence

T0 = datetime(2026, 4, 7, 9, tzinfo=UTC)


def _spans(seed: int, failing: set[str], minutes: int = 6, onset_min: int = 3, surge: bool = False) -> tuple[pl.DataFrame, dict[str, str]]:
    """front -> {b, c}, b -> {d, e}, c -> {d}: a request every 0.3-0.7 s. From `onset_min` every service in
    `failing` throws in most of its requests: "b" stops calling e (it throws before that call). With `surge`,
    from `onset_min` front also serves 1-3 times as many requests of another kind, which call c only."""
    rng = np.random.default_rng(seed)
    names = {k: f"{k}{rng.choice(['svc', 'api', 'srv'])}-{rng.integers(10, 99)}" for k in ("front", "b", "c", "d", "e")}
    lost = float(rng.uniform(0.7, 1.0))  # share of the failing requests' later calls that vanish
    rows: list[dict] = []
    start, i = T0, 0

    def serve(trace: str, span: str, parent: str | None, service: str, at: datetime, ms: float) -> None:
        rows.append({"trace_id": trace, "span_id": span, "parent_span_id": parent, "service": service, "name": f"{service}/Serve",
                     "kind": "server", "ts": at, "end": at + timedelta(milliseconds=ms), "host": f"{service}-pod-1"})

    def call(trace: str, prefix: str, parent: str, caller: str, callee: str, at: datetime) -> str:
        """The caller's client span `prefix`00 and the callee's server span `prefix`ff inside it."""
        rows.append({"trace_id": trace, "span_id": prefix + "00", "parent_span_id": parent, "service": caller, "name": f"{callee}/Call",
                     "kind": "client", "ts": at, "end": at + timedelta(milliseconds=4)})
        serve(trace, prefix + "ff", prefix + "00", callee, at + timedelta(milliseconds=1), 2.0)
        return prefix + "ff"

    while start < T0 + timedelta(minutes=minutes):
        after = start >= T0 + timedelta(minutes=onset_min)
        trace, root = f"{seed:04x}{i:028x}", f"{i:010x}000000"
        serve(trace, root, None, names["front"], start, 10.0)
        for k, callee in enumerate(("b", "c")):
            sid = call(trace, f"{i:010x}{k:02x}00", root, names["front"], names[callee], start)
            throws = after and rng.random() < lost
            if callee == "b":
                call(trace, f"{i:010x}{k:02x}01", sid, names["b"], names["d"], start)
                if not (throws and "b" in failing):
                    call(trace, f"{i:010x}{k:02x}02", sid, names["b"], names["e"], start)
            else:
                call(trace, f"{i:010x}{k:02x}01", sid, names["c"], names["d"], start)
        if surge and after:
            for extra in range(int(rng.integers(1, 4))):
                i += 1
                trace, root = f"{seed:04x}{i:028x}", f"{i:010x}000000"
                serve(trace, root, None, names["front"], start, 10.0)
                sid = call(trace, f"{i:010x}{extra:02x}00", root, names["front"], names["c"], start)
                call(trace, f"{i:010x}{extra:02x}01", sid, names["c"], names["d"], start)
        start += timedelta(seconds=float(rng.uniform(0.3, 0.7)))
        i += 1
    raw = pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})
    frames, _ = finish_spans(raw, "gen")
    return frames["spans"], names


def _context() -> AnalysisContext:
    return AnalysisContext(bucket_s=10, span=Window(T0, T0 + timedelta(minutes=6)),
                           baseline=Window(T0, T0 + timedelta(minutes=2, seconds=50)),
                           incident=Window(T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)))


@pytest.mark.parametrize("seed", range(3))
def test_the_service_that_throws_is_the_caller_whose_calls_vanish(seed):
    spans, names = _spans(seed, {"b"})
    findings = detect_call_drops(Dataset(spans=spans), _context())
    assert [(f.subject, f.details.callee, f.details.reference) for f in findings] == [(names["b"], names["e"], "windows")]
    f = findings[0]
    assert f.incident < 0.35 * f.baseline and f.details.p < 1e-6 and f.magnitude > 2
    evidence = {ev.service: ev for ev in service_evidence(findings)}
    assert set(evidence) == {names["b"]} and evidence[names["b"]].specificity == pytest.approx(0.5)  # 1 of its 2 callees
    assert evidence[names["b"]].kind == "service_fault"


@pytest.mark.parametrize("seed", range(3, 5))
def test_without_a_baseline_the_split_is_found_inside_the_traces(seed):
    """Traces that cover only the minutes around the fault: the change is found in the caller's own requests."""
    spans, names = _spans(seed, {"b"})
    context = AnalysisContext(bucket_s=10, span=Window(T0 - timedelta(hours=1), T0 + timedelta(minutes=6)),
                              baseline=Window(T0 - timedelta(hours=1), T0 - timedelta(minutes=10)),
                              incident=Window(T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)))
    findings = detect_call_drops(Dataset(spans=spans), context)
    assert [(f.subject, f.details.callee, f.details.reference) for f in findings] == [(names["b"], names["e"], "own earlier requests")]
    assert abs((findings[0].onset - (T0 + timedelta(minutes=3))).total_seconds()) < 40


@pytest.mark.parametrize("seed", range(5, 8))
def test_steady_calls_give_no_finding(seed):
    spans, _ = _spans(seed, set())
    assert detect_call_drops(Dataset(spans=spans), _context()) == []


@pytest.mark.parametrize("seed", range(3))
def test_a_surge_of_another_kind_of_request_drops_no_call(seed):
    """front's requests rise with requests that never call b: its calls to b per request fall, yet b gets every
    call it got before (a surge on front's other routes, not code that stopped calling)."""
    spans, _ = _spans(seed, set(), surge=True)
    assert detect_call_drops(Dataset(spans=spans), _context()) == []
