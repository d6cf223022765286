"""Benchmark: JSON lines and logfmt, the per-record path (orjson or a dict per line + `records_to_frames`)
against the vectorized readers, in the same run, on the same bytes.

Generates N seeded lines of realistic application logs (default 200,000): JSON lines as one service
writes them (flat `ts/level/msg` with nested `http`/`url` objects, 60% requests; pino-style lines; one
dialect per file, as a service writes) and logfmt lines (quoted messages with escaped quotes, `key=`).
Times 3 runs of each path and prints medians of wall and CPU time (`time.process_time`: the machine
has 2 cores that other jobs may share), lines/s and the ratio, and checks the frames are equal.
Usage: `python benchmarks/jsonl_parse.py [lines] [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import orjson
from polars.testing import assert_frame_equal

from rca.parsers import ParseOptions
from rca.parsers.jsonl import JsonLinesParser
from rca.parsers.logfmt import LogfmtParser
from rca.parsers.sources import Source

T0 = 1_767_693_600.0
SERVICES = ("api", "users", "orders", "search")
ROUTES = ("/api/users/{id}", "/api/orders/{id}/items", "/api/search", "/health")


def json_lines(n: int, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + i * 0.01
        svc = rnd.choice(SERVICES)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
        if rnd.random() < 0.6:
            route = rnd.choice(ROUTES)
            rec = {"ts": stamp, "level": "info", "service": svc, "host": f"{svc}-{rnd.randint(1, 3)}", "service.version": "1.2.3",
                   "msg": "request completed", "http": {"route": route, "method": rnd.choice(["GET", "POST"])},
                   "url": {"path": route.replace("{id}", str(rnd.randint(1, 99999)))}, "status": rnd.choice([200, 200, 200, 404, 500]),
                   "duration_ms": round(rnd.expovariate(1 / 40), 1), "client.address": f"10.0.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}",
                   "trace_id": f"{rnd.getrandbits(128):032x}"}
        else:
            rec = {"ts": stamp, "level": rnd.choice(["info", "warn", "error"]), "service": svc, "host": f"{svc}-1",
                   "msg": rnd.choice(["cache miss", "pool exhausted for key 42", "retrying upstream \"billing\""]),
                   "pid": 1234, "req": {"id": i, "attempt": rnd.randint(1, 3)}, "region": "eu-west-1"}
        out.append(orjson.dumps(rec))
    return b"\n".join(out) + b"\n"


def logfmt_lines(n: int, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        svc = rnd.choice(SERVICES)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 + i * 0.01)) + "Z"
        if rnd.random() < 0.6:
            out.append(f'ts={stamp} level=info service={svc} host={svc}-{rnd.randint(1, 3)} msg="request completed" method=GET '
                       f'path=/api/users/{rnd.randint(1, 9999)} status={rnd.choice([200, 200, 500])} '
                       f'duration_ms={rnd.expovariate(1 / 40):.1f} client_ip=10.0.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}')
        else:
            out.append(f'ts={stamp} level={rnd.choice(["warn", "error", "debug"])} caller=db.go:{rnd.randint(1, 400)} '
                       f'msg="pool \\"main\\" exhausted" waiting={rnd.randint(0, 50)} err= component=pool')
    return ("\n".join(out) + "\n").encode()


def timed(fn, source: Source, runs: int):
    walls, cpus, result = [], [], None
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        result = fn(source, ParseOptions())
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lines", nargs="?", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n = args.lines
    for label, parser, data, origin in (("JSON lines", JsonLinesParser(), json_lines(n), "app.jsonl"),
                                        ("logfmt", LogfmtParser(), logfmt_lines(n), "app.log")):
        source = Source(origin=origin, data=data)
        old_wall, old_cpu, old = timed(parser.parse_per_record, source, args.runs)
        new_wall, new_cpu, new = timed(parser.parse, source, args.runs)
        for name, frame in old.frames.items():
            assert_frame_equal(new.frames[name], frame)
        assert (new.rejected, new.rejected_examples) == (old.rejected, old.rejected_examples)
        print(f"{label}: {n:,} lines, {len(data) / 1e6:.1f} MB, frames equal")
        for what, wall, cpu in (("per-record", old_wall, old_cpu), ("vectorized", new_wall, new_cpu)):
            print(f"  {what:11s} wall {wall:6.2f} s ({n / wall:>9,.0f} lines/s)   cpu {cpu:6.2f} s ({n / cpu:>9,.0f} lines/s)")
        print(f"  ratio       wall x{old_wall / new_wall:.1f}   cpu x{old_cpu / new_cpu:.1f}")
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
