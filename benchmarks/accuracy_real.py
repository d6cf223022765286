"""Accuracy on real incidents: AC@1, AC@3, Avg@5 overall and per fault type, the slowest case and peak memory.

    python benchmarks/accuracy_real.py [--data ../shared/realdata] [--cmd 'rca analyze {inputs} --format json']

Runs the shared scorer (`../shared/tools/score.py`, which runs the command once per case folder and
matches its hypotheses against the folder's truth.json) over every system folder of the real-data
directory, then groups its per-case ranks by the truth's `fault`. Skips with a note when the data or the
scorer is absent (they live beside the checkout, not in it). Wall times are as measured under whatever
else runs on the machine: compare ratios within one run, not absolutes across runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "realdata"
DEFAULT_SCORER = HERE.parent.parent / "shared" / "tools" / "score.py"


def ac(ranks: list[int | None], k: int) -> float:
    """Share of cases whose truth ranks within the top k."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def avg5(ranks: list[int | None]) -> float:
    return sum(ac(ranks, k) for k in range(1, 6)) / 5


def score_system(folder: Path, scorer: Path, cmd: str) -> dict:
    """Run the scorer over one system's case folders; its JSON results."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, str(scorer), "--cases", str(folder), "--cmd", cmd, "--json", out.name],
                       check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of systems, each a folder of case folders")
    ap.add_argument("--scorer", type=Path, default=DEFAULT_SCORER)
    ap.add_argument("--cmd", default="rca analyze {inputs} --format json")
    a = ap.parse_args(argv)
    if not a.data.is_dir() or not a.scorer.is_file():
        print(f"accuracy_real: skipped, no real data at {a.data} or no scorer at {a.scorer}", file=sys.stderr)
        return 0
    systems = sorted(p for p in a.data.iterdir() if p.is_dir() and any(p.glob("*/truth.json")))
    if not systems:
        print(f"accuracy_real: skipped, no case folders under {a.data}", file=sys.stderr)
        return 0
    for system in systems:
        result = score_system(system, a.scorer, a.cmd)
        by_fault: dict[str, list[int | None]] = defaultdict(list)
        for case in result["cases"]:
            truth = json.loads((system / case["case"] / "truth.json").read_text())
            by_fault[str(truth.get("fault") or truth.get("kind"))].append(case["rank"])
        every = [r for ranks in by_fault.values() for r in ranks]
        print(f"{system.name}: {len(every)} cases")
        print(f"  {'fault':18} {'cases':>5} {'AC@1':>6} {'AC@3':>6} {'Avg@5':>6}")
        for fault, ranks in sorted(by_fault.items()):
            print(f"  {fault:18} {len(ranks):5d} {ac(ranks, 1):6.2f} {ac(ranks, 3):6.2f} {avg5(ranks):6.2f}")
        print(f"  {'all':18} {len(every):5d} {ac(every, 1):6.2f} {ac(every, 3):6.2f} {avg5(every):6.2f}")
        slowest = max(result["cases"], key=lambda c: c["wall_s"])
        busiest = max(result["cases"], key=lambda c: c.get("cpu_s") or 0.0)
        print(f"  slowest case {slowest['case']} {slowest['wall_s']:.1f} s wall; most CPU {busiest['case']} "
              f"{busiest.get('cpu_s') or 0.0:.1f} s (wall times grow with the machine's load, CPU times do not); peak memory "
              f"{max(c['peak_rss_mb'] for c in result['cases']):.0f} MB; failures {result['summary']['failures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
