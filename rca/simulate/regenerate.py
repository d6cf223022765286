"""Regenerate the shipped samples: seed 0 of every scenario at default size, under `samples/<scenario>/`.

    python -m rca.simulate.regenerate [SAMPLES_DIR]

Output is byte-for-byte reproducible (seeded generator, gzip without timestamps); the test suite
regenerates each sample in memory and compares it with the files shipped in the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rca.simulate import SCENARIOS, generate

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"
SAMPLE_SEED = 0


def regenerate(root: Path = SAMPLES_DIR) -> list[Path]:
    """Write seed 0 of every scenario under `root/<scenario>/`; returns the written paths."""
    written: list[Path] = []
    for name in SCENARIOS:
        written += generate(name, seed=SAMPLE_SEED).write(root / name)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else SAMPLES_DIR
    for path in regenerate(root):
        print(f"{path.stat().st_size:>9,d}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
