"""Request paths that change: a service that throws (or answers wrongly) changes the path of its own
requests or of its callers'. Generated traces without span status (as the real dev set has none); the
service names, the routes' mix, the request rate and the share of requests hit vary by seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.detectors.request_shapes import detect_shape_shifts, request_shapes
from rca.model import AnalysisContext, Dataset, Window
from rca.parsers.spantree import finish_spans
from rca.ranking import build_report
from rca.ranking.kinds.service_fault import service_evidence

T0 = datetime(2026, 4, 7, 9, tzinfo=UTC)


class _Traces:
    """front serves three routes: "page" calls mid then leaf, "item" calls leaf then store, "ping" calls
    nothing; mid runs an internal step, then calls leaf, then store. Faults from `onset`, in a share of the
    requests that varies by seed:
    - "mid_throws": mid throws after its internal step (never calls leaf or store); front's page stops right
      after mid;
    - "leaf_wrong": leaf answers wrongly, its own spans as before; both its callers (mid, front's item route)
      stop right after it;
    - "front_throws": front's page throws after mid answered (mid is healthy);
    - "mid_fallback": mid takes a fallback step before its calls (a cache that stopped serving): its path
      gains a step."""

    def __init__(self, seed: int, fault: str | None, minutes: float = 3.0, onset: float = 1.5) -> None:
        self.rng = np.random.default_rng(seed)
        suffix = str(self.rng.choice(["svc", "api", "srv"]))
        self.names = {k: f"{w}-{suffix}{self.rng.integers(10, 99)}" for k, w in
                      zip(("front", "mid", "leaf", "store"), self.rng.choice(["gate", "cart", "quote", "stock", "mail", "geo", "rank", "bill"], 4, replace=False),
                          strict=True)}
        self.rows: list[dict] = []
        self.fault = fault
        hit = float(self.rng.uniform(0.6, 1.0))
        mix = 0.1 + 0.7 * self.rng.dirichlet([4, 3, 1])
        start, i = T0, 0
        while start < T0 + timedelta(minutes=minutes):
            failing = fault is not None and start >= T0 + timedelta(minutes=onset) and self.rng.random() < hit
            route = str(self.rng.choice(["page", "item", "ping"], p=mix))
            self._request(f"{seed:04x}{i:028x}", f"{i:012x}", start, route, failing)
            start += timedelta(seconds=float(self.rng.uniform(0.1, 0.5)))
            i += 1

    def _span(self, trace: str, span: str, parent: str | None, service: str, name: str, kind: str, at: datetime, ms: float) -> None:
        self.rows.append({"trace_id": trace, "span_id": span, "parent_span_id": parent, "service": self.names[service],
                          "name": name, "kind": kind, "ts": at, "end": at + timedelta(milliseconds=ms), "host": f"{self.names[service]}-pod-1"})

    def _call(self, trace: str, sid: str, parent: str, caller: str, callee: str, at: datetime, failing: bool) -> datetime:
        """A client span of the caller and the callee's server span (with the callee's own work) inside it."""
        self._span(trace, sid + "c", parent, caller, f"{self.names[callee]}/Call", "client", at, 6.0)
        server = sid + "s"
        self._span(trace, server, sid + "c", callee, f"{self.names[callee]}/Serve", "server", at + timedelta(milliseconds=0.5), 5.0)
        if callee == "mid":
            t = at + timedelta(milliseconds=1)
            self._span(trace, sid + "1", server, "mid", "mid/Prepare", "internal", t, 0.2)
            if failing and self.fault == "mid_fallback":
                self._span(trace, sid + "f", server, "mid", "mid/Fallback", "internal", t, 0.2)
            if not (failing and self.fault == "mid_throws"):
                t = self._call(trace, sid + "2", server, "mid", "leaf", t + timedelta(milliseconds=0.3), failing)
                if not (failing and self.fault == "leaf_wrong"):
                    self._call(trace, sid + "3", server, "mid", "store", t, failing)
        elif callee in ("leaf", "store"):
            self._span(trace, sid + "1", server, callee, "sql.query", "client", at + timedelta(milliseconds=1), 1.0)
        return at + timedelta(milliseconds=7)

    def _request(self, trace: str, key: str, at: datetime, route: str, failing: bool) -> None:
        root = key + "0000"
        self._span(trace, root, None, "front", "front/Recv", "server", at, 20.0)
        t = at + timedelta(milliseconds=0.2)
        if route == "page":
            t = self._call(trace, key + "01", root, "front", "mid", t, failing)
            stopped = failing and self.fault in ("mid_throws", "front_throws")
            if not stopped:
                self._call(trace, key + "02", root, "front", "leaf", t, failing)
        elif route == "item":
            t = self._call(trace, key + "03", root, "front", "leaf", t, failing)
            if not (failing and self.fault == "leaf_wrong"):
                self._call(trace, key + "04", root, "front", "store", t, failing)

    def spans(self) -> pl.DataFrame:
        raw = pl.DataFrame(self.rows, schema_overrides={"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})
        return finish_spans(raw, "gen")[0]["spans"]


def _context() -> AnalysisContext:
    """Windows as the real data sets them: metrics' history before the traces, the traces inside the incident."""
    return AnalysisContext(bucket_s=60, span=Window(T0 - timedelta(minutes=30), T0 + timedelta(minutes=3)),
                           baseline=Window(T0 - timedelta(minutes=30), T0 - timedelta(minutes=1)),
                           incident=Window(T0, T0 + timedelta(minutes=3)))


