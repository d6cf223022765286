"""Shared fixtures. Tests are deterministic (seeded) and never touch the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

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
