"""A big input analysed in bounded memory (a sample of its rows, aggregates of them all) names the same
cause as the same input analysed with every row kept. `RCA_MAX_REQUEST_ROWS` lowers the bound, so a
generated access log of tens of thousands of lines takes the path millions of lines take."""

from __future__ import annotations

from pathlib import Path

import pytest

from rca.pipeline import analyze
from rca.simulate import generate


@pytest.mark.parametrize(("scenario", "seed"), [("user-surge", 11), ("third-party-surge", 12)])
def test_bounded_path_names_the_same_top_cause(scenario: str, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    paths = generate(scenario, seed=seed, formats=("access",)).write(tmp_path)
    log = [str(p) for p in paths if "access" in p.name]
    full = analyze(log)
    rows = full.inputs[0].rows["requests"]
    monkeypatch.setenv("RCA_MAX_REQUEST_ROWS", str(rows // 5))
    bounded = analyze(log)
    assert bounded.inputs[0].rows["requests"] == rows  # every request counted
    assert any("uniform sample" in w for w in bounded.inputs[0].warnings)  # the bounded path was taken
    assert not any("uniform sample" in w for w in full.inputs[0].warnings)
    assert full.hypotheses and bounded.hypotheses
    top, top_bounded = full.hypotheses[0], bounded.hypotheses[0]
    assert (top_bounded.kind, top_bounded.dimension, top_bounded.where) == (top.kind, top.dimension, top.where)
    assert bounded.inputs[0].top_endpoints[:3] == full.inputs[0].top_endpoints[:3]
