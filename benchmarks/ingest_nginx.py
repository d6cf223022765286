"""`rca ingest` on a generated nginx combined log with request times, next to GoAccess on the same file.

    python benchmarks/ingest_nginx.py [--lines 5000000] [--runs 3]

Writes `benchmarks/out/access-<N>.log` once (about 200 bytes a line), then times `rca ingest` and
`goaccess` (Debian package; skipped with a note when absent) `--runs` times each, in the same run, and
prints medians, lines/s, the ratio, and each command's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

OUT = Path(__file__).resolve().parent / "out"


def generate(lines: int, path: Path) -> None:
    rng = np.random.default_rng(1)
    start = 1_767_225_600
    chunk = 500_000
    with open(path, "w") as out:
        for offset in range(0, lines, chunk):
            n = min(chunk, lines - offset)
            df = pl.DataFrame({
                "t": (start + np.sort(rng.integers(0, 86_400, n)) + offset).astype(np.int64) * 1_000_000,
                "a": rng.integers(1, 255, n), "b": rng.integers(0, 255, n), "c": rng.integers(0, 255, n), "d": rng.integers(1, 255, n),
                "p": rng.integers(0, 50, n), "id": rng.integers(1, 100_000, n), "s": rng.choice([200, 200, 200, 201, 304, 404, 500], n),
                "bytes": rng.integers(100, 50_000, n), "rt": rng.lognormal(-3.0, 0.8, n),
            }).with_columns(pl.col("t").cast(pl.Datetime("us", "UTC")))
            lines_df = df.select(pl.concat_str([
                pl.col("a").cast(pl.String), pl.lit("."), pl.col("b").cast(pl.String), pl.lit("."), pl.col("c").cast(pl.String), pl.lit("."),
                pl.col("d").cast(pl.String), pl.lit(" - - ["), pl.col("t").dt.strftime("%d/%b/%Y:%H:%M:%S +0000"), pl.lit('] "GET /api/r'),
                pl.col("p").cast(pl.String), pl.lit("/"), pl.col("id").cast(pl.String), pl.lit(' HTTP/1.1" '), pl.col("s").cast(pl.String),
                pl.lit(" "), pl.col("bytes").cast(pl.String), pl.lit(' "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36" '),
                pl.col("rt").round(3).cast(pl.String), pl.lit(" "), (pl.col("rt") * 0.95).round(3).cast(pl.String),
            ]).alias("l"))
            out.write("\n".join(lines_df["l"].to_list()) + "\n")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (its own rusage, from wait4)."""
    t = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {child.returncode}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="time rca only")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    log = OUT / f"access-{args.lines}.log"
    if not log.exists():
        generate(args.lines, log)
    print(f"{log.name}: {args.lines:,} lines, {log.stat().st_size / 1e6:,.0f} MB")
    rca = shutil.which("rca") or str(Path(sys.executable).with_name("rca"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["rca ingest"] = [timed([rca, "ingest", str(log), "--out", f"{tmp}/frames", "-q"]) for _ in range(args.runs)]
        goaccess = None if args.no_peer else shutil.which("goaccess")
        if goaccess:
            cmd = [goaccess, str(log), "--log-format=%h %^[%d:%t %^] \"%r\" %s %b \"%R\" \"%u\" %T", "--date-format=%d/%b/%Y",
                   "--time-format=%T", "-o", f"{tmp}/report.json"]
            results["goaccess"] = [timed(cmd) for _ in range(args.runs)]
        else:
            print("goaccess not installed (apt-get install goaccess): no peer measured")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        medians[name] = wall
        print(f"{name:12} median {wall:7.2f} s  {args.lines / wall:12,.0f} lines/s  peak RSS <= {max(r[1] for r in runs):,.0f} MB"
              f"  runs {', '.join(f'{r[0]:.2f}' for r in runs)}")
    if "goaccess" in medians:
        print(f"ratio: rca ingest is x{medians['goaccess'] / medians['rca ingest']:.1f} goaccess's lines/s")


if __name__ == "__main__":
    main()
