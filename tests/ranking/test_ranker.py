"""The ranker on hand-made findings: precedence, discounting of effects, corroboration, rule-outs.

Each test feeds a few findings (no data, no detectors) to `build_report` and checks the ranking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rca.findings import (
    ChangeEffectDetails,
    FindingDetails,
    HostSpreadDetails,
    NetworkSplitDetails,
    ResourceEventsDetails,
    SelfTimeDetails,
    ServiceTrafficDetails,
    TrafficSpikeDetails,
)
from rca.model import AnalysisContext, Dataset, Finding, Report, Window
from rca.ranking import TUNING, build_report, kind_named

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CONTEXT = AnalysisContext(
    bucket_s=60,
    span=Window(START, START + timedelta(minutes=60)),
    baseline=Window(START, START + timedelta(minutes=30)),
    incident=Window(START + timedelta(minutes=30), START + timedelta(minutes=60)),
)


def at(minute: float) -> datetime:
    return START + timedelta(minutes=minute)


def finding(kind: str, dimension: str, subject: str, minute: float | None, *, magnitude: float = 4.0,
            confidence: float = 0.95, signal: str = "access_log", metric: str = "requests_per_min",
            share: float | None = None, where: str | None = "web", excess: float | None = None,
            details: FindingDetails | None = None) -> Finding:
    return Finding(
        detector="hand", kind=kind, dimension=dimension, subject=subject, metric=metric,
        onset=None if minute is None else at(minute), baseline=10.0, incident=10.0 * magnitude, magnitude=magnitude,
        confidence=confidence, signal=signal, where=where, excess=excess, share_explained=share,
        details=details or FindingDetails(),
    )


def spike(subject: str, minute: float, *, share: float = 0.8, lift: float = 8.0, dimension: str = "source") -> Finding:
    details = TrafficSpikeDetails(vantage="access.log", method="GET", new=False, z=20.0, baseline_share=0.1, lift=lift,
                                  baseline_requests=100, incident_requests=900)
    return finding("traffic_spike", dimension, subject, minute, share=share, excess=800.0, details=details)


def latency(subject: str, minute: float, *, dimension: str = "endpoint", magnitude: float = 3.0) -> Finding:
    return finding("latency_shift", dimension, subject, minute, metric="p95_ms", magnitude=magnitude)


def resource(minute: float, signal: str = "text_log") -> Finding:
    details = ResourceEventsDetails(events_before=0, events_after=50, error_events=10, host="web-1", example="OutOfMemoryError", z=9.0)
    return finding("resource_saturation", "resource", "memory", minute, signal=signal, metric="events_per_min", details=details)


def self_time(minute: float, calls_ratio: float) -> Finding:
    details = SelfTimeDetails(dependency="postgres", operations=("SELECT",), calls_ratio=calls_ratio,
                              calls_per_request_before=2.0, calls_per_request_after=2.0, p_value=1e-9, n_before=200, n_after=200)
    return finding("self_time_shift", "operation", "postgres", minute, signal="trace", metric="p95_ms", where="web", details=details)


def change(minute: float, *, effect: bool, kind: str = "deploy") -> Finding:
    details = ChangeEffectDetails(
        change_kind=kind, service="web", subject="v2", scope="web", description=None, origin="changes.jsonl", line=1,
        effect=effect, enough_data=True, window_min=10, after_min=10.0, p95_before_ms=40.0,
        p95_after_ms=120.0 if effect else 41.0, error_rate_before=0.001, error_rate_after=0.001, rate_before_per_min=100.0,
        rate_after_per_min=100.0, p_value=1e-6 if effect else 0.5, minutes_before_incident=30.0 - minute, in_incident=minute >= 30,
    )
    return finding("change_effect", "change", f"{kind} web v2", minute, metric="p95_ms", signal="external",
                   magnitude=3.0 if effect else 1.02, confidence=0.9 if effect else 0.0, details=details)


def rank(*findings: Finding) -> Report:
    return build_report(Dataset(), CONTEXT, list(findings))


def kinds(report: Report) -> list[str]:
    return [h.kind for h in report.hypotheses]


def test_the_first_anomaly_outranks_its_effects():
    """A surge at 12:30, latency from 12:31, memory exhaustion from 12:34: the surge is the cause and the
    late resource candidate is discounted as its effect."""
    report = rank(spike("203.0.113.9", 30), latency("/api/rooms", 31), resource(34))
    assert report.incident_detected and kinds(report) == ["traffic_surge", "resource_exhaustion"]
    alone = rank(latency("/api/rooms", 31), resource(34))
    resource_score = report.hypotheses[1].score
    assert resource_score < alone.hypotheses[0].score * TUNING.effect_discount + 0.01


def test_a_cause_that_lags_the_symptoms_loses_precedence():
    early = rank(latency("/api/rooms", 31), resource(30)).hypotheses[0].score
    late = rank(latency("/api/rooms", 31), resource(40)).hypotheses[0].score
    assert late < 0.2 * early


def test_proportional_growth_is_not_a_surge():
    """A source whose share of the extra load matches its share of normal load (lift < 2) is no cause."""
    assert kinds(rank(spike("10.0.0.1", 30, lift=1.2), latency("/api/rooms", 31))) == []
    assert kinds(rank(spike("10.0.0.1", 30, share=0.05), latency("/api/rooms", 31))) == []


def test_a_dependency_loaded_by_a_surge_is_discounted():
    alone = rank(self_time(30, calls_ratio=2.0), latency("web", 31, dimension="service"))
    with_surge = rank(self_time(30, calls_ratio=2.0), spike("203.0.113.9", 30), latency("web", 31, dimension="service"))
    dependency = next(h for h in with_surge.hypotheses if h.kind == "dependency_slowdown")
    assert with_surge.hypotheses[0].kind == "traffic_surge"
    assert dependency.score < 0.6 * alone.hypotheses[0].score
    assert "while calls to it rose x2" in alone.hypotheses[0].summary


def test_a_dependency_whose_calls_did_not_rise_is_not_discounted_by_a_surge():
    alone = rank(self_time(30, calls_ratio=1.0), latency("web", 31, dimension="service"))
    with_surge = rank(self_time(30, calls_ratio=1.0), spike("203.0.113.9", 45), latency("web", 31, dimension="service"))
    dependency = next(h for h in with_surge.hypotheses if h.kind == "dependency_slowdown")
    assert dependency.score == alone.hypotheses[0].score and with_surge.hypotheses[0] == dependency


def test_independent_signals_corroborate():
    one = rank(resource(30), latency("/api/rooms", 31)).hypotheses[0]
    two = rank(resource(30), resource(30, signal="metric"), latency("/api/rooms", 31)).hypotheses[0]
    assert two.score > one.score
    assert two.score / one.score == pytest.approx(TUNING.corroboration_two_signals / TUNING.corroboration_one_signal, abs=0.005)


def test_a_change_without_effect_is_ruled_out_naming_the_cause():
    report = rank(change(20, effect=False), spike("203.0.113.9", 30), latency("/api/rooms", 31))
    assert kinds(report) == ["traffic_surge"]
    [ruled] = report.ruled_out
    assert ruled.kind == "deploy" and "is not the cause" in ruled.reason
    assert kind_named("traffic_surge").cause_phrase(report.hypotheses[0]) in ruled.reason


def test_a_change_after_the_onset_cannot_start_the_incident():
    report = rank(change(45, effect=True), resource(30), latency("/api/rooms", 31))
    assert "deploy" not in kinds(report)
    assert [r.kind for r in report.ruled_out] == ["deploy"] and "cannot have started it" in report.ruled_out[0].reason


def test_a_change_with_an_effect_before_the_symptoms_is_a_cause():
    report = rank(change(29, effect=True), latency("/api/rooms", 30))
    assert kinds(report)[0] == "deploy" and report.ruled_out == ()
    assert report.headline.startswith("Deploy v2 of web at ")


def test_restarts_are_neither_causes_nor_ruled_out():
    report = rank(change(20, effect=False, kind="restart"), change(29, effect=True, kind="restart"), latency("/api/rooms", 30))
    assert "deploy" not in kinds(report) and report.ruled_out == ()


def test_errors_leading_the_latency_are_a_cause_of_their_own():
    errors = finding("error_rate", "service", "payments", 28, metric="error_rate")
    assert kinds(rank(errors, latency("/api/pay", 31)))[0] == "error_burst"
    # errors that rise with the latency are one more symptom of it
    assert "error_burst" not in kinds(rank(finding("error_rate", "service", "payments", 31, metric="error_rate"), latency("/api/pay", 31)))


def test_a_surge_spread_over_many_clients_is_a_broad_surge():
    details = ServiceTrafficDetails(vantage="access.log", clients=120, contributors=400, top_share=0.004, new_sources=350, z=40.0)
    broad = finding("traffic_spike", "service", "web", 30, share=1.0, excess=5000.0, details=details)
    report = rank(broad, latency("web", 31, dimension="service"))
    top = report.hypotheses[0]
    assert (top.kind, top.dimension, top.subject) == ("traffic_surge", "clients", "400 clients")
    assert "spread over 400 clients (350 new; 120 of them make 80% of the extra load, none above 1%)" in top.summary


def test_quiet_findings_report_no_incident():
    report = rank(latency("/api/rooms", 31, magnitude=1.1))
    assert not report.incident_detected and report.headline.startswith("No significant incident")


def test_the_network_and_a_single_host_are_ruled_out_from_findings():
    split = finding("network_split", "scope", "all proxied requests", None, metric="p95_ms_outside_backend", magnitude=1.1,
                    confidence=1.0, details=NetworkSplitDetails(total_before_ms=60.0, total_after_ms=300.0, upstream_before_ms=50.0,
                                                                upstream_after_ms=290.0, outside_before_ms=10.0, outside_after_ms=11.0, endpoints=()))
    spread = finding("host_spread", "service", "web", None, metric="p95_ms", magnitude=2.0, confidence=1.0,
                     details=HostSpreadDetails(hosts=(("web-1", 50.0, 100.0), ("web-2", 40.0, 90.0))))
    report = rank(spike("203.0.113.9", 30), latency("web", 31, dimension="service"), split, spread)
    assert sorted(r.kind for r in report.ruled_out) == ["host", "network"]
    network = next(r for r in report.ruled_out if r.kind == "network")
    assert "p95 time outside the backend 10 -> 11 ms" in network.reason
    host = next(r for r in report.ruled_out if r.kind == "host")
    assert host.subject == "a single host of web" and "web: 2 hosts, p95 x2.0 to x2.2" in host.reason
    # context findings are never the largest deviations, and a host of a service that shifted on its own keeps it open
    quiet = rank(split, spread)
    assert not quiet.incident_detected and quiet.largest_deviations == () and quiet.ruled_out == ()
    own_host = finding("latency_shift", "host", "web-1", 31, metric="p95_ms", where="web")
    assert [r.kind for r in rank(spike("203.0.113.9", 30), latency("web", 31, dimension="service"), own_host, spread).ruled_out] == []
