"""Real dev-set incidents (trimmed copies, see tests/realdata/README.md): the faulty service ranks first,
named as the subject or `where` of the top hypothesis, and a network delay is named as one, at the pod."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rca.pipeline import AnalyzeOptions, analyze

CASES = sorted(p for p in (Path(__file__).parent / "realdata").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_faulty_service_ranks_first(case):
    truth = json.loads((case / "truth.json").read_text())
    report = analyze([str(p) for p in sorted(case.glob("*.gz"))], AnalyzeOptions())
    top = report.hypotheses[0]
    assert top.subject == truth["subject"]
    if truth["fault"] == "network_delay":
        assert top.kind == "network_delay" and top.where == truth["pod"]
    else:
        assert top.kind == "service_fault" and top.where == truth["pod"]