def _ranked(traces: _Traces) -> list[str]:
    dataset = Dataset(spans=traces.spans())
    report = build_report(dataset, _context(), detect_shape_shifts(dataset, _context()))
    assert report.hypotheses, "no hypothesis"
    return [h.subject for h in report.hypotheses]


def _first(traces: _Traces) -> str:
    return _ranked(traces)[0]


def test_a_request_shape_is_the_set_of_operations_its_own_spans_started():
    traces = _Traces(0, None)
    shapes = request_shapes(traces.spans())
    mid = shapes.filter(pl.col("service") == traces.names["mid"])
    assert set(mid["shape"].unique()) == {"|".join(sorted([f"{traces.names['leaf']}/Call", f"{traces.names['store']}/Call", "mid/Prepare"]))}
    assert set(mid["stop"].unique()) == {traces.names["store"]}  # its latest-starting own span calls store
    front = shapes.filter(pl.col("service") == traces.names["front"])
    assert "" in set(front["shape"])  # a route that calls nothing has the empty shape
    assert shapes.height == traces.spans().filter(pl.col("kind") == "server").height


@pytest.mark.parametrize("seed", range(3))
def test_a_service_that_throws_ranks_first_and_its_callers_change_is_explained(seed):
    traces = _Traces(seed, "mid_throws")
    findings = detect_shape_shifts(Dataset(spans=traces.spans()), _context())
    mid = [f for f in findings if f.subject == traces.names["mid"]]
    assert "appeared" in {f.details.direction for f in mid}  # the old path lives on in the requests the fault spares
    appeared = next(f for f in mid if f.details.direction == "appeared")
    assert appeared.details.stop == "" and appeared.details.p < 1e-3  # it stopped in its own code
    assert abs((appeared.onset - (T0 + timedelta(minutes=1.5))).total_seconds()) < 10
    evidence = {ev.service: ev for ev in service_evidence(findings)}
    assert set(evidence) == {traces.names["mid"]}  # front's page stops after mid, whose own path changed
    assert _first(traces) == traces.names["mid"]


@pytest.mark.parametrize("seed", range(3, 6))
def test_a_callee_answering_wrongly_ranks_first_when_several_paths_stop_at_it(seed):
    """leaf's own requests look as before; front's page and item routes (and mid) now stop right after it."""
    traces = _Traces(seed, "leaf_wrong")
    findings = detect_shape_shifts(Dataset(spans=traces.spans()), _context())
    assert not [f for f in findings if f.subject == traces.names["leaf"]]
    assert {f.details.stop for f in findings if f.details.direction == "appeared"} >= {traces.names["leaf"]}
    assert _first(traces) == traces.names["leaf"]


@pytest.mark.parametrize("seed", range(6, 9))
def test_a_caller_that_throws_after_a_healthy_callee_answered_is_itself_at_fault(seed):
    """One path stopping at a callee whose own paths did not change: the caller first, the callee listed
    below it (its answer may be what the caller failed on)."""
    traces = _Traces(seed, "front_throws")
    assert _ranked(traces)[:2] == [traces.names["front"], traces.names["mid"]]


@pytest.mark.parametrize("seed", range(9, 13))
def test_steady_paths_give_no_finding(seed):
    traces = _Traces(seed, None)
    assert detect_shape_shifts(Dataset(spans=traces.spans()), _context()) == []


def test_an_operation_with_few_requests_is_not_tested():
    traces = _Traces(13, "mid_throws", minutes=0.05, onset=0.02)
    assert detect_shape_shifts(Dataset(spans=traces.spans()), _context()) == []


@pytest.mark.parametrize("seed", range(14, 16))
def test_a_path_that_gains_a_step_is_no_code_stopping_part_way(seed):
    """A fallback adds calls: the path changed, but no service is blamed for stopping part-way."""
    traces = _Traces(seed, "mid_fallback")
    findings = detect_shape_shifts(Dataset(spans=traces.spans()), _context())
    assert findings and all(f.subject == traces.names["mid"] and not f.details.shorter for f in findings)
    assert service_evidence(findings) == []
