"""Detectors over 5,000,000 request rows (in memory), median of 3 runs, next to a plain polars
group-by over the same rows (the floor: one pass that any detector must at least make), with the CPU
seconds (user + sys of this process, all threads) the detectors used and the load average, since the
machine is shared and wall times are noisy.

Two workloads (`--surge`):
- `extra` (default): from 60% of the two hours a partner (one address, its own user agent) calls one
  endpoint on top of the normal traffic, with more 5xx, and everything gets 2.5x slower; every path of
  the traffic, latency and errors detectors runs (rate spike per dimension, latency shifts, error rate).
- `replace`: the partner takes 40% of the requests instead (the total rate stays flat), the workload of
  the first measurements (5.62 s): the traffic detector then stops at the vantage's total.

    python benchmarks/detectors_5m.py [--rows 5000000] [--surge extra|replace] [--breakdown]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import polars as pl

from rca import detectors
from rca.detectors.windows import choose_context
from rca.model import Dataset, conform

USER_AGENTS = np.array([
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "ChatApp/3.4 (Android 14; okhttp/4.12.0)",
])


def make(rows: int, seed: int = 0, surge: str = "replace") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    span_s = 2 * 3600
    base_n = int(rows * 0.8) if surge == "extra" else rows
    seconds = rng.uniform(0, span_s, base_n)
    if surge == "extra":
        seconds = np.concatenate([seconds, rng.uniform(0.6 * span_s, span_s, rows - base_n)])
    order = np.argsort(seconds, kind="stable")
    seconds = seconds[order]
    surge_on = seconds > 0.6 * span_s
    endpoints = np.array([f"/api/e{i}/{{id}}" for i in range(40)])
    sources = np.array([f"10.{i // 250}.{i % 250}.{j}" for i in range(200) for j in (1, 2)])
    endpoint = rng.integers(0, len(endpoints), rows)
    source = rng.integers(0, len(sources), rows)
    # extra: the rows drawn for the partner, wherever they sorted to; replace: 40% of the surge's rows
    partner = order >= base_n if surge == "extra" else surge_on & (rng.random(rows) < 0.4)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    error_p = np.where(partner & (surge == "extra"), 0.05, 0.003)
    frame = pl.DataFrame({
        "ts": (start + seconds * 1e6).astype(np.int64),
        "endpoint": np.where(partner, "/api/hot", endpoints[endpoint]),
        "source": np.where(partner, "203.0.113.5", sources[source]),
        "duration_ms": rng.lognormal(3.5, 0.4, rows) * np.where(surge_on, 2.5, 1.0),
        "status": np.where(rng.random(rows) < error_p, 503, 200).astype(np.int32),
        "method": "GET", "service": "web", "host": np.array(["h1", "h2", "h3"])[rng.integers(0, 3, rows)],
        "user_agent": (np.where(partner, "AcmeSync/2.1", USER_AGENTS[rng.integers(0, len(USER_AGENTS), rows)])
                       if surge == "extra" else "Mozilla/5.0 Firefox/121.0"),
        "signal": "access_log",
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    return conform(frame, "requests")  # type: ignore[return-value]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--surge", choices=("extra", "replace"), default="extra")
    parser.add_argument("--breakdown", action="store_true", help="also time each detector (median of 3)")
    args = parser.parse_args()
    data = Dataset(requests=make(args.rows, surge=args.surge))
    context = choose_context(data)
    detectors.run_all(data, context)  # warm-up: imports (scipy.stats) and polars' thread pool
    runs, cpus, floors = [], [], []
    per_detector: dict[str, list[tuple[float, float]]] = {}
    for _ in range(3):
        t, c = time.perf_counter(), cpu_seconds()
        findings = detectors.run_all(data, context)
        runs.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
        t = time.perf_counter()
        data.requests.group_by(pl.col("ts").dt.truncate("60s"), "endpoint").agg(pl.len(), pl.col("duration_ms").quantile(0.95))
        floors.append(time.perf_counter() - t)
        if args.breakdown:
            for detector in detectors.all_detectors():
                t, c = time.perf_counter(), cpu_seconds()
                detector.run(data, context)
                per_detector.setdefault(detector.name, []).append((time.perf_counter() - t, cpu_seconds() - c))
    detectors_s, floor_s = statistics.median(runs), statistics.median(floors)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"rows {args.rows:,} ({args.surge})  findings {len(findings)}  detectors median {detectors_s:.2f} s "
          f"({args.rows / detectors_s:,.0f} rows/s, runs {' '.join(f'{r:.2f}' for r in runs)})  "
          f"cpu median {statistics.median(cpus):.2f} s  one group-by median {floor_s:.2f} s  ratio x{detectors_s / floor_s:.1f}  "
          f"load {load}")
    for name, times in per_detector.items():
        wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        print(f"  {name:<10} {wall:.2f} s (cpu {cpu:.2f} s)")


if __name__ == "__main__":
    main()
