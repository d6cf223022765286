"""Shared fixtures. Tests are deterministic (seeded) and never touch the network."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from rca.model import Report

# Property tests draw the same examples on every run (the suite is deterministic); a failure found by
# exploring with other seeds belongs in the test as an @example.
settings.register_profile("rca", derandomize=True, database=None)
settings.load_profile("rca")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"

# Never let a developer's or CI's environment change rendered output.
os.environ.setdefault("NO_COLOR", "1")
os.environ.pop("GITHUB_STEP_SUMMARY", None)
os.environ.pop("GITHUB_ACTIONS", None)
os.environ.pop("FORCE_COLOR", None)


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    return CORPUS


@dataclass(frozen=True)
class Outcome:
    """One simulated incident, analysed: its seed, its truth and the report."""

    seed: int
    truth: dict
    report: Report


_OUTCOMES: dict[tuple, list[Outcome]] = {}


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> Callable[..., list[Outcome]]:
    """`simulated(scenario, seeds, **generate_options)` -> the incidents of `rca simulate` for those seeds,
    each written and analysed (every folder it writes, read together) once per test session: the accuracy
    sweeps of several tests share them."""
    from rca.pipeline import analyze
    from rca.simulate import generate

    def get(scenario: str, seeds: Iterable[int], **options: Any) -> list[Outcome]:
        seeds = tuple(seeds)
        key = (scenario, seeds, tuple(sorted(options.items())))
        if key not in _OUTCOMES:
            outcomes = []
            for seed in seeds:
                path = tmp_path_factory.mktemp(f"{scenario}-{seed}")
                incident = generate(scenario, seed, **options)
                incident.write(path)
                inputs = sorted(str(p) for p in path.iterdir() if p.is_dir())
                outcomes.append(Outcome(seed, incident.truth, analyze(inputs)))
            _OUTCOMES[key] = outcomes
        return _OUTCOMES[key]

    return get
