"""Benchmark: `rca analyze` of spans stored in ClickHouse (chDB) against the same spans read from a file.

Generates N spans in chDB inside the exporter's `otel_traces` table with one SQL statement (traces of
four spans over 3 hours: an `api` server span calling `users` through a client span, `users` calling
redis; in the last 30 minutes redis slows down x8; 0.5% of api requests fail throughout), and, for the file
peer, writes the same rows as OTLP/JSON lines (one span a line, ids in hex, as the file exporter writes).
Then runs `rca analyze` as a child process on each input and reads its wall time and peak RSS
(`os.wait4`: the child alone; chDB runs inside it, so its engine's memory counts), with the peaks of
its anonymous and file-backed (shared library) resident memory apart. The top cause of
both runs is printed so a reader sees they agree.

The machine is shared: quote the ratio of the two paths measured in the same run, not absolutes alone.
Usage: `python benchmarks/clickhouse.py [SPANS ...] [--files-max SPANS] [--data DIR] [--rca LABEL=PATH ...]`
(default 1,000,000 and 10,000,000 spans; the file peer only up to --files-max, default 1,000,000,
because the file path holds every span in memory). `--rca before=/tmp/old-checkout` (repeatable) also
runs the rca of another source checkout (by PYTHONPATH) on the same inputs in the same run, for a
before/after table under the same load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

END_NS = 1_767_225_600_000_000_000 + 3 * 3600 * 1_000_000_000  # the data ends 3 hours after 2026-01-01 00:00 UTC
HOURS = 3
ROUTES = ("/api/items/{id}", "/api/items", "/api/orders/{id}", "/api/orders", "/api/users/{id}", "/api/search", "/api/cart", "/api/login")


def _generate_sql(spans: int) -> str:
    """One INSERT of `spans` spans (a multiple of 4) in the exporter's schema; deterministic (hashes, no rand)."""
    traces = spans // 4
    step_ns = HOURS * 3600 * 1_000_000_000 // traces
    start0 = END_NS - HOURS * 3600 * 1_000_000_000
    incident_from = traces * 5 // 6  # the last 30 minutes of 3 hours
    routes = "[" + ", ".join(f"'{r}'" for r in ROUTES) + "]"
    return f"""
    INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
                                  ResourceAttributes, SpanAttributes, Duration, StatusCode)
    WITH intDiv(number, 4) AS t, number % 4 AS pos, t >= {incident_from} AS incident,
         {start0} + t * {step_ns} AS start_ns,
         (2000000 + cityHash64(t, 3) % 3000000) * if(incident, 8, 1) AS d3,
         d3 + 1000000 + 5000000 + cityHash64(t, 2) % 2000000 AS d2,
         d2 + 1000000 AS d1,
         d1 + 2000000 + 10000000 + cityHash64(t, 0) % 10000000 AS d0,
         cityHash64(t, 9) % 1000 < 5 AS failed,
         {routes}[1 + cityHash64(t, 1) % {len(ROUTES)}] AS route
    SELECT fromUnixTimestamp64Nano(toInt64(start_ns + multiIf(pos = 0, 0, pos = 1, 2000000, pos = 2, 2500000, 3500000))),
           leftPad(lower(hex(toUInt128(t + 1))), 32, '0'), leftPad(lower(hex(toUInt64(number + 1))), 16, '0'),
           if(pos = 0, '', leftPad(lower(hex(toUInt64(number))), 16, '0')),
           multiIf(pos = 0, concat('GET ', route), pos = 1, 'GET users', pos = 2, 'GET /internal/users/{{id}}', 'GET cache'),
           multiIf(pos = 0 OR pos = 2, 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT'),
           multiIf(pos <= 1, 'api', 'users'),
           map('service.name', multiIf(pos <= 1, 'api', 'users'), 'host.name', concat(multiIf(pos <= 1, 'api', 'users'), '-', toString(t % 3))),
           multiIf(pos = 0, map('http.route', route, 'http.request.method', 'GET', 'http.response.status_code', if(failed, '500', '200'),
                                'client.address', concat('10.0.', toString(t % 200), '.', toString(t % 7))),
                   pos = 1, map('peer.service', 'users', 'http.request.method', 'GET'),
                   pos = 2, map('http.route', '/internal/users/{{id}}', 'http.request.method', 'GET', 'http.response.status_code', '200'),
                   map('db.system', 'redis', 'peer.service', 'redis')),
           toUInt64(multiIf(pos = 0, d0, pos = 1, d1, pos = 2, d2, d3)),
           if(pos = 0 AND failed, 'STATUS_CODE_ERROR', 'STATUS_CODE_UNSET')
    FROM numbers({spans})"""


