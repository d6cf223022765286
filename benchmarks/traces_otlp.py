"""Benchmark: OTLP traces decoded into canonical frames (spans + requests + self time), protobuf and JSON.

Generates N distinct spans once (default 1,000,000: 1,000 length-prefixed TracesData messages of 1,000
spans, 4 services, 4 attributes a span, server/client mix; the same spans as OTLP/JSON lines with hex ids,
integer enums and 64-bit integers as strings, as the spec writes them), then times 3 runs of each parser
and of the floor, a bare `TracesData.ParseFromString` loop over the same messages, and prints medians,
spans/s, the ratio to the floor and the load average. Every span id is distinct, so `finish_spans`
does its full work (no duplicates dropped early). Usage: `python benchmarks/traces_otlp.py [spans] [--data DIR] [--runs N]`.

`--analyze` times `rca analyze FILE --format json` instead, as a child process, on the OTLP/JSON file of each
size given (`--analyze 1000000 5000000`; written once into `--data`, JSON only, message by message so the
generator's memory stays small) and on each `--file` (e.g. the OTLP/JSON lines `benchmarks/clickhouse.py` writes:
one span a line, a redis slowdown in its last 30 minutes), for each build named by `--rca LABEL=PATH` (default: the `rca` beside this
Python) in the same run: wall, CPU (user + system of rca and its worker processes, from wait4) and peak
RSS, both of the rca process alone (ru_maxrss) and of rca with its worker processes (the largest sum of
their RSS, polled every 50 ms from /proc). `--zipkin` writes and times the same generated spans as Zipkin
JSON lines (one span a line) instead. `--ingest` times `rca ingest FILE -o TMPDIR` instead of `rca analyze`
(e.g. `--analyze 1000000 5000000 --ingest --file single-1m.pb --rca before=... --rca after=...`).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from rca.parsers import ParseOptions
from rca.parsers.otlp.json import OtlpJsonParser
from rca.parsers.otlp.protobuf import OtlpProtoParser
from rca.parsers.sources import Source

T0 = 1_767_225_600_000_000_000
PER_MESSAGE = 1000


def _kv(key: str, value: str | int) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value))


def message(index: int) -> TracesData:
    """One TracesData of PER_MESSAGE spans: traces of a server span and three client children."""
    resources = []
    for s, service in enumerate(("api", "users", "orders", "search")):
        spans = []
        for i in range(PER_MESSAGE // 4):
            n = index * PER_MESSAGE + s * (PER_MESSAGE // 4) + i
            trace = n // 4
            start = T0 + n * 1_000_000
            if n % 4 == 0:
                spans.append(Span(trace_id=trace.to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"), name="GET /api/x/{id}",
                                  kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start, end_time_unix_nano=start + 50_000_000,
                                  attributes=[_kv("http.route", "/api/x/{id}"), _kv("http.request.method", "GET"),
                                              _kv("http.response.status_code", 200), _kv("client.address", f"10.0.{n % 256}.{n % 7}")]))
            else:
                spans.append(Span(trace_id=trace.to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"),
                                  parent_span_id=(trace * 4 + 1).to_bytes(8, "big"), name="SELECT x", kind=Span.SPAN_KIND_CLIENT,
                                  start_time_unix_nano=start, end_time_unix_nano=start + 5_000_000,
                                  attributes=[_kv("db.system", "postgresql"), _kv("peer.service", "postgres"),
                                              _kv("db.operation", "SELECT"), _kv("server.port", 5432)]))
        rs = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
        rs.resource.attributes.extend([_kv("service.name", service), _kv("service.version", "1.0.0"), _kv("host.name", f"{service}-1")])
        resources.append(rs)
    return TracesData(resource_spans=resources)


def to_json(msg: TracesData) -> bytes:
    """The message as OTLP/JSON: hex ids, integer enums, 64-bit integers as decimal strings."""

    def value(v: AnyValue) -> dict:
        return {"stringValue": v.string_value} if v.WhichOneof("value") == "string_value" else {"intValue": str(v.int_value)}

    def kvs(items) -> list:
        return [{"key": kv.key, "value": value(kv.value)} for kv in items]

    doc = {"resourceSpans": [{
        "resource": {"attributes": kvs(rs.resource.attributes)},
        "scopeSpans": [{"scope": {}, "spans": [{
            "traceId": span.trace_id.hex(), "spanId": span.span_id.hex(),
            **({"parentSpanId": span.parent_span_id.hex()} if span.parent_span_id else {}),
            "name": span.name, "kind": span.kind,
            "startTimeUnixNano": str(span.start_time_unix_nano), "endTimeUnixNano": str(span.end_time_unix_nano),
            "attributes": kvs(span.attributes), "status": {},
        } for span in ss.spans]} for ss in rs.scope_spans],
    } for rs in msg.resource_spans]}
    return orjson.dumps(doc)


def to_zipkin_lines(msg: TracesData) -> bytes:
    """The message's spans as Zipkin v2 JSON lines (one span a line: ids in hex, times in µs, tags as strings)."""
    kinds = {Span.SPAN_KIND_SERVER: "SERVER", Span.SPAN_KIND_CLIENT: "CLIENT"}
    lines = []
    for rs in msg.resource_spans:
        service = next(kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name")
        for ss in rs.scope_spans:
            for span in ss.spans:
                lines.append(orjson.dumps({
                    "traceId": span.trace_id.hex(), "id": span.span_id.hex(),
                    **({"parentId": span.parent_span_id.hex()} if span.parent_span_id else {}),
                    "name": span.name.lower(), "kind": kinds[span.kind], "timestamp": span.start_time_unix_nano // 1000,
                    "duration": (span.end_time_unix_nano - span.start_time_unix_nano) // 1000,
                    "localEndpoint": {"serviceName": service, "ipv4": "10.0.0.1"},
                    "tags": {kv.key: kv.value.string_value or str(kv.value.int_value) for kv in span.attributes},
                }))
    return b"\n".join(lines) + b"\n"


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished worker processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn, count: int = 3) -> tuple[float, float]:
    """Median wall and median CPU seconds (this process, all threads, and the workers it waited for) of `count` runs."""
    runs, cpu = [], []
    for _ in range(count):
        c = _cpu()
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
        cpu.append(_cpu() - c)
    return statistics.median(runs), statistics.median(cpu)


