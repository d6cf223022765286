"""Each shipped sample: the true cause is rank 1 and every decoy in its truth.json is ruled out; quiet
reports no incident."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rca.pipeline import analyze
from rca.truth import matches

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NAMES = sorted(p.name for p in SAMPLES.iterdir() if (p / "truth.json").exists()) if SAMPLES.is_dir() else []


@pytest.mark.parametrize("name", NAMES)
def test_sample_true_cause_first_and_decoys_ruled_out(name):
    truth = orjson.loads((SAMPLES / name / "truth.json").read_bytes())
    report = analyze([str(SAMPLES / name / "telemetry")])
    assert all(s.rejected == 0 for s in report.inputs), [(s.path, s.rejected_examples) for s in report.inputs]
    if truth["root_cause"] is None:
        assert not report.incident_detected, report.headline
        return
    assert report.incident_detected
    assert matches(report.hypotheses[0], truth["root_cause"]), [(h.kind, h.subject) for h in report.hypotheses[:3]]
    for decoy in truth["decoys"]:
        if decoy["kind"] == "network":
            assert any(r.kind == "network" for r in report.ruled_out), decoy
        else:
            wanted = f"{decoy['service']} {decoy['subject']}"
            assert any(r.kind == decoy["kind"] and r.subject == wanted for r in report.ruled_out), (decoy, report.ruled_out)


def test_there_is_a_sample_per_scenario():
    from rca.simulate import SCENARIOS

    assert set(NAMES) == set(SCENARIOS)
