"""Detectors over 5,000,000 request rows (in memory), median of 3 runs, next to a plain polars
group-by over the same rows (the floor: one pass that any detector must at least make).

    python benchmarks/detectors_5m.py [--rows 5000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import polars as pl

import detectors
from detectors.windows import choose_context
from rca.model import Dataset, conform


def make(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    span_s = 2 * 3600
    seconds = np.sort(rng.uniform(0, span_s, rows))
    surge = seconds > 0.6 * span_s
    endpoints = np.array([f"/api/e{i}/{{id}}" for i in range(40)])
    sources = np.array([f"10.{i // 250}.{i % 250}.{j}" for i in range(200) for j in (1, 2)])
    endpoint = rng.integers(0, len(endpoints), rows)
    source = rng.integers(0, len(sources), rows)
    partner = surge & (rng.random(rows) < 0.4)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    frame = pl.DataFrame({
        "ts": (start + seconds * 1e6).astype(np.int64),
        "endpoint": np.where(partner, "/api/hot", endpoints[endpoint]),
        "source": np.where(partner, "203.0.113.5", sources[source]),
        "duration_ms": rng.lognormal(3.5, 0.4, rows) * np.where(surge, 2.5, 1.0),
        "status": np.where(rng.random(rows) < 0.003, 503, 200).astype(np.int32),
        "method": "GET", "service": "web", "host": np.array(["h1", "h2", "h3"])[rng.integers(0, 3, rows)],
        "user_agent": "Mozilla/5.0 Firefox/121.0", "signal": "access_log",
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    return conform(frame, "requests")  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    data = Dataset(requests=make(args.rows))
    context = choose_context(data)
    runs, floors = [], []
    for _ in range(3):
        t = time.perf_counter()
        findings = detectors.run_all(data, context)
        runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        data.requests.group_by(pl.col("ts").dt.truncate("60s"), "endpoint").agg(pl.len(), pl.col("duration_ms").quantile(0.95))
        floors.append(time.perf_counter() - t)
    detectors_s, floor_s = statistics.median(runs), statistics.median(floors)
    print(f"rows {args.rows:,}  findings {len(findings)}  detectors median {detectors_s:.2f} s "
          f"({args.rows / detectors_s:,.0f} rows/s)  one group-by median {floor_s:.2f} s  ratio x{detectors_s / floor_s:.1f}")


if __name__ == "__main__":
    main()