def json_file(folder: Path, spans: int, zipkin: bool = False) -> Path:
    """The OTLP/JSON lines of `spans` spans (as `main` writes them), or the same spans as Zipkin JSON lines,
    written once, message by message."""
    path = folder / (f"traces-{spans}.zipkin.jsonl" if zipkin else f"traces-{spans}.jsonl")
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            for i in range(max(1, spans // PER_MESSAGE)):
                out.write(to_zipkin_lines(message(i)) if zipkin else to_json(message(i)) + b"\n")
        partial.rename(path)
    return path


def _tree_rss_kb(root: int) -> int:
    """RSS (kB) of process `root` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_analyze(rca: str, path: Path, env: dict[str, str], ingest: bool = False) -> tuple[float, float, float, float]:
    """Wall s, CPU s, peak RSS MB of rca alone, peak RSS MB of rca with its workers, of one `rca analyze` (or
    `rca ingest` into a temporary directory)."""
    out = tempfile.TemporaryDirectory(prefix="rca-bench-ingest-")
    command = [rca, "ingest", "-q", str(path), "-o", out.name] if ingest else [rca, "analyze", str(path), "--format", "json"]
    t = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(child.pid))
            done.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    poller.join()
    out.cleanup()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:2])} {path} failed: {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, peak[0] / 1024


def analyze(sizes: list[int], files: list[Path], folder: Path, builds: dict[str, str], runs: int, zipkin: bool = False, ingest: bool = False) -> None:
    """Median wall, CPU and peak RSS of `rca analyze` (`rca ingest`) per build and input (generated sizes, then
    `files`), as a table; the builds' runs interleaved, so load from others falls on each alike."""
    print("| input | build | wall s | CPU s | peak RSS MB (rca) | peak RSS MB (rca + workers) | load before/after |")
    print("|---|---|---:|---:|---:|---:|---|")
    for spans in [*sizes, *files]:
        path = spans if isinstance(spans, Path) else json_file(folder, spans, zipkin)
        name = path.name if isinstance(spans, Path) else f"{spans:,} spans" + (" (Zipkin JSON lines)" if zipkin else "")
        before = os.getloadavg()[0]
        results: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in builds}
        for _ in range(runs):
            for label, rca in builds.items():
                results[label].append(run_analyze(rca, path, dict(os.environ), ingest))
        after = os.getloadavg()[0]
        for label, measured in results.items():
            wall, cpu, own, tree = (statistics.median(r[k] for r in measured) for k in range(4))
            print(f"| {name} | {label} | {wall:.2f} | {cpu:.2f} | {own:,.0f} | {tree:,.0f} | {before:.1f}/{after:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spans", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="keep the generated files here and reuse them on the next run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--analyze", type=int, nargs="*", metavar="SPANS", help="time `rca analyze` on OTLP/JSON files of these sizes")
    parser.add_argument("--file", type=Path, action="append", default=[], help="with --analyze: an existing trace file to time too (repeatable)")
    parser.add_argument("--rca", action="append", default=[], metavar="LABEL=PATH", help="a build of rca to time (repeatable)")
    parser.add_argument("--zipkin", action="store_true", help="with --analyze: the generated spans as Zipkin JSON lines (one span a line)")
    parser.add_argument("--ingest", action="store_true", help="with --analyze: time `rca ingest FILE -o TMPDIR` instead (Parquet written to TMPDIR)")
    args = parser.parse_args()
    if args.analyze is not None:
        builds = dict(b.split("=", 1) for b in args.rca) or {"rca": shutil.which("rca") or str(Path(sys.executable).with_name("rca"))}
        folder = args.data or Path("benchmarks/out/traces")
        folder.mkdir(parents=True, exist_ok=True)
        analyze(args.analyze, args.file, folder, builds, args.runs, args.zipkin, args.ingest)
        return
    count = max(1, args.spans // PER_MESSAGE)
    spans = count * PER_MESSAGE
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        proto_path, json_path = folder / f"traces-{spans}.pb", folder / f"traces-{spans}.jsonl"
        if not (proto_path.exists() and json_path.exists()):
            messages = [message(i) for i in range(count)]
            proto_path.write_bytes(b"".join(struct.pack(">I", m.ByteSize()) + m.SerializeToString() for m in messages))
            json_path.write_bytes(b"\n".join(to_json(m) for m in messages) + b"\n")
            del messages
        payload = proto_path.read_bytes()
        blobs, pos = [], 0
        while pos < len(payload):
            (size,) = struct.unpack(">I", payload[pos:pos + 4])
            blobs.append(payload[pos + 4:pos + 4 + size])
            pos += 4 + size
        del payload

        def floor() -> None:
            for blob in blobs:
                TracesData().ParseFromString(blob)

        def proto() -> None:
            result = OtlpProtoParser().parse(Source(str(proto_path), proto_path), ParseOptions())
            assert result.frames["spans"].height == spans

        def js() -> None:
            result = OtlpJsonParser().parse(Source(str(json_path), json_path), ParseOptions())
            assert result.frames["spans"].height == spans

        before = os.getloadavg()
        t_floor, t_proto, t_json = timed(floor, args.runs), timed(proto, args.runs), timed(js, args.runs)
        after = os.getloadavg()
    print(f"spans: {spans:,}  load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after; medians of {args.runs} runs")
    # CPU seconds are less sensitive to other processes on the machine than wall seconds (not immune:
    # caches and memory bandwidth are shared); polars' threads and the worker processes of big files count in them
    for label, (wall, cpu) in (("ParseFromString floor  ", t_floor), ("OTLP protobuf -> frames", t_proto), ("OTLP JSON -> frames    ", t_json)):
        ratio = "" if label.startswith("Parse") else f"  ({wall / t_floor[0]:.1f}x the floor; CPU {cpu / t_floor[1]:.1f}x)"
        print(f"{label}: {wall:6.2f} s  {spans / wall:>12,.0f} spans/s  CPU {cpu:6.2f} s{ratio}")


if __name__ == "__main__":
    main()
