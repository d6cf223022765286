"""Accuracy across many seeds: the true cause at rank 1 (AC@1) and in the top 3 (AC@3), and no incident
on quiet days. Logs only (access log + text log) keeps the sweep fast; traces add corroboration."""

from __future__ import annotations

import pytest

from rca.pipeline import AnalyzeOptions, analyze
from rca.simulate import generate
from rca.truth import matches

SEEDS = range(20)
LOG_SCENARIOS = ("feature-surge", "user-surge", "memory-exhaustion", "cache-exhaustion", "third-party-surge")


def _rank_of_truth(scenario: str, seed: int, tmp_path) -> tuple[int | None, bool]:
    incident = generate(scenario, seed, minutes=60, scale=0.5, formats=("access", "text"))
    incident.write(tmp_path)
    report = analyze([str(tmp_path / "telemetry")], AnalyzeOptions())
    root = incident.truth["root_cause"]
    for h in report.hypotheses[:3]:
        if matches(h, root):
            return h.rank, report.incident_detected
    return None, report.incident_detected


@pytest.mark.slow
@pytest.mark.parametrize("scenario", LOG_SCENARIOS)
def test_true_cause_ranks_first(scenario, tmp_path_factory):
    ranks = [_rank_of_truth(scenario, seed, tmp_path_factory.mktemp(f"{scenario}-{seed}")) for seed in SEEDS]
    at1 = sum(1 for rank, detected in ranks if rank == 1 and detected) / len(ranks)
    at3 = sum(1 for rank, _ in ranks if rank is not None) / len(ranks)
    assert at1 >= 0.9, (scenario, ranks)
    assert at3 == 1.0, (scenario, ranks)


@pytest.mark.slow
def test_quiet_days_report_no_incident(tmp_path_factory):
    detected = []
    for seed in SEEDS:
        path = tmp_path_factory.mktemp(f"quiet-{seed}")
        generate("quiet", seed, minutes=60, scale=0.5, formats=("access", "text")).write(path)
        detected.append(analyze([str(path / "telemetry")]).incident_detected)
    assert sum(detected) <= 1, detected
