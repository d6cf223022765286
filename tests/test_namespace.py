"""The code imports its parsers and detectors as `rca.parsers` / `rca.detectors`, never by the bare
top-level names: PyPI has distributions named `parsers` and `detectors`, and a module imported under two
names would also register its formats and detectors twice."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = re.compile(r"^\s*(from|import)\s+(parsers|detectors)\b", re.MULTILINE)


def test_no_bare_parsers_or_detectors_imports():
    offenders = []
    for folder in ("rca", "parsers", "detectors", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_relative_to(ROOT / "rca" / "parsers") or path.is_relative_to(ROOT / "rca" / "detectors"):
                continue
            if BARE.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_subpackages_are_the_top_level_folders():
    import rca.detectors
    import rca.parsers

    assert Path(rca.parsers.__file__).resolve().parent == ROOT / "parsers"
    assert Path(rca.detectors.__file__).resolve().parent == ROOT / "detectors"
