"""Accuracy over many simulated incidents: a per-scenario table of AC@1 (true cause at rank 1 and an
incident reported), AC@3 (true cause among the first three), decoys ruled out, the detectors' figures
(seeds where a finding names the cause with the right kind, dimension and subject; the error of its
onset in buckets, max and median) and seconds per analysis.

Method: for each scenario and seed, `rca.simulate.generate` writes the telemetry to a temporary folder,
`rca.pipeline.analyze` reads it as a user would, and `rca.truth.matches` judges each hypothesis against
truth.json. `quiet` counts as correct when no incident is reported. Run on demand; never part of pytest.

    python benchmarks/accuracy.py [--seeds 20] [--minutes 60] [--scale 0.5] [--formats access,jsonl,text,traces]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from rca.pipeline import analyze
from rca.simulate import SCENARIOS, generate
from rca.truth import finding_names_cause, matches


def decoys_ruled_out(report, truth: dict) -> tuple[int, int]:
    """(decoys named in the ruled-out list, decoys in truth): a decoy counts when its subject (a version)
    appears in a ruled-out subject or reason."""
    decoys = truth.get("decoys") or []
    texts = [f"{r.subject} {r.reason}".lower() for r in report.ruled_out]
    hit = sum(1 for d in decoys if any(str(d.get("subject", "")).lower() in t for t in texts))
    return hit, len(decoys)


def run_one(scenario: str, seed: int, minutes: int, scale: float, formats: tuple[str, ...]) -> dict:
    """Simulate and analyze one incident; return the rank of the true cause and the timing."""
    incident = generate(scenario, seed, minutes=minutes, scale=scale, formats=formats)
    with tempfile.TemporaryDirectory() as tmp:
        incident.write(Path(tmp))
        t0 = time.perf_counter()
        report = analyze([str(Path(tmp) / "telemetry")])
        seconds = time.perf_counter() - t0
    root = incident.truth.get("root_cause")
    rank = next((h.rank for h in report.hypotheses if matches(h, root)), None)
    onset_error = None
    if root is not None and report.context is not None:
        truth = datetime.fromisoformat(root["onset"].replace("Z", "+00:00"))
        errors = [abs((f.onset - truth).total_seconds()) / report.context.bucket_s
                  for f in report.findings if finding_names_cause(f, root) and f.onset is not None]
        onset_error = min(errors) if errors else None
    ruled, decoys = decoys_ruled_out(report, incident.truth)
    if root is None:
        ok1 = ok3 = not report.incident_detected
    else:
        ok1 = rank == 1 and report.incident_detected
        ok3 = rank is not None and rank <= 3
    return {"ok1": ok1, "ok3": ok3, "rank": rank, "ruled": ruled, "decoys": decoys, "seconds": seconds,
            "onset_error": onset_error}


def main() -> None:
    """Print the per-scenario accuracy table and the overall figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--formats", default="access,jsonl,text,traces")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = ap.parse_args()
    formats = tuple(f for f in args.formats.split(",") if f)
    scenarios = [s for s in args.scenarios.split(",") if s]

    print(f"seeds={args.seeds} minutes={args.minutes} scale={args.scale} formats={','.join(formats)}")
    print(f"{'scenario':<22}{'AC@1':>7}{'AC@3':>7}{'decoys out':>12}{'found':>7}{'onset max':>10}{'median':>8}{'s/run':>8}  misses (seed:rank)")
    total1 = total3 = n = 0
    for scenario in scenarios:
        rows = [run_one(scenario, seed, args.minutes, args.scale, formats) for seed in range(args.seeds)]
        ok1 = sum(r["ok1"] for r in rows)
        ok3 = sum(r["ok3"] for r in rows)
        ruled = sum(r["ruled"] for r in rows)
        decoys = sum(r["decoys"] for r in rows)
        secs = sum(r["seconds"] for r in rows) / len(rows)
        misses = " ".join(f"{seed}:{r['rank']}" for seed, r in enumerate(rows) if not r["ok1"])
        decoy_text = f"{ruled}/{decoys}" if decoys else "-"
        onsets = [r["onset_error"] for r in rows if r["onset_error"] is not None]
        found = f"{len(onsets)}/{len(rows)}" if rows[0]["onset_error"] is not None or onsets else "-"
        worst = f"{max(onsets):.2f}" if onsets else "-"
        middle = f"{statistics.median(onsets):.2f}" if onsets else "-"
        print(f"{scenario:<22}{ok1 / len(rows):>7.2f}{ok3 / len(rows):>7.2f}{decoy_text:>12}{found:>7}{worst:>10}{middle:>8}{secs:>8.2f}  {misses}")
        total1, total3, n = total1 + ok1, total3 + ok3, n + len(rows)
    print(f"{'overall':<22}{total1 / n:>7.2f}{total3 / n:>7.2f}")


if __name__ == "__main__":
    main()