_EXPORT_SQL = """
SELECT concat('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"', ServiceName,
              '"}},{"key":"host.name","value":{"stringValue":"', ResourceAttributes['host.name'],
              '"}}]},"scopeSpans":[{"spans":[{"traceId":"', TraceId, '","spanId":"', SpanId,
              if(ParentSpanId = '', '', concat('","parentSpanId":"', ParentSpanId)),
              '","name":"', SpanName, '","kind":', if(SpanKind = 'SPAN_KIND_SERVER', '2', '3'),
              ',"startTimeUnixNano":"', toString(toUnixTimestamp64Nano(Timestamp)),
              '","endTimeUnixNano":"', toString(toUnixTimestamp64Nano(Timestamp) + Duration),
              '","status":{"code":', if(StatusCode = 'STATUS_CODE_ERROR', '2', '0'), '},"attributes":[',
              arrayStringConcat(arrayMap(k -> concat('{"key":"', k, '","value":{"stringValue":"', SpanAttributes[k], '"}}'),
                                         mapKeys(SpanAttributes)), ','),
              ']}]}]}]}') AS line
FROM otel.otel_traces ORDER BY Timestamp"""


def _ddl() -> list[str]:
    from rca.parsers.clickhouse import TRACES_DDL

    return ["CREATE DATABASE IF NOT EXISTS otel", TRACES_DDL.format(table="`otel`.`otel_traces`")]


def build(folder: Path, spans: int, files: bool) -> tuple[Path, Path | None]:
    """The chDB directory (and the OTLP/JSON file) of `spans` spans, generated once and reused."""
    from chdb import session

    store = folder / f"chdb-{spans}"
    file = folder / f"traces-{spans}.otlp.jsonl" if files else None
    if not store.exists():
        sess = session.Session(str(store))
        try:
            for statement in _ddl():
                sess.query(statement)
            sess.query(_generate_sql(spans))
            sess.query("OPTIMIZE TABLE otel.otel_traces FINAL")
        finally:
            sess.close()
    if file is not None and not file.exists():
        sess = session.Session(str(store))
        try:
            literal = str(file).replace("'", "\\'")
            sess.query(f"INSERT INTO FUNCTION file('{literal}', 'LineAsString') {_EXPORT_SQL}")
        finally:
            sess.close()
    return store, file


# `rca` from a source checkout: an editable install's import hook would otherwise win over sys.path
_FROM_CHECKOUT = """import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
runpy.run_module("rca.cli", run_name="__main__")"""


def _resident(pid: int) -> tuple[int, int]:
    """Anonymous and file-backed resident kB of a running process (0, 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("RssAnon", "RssFile")))
    except OSError:
        return 0, 0
    return int(fields.get("RssAnon", "0 kB").split()[0]), int(fields.get("RssFile", "0 kB").split()[0])


def measure(target: str, checkout: Path | None = None) -> tuple[float, float, float, float, str]:
    """Wall seconds, peak RSS in MB (the child's ru_maxrss from wait4: rca and chDB inside it; no other
    process is started), the peaks of its anonymous and of its file-backed resident memory (sampled every
    10 ms from /proc: the file-backed part is shared library pages, the anonymous part what rca and the
    engine allocated) and the top cause of `rca analyze TARGET` (with the rca of the source `checkout` when given)."""
    command = [sys.executable, "-m", "rca.cli"] if checkout is None else [sys.executable, "-c", _FROM_CHECKOUT, str(checkout)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([*command, "analyze", target, "-f", "json", "-q"], stdout=out, stderr=err)
        anon = file = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            a, f = _resident(proc.pid)
            anon, file = max(anon, a), max(file, f)
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"rca analyze {target} exited {proc.returncode}: {stderr.decode()[-500:]}")
    report = orjson.loads(stdout)
    top = report["hypotheses"][0] if report["hypotheses"] else None
    cause = f"{top['kind']} {top['subject']} ({top['where']})" if top else "no cause"
    return wall, usage.ru_maxrss / 1024, anon / 1024, file / 1024, cause


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spans", nargs="*", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--files-max", type=int, default=1_000_000, help="largest size also measured from a file")
    parser.add_argument("--data", type=Path, help="keep the generated stores and files here and reuse them")
    parser.add_argument("--rca", action="append", default=[], metavar="LABEL=PATH", help="also run the rca of this source checkout")
    args = parser.parse_args()
    builds: list[tuple[str, Path | None]] = [("", None)] + [(f" {label}", Path(path)) for label, _, path in (a.partition("=") for a in args.rca)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'spans':>12} {'input':<16} {'wall s':>8} {'peak MB':>9} {'anon MB':>8} {'file MB':>8}  top cause    (load average {os.getloadavg()[0]:.1f})")
        for spans in args.spans:
            spans -= spans % 4
            store, file = build(folder, spans, spans <= args.files_max)
            rows = [("chdb", f"chdb:{store}")] + ([("file", str(file))] if file is not None else [])
            for label, checkout in builds:
                figures = {}
                for name, target in rows:
                    wall, rss, anon, file_mb, cause = measure(target, checkout)
                    figures[name] = (wall, rss)
                    print(f"{spans:>12,} {name + label:<16} {wall:>8.2f} {rss:>9.0f} {anon:>8.0f} {file_mb:>8.0f}  {cause}", flush=True)
                if "file" in figures:
                    (cw, cr), (fw, fr) = figures["chdb"], figures["file"]
                    print(f"{'':>12} {'ratio' + label:<16} {'x' + format(fw / cw, '.1f'):>8} {'x' + format(fr / cr, '.1f'):>9}  file / chdb")
        print(f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
