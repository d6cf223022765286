"""`rca ingest` and `rca analyze` on real-content logs, next to GoAccess (and lnav) in the same run.

    python benchmarks/real_logs.py [--cases apache-1m,varied-1m,jsonl-1m,logfmt-1m,loghub-jsonl-1m,loghub-logfmt-1m] [--runs 3] [--no-peer] [--max-others 0.05]
                                   [--rca before=/path/to/old/rca --rca after=rca]

Inputs are built once into `benchmarks/out/real/` (kept between runs):

- `apache-1m.log`, `apache-5m.log`, `apache-10m.log`: the real Apache access log of `/work/shared/corpus/apache_logs`
  (10,000 lines, 4 days of a public web site: IPv4 and a few IPv6 clients, query strings, `-` bytes,
  referers, long user agents, bots) repeated, each copy shifted by the span of the original so time
  runs forward; the lines are otherwise the corpus's own bytes.
- `varied-1m.log`: a generated nginx combined log with `$request_time $upstream_response_time`,
  holding what real logs hold and the corpus lacks: IPv6 clients, query strings, long static paths,
  `-` for bytes, escaped quotes in user agents and referers, several zone offsets, upstream lists
  (`0.010, 0.020 : 0.003`), `-` upstream times, and one malformed line in 20,000.
- `jsonl-1m.jsonl`: the JSON-lines application log of `rca simulate third-party-surge` scaled to about
  1M lines (the simulator's service log shape: flat keys, dotted names, one request a line);
  `jsonl-5m.jsonl`, `jsonl-10m.jsonl`: `jsonl-1m` repeated, each copy's `ts` shifted by the span of the
  original (as the Apache copies are), for memory that must stay flat with the length of the log;
  `logfmt-1m.log`: the same records as logfmt (`key=value`, values with spaces or quotes quoted).
- `loghub-jsonl-1m.jsonl`, `loghub-logfmt-1m.log`: the messages of the 16 loghub systems in
  `/work/shared/corpus/loghub` (32,000 real lines: HDFS, Spark, OpenSSH, Windows, Android, ...; their
  own level, component and pid where the system logs them) as JSON lines and as logfmt, repeated to
  1M lines with timestamps 10 ms apart (the corpus's own stamps come in 16 formats, some without a
  date); events only, with the pid and event id as attributes.
- `loghub-text-1m.log`, `-5m`, `-10m`: the same records, 10 ms apart, as a plain-text log4j-style log
  (`2026-01-01T00:00:00.010Z WARN [hdfs] dfs.DataNode - message`; level and logger left out where the
  system logs none): the text parser's input, 1M/5M/10M lines for memory flat from 1M to 10M events.
- `metrics-1m.csv`, `-5m`, `-10m`: a generated metrics CSV (`ts,name,value,host,service`, ms timestamps) of 50
  pods' cAdvisor-style series (CPU and request counters, memory, load), a point a second each, three pods'
  CPU and memory shifting from 80% of the span: the metric detectors' input, the points held whole.

rca's bytecode is compiled first, as installing it would (`compile_bytecode`). Each command runs `--runs` times as a child process; its wall time, CPU time (user + system, from
wait4) and peak RSS (ru_maxrss) are recorded and the medians printed, with rca's ratio to the peers
measured in the same run, by wall and by CPU time (absolute times on a shared machine move with others'
load; the ratios less, the CPU ratio least: GoAccess runs on one thread, rca on two). Peers: GoAccess
for access logs; for JSON lines `jq -c .` (every line decoded and printed again) and a Python loop of
`orjson.loads` over the lines (decoding alone, no columns); lnav (`SELECT count(*)`) where it applies.
`--max-others SHARE` runs again (up to 5 times) a run during which other processes kept more than SHARE of a core
busy (the machine's busy time from `/proc/stat` less the run's own CPU), for figures on a shared machine.
`--rca LABEL=PATH` (repeatable) times several builds of rca in the same run, e.g. the commit before a
change against it, so a before/after table shares the machine's load.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

OUT = Path(__file__).resolve().parent / "out" / "real"
CORPUS = Path(os.environ.get("RCA_APACHE_CORPUS", "/work/shared/corpus/apache_logs/apache_logs"))
APACHE_TIME = "%d/%b/%Y:%H:%M:%S %z"
GOACCESS_COMBINED = ["--log-format=COMBINED"]
# nginx combined + $request_time + $upstream_response_time (a list or `-`; skipped by GoAccess)
GOACCESS_VARIED = ['--log-format=%h %^ %^ [%d:%t %^] "%r" %s %b "%R" "%u" %T %^', "--date-format=%d/%b/%Y", "--time-format=%T"]


def repeated_corpus(lines: int, path: Path) -> None:
    """The corpus repeated to `lines` lines, copy k shifted by k times the corpus's span."""
    text = CORPUS.read_text(encoding="utf-8", errors="replace").splitlines()
    corpus = pl.DataFrame({"text": text}).with_columns(
        pl.col("text").str.extract(r"^(.*?\[)").alias("head"),
        pl.col("text").str.extract(r"\[([^\]]+)\]").str.strptime(pl.Datetime("us", "UTC"), APACHE_TIME).alias("ts"),
        pl.col("text").str.extract(r"^[^\]]*(\].*)$").alias("tail"),
    )
    _write_shifted(corpus, lines, path, "%d/%b/%Y:%H:%M:%S +0000", timedelta(hours=1))


