"""A slowdown in step with a traffic surge's load, where the load did not go, is that surge's effect
(rca/ranking/surge_effects.py): hand-made findings for each condition of the rule, then generated surges
(names, endpoints, factors and ramps vary by seed) where no such effect may rival the surge."""

from __future__ import annotations

import pytest

from rca.findings import MetricShiftDetails, ServiceTimeDetails
from rca.model import Dataset, Finding, Report
from rca.ranking import TUNING, build_report
from tests.ranking.test_ranker import CONTEXT, finding, spike


def own_time(service: str, minute: float, requests_ratio: float, *, magnitude: float = 4.5) -> Finding:
    details = ServiceTimeDetails(service=service, pod=f"{service}-1", reference="own baseline", reference_ms=20.0,
                                 self_ms=20.0 * magnitude, z=9.0, requests=300, requests_ratio=requests_ratio)
    return finding("service_time_shift", "service", service, minute, metric="self_ms", magnitude=magnitude,
                   signal="trace", where=f"{service}-1", details=details)


def cpu(service: str, minute: float) -> Finding:
    details = MetricShiftDetails(family="cpu", role="resource", metric_kind="utilisation", side="own", pod=f"{service}-1", z=12.0,
                                 baseline_median=20.0, baseline_scale=2.0, incident_level=90.0, limit_share_change=0.7)
    return finding("metric_shift", "service", service, minute, metric="CpuUsageRate(%)", magnitude=4.5, signal="metric",
                   where=f"{service}-1", details=details)


def report(*findings: Finding) -> Report:
    return build_report(Dataset(), CONTEXT, list(findings))


def hypothesis(rep: Report, subject: str):
    return next(h for h in rep.hypotheses if h.kind == "service_fault" and h.subject == subject)


SURGE = (spike("198.51.100.7", 31.0), own_time("search", 32.0, requests_ratio=6.0))


def test_a_service_slowing_in_step_with_the_load_is_the_surges_effect():
    rep = report(*SURGE, own_time("billing", 32.0, requests_ratio=1.0))
    assert rep.hypotheses[0].kind == "traffic_surge"
    billing = hypothesis(rep, "billing")
    assert billing.effect_of == 1
    assert "slowed from 12:32" in billing.summary and "under the load of the traffic surge from 198.51.100.7" in billing.summary
    alone = hypothesis(report(own_time("billing", 32.0, requests_ratio=1.0)), "billing")
    assert billing.score <= alone.score * TUNING.explained_by_surge_discount + 0.001


@pytest.mark.parametrize("why", ["starts later", "own resource", "nothing loaded", "no surge"])
def test_a_fault_of_its_own_stays_a_cause(why):
    """Each condition of the rule, broken alone, keeps the slowdown a cause at full score."""
    slow = own_time("billing", 32.0, requests_ratio=1.0)
    findings = {
        "starts later": [*SURGE, own_time("billing", 45.0, requests_ratio=1.0)],  # begins 13 buckets after the load's effects
        "own resource": [*SURGE, slow, cpu("billing", 32.0)],  # its own pod's CPU rose: evidence of its own
        "nothing loaded": [SURGE[0], slow],  # no slowdown that rising requests explain: the surge loaded nothing seen
        "no surge": [own_time("search", 32.0, requests_ratio=6.0), slow],
    }[why]
    billing = hypothesis(report(*findings), "billing")
    assert billing.effect_of is None
    assert "is at fault" in billing.summary


def test_a_dependency_loaded_by_the_surge_names_it():
    from tests.ranking.test_ranker import self_time

    rep = report(*SURGE, self_time(32.0, calls_ratio=4.0))
    dep = next(h for h in rep.hypotheses if h.kind == "dependency_slowdown")
    assert dep.effect_of == 1 and "rose with the traffic surge from 198.51.100.7" in dep.summary


SEEDS = range(5)


@pytest.mark.slow
def test_generated_surges_have_no_rival_among_their_effects(simulated):
    """third-party-surge with traces: the partner's flood loads some services (which endpoints varies by seed);
    the platform's shared capacity slows the others in step. Before the rule, an unloaded service's own time
    scored up to 0.72 of the surge's (seed 1), a gateway whose calls per request fell with the new mix of
    requests 0.88 (seed 3)."""
    for outcome in simulated("third-party-surge", SEEDS, minutes=60, scale=0.5, formats=("access", "jsonl", "traces")):
        rep = outcome.report
        top = rep.hypotheses[0]
        assert top.kind == "traffic_surge", (outcome.seed, top.summary)
        rivals = [(h.kind, h.subject, h.score) for h in rep.hypotheses[1:]
                  if h.kind in ("service_fault", "dependency_slowdown") and h.score > 0.5 * top.score]
        assert not rivals, (outcome.seed, rivals)
        assert any(h.effect_of == 1 for h in rep.hypotheses[1:]), outcome.seed
