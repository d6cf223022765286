"""Benchmark: time to generate one incident per scenario, against reading the same files back with the
project's loader in the same run (a peer measured on the same machine under the same load).

    python -m rca.simulate.bench [REPEATS]

Prints, per scenario, the median generation time, the output size and the generate/load ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from rca.parsers import ParseOptions
    from rca.parsers.loader import load_dataset
    from rca.simulate import SCENARIOS, generate

    args = sys.argv[1:] if argv is None else argv
    repeats = int(args[0]) if args else 3
    root = Path(tempfile.mkdtemp(prefix="rca-sim-bench-"))
    print(f"{'scenario':20} {'generate':>9} {'load':>7} {'ratio':>6} {'requests':>9} {'gzip KiB':>9}")
    for name in SCENARIOS:
        gen, load = [], []
        for seed in range(repeats):
            t0 = time.perf_counter()
            incident = generate(name, seed=seed)
            gen.append(time.perf_counter() - t0)
            incident.write(root / f"{name}-{seed}")
            t0 = time.perf_counter()
            ds = load_dataset([str(root / f"{name}-{seed}" / "telemetry")], ParseOptions())
            load.append(time.perf_counter() - t0)
        g, ld = sorted(gen)[repeats // 2], sorted(load)[repeats // 2]
        size = sum(len(v) for k, v in incident.files.items() if k.endswith(".gz")) // 1024
        n = ds.requests.filter(ds.requests["signal"] == "access_log").height
        print(f"{name:20} {g:8.2f}s {ld:6.2f}s {g / ld:6.2f} {n:9,d} {size:9,d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