def _write_shifted(parts: pl.DataFrame, lines: int, path: Path, time_format: str, gap: timedelta) -> None:
    """Lines of `parts` (head, ts, tail) repeated to `lines` lines, copy k's time shifted by k times
    their span plus `gap`, written as head + time + tail."""
    span = parts["ts"].max() - parts["ts"].min() + gap  # type: ignore[operator]
    with open(path, "w", encoding="utf-8") as out:
        copy = 0
        while copy * parts.height < lines:
            n = min(parts.height, lines - copy * parts.height)
            shifted = parts.head(n).select(pl.concat_str(pl.col("head"), (pl.col("ts") + span * copy).dt.strftime(time_format), pl.col("tail")).alias("line"))
            out.write("\n".join(shifted["line"].to_list()) + "\n")
            copy += 1


def varied(lines: int, path: Path) -> None:
    """nginx combined + request/upstream times with the variety of real logs (see the module doc)."""
    rng = np.random.default_rng(7)
    start = 1_767_225_600
    chunk = 250_000
    ipv6 = np.array([f"2001:db8:{a:x}::{b:x}" for a, b in zip(rng.integers(0, 65535, 2000), rng.integers(1, 65535, 2000), strict=True)])
    ipv4 = np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (5000, 4))])
    statics = np.array([f"/static/{v}/assets/{'/'.join(['bundle'] * (k % 4 + 1))}/app.{k:05x}.{ext}"
                        for k, (v, ext) in enumerate(zip(rng.choice(["v1", "v2", "build-2026-01-05"], 400), rng.choice(["js", "css", "png", "woff2"], 400), strict=True))])
    agents = np.array([
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        "curl/8.5.0", "Googlebot/2.1 (+http://www.google.com/bot.html)", 'Mozilla/5.0 (compatible; \\"quoted\\" crawler/1.0)',
        "python-requests/2.31.0", "-",
    ])
    referers = np.array(["-", "https://www.example.com/", "https://www.google.com/search?q=rca+incident&hl=en", 'https://ex.com/a\\"b'])
    zones = np.array(["+0000", "+0100", "-0700", "+0530"])
    with open(path, "w", encoding="utf-8") as out:
        for offset in range(0, lines, chunk):
            n = min(chunk, lines - offset)
            kind = rng.integers(0, 10, n)
            api = pl.concat_str(pl.lit("/api/v2/items/"), pl.Series(rng.integers(1, 200_000, n)).cast(pl.String))
            query = pl.concat_str(pl.lit("?page="), pl.Series(rng.integers(1, 50, n)).cast(pl.String), pl.lit("&sort=desc&q=a%20b"))
            rt = rng.lognormal(-3.0, 0.9, n)
            up_n = rng.choice([0, 1, 1, 1, 1, 1, 2, 3], n)
            frame = pl.DataFrame({
                "t": (start + np.sort(rng.integers(0, 86_400, n)) + offset // 10).astype(np.int64) * 1_000_000,
                "client": np.where(rng.random(n) < 0.3, rng.choice(ipv6, n), rng.choice(ipv4, n)),
                "kind": kind, "static": rng.choice(statics, n), "status": rng.choice([200, 200, 200, 200, 204, 301, 304, 404, 499, 500, 502], n),
                "bytes": np.where(rng.random(n) < 0.1, "-", rng.integers(0, 500_000, n).astype(str)),
                "ref": rng.choice(referers, n), "ua": rng.choice(agents, n), "zone": rng.choice(zones, n), "rt": rt, "up_n": up_n,
                "method": rng.choice(["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"], n),
            }).with_columns(pl.col("t").cast(pl.Datetime("us", "UTC")))
            one = (pl.col("rt") * 0.9).round(3).cast(pl.String)
            upstream = (
                pl.when(pl.col("up_n") == 0).then(pl.lit("-"))
                .when(pl.col("up_n") == 1).then(one)
                .when(pl.col("up_n") == 2).then(pl.concat_str(pl.lit("0.002, "), one))
                .otherwise(pl.concat_str(pl.lit("0.002, 0.001 : "), one))
            )
            target = (
                pl.when(pl.col("kind") < 4).then(pl.col("static"))
                .when(pl.col("kind") < 7).then(api)
                .otherwise(pl.concat_str(api, query))
            )
            line = pl.concat_str(
                pl.col("client"), pl.lit(" - - ["), pl.col("t").dt.strftime("%d/%b/%Y:%H:%M:%S "), pl.col("zone"), pl.lit('] "'),
                pl.col("method"), pl.lit(" "), target, pl.lit(' HTTP/1.1" '), pl.col("status").cast(pl.String), pl.lit(" "), pl.col("bytes"),
                pl.lit(' "'), pl.col("ref"), pl.lit('" "'), pl.col("ua"), pl.lit('" '), pl.col("rt").round(3).cast(pl.String), pl.lit(" "), upstream,
            )
            text = frame.select(line.alias("l"))["l"].to_list()
            for i in range(0, n, 20_000):  # a malformed line now and then
                text[i] = text[i][: len(text[i]) // 2]
            out.write("\n".join(text) + "\n")


def jsonl(lines: int, path: Path) -> None:
    """The simulator's JSON-lines service log, scaled to about `lines` lines."""
    rca = _rca()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([rca, "simulate", "third-party-surge", "--scale", f"{lines / 47_355:.2f}", "-o", tmp], check=True, stdout=subprocess.DEVNULL)
        with gzip.open(Path(tmp) / "telemetry" / "app.jsonl.gz", "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def repeated_jsonl(lines: int, path: Path) -> None:
    """`jsonl-1m` repeated to `lines` lines, copy k's `ts` shifted by k times its span (plus a minute), so
    time runs forward as in one long log of the same services."""
    source = OUT / CASES["jsonl-1m"].file
    if not source.exists():
        jsonl(CASES["jsonl-1m"].lines, source)
    text = pl.scan_lines(source, name="text").collect()
    parts = text.with_columns(pl.col("text").str.extract_groups(r'^(.*?"ts":")([^"]+)(".*)$').struct.rename_fields(["head", "ts", "tail"])).unnest("text")
    parts = parts.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", time_zone="UTC"))
    _write_shifted(parts, lines, path, "%Y-%m-%dT%H:%M:%S%.3fZ", timedelta(minutes=1))


def _logfmt_value(column: str) -> pl.Expr:
    """A column's values as logfmt values: bare, or quoted with `\\` and `"` escaped when they hold a
    space, a quote or an equals sign; null values left out."""
    text = pl.col(column).cast(pl.String)
    quoted = pl.concat_str(pl.lit('"'), text.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True), pl.lit('"'))
    return pl.when(text.str.contains(r'[ "=]') | (text == "")).then(quoted).otherwise(text)


def _logfmt_lines(frame: pl.DataFrame) -> pl.Series:
    pairs = [pl.when(pl.col(c).is_not_null()).then(pl.concat_str(pl.lit(f"{c}="), _logfmt_value(c))) for c in frame.columns]
    return frame.select(pl.concat_str(pairs, separator=" ", ignore_nulls=True).alias("line"))["line"]


def logfmt(lines: int, path: Path) -> None:
    """The simulator's service log (`jsonl-1m`) as logfmt."""
    source = OUT / CASES["jsonl-1m"].file
    if not source.exists():
        jsonl(lines, source)
    with open(path, "w", encoding="utf-8") as out:
        for batch in pl.read_ndjson(source, infer_schema_length=None).iter_slices(200_000):
            out.write("\n".join(_logfmt_lines(batch).to_list()) + "\n")


LOGHUB = Path(os.environ.get("RCA_LOGHUB_CORPUS", "/work/shared/corpus/loghub"))


def loghub_records() -> pl.DataFrame:
    """The structured lines of every loghub system: service, level, logger, pid, event id, message."""
    frames = []
    for csv in sorted(LOGHUB.glob("*/*_structured.csv")):
        raw = pl.read_csv(csv, infer_schema_length=0)
        pick = {"Level": "level", "Component": "logger", "Pid": "pid", "EventId": "event_id", "Content": "msg"}
        frames.append(raw.select(
            pl.lit(csv.parent.name.lower()).alias("service"),
            *[(pl.col(src) if src in raw.columns else pl.lit(None, pl.String)).alias(dst) for src, dst in pick.items()],
        ))
    return pl.concat(frames)


# loghub's level spellings (Android's letters, HealthApp's none, ...) as a plain-text log writes them
_TEXT_LEVELS = {"I": "INFO", "D": "DEBUG", "V": "TRACE", "W": "WARN", "E": "ERROR", "F": "FATAL", "WARNING": "WARN", "SEVERE": "ERROR"}


def _text_lines(batch: pl.DataFrame) -> pl.Series:
    """loghub records as a log4j-style plain-text log: `ISO LEVEL [system] logger - message` (level and
    logger left out where the system logs none)."""
    level = pl.col("level").str.to_uppercase().replace(_TEXT_LEVELS)
    level = pl.when(level.is_in(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])).then(level + " ").otherwise(pl.lit(""))
    logger = pl.when(pl.col("logger").str.contains(r"^[\w.$\-]+$")).then(pl.col("logger") + " - ").otherwise(pl.lit(""))
    return batch.select(pl.concat_str(pl.col("ts"), pl.lit(" "), level, pl.lit("["), pl.col("service"), pl.lit("] "), logger, pl.col("msg").str.replace_all("\n", " "),
                                      ignore_nulls=True).alias("line"))["line"]


def _loghub(lines: int, path: Path, as_logfmt: bool, as_text: bool = False) -> None:
    records = loghub_records()
    start = 1_767_225_600_000  # ms
    with open(path, "w", encoding="utf-8") as out:
        for offset in range(0, lines, records.height):
            n = min(records.height, lines - offset)
            batch = records.head(n).with_columns(
                (pl.int_range(offset, offset + n) * 10 + start).cast(pl.Datetime("ms", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("ts")
            ).select("ts", "level", "service", "logger", "pid", "event_id", "msg")
            if as_text:
                text = _text_lines(batch)
            else:
                text = _logfmt_lines(batch) if as_logfmt else batch.select(pl.struct(pl.all()).struct.json_encode().alias("line"))["line"]
            out.write("\n".join(text.to_list()) + "\n")


def loghub_jsonl(lines: int, path: Path) -> None:
    _loghub(lines, path, as_logfmt=False)


def loghub_logfmt(lines: int, path: Path) -> None:
    _loghub(lines, path, as_logfmt=True)


def loghub_text(lines: int, path: Path) -> None:
    _loghub(lines, path, as_logfmt=False, as_text=True)


METRIC_PODS = 50  # pods of 5 services, 4 metrics each: 200 series, a point per second each
METRIC_NAMES = ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "http_server_requests_seconds_count", "node_load1")


def metrics_csv(lines: int, path: Path) -> None:
    """A metrics CSV (`ts,name,value,host,service`, ms timestamps) of 50 pods' cAdvisor-style series, a point a
    second each (200 points a second), the counters cumulative; from 80% of the span three pods use three
    times the CPU and twice the memory, so the metric detectors have shifts to report."""
    rng = np.random.default_rng(11)
    series = METRIC_PODS * len(METRIC_NAMES)
    seconds = -(-lines // series)
    shifted = np.arange(seconds) >= int(seconds * 0.8)
    services = ("api", "users", "orders", "search", "db")
    start_ms = 1_767_225_600_000
    columns = []
    for pod in range(METRIC_PODS):
        hot = pod < 3
        cpu = np.cumsum(0.2 * (1 + 2 * (hot & shifted)) + rng.normal(0, 0.01, seconds))
        memory = 2e8 * (1 + (hot & shifted)) + rng.normal(0, 2e6, seconds)
        requests = np.cumsum(rng.poisson(40, seconds)).astype(float)
        load = 1.5 + rng.normal(0, 0.2, seconds)
        for name, values in zip(METRIC_NAMES, (cpu, memory, requests, load), strict=True):
            columns.append(pl.DataFrame({"ts": start_ms + 1000 * np.arange(seconds), "name": name, "value": values,
                                         "host": f"node-{pod}", "service": services[pod % len(services)]}))
    pl.concat(columns).sort("ts", maintain_order=True).head(lines).write_csv(path)


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    build: object  # (lines, path) -> None
    lines: int
    goaccess: list[str] | None  # GoAccess options, None: no GoAccess peer
    lnav: bool = False
    json: bool = False  # jq and an orjson loop as peers


CASES = {
    "apache-1m": Case("apache-1m", "apache-1m.log", repeated_corpus, 1_000_000, GOACCESS_COMBINED),
    "apache-5m": Case("apache-5m", "apache-5m.log", repeated_corpus, 5_000_000, GOACCESS_COMBINED),
    "apache-10m": Case("apache-10m", "apache-10m.log", repeated_corpus, 10_000_000, GOACCESS_COMBINED),
    "varied-1m": Case("varied-1m", "varied-1m.log", varied, 1_000_000, GOACCESS_VARIED),
    "jsonl-1m": Case("jsonl-1m", "jsonl-1m.jsonl", jsonl, 1_000_000, None, lnav=True, json=True),
    "jsonl-5m": Case("jsonl-5m", "jsonl-5m.jsonl", repeated_jsonl, 5_000_000, None, json=True),
    "jsonl-10m": Case("jsonl-10m", "jsonl-10m.jsonl", repeated_jsonl, 10_000_000, None, json=True),
    "logfmt-1m": Case("logfmt-1m", "logfmt-1m.log", logfmt, 1_000_000, None, lnav=True),
    "loghub-jsonl-1m": Case("loghub-jsonl-1m", "loghub-jsonl-1m.jsonl", loghub_jsonl, 1_000_000, None, lnav=True, json=True),
    "loghub-logfmt-1m": Case("loghub-logfmt-1m", "loghub-logfmt-1m.log", loghub_logfmt, 1_000_000, None, lnav=True),
    "loghub-text-1m": Case("loghub-text-1m", "loghub-text-1m.log", loghub_text, 1_000_000, None, lnav=True),
    "loghub-text-5m": Case("loghub-text-5m", "loghub-text-5m.log", loghub_text, 5_000_000, None, lnav=True),
    "loghub-text-10m": Case("loghub-text-10m", "loghub-text-10m.log", loghub_text, 10_000_000, None, lnav=True),
    "metrics-1m": Case("metrics-1m", "metrics-1m.csv", metrics_csv, 1_000_000, None),
    "metrics-5m": Case("metrics-5m", "metrics-5m.csv", metrics_csv, 5_000_000, None),
    "metrics-10m": Case("metrics-10m", "metrics-10m.csv", metrics_csv, 10_000_000, None),
}
PEERS = ("goaccess", "jq", "orjson loop", "lnav")
# decoding alone: every line through orjson.loads, nothing kept
ORJSON_LOOP = "import sys, orjson\nloads = orjson.loads\nfor line in open(sys.argv[1], 'rb'):\n    loads(line)"


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mb: float


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores; `/proc/stat`), 0 where unknown."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def timed(cmd: list[str], max_others: float | None = None, tries: int = 6) -> Run:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process (its own rusage, from wait4).
    With `max_others`: a run during which the rest of the machine kept more than that share of one core
    busy (the machine's busy time less the child's own CPU) is run again, up to `tries` times in all."""
    for attempt in range(1, tries + 1):
        busy = machine_busy_seconds()
        run = _timed_once(cmd)
        others = machine_busy_seconds() - busy - run.cpu
        quiet = max_others is None or others <= max_others * run.wall
        if quiet or attempt == tries:
            if max_others is not None and attempt > 1:
                kept = "" if quiet else f"; kept the last, others took {others / run.wall:.0%} of a core"
                print(f"{Path(cmd[0]).name}: {attempt - 1} run(s) disturbed by other processes taken again{kept}", file=sys.stderr)
            return run
        time.sleep(2.0)
    raise AssertionError("unreachable")


def _timed_once(cmd: list[str]) -> Run:
    t = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}: {err.decode(errors='replace')[-500:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def _rca() -> str:
    return shutil.which("rca") or str(Path(sys.executable).with_name("rca"))


def compile_bytecode(rca: str) -> None:
    """Compile the Python bytecode of the build of rca at `rca` (its script), as installing it does (pip
    writes the .pyc files of a wheel): an editable install run with PYTHONDONTWRITEBYTECODE (as here)
    would otherwise compile every module it imports on every run, ~50 ms of `rca ingest` that no user of
    an installed rca pays. `rca/parsers` and `rca/detectors` are links, which compileall does not follow."""
    with open(rca, "rb") as script:
        first = script.readline()
    python = first[2:].decode().strip() if first.startswith(b"#!") else sys.executable
    code = "import compileall, rca, rca.parsers, rca.detectors; [compileall.compile_dir(p, quiet=1) for m in (rca, rca.parsers, rca.detectors) for p in m.__path__]"
    subprocess.run([python, "-c", code], check=True, stdout=subprocess.DEVNULL)


def commands(case: Case, log: Path, tmp: str, peers: bool, builds: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The commands timed for one case: per build of rca (label -> executable) ingest and analyze, then the peers."""
    cmds: dict[str, list[str]] = {}
    for label, rca in (builds or {"": _rca()}).items():
        suffix = f" ({label})" if label else ""
        cmds[f"rca ingest{suffix}"] = [rca, "ingest", str(log), "--out", f"{tmp}/frames", "-q"]
        cmds[f"rca analyze{suffix}"] = [rca, "analyze", str(log), "-q", "-f", "json", "-o", f"{tmp}/report.json"]
    goaccess, lnav = shutil.which("goaccess"), shutil.which("lnav")
    if peers and case.goaccess is not None and goaccess:
        cmds["goaccess"] = [goaccess, str(log), *case.goaccess, "-o", f"{tmp}/goaccess.json"]
    jq = shutil.which("jq")
    if peers and case.json and jq:
        cmds["jq"] = [jq, "-c", ".", str(log)]
    if peers and case.json:
        cmds["orjson loop"] = [sys.executable, "-c", ORJSON_LOOP, str(log)]
    if peers and case.lnav and lnav:
        cmds["lnav"] = [lnav, "-n", "-c", ";SELECT count(*) FROM all_logs", str(log)]
    return cmds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="apache-1m,varied-1m,jsonl-1m,logfmt-1m,loghub-jsonl-1m,loghub-logfmt-1m", help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated command names to run (e.g. 'rca analyze,goaccess')")
    parser.add_argument("--no-peer", action="store_true", help="time rca only")
    parser.add_argument("--max-others", type=float, default=None, metavar="SHARE",
                        help="on a shared machine: run again any run during which other processes kept more than SHARE "
                             "of one core busy (e.g. 0.05), up to 5 times more")
    parser.add_argument("--rca", action="append", default=[], metavar="LABEL=PATH",
                        help="a build of rca to time (repeatable; default: the rca beside this Python)")
    args = parser.parse_args()
    builds = dict(b.split("=", 1) for b in args.rca) if args.rca else None
    for rca in (builds or {"": _rca()}).values():
        compile_bytecode(shutil.which(rca) or rca)
    OUT.mkdir(parents=True, exist_ok=True)
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    print("| input | command | wall s | CPU s | peak RSS MB | lines/s | lines/CPU-s | vs peers (wall, CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        case = CASES[name.strip()]
        log = OUT / case.file
        if not log.exists():
            partial = log.with_suffix(".partial")
            case.build(case.lines, partial)  # type: ignore[operator]
            partial.rename(log)
        with open(log, "rb") as handle:
            lines = sum(1 for _ in handle)
        with tempfile.TemporaryDirectory() as tmp:
            cmds = commands(case, log, tmp, not args.no_peer, builds)
            medians: dict[str, Run] = {}
            for label, cmd in cmds.items():
                if only and label.split(" (")[0] not in only:
                    continue
                runs = [timed(cmd, args.max_others) for _ in range(args.runs)]
                medians[label] = Run(*(statistics.median(getattr(r, f) for r in runs) for f in ("wall", "cpu", "rss_mb")))
            peers = [p for p in PEERS if p in medians]
            for label, run in medians.items():
                ratio = "; ".join(f"x{medians[p].wall / run.wall:.1f}, x{medians[p].cpu / run.cpu:.1f} {p}" for p in peers) if label.startswith("rca") else ""
                print(f"| {case.name} ({lines / 1e6:.2f}M lines, {log.stat().st_size / 1e6:,.0f} MB) | {label} | {run.wall:.2f} | {run.cpu:.2f} "
                      f"| {run.rss_mb:,.0f} | {lines / run.wall:,.0f} | {lines / run.cpu:,.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
