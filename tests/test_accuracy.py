"""Accuracy across many seeds, on every scenario of `rca simulate`.

Detectors (issue #4): on every seed the injected effect is found with the right kind, dimension and
subject (`rca.truth.finding_names_cause`), its onset within two buckets of the truth's; on
quiet days no finding but change comparisons in at least 19 of 20. Ranker (issue #5): the true cause at
rank 1 in at least 90% of the seeds (AC@1 >= 0.9) and in the top 3 in all, no incident on >= 19 of 20
quiet days. `benchmarks/accuracy.py` prints the same figures with every format.

The log scenarios run on the access log and the text log (60 minutes at half the default traffic, to
keep the sweep fast). The dependency slowdown shows only in traces: it runs on the access log, the
services' request logs and the traces, at the simulator's default traffic, because traces are sampled
(8%): at half the traffic a 30 s bucket holds two or three database spans, too few to place a ramp of
one to four buckets within two of them, while at the default scale it holds about five.

Each scenario's 20 incidents are generated and analysed once per test session (`simulated`, tests/conftest.py).
"""

from __future__ import annotations

import statistics
from datetime import datetime

import pytest

from rca.model import Finding
from rca.pipeline import analyze
from rca.simulate import SCENARIOS, generate
from rca.truth import finding_names_cause, matches

SEEDS = range(20)
MINUTES = 60
SETUP = {"dependency-slowdown": (("access", "jsonl", "traces"), 1.0)}
DEFAULT_SETUP = (("access", "text"), 0.5)
INCIDENTS = tuple(name for name in SCENARIOS if name != "quiet")


@pytest.fixture(scope="session")
def incidents(simulated):
    """scenario -> its 20 analysed incidents, generated once per session (`simulated`, tests/conftest.py)."""

    def get(scenario: str):
        formats, scale = SETUP.get(scenario, DEFAULT_SETUP)
        return simulated(scenario, SEEDS, minutes=MINUTES, scale=scale, formats=formats)

    return get


def _onset_error(finding: Finding, root: dict, bucket_s: int) -> float:
    truth = datetime.fromisoformat(root["onset"].replace("Z", "+00:00"))
    return abs((finding.onset - truth).total_seconds()) / bucket_s  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", INCIDENTS)
def test_injected_effect_found_on_time_and_ranked_first(scenario, incidents):
    at1 = at3 = 0
    errors: dict[int, float] = {}
    missed, misranked = [], []
    for outcome in incidents(scenario):
        root, report = outcome.truth["root_cause"], outcome.report
        hits = [f for f in report.findings if finding_names_cause(f, root) and f.onset is not None]
        if hits:
            errors[outcome.seed] = min(_onset_error(f, root, report.context.bucket_s) for f in hits)
        else:
            missed.append(outcome.seed)
        ranks = [h.rank for h in report.hypotheses[:3] if matches(h, root)]
        at1 += bool(report.incident_detected and ranks and ranks[0] == 1)
        at3 += bool(ranks)
        if not (ranks and ranks[0] == 1):
            misranked.append((outcome.seed, [(h.kind, h.subject) for h in report.hypotheses[:3]]))
    n = len(SEEDS)
    figures = {seed: round(e, 2) for seed, e in errors.items()}
    assert not missed, f"effect not found on seeds {missed}"
    late = {seed: e for seed, e in figures.items() if e > 2.0}
    assert not late, f"onset more than 2 buckets off on {late}; max {max(figures.values())}, median {statistics.median(figures.values())}"
    assert at1 / n >= 0.9, misranked
    assert at3 == n, misranked


@pytest.mark.slow
def test_quiet_days_report_no_incident_and_no_finding(incidents):
    outcomes = incidents("quiet")
    detected = [o.seed for o in outcomes if o.report.incident_detected]
    noisy = [(o.seed, [(f.kind, f.dimension, f.subject) for f in o.report.findings if f.kind != "change_effect"][:3])
             for o in outcomes if any(f.kind != "change_effect" for f in o.report.findings)]
    assert len(detected) <= 1, detected
    assert len(noisy) <= 1, noisy


ALL_INPUT_SEEDS = range(20, 25)  # seeds the per-format sweep above does not use


@pytest.mark.slow
@pytest.mark.parametrize("scenario", INCIDENTS)
def test_every_input_read_together_still_ranks_the_cause_first(scenario, tmp_path):
    """Issue #18 item 1: more data made the ranking worse (third-party-surge seed 7: the access log alone
    ranked the surge first, all inputs together a connection-pool exhaustion whose evidence came five
    minutes later). Every input the simulator writes, read together, over more seeds: the cause at rank 1
    on every seed, its onset within two buckets on all but one (memory-exhaustion seed 20: the memory
    events rise out of a baseline that has some, and the first abnormal bucket comes 3.6 buckets after
    the truth's onset; the earlier code placed it the same)."""
    misranked, late = [], {}
    for seed in ALL_INPUT_SEEDS:
        incident = generate(scenario, seed, minutes=MINUTES, scale=0.5)
        incident.write(tmp_path / str(seed))
        report = analyze([str(tmp_path / str(seed) / "telemetry")])
        root = incident.truth["root_cause"]
        ranks = [h.rank for h in report.hypotheses[:3] if matches(h, root)]
        if not (report.incident_detected and ranks and ranks[0] == 1):
            misranked.append((seed, [(h.kind, h.subject) for h in report.hypotheses[:3]]))
        hits = [f for f in report.findings if finding_names_cause(f, root) and f.onset is not None]
        error = min((_onset_error(f, root, report.context.bucket_s) for f in hits), default=float("inf"))
        if error > 2.0:
            late[seed] = round(error, 2)
    assert not misranked, misranked
    assert len(late) <= 1, late
