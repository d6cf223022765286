"""Telemetry where it is stored at scale: the OpenTelemetry collector's ClickHouse exporter tables.

Inputs are URLs: `clickhouse://[user[:password]@]host[:port][/database]` (the HTTP interface, port 8123;
`clickhouses://` for TLS, port 8443; the password may come from RCA_CLICKHOUSE_PASSWORD instead and is
never shown) or `chdb:PATH` (an embedded chDB data directory, the same engine in-process). The database
defaults to `otel`; the URL query names other tables (`?traces=my_spans&logs=my_logs`), the time range
(`since=`, `until=`: RFC 3339 or e.g. `3h` before the end of the data; default the last 3 hours of data)
and the sample bound (`max_spans=`).

Method (the work runs in ClickHouse, rca receives aggregates and a bounded sample):
1. The columns of every table are checked against the exporter's schema (`system.columns`): a missing
   table, a missing column or a column of another type is one error naming the table and column.
2. The time range is resolved from `max(Timestamp)` and filtered first (the tables are partitioned by
   day and ordered by time within a service, so ClickHouse prunes the rest).
3. Rows in range per table (`count`, first and last time). When the range holds at most `max_spans`
   spans, the detectors get every row and the analysis is the one the same data gets from files.
4. Otherwise, first the request aggregates, exact, computed in ClickHouse in one pass over the server
   spans (`store_request_aggregates`): per bucket and per service, route or path shape, source, user
   agent, host and version, the counts and log-binned latency histograms of `rca.aggregates`, equal to
   what rca computes from the same spans as rows. They go to `Dataset.request_aggregates` (the detectors
   that read them get exact counts) and the input's summary (totals, p50/p95/p99, top routes and sources).
   Then a uniform sample of whole traces, the same fraction of every trace id's hash
   (`cityHash64(TraceId)`), and the log records of the same fraction (by trace id, or by time and body
   when a record has none). Whole traces keep span trees intact, so self time, fan-out and error origin
   are computed on them as for files; figures the detectors take from rows are estimates from the
   sample (the summary says by how much to scale counts). Metric points beyond `MAX_METRIC_POINTS` are
   averaged per interval in ClickHouse.
Every query is parameterised (values as `{name:Type}` parameters; table names checked against a strict
identifier pattern and quoted) and bounded by `QUERY_TIMEOUT_S`. A server that cannot be reached or a
query that fails is an `InputError`: one line, exit 2.

`write_store` does the reverse for `rca ingest --out URL`: spans, log events and metric points of parsed
files into the exporter's tables (created with its DDL when absent).
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import polars as pl

from rca.errors import InputError
from rca.model import (
    AGGREGATE_KEY,
    LATENCY_SKETCH_SCHEMA,
    REQUEST_AGGREGATES_SCHEMA,
    SKETCH_ALPHA,
    SKETCH_MIN_MS,
    SKETCH_ZERO_BIN,
    SPAN_KINDS,
    Dataset,
    RequestAggregates,
    conform,
)
from rca.parsers import ParseOptions, ParseResult
from rca.parsers.endpoints import routes_from_shapes
from rca.parsers.otlp.common import ALIASES, RESOURCE_ALIASES
from rca.parsers.sources import is_store_url
from rca.parsers.spantree import finish_spans
from rca.parsers.versions import POD_NAME

if TYPE_CHECKING:
    import pyarrow as pa

EXTRA_HINT = "install the extra: pip install 'incident-rca[clickhouse]'"
PASSWORD_ENV = "RCA_CLICKHOUSE_PASSWORD"
DEFAULT_DATABASE = "otel"
DEFAULT_TABLES = {"traces": "otel_traces", "logs": "otel_logs", "gauge": "otel_metrics_gauge",
                  "sum": "otel_metrics_sum", "histogram": "otel_metrics_histogram"}
DEFAULT_RANGE = timedelta(hours=3)  # the last 3 hours of data unless since= or --baseline-since says otherwise
MAX_SPANS = 25_000  # spans the detectors get at most (6k traces of 4 spans: ~35 a minute over 3 hours); bounds rca's memory.
# Counts, latency, change effects and host spread of a sampled store read its exact aggregates; the sample serves
# span trees (self time, fan-out, error origin), the canary split and examples
MAX_METRIC_POINTS = 200_000  # beyond this, points are averaged per interval in ClickHouse
QUERY_TIMEOUT_S = 120  # per query, server side (max_execution_time) and on the socket
JOIN_MEMORY_BYTES = 32 << 20  # the callers' sort-merge join spills to disk beyond this
GROUP_MEMORY_BYTES = 64 << 20  # the aggregates' GROUP BY spills to disk beyond this (sources x buckets can be many; 16 MB: +50% time)
SAMPLE_RESOLUTION = 1_000_000  # a trace is kept when cityHash64(TraceId) % this < keep
TOP_N = 5
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

# The exporter's columns rca reads, with the type family each must have (from the exporter's DDL:
# exporter/clickhouseexporter/internal/sqltemplates/*_table.sql).
REQUIRED_COLUMNS: dict[str, dict[str, str]] = {
    "traces": {"Timestamp": "DateTime64", "TraceId": "String", "SpanId": "String", "ParentSpanId": "String",
               "SpanName": "String", "SpanKind": "String", "ServiceName": "String", "ResourceAttributes": "Map",
               "SpanAttributes": "Map", "Duration": "Integer", "StatusCode": "String"},
    "logs": {"Timestamp": "DateTime64", "TraceId": "String", "SeverityText": "String", "SeverityNumber": "Integer",
             "ServiceName": "String", "Body": "String", "ResourceAttributes": "Map", "LogAttributes": "Map"},
    "gauge": {"TimeUnix": "DateTime64", "ServiceName": "String", "MetricName": "String", "MetricUnit": "String",
              "ResourceAttributes": "Map", "Attributes": "Map", "Value": "Number"},
    "sum": {"TimeUnix": "DateTime64", "ServiceName": "String", "MetricName": "String", "MetricUnit": "String",
            "ResourceAttributes": "Map", "Attributes": "Map", "Value": "Number"},
    "histogram": {"TimeUnix": "DateTime64", "ServiceName": "String", "MetricName": "String", "MetricUnit": "String",
                  "ResourceAttributes": "Map", "Attributes": "Map", "Count": "Integer", "Sum": "Number"},
}
_TYPE_PATTERNS = {
    "DateTime64": re.compile(r"^DateTime64\(\d"),
    "String": re.compile(r"^(String|FixedString\(\d+\))$"),
    "Integer": re.compile(r"^U?Int(8|16|32|64|128|256)$"),
    "Number": re.compile(r"^(U?Int(8|16|32|64|128|256)|Float(32|64)|Decimal.*)$"),
    "Map": re.compile(r"^Map\((String|LowCardinality\(String\)), *String\)$"),
}
_TIME_COLUMN = {"traces": "Timestamp", "logs": "Timestamp", "gauge": "TimeUnix", "sum": "TimeUnix", "histogram": "TimeUnix"}
_TYPE_NAMES = {"DateTime64": "DateTime64(9)", "String": "String", "Integer": "an integer", "Number": "a number",
               "Map": "Map(LowCardinality(String), String)"}


# --- URLs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL; `display` is what reports show (never the password)."""

    scheme: str  # "clickhouse", "clickhouses" or "chdb"
    database: str = DEFAULT_DATABASE
    tables: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TABLES))
    named: frozenset[str] = frozenset()  # tables the URL named: these must exist
    host: str = ""
    port: int | None = None
    user: str = "default"
    password: str = field(default="", repr=False)
    path: str = ""  # chdb data directory
    since: str | None = None
    until: str | None = None
    max_spans: int = MAX_SPANS

    @property
    def display(self) -> str:
        if self.scheme == "chdb":
            return f"chdb:{self.path}/{self.database}"
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.user}@{self.host}{port}/{self.database}"


def parse_store_url(text: str) -> StoreUrl:
    """Parse `clickhouse[s]://[user[:password]@]host[:port][/database][?query]` or `chdb:PATH[?query]`."""
    if text.startswith("chdb:"):
        rest, _, query = text[len("chdb:"):].partition("?")
        if not rest:
            raise InputError("a chdb URL needs a data directory: chdb:PATH", file=text)
        base: dict[str, Any] = {"scheme": "chdb", "path": rest}
        shown = f"chdb:{rest}"
    else:
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise InputError(f"not a valid ClickHouse URL ({exc})", file=_redact(text)) from None
        if not parts.hostname:
            raise InputError("a ClickHouse URL needs a host: clickhouse://[user[:password]@]host[:port][/database]", file=_redact(text))
        database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
        base = {"scheme": parts.scheme, "host": parts.hostname, "port": port, "database": database,
                "user": unquote(parts.username or "default"),
                "password": unquote(parts.password) if parts.password is not None else os.environ.get(PASSWORD_ENV, "")}
        query = parts.query
        shown = _redact(text)
    tables = dict(DEFAULT_TABLES)
    named = set()
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in tables:
            tables[key] = value
            named.add(key)
        elif key == "database":
            base["database"] = value
        elif key in ("since", "until"):
            base[key] = value
        elif key == "max_spans":
            if not value.isdigit() or int(value) < 1:
                raise InputError(f"max_spans must be a positive integer, not {value!r}", file=shown)
            base["max_spans"] = int(value)
        else:
            known = ", ".join([*DEFAULT_TABLES, "database", "since", "until", "max_spans"])
            raise InputError(f"unknown URL parameter {key!r} (known: {known})", file=shown)
    for name in [base.get("database", DEFAULT_DATABASE), *tables.values()]:
        _check_identifier(name, shown)
    return StoreUrl(tables=tables, named=frozenset(named), **base)


def _redact(text: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", text)


def _check_identifier(name: str, where: str) -> None:
    if not _IDENTIFIER.match(name):
        raise InputError(f"{name!r} is not a plain database or table name (letters, digits and _)", file=where)


def _quoted(database: str, table: str) -> str:
    """`database`.`table`, both already checked against the identifier pattern."""
    return f"`{database}`.`{table}`"


# --- clients ------------------------------------------------------------------------------------


class StoreClient(Protocol):
    """The few operations rca needs from ClickHouse, over HTTP or embedded."""

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame: ...

    def command(self, sql: str) -> None: ...

    def insert(self, database: str, table: str, rows: pa.Table) -> None: ...

    def close(self) -> None: ...


class _ChdbClient:
    def __init__(self, path: str):
        from chdb import session

        self._session = session.Session(path)
        self._release()

    def _release(self) -> None:
        """Give back what the last query left: the engine's freed memory (its allocator keeps it for reuse
        otherwise) and the library pages it mapped (`_release_library_pages`). The peak of a read is then
        one query's, not the sum of every query's leftovers and the analysis after them."""
        self._session.query("SYSTEM JEMALLOC PURGE")
        _release_library_pages("_chdb")

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        # Arrow IPC bytes (LZ4-compressed by the engine) read by polars directly: through pyarrow's Table
        # the same result cost ~50 MB more, kept by pyarrow's own allocator after the read
        result = self._session.query(f"{sql} SETTINGS max_execution_time = {QUERY_TIMEOUT_S:d}, output_format_arrow_string_as_string = 1",
                                     "Arrow", params=params or {})
        frame = pl.read_ipc(result.bytes())
        del result
        self._release()
        return frame

    def command(self, sql: str) -> None:
        self._session.query(sql)

    def insert(self, database: str, table: str, rows: pa.Table) -> None:
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="rca-chdb-") as tmp:
            path = Path(tmp) / "rows.parquet"
            pq.write_table(rows, path)
            columns = ", ".join(f"`{c}`" for c in rows.column_names)
            literal = str(path).replace("\\", "\\\\").replace("'", "\\'")  # our own temporary path
            self._session.query(f"INSERT INTO {_quoted(database, table)} ({columns}) SELECT {columns} FROM file('{literal}', Parquet)")

    def close(self) -> None:
        self._session.close()
        _release_library_pages("_chdb")  # the analysis that follows runs none of the engine's code


def _release_library_pages(marker: str) -> int:
    """Drop the clean, never-written pages of the shared library whose path contains `marker` from this
    process's page tables, and turn the kernel's fault-around off for them (MADV_RANDOM): chDB's engine is a
    555 MB library (chdb 4.4) whose start-up touches code all over it, and with fault-around every touched
    page maps its 15 neighbours: RSS counted 240 MB of its pages after the import, where a read's queries
    map back 20-130 MB. The pages stay in the page cache (shared, reclaimable: no memory is freed or
    allocated, only this process's mappings change); those the engine runs are mapped back on use.
    Written pages (relocations, data) are never touched. Linux only; elsewhere nothing happens.
    Returns the bytes of mappings released."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return 0
    regions: list[list[int]] = []
    current: list[int] | None = None
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                head, _, rest = line.partition(" ")
                if "-" in head and not head.endswith(":"):
                    fields = rest.split()
                    current = None
                    if len(fields) >= 5 and marker in fields[4] and "w" not in fields[0]:
                        current = [*(int(x, 16) for x in head.split("-")), 0]
                        regions.append(current)
                elif current is not None and head == "Anonymous:":
                    current[2] = int(rest.split()[0])
    except OSError:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for low, high, anonymous in regions:
        if anonymous:  # relocated (written) pages: dropping them would lose the writes
            continue
        libc.madvise(low, high - low, 1)  # MADV_RANDOM
        if libc.madvise(low, high - low, 4) == 0:  # MADV_DONTNEED: clean file pages, refaulted from the page cache
            released += high - low
    return released


class _HttpClient:
    def __init__(self, url: StoreUrl):
        import clickhouse_connect

        # the driver and urllib3 log their own warnings on a failed connection; rca's one error line says it all
        for name in ("clickhouse_connect", "urllib3"):
            logging.getLogger(name).setLevel(logging.ERROR)

        self._client = clickhouse_connect.get_client(
            host=url.host, port=url.port or (8443 if url.scheme == "clickhouses" else 8123), username=url.user,
            password=url.password, secure=url.scheme == "clickhouses", database=url.database,
            connect_timeout=10, send_receive_timeout=QUERY_TIMEOUT_S + 10,
            settings={"max_execution_time": QUERY_TIMEOUT_S},
        )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        # use_strings: String columns as Arrow strings, not binary (what the detectors compare with text)
        return pl.from_arrow(self._client.query_arrow(sql, parameters=params or {}, use_strings=True))  # type: ignore[return-value]

    def command(self, sql: str) -> None:
        self._client.command(sql)

    def insert(self, database: str, table: str, rows: pa.Table) -> None:
        self._client.insert_arrow(table, rows, database=database)

    def close(self) -> None:
        self._client.close()


def connect(url: StoreUrl) -> StoreClient:
    """A client for `url`; a missing extra or an unreachable server is one InputError."""
    try:
        if url.scheme == "chdb":
            return _ChdbClient(url.path)
        return _HttpClient(url)
    except ImportError as exc:
        raise InputError(f"reading ClickHouse needs the package {exc.name or 'chdb/clickhouse-connect'}", file=url.display, hint=EXTRA_HINT) from None
    except Exception as exc:
        raise InputError(f"cannot connect: {_first_line(exc)}", file=url.display) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _run(client: StoreClient, url: StoreUrl, what: str, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    try:
        return client.query(sql, params)
    except Exception as exc:
        raise InputError(f"query for {what} failed: {_first_line(exc)}", file=url.display) from None


# --- schema check -------------------------------------------------------------------------------


def check_tables(client: StoreClient, url: StoreUrl) -> dict[str, str]:
    """The tables present (kind -> name), their rca columns checked; raises InputError naming the table
    and column for a named table that is missing, a missing column or one of another type."""
    names = {f"t{i}": table for i, table in enumerate(url.tables.values())}  # scalar parameters: chDB takes no arrays
    found = _run(client, url, "the table columns",
                 "SELECT table, name, type FROM system.columns WHERE database = {db:String} AND table IN ("
                 + ", ".join(f"{{{key}:String}}" for key in names) + ")", {"db": url.database, **names})
    columns: dict[str, dict[str, str]] = {}
    for table, name, dtype in found.iter_rows():
        columns.setdefault(table, {})[name] = dtype
    present: dict[str, str] = {}
    for kind, table in url.tables.items():
        have = columns.get(table)
        if have is None:
            if kind in url.named:
                raise InputError(f"no table {url.database}.{table}", file=url.display)
            continue
        for column, family in REQUIRED_COLUMNS[kind].items():
            if column not in have:
                raise InputError(f"table {url.database}.{table} has no column {column} (the exporter's schema has it)", file=url.display)
            dtype = _bare_type(have[column])
            if not _TYPE_PATTERNS[family].match(dtype):
                hint = " (attributes as JSON: configure the exporter to write maps)" if family == "Map" and dtype.startswith("JSON") else ""
                raise InputError(f"table {url.database}.{table}: column {column} is {have[column]}, rca reads {_TYPE_NAMES[family]}{hint}", file=url.display)
        present[kind] = table
    if "traces" not in present and "logs" not in present:
        raise InputError(f"no table {url.database}.{url.tables['traces']} nor {url.database}.{url.tables['logs']}", file=url.display)
    return present


def _bare_type(dtype: str) -> str:
    """The type without LowCardinality/Nullable wrappers (also inside a Map)."""
    for wrapper in ("LowCardinality", "Nullable"):
        dtype = re.sub(rf"{wrapper}\((String|[A-Za-z0-9]+(?:\(\d+\))?)\)", r"\1", dtype)
    return dtype.strip()


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreRead:
    """What one store input gave: the parse result, and exact aggregates for its summary."""

    result: ParseResult
    top_endpoints: tuple[tuple[str, int], ...] | None = None
    top_sources: tuple[tuple[str, int], ...] | None = None
    aggregates: RequestAggregates | None = None  # exact, of every request in range, when the rows are a sample


def read_store(text: str, options: ParseOptions) -> StoreRead:
    """Read a store URL into canonical frames: aggregates computed in ClickHouse, rows sampled to a bound."""
    url = parse_store_url(text)
    if url.scheme == "chdb" and not Path(url.path).is_dir():  # chDB would create it: reading changes nothing
        raise InputError("no chDB data directory there", file=url.display)
    client = connect(url)
    try:
        return _read(client, url, options)
    finally:
        client.close()


def _read(client: StoreClient, url: StoreUrl, options: ParseOptions) -> StoreRead:
    tables = check_tables(client, url)
    low, high = _resolve_range(client, url, tables, options)
    warnings: list[str] = []
    if low is None or high is None:
        return StoreRead(ParseResult(format="clickhouse", frames={}, lines=0, warnings=[f"no rows in {', '.join(tables.values())}"]))
    bounds = {"since": _param_time(low), "until": _param_time(high)}
    counts = {kind: _count(client, url, table, _TIME_COLUMN[kind], bounds) for kind, table in tables.items()}
    spans_n, logs_n = counts.get("traces", (0, None))[0], counts.get("logs", (0, None))[0]
    fraction = min(1.0, url.max_spans / max(spans_n, logs_n, 1))
    keep = SAMPLE_RESOLUTION if fraction >= 1.0 else max(1, int(SAMPLE_RESOLUTION * fraction))
    origin = url.display
    frames: dict[str, pl.DataFrame] = {}
    tops: tuple[Any, Any] = (None, None)
    aggregates = None
    if "traces" in tables:
        if keep < SAMPLE_RESOLUTION:  # first: the engine's memory for it is reused by the sample's query
            from rca.detectors.windows import choose_bucket_s

            _, first, last = counts["traces"]
            callers = spans_n <= CALLER_JOIN_MAX
            aggregates = store_request_aggregates(client, url, tables["traces"], bounds, choose_bucket_s((last - first).total_seconds()), callers)
            aggregates = replace(aggregates, first=first, last=last)  # the sample may miss the range's edges
            exact, *tops = _summary_line(aggregates, callers)  # type: ignore[assignment]
            warnings.append(exact)
        raw = _spans(client, url, tables["traces"], bounds, keep).with_columns(origin=pl.lit(origin), signal=pl.lit("trace"))
        span_frames, span_warnings = finish_spans(raw, origin)
        del raw
        frames.update({k: v for k, v in span_frames.items() if v.height})
        warnings += span_warnings
    if "logs" in tables:
        events = _events(client, url, tables["logs"], bounds, keep)
        if events.height:
            frames["events"] = events.with_columns(origin=pl.lit(origin))
    metrics = [_metrics(client, url, kind, tables[kind], bounds, counts[kind][0]) for kind in ("gauge", "sum", "histogram") if kind in tables]
    metrics = [m for m in metrics if m.height]
    if metrics:
        frames["metrics"] = conform(pl.concat(metrics, how="vertical").with_columns(origin=pl.lit(origin), signal=pl.lit("metric")), "metrics")  # type: ignore[assignment]
    for kind in ("gauge", "sum", "histogram"):
        if counts.get(kind, (0,))[0] > MAX_METRIC_POINTS:
            warnings.append(f"{counts[kind][0]:,} points in {tables[kind]}: averaged per interval in ClickHouse to at most {MAX_METRIC_POINTS:,}")
    if keep < SAMPLE_RESOLUTION:
        share = keep / SAMPLE_RESOLUTION
        analysed = frames["spans"].height if "spans" in frames else 0
        logs = f", {frames['events'].height if 'events' in frames else 0:,} of {logs_n:,} log records" if "logs" in tables else ""
        warnings.insert(0, (
            f"sampled {share:.2%} of traces by trace-id hash: {analysed:,} of {spans_n:,} spans{logs} analysed. "
            "Request findings (traffic, errors, latency, hosts, change effects) read the aggregates computed in ClickHouse "
            "when the windows fall on their buckets (their details' basis says so); from the sample: span and log findings, "
            f"and request findings otherwise (counts, rates and excess x{1 / share:,.1f} for the whole; quantiles, shares and "
            "tests as estimates). Exact, computed in ClickHouse over the range: the totals below and this input's top routes and clients"))
    result = ParseResult(format="clickhouse", frames=frames, lines=sum(n for n, _, _ in counts.values()), warnings=warnings,
                         trace_share=keep / SAMPLE_RESOLUTION if keep < SAMPLE_RESOLUTION and "traces" in tables else None)
    return StoreRead(result, top_endpoints=tops[0], top_sources=tops[1], aggregates=aggregates)


def _param_time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _resolve_range(client: StoreClient, url: StoreUrl, tables: dict[str, str], options: ParseOptions) -> tuple[datetime | None, datetime | None]:
    """[since, until] of the data to read: until the end of the data (or `until`), 3 hours before it
    unless `since` says otherwise. Relative forms (`3h`) count back from the end of the data."""
    from rca.detectors.windows import parse_time

    ends = []
    for kind, table in tables.items():
        row = _run(client, url, f"the time range of {table}",
                   f"SELECT toUnixTimestamp64Micro(max(`{_TIME_COLUMN[kind]}`)) AS high, count() AS n FROM {_quoted(url.database, table)}").row(0)
        if row[1]:
            ends.append(datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(row[0])))
    if not ends:
        return None, None
    data_end = max(ends)
    until_text = url.until or options.store_until
    since_text = url.since or options.store_since
    high = parse_time(until_text, data_end) if until_text else data_end
    low = parse_time(since_text, data_end) if since_text else high - DEFAULT_RANGE
    if not since_text and options.store_incident_since:
        incident = parse_time(options.store_incident_since, data_end)
        low = min(low, incident - (high - incident))
    if low >= high:
        raise InputError(f"the time range is empty ({low.isoformat()} to {high.isoformat()})", file=url.display)
    return low, high


def _count(client: StoreClient, url: StoreUrl, table: str, ts: str, bounds: dict[str, str]) -> tuple[int, datetime, datetime]:
    """Rows in range, and the first and last time among them."""
    frame = _run(client, url, f"the rows of {table}",
                 f"SELECT count() AS n, toUnixTimestamp64Micro(min(`{ts}`)) AS low, toUnixTimestamp64Micro(max(`{ts}`)) AS high "
                 f"FROM {_quoted(url.database, table)} WHERE `{ts}` >= {{since:DateTime64(6)}} AND `{ts}` <= {{until:DateTime64(6)}}", bounds)
    n, low, high = frame.row(0)
    epoch = datetime.fromtimestamp(0, UTC)
    return int(n), epoch + timedelta(microseconds=int(low or 0)), epoch + timedelta(microseconds=int(high or 0))


def _pick(map_column: str, keys: tuple[str, ...], params: dict[str, Any], prefix: str) -> str:
    """SQL for the first of `keys` present in `map_column`, else NULL; keys go in as parameters."""
    arms = []
    for i, key in enumerate(keys):
        name = f"{prefix}{i}"
        params[name] = key
        arms.append(f"mapContains({map_column}, {{{name}:String}}), {map_column}[{{{name}:String}}]")
    return f"multiIf({', '.join(arms)}, NULL)"


def _sample_clause(keep: int, key: str) -> str:
    return "" if keep >= SAMPLE_RESOLUTION else f" AND {key} % {SAMPLE_RESOLUTION:d} < {{keep:UInt64}}"


def _spans(client: StoreClient, url: StoreUrl, table: str, bounds: dict[str, str], keep: int) -> pl.DataFrame:
    params: dict[str, Any] = {**bounds, "keep": keep}
    picks = [f"{_pick('SpanAttributes', names, params, f'a_{column}_')} AS {column}" for column, names in ALIASES.items()]
    resource = [f"{_pick('ResourceAttributes', names, params, f'r_{column}_')} AS {column}"
                for column, names in RESOURCE_ALIASES.items() if column != "service"]
    service_key = _pick("ResourceAttributes", RESOURCE_ALIASES["service"], params, "r_service_")
    sql = f"""
        SELECT lower(TraceId) AS trace_id, lower(SpanId) AS span_id, nullIf(lower(ParentSpanId), '') AS parent_span_id,
               coalesce(nullIf(toString(ServiceName), ''), {service_key}) AS service, toString(SpanName) AS name,
               lower(replaceRegexpOne(toString(SpanKind), '^SPAN_KIND_', '')) AS kind,
               toUnixTimestamp64Nano(Timestamp) AS start_ns, toInt64(Duration) AS duration_ns,
               lower(replaceRegexpOne(toString(StatusCode), '^STATUS_CODE_', '')) AS status,
               {', '.join(picks + resource)}
        FROM {_quoted(url.database, table)}
        WHERE Timestamp >= {{since:DateTime64(6)}} AND Timestamp <= {{until:DateTime64(6)}}{_sample_clause(keep, 'cityHash64(TraceId)')}"""
    frame = _run(client, url, f"the spans of {table}", sql, params)
    kinds = pl.col("kind")
    return frame.with_columns(
        pl.when(kinds.is_in(SPAN_KINDS)).then(kinds).otherwise(pl.lit("unspecified")).alias("kind"),
        pl.when(pl.col("status").is_in(["ok", "error"])).then(pl.col("status")).otherwise(pl.lit("unset")).alias("status"),
        pl.col("http_status").cast(pl.Int32, strict=False),
        (pl.col("start_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"),
        ((pl.col("start_ns") + pl.col("duration_ns")) // 1000).cast(pl.Datetime("us", "UTC")).alias("end"),
        pl.lit(None, pl.Int64).alias("line"),
    ).drop("duration_ns")


_LEVEL_WORDS = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "INFORMATION": "INFO", "NOTICE": "INFO"}
_SEVERITY_FLOORS = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))


def _level(text: pl.Expr, number: pl.Expr) -> pl.Expr:
    """SeverityText (normalised) when it is a level name, else the level of SeverityNumber (as for OTLP files)."""
    word = text.str.to_uppercase().replace(_LEVEL_WORDS)
    by_number = pl.lit(None, pl.String)
    for low, name in reversed(_SEVERITY_FLOORS):
        by_number = pl.when(number >= low).then(pl.lit(name)).otherwise(by_number)
    return pl.when(word.is_in(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])).then(word).otherwise(by_number)


def _events(client: StoreClient, url: StoreUrl, table: str, bounds: dict[str, str], keep: int) -> pl.DataFrame:
    params: dict[str, Any] = {**bounds, "keep": keep}
    host = _pick("ResourceAttributes", RESOURCE_ALIASES["host"], params, "r_host_")
    service_key = _pick("ResourceAttributes", RESOURCE_ALIASES["service"], params, "r_service_")
    sql = f"""
        SELECT toUnixTimestamp64Micro(Timestamp) AS ts_us, toString(SeverityText) AS severity_text,
               toInt32(SeverityNumber) AS severity_number,
               coalesce(nullIf(toString(ServiceName), ''), {service_key}) AS service, {host} AS host, Body AS message,
               if(empty(LogAttributes), NULL, toJSONString(LogAttributes)) AS attributes,
               nullIf(lower(TraceId), '') AS trace_id
        FROM {_quoted(url.database, table)}
        WHERE Timestamp >= {{since:DateTime64(6)}} AND Timestamp <= {{until:DateTime64(6)}}{_sample_clause(keep, "if(TraceId != '', cityHash64(TraceId), cityHash64(Timestamp, Body))")}"""
    frame = _run(client, url, f"the log records of {table}", sql, params)
    events = frame.with_columns(
        pl.col("ts_us").cast(pl.Datetime("us", "UTC")).alias("ts"),
        _level(pl.col("severity_text"), pl.col("severity_number")).alias("level"),
        pl.lit(None, pl.String).alias("logger"),
        pl.lit("otlp_log").alias("signal"),
    )
    return conform(events, "events")  # type: ignore[return-value]


def _metrics(client: StoreClient, url: StoreUrl, kind: str, table: str, bounds: dict[str, str], count: int) -> pl.DataFrame:
    params: dict[str, Any] = dict(bounds)
    host = _pick("ResourceAttributes", RESOURCE_ALIASES["host"], params, "r_host_")
    values = "Value AS value" if kind != "histogram" else "toFloat64(Count) AS count, Sum AS total"
    source = f"{_quoted(url.database, table)} WHERE TimeUnix >= {{since:DateTime64(6)}} AND TimeUnix <= {{until:DateTime64(6)}}"
    keys = f"MetricName AS name, MetricUnit AS unit, toString(ServiceName) AS service, {host} AS host, if(empty(Attributes), NULL, toJSONString(Attributes)) AS attributes"
    if count > MAX_METRIC_POINTS:  # average per interval, sized so that every series keeps at most its share
        series = int(_run(client, url, f"the series of {table}",
                          f"SELECT uniq(MetricName, ServiceName, Attributes, ResourceAttributes) FROM {source}", params).item())
        span_s = (datetime.fromisoformat(bounds["until"]) - datetime.fromisoformat(bounds["since"])).total_seconds()
        params["step"] = max(1, math.ceil(series * span_s / MAX_METRIC_POINTS))
        agg = "avg(Value) AS value" if kind != "histogram" else "toFloat64(sum(Count)) AS count, sum(Sum) AS total"
        sql = (f"SELECT toUnixTimestamp64Micro(toDateTime64(toStartOfInterval(TimeUnix, toIntervalSecond({{step:UInt32}})), 6)) AS ts_us, "
               f"{keys}, {agg} FROM {source} GROUP BY ts_us, name, unit, service, host, attributes")
    else:
        sql = f"SELECT toUnixTimestamp64Micro(TimeUnix) AS ts_us, {keys}, {values} FROM {source}"
    frame = _run(client, url, f"the metric points of {table}", sql, params).with_columns(pl.col("ts_us").cast(pl.Datetime("us", "UTC")).alias("ts"))
    columns = ("ts", "name", "value", "unit", "service", "host", "attributes")
    if kind != "histogram":
        return frame.select(columns)
    base = frame.drop("ts_us", "count", "total", "name", "unit")
    return pl.concat([
        base.with_columns((frame["name"] + ".count").alias("name"), frame["count"].alias("value"), pl.lit("1").alias("unit")),
        base.with_columns((frame["name"] + ".sum").alias("name"), frame["total"].alias("value"), frame["unit"]),
        base.with_columns((frame["name"] + ".avg").alias("name"), (frame["total"] / frame["count"]).alias("value"), frame["unit"])
        .filter(frame["count"] > 0),
    ], how="vertical_relaxed").select(columns)


_SERVER = "lower(replaceRegexpOne(toString(SpanKind), '^SPAN_KIND_', '')) = 'server'"


def _summary_line(aggregates: RequestAggregates, callers: bool) -> tuple[str, tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """The exact figures of the range for the input's summary, read off the aggregates: requests
    (server spans), 5xx errors, p50/p95/p99 (within the histograms' relative accuracy), and the busiest
    routes and sources."""
    from rca.aggregates import sketch_quantiles

    counts = aggregates.counts.lazy()  # lazy: the filters read three columns, not copies of every row
    totals = counts.filter(pl.col("dimension") == "service").select(pl.col("requests").sum(), pl.col("errors").sum()).collect().row(0)
    n, errors = int(totals[0] or 0), int(totals[1] or 0)

    def top(dimension: str) -> tuple[tuple[str, int], ...]:
        busiest = (counts.filter((pl.col("dimension") == dimension) & pl.col("value").is_not_null())
                   .group_by("value").agg(pl.col("requests").sum()).sort(["requests", "value"], descending=[True, False]).head(TOP_N))
        return tuple((str(v), int(c)) for v, c in busiest.collect().iter_rows())

    if not n:
        return "exact over the range (ClickHouse): no server spans", (), ()
    q = sketch_quantiles(aggregates.sketches.lazy().filter(pl.col("dimension") == "service").select("bin", "count").collect(), [], {"p50": 0.5, "p95": 0.95, "p99": 0.99}).row(0, named=True)
    callers_note = "" if callers else ("; sources are client addresses only (the callers of other server spans come from the sampled traces); "
                                       "a span id stored twice counts twice")
    return (f"exact over the range (ClickHouse): {n:,} requests (server spans), {errors:,} errors with status 5xx ({errors / n:.2%}), "
            f"p50 {q['p50']:,.1f} ms, p95 {q['p95']:,.1f} ms, p99 {q['p99']:,.1f} ms (within {SKETCH_ALPHA:.0%}){callers_note}"), top("endpoint"), top("source")


# --- request aggregates pushed down (rca.aggregates' representation, computed by ClickHouse) -------

# The caller of a server span without a client address is its parent client span's service: a join
# over the range. Above this many server spans the join's memory and time grow with the table (27 s and
# +0.3 GB at 5M in chDB, whatever the algorithm), so the aggregates leave such sources null and say so.
# The same bound holds for counting a duplicated span id once (as files do): the set of ids seen grows
# with the table (+270 MB at 10M spans, or seconds of spilling to disk), so above it copies count as stored.
CALLER_JOIN_MAX = 1_000_000


def _sql_literal(text: str) -> str:
    """A constant of ours (never user input) as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _server_rows_sql(url: StoreUrl, table: str, params: dict[str, Any], callers: bool) -> str:
    """SQL of the server spans in range as the requests rows `finish_spans` makes of them: the same
    service, route (or the shape of the path, normalised afterwards), method, status, source (client
    address, else with `callers` the calling service: the parent client span's, joined on a 64-bit hash
    of the trace and span ids), user agent, host, version, and duration in ms from the microsecond start
    and end (as for files). With `callers`, a span id stored more than once (an export retried) is one
    row, as `finish_spans` keeps it once."""
    def pick(column: str, resource: bool = False) -> str:
        if resource:
            return _pick("ResourceAttributes", RESOURCE_ALIASES[column], params, f"r_{column}_")
        return _pick("SpanAttributes", ALIASES[column], params, f"a_{column}_")

    service = f"coalesce(nullIf(toString(ServiceName), ''), {pick('service', True)})"
    table_sql = _quoted(url.database, table)
    in_range = "Timestamp >= {since:DateTime64(6)} AND Timestamp <= {until:DateTime64(6)}"
    rows = f"""
            SELECT intDiv(toUnixTimestamp64Nano(Timestamp), 1000) AS start_us, {service} AS service,
                   {pick('http_route')} AS route, {pick('url_path')} AS url_path,
                   if(startsWith(url_path, '/'), replaceRegexpOne(replaceRegexpAll(url_path, '/[0-9]+/', '/{{id}}/'), '/[0-9]+$', '/{{id}}'),
                      url_path) AS shape,  -- endpoints.endpoint_shape_expr: the full rules run per distinct shape
                   {pick('http_method')} AS method, toInt32OrNull({pick('http_status')}) AS status,
                   {pick('client_address')} AS client_address, {pick('user_agent')} AS user_agent,
                   {pick('host', True)} AS host, {pick('service_version', True)} AS version,
                   nullIf(regexpExtract(coalesce(host, ''), {_sql_literal(POD_NAME)}, 2), '') AS pod_release,
                   (intDiv(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration), 1000) - start_us) / 1000 AS duration_ms,
                   if(ParentSpanId != '' AND client_address IS NULL, cityHash64(lower(TraceId), lower(ParentSpanId)), 0) AS parent_key
            FROM {table_sql}
            WHERE {in_range} AND {_SERVER}"""
    if not callers:
        return f"SELECT *, client_address AS source FROM ({rows})"
    rows += "\n            LIMIT 1 BY cityHash64(lower(TraceId), lower(SpanId))"
    return f"""
        SELECT s.*, coalesce(s.client_address, if(p.parent_service != s.service, p.parent_service, NULL)) AS source
        FROM ({rows}) AS s
        LEFT ANY JOIN (
            SELECT cityHash64(lower(TraceId), lower(SpanId)) AS parent_key, {service} AS parent_service
            FROM {table_sql}
            WHERE {in_range} AND lower(replaceRegexpOne(toString(SpanKind), '^SPAN_KIND_', '')) = 'client'
        ) AS p ON s.parent_key = p.parent_key"""


# The grouping sets of the aggregates: (histogram?, dimension, the column holding its value, the keys
# besides bucket and service). Counts carry the method, histograms the bin; an endpoint remembers whether
# it is a path shape (normalised afterwards), a version its pods' release (for unversioned services).
_AGGREGATE_SETS = (
    (0, "service", "service", ("method",)),
    (0, "endpoint", "endpoint", ("method", "endpoint", "from_path")),
    (0, "source", "source", ("method", "source")),
    (0, "user_agent", "user_agent", ("method", "user_agent")),
    (0, "host", "host", ("method", "host")),
    (0, "version", "version", ("method", "version", "pod_release")),
    (1, "service", "service", ("bin",)),
    (1, "endpoint", "endpoint", ("endpoint", "from_path", "bin")),
    (1, "host", "host", ("host", "bin")),
)
_GROUPING_KEYS = ("method", "endpoint", "source", "user_agent", "host", "version", "bin")  # the arguments of grouping(): one bit each


def store_request_aggregates(client: StoreClient, url: StoreUrl, table: str, bounds: dict[str, str], bucket_s: int,
                             callers: bool = True) -> RequestAggregates:
    """The requests (server spans) in range aggregated by ClickHouse exactly as `rca.aggregates`
    aggregates the same rows read from files: counts per (bucket, dimension, value, method) and latency
    histograms (the same logarithmic bins). One pass, one GROUP BY with a grouping set per dimension
    (`_AGGREGATE_SETS`; `grouping()` tells the rows of each apart): x1.3-1.5 faster than repeating every
    row once per dimension (ARRAY JOIN) and grouping them all by one wide key, for the same rows. Paths
    without a route come back as shapes and are normalised here, once per distinct shape. Without
    `callers`, a server span with no client address has no source (see CALLER_JOIN_MAX)."""
    from rca.aggregates import LN_GAMMA

    params: dict[str, Any] = {**bounds, "step_us": bucket_s * 1_000_000, "ln_gamma": LN_GAMMA, "min_ms": SKETCH_MIN_MS,
                              "zero_bin": SKETCH_ZERO_BIN}
    rows = _server_rows_sql(url, table, params, callers)

    def mask(keys: tuple[str, ...]) -> int:  # standard grouping(): a bit is 1 when its key is NOT in the set
        return sum(1 << (len(_GROUPING_KEYS) - 1 - i) for i, key in enumerate(_GROUPING_KEYS) if key not in keys)

    def by_set(pick: Any) -> str:
        return "multiIf(" + ", ".join(f"g = {mask(keys)}, {pick(h, d, v)}" for h, d, v, keys in _AGGREGATE_SETS) + ", NULL)"

    sets = ", ".join("(" + ", ".join(("bucket_us", "service", *keys)) + ")" for _, _, _, keys in _AGGREGATE_SETS)
    settings = f", join_use_nulls = 1, join_algorithm = 'partial_merge', max_bytes_in_join = {JOIN_MEMORY_BYTES:d}" if callers else ""
    sql = f"""
        SELECT {by_set(lambda h, d, v: str(h))} AS histogram, {by_set(lambda h, d, v: _sql_literal(d))} AS dimension,
               {by_set(lambda h, d, v: v)} AS value, from_path, bucket_us, service, if(histogram = 1, NULL, method) AS method_key,
               if(dimension = 'version', pod_release, NULL) AS pod_release_key, bin,
               requests, errors, client_errors, with_status, duration_ms_sum
        FROM (
            SELECT intDiv(start_us, {{step_us:UInt64}}) * {{step_us:UInt64}} AS bucket_us, service, method,
                   coalesce(route, shape) AS endpoint, route IS NULL AS from_path, source, user_agent, host, version, pod_release,
                   if(duration_ms <= {{min_ms:Float64}}, {{zero_bin:Int32}}, toInt32(ceil(log(duration_ms) / {{ln_gamma:Float64}}))) AS bin,
                   count() AS requests, countIf(status >= 500) AS errors, countIf(status >= 400 AND status < 500) AS client_errors,
                   count(status) AS with_status, sum(duration_ms) AS duration_ms_sum, grouping({', '.join(_GROUPING_KEYS)}) AS g
            FROM ({rows})
            GROUP BY GROUPING SETS ({sets})
        )
        SETTINGS force_grouping_standard_compatibility = 1, group_by_use_nulls = 0, max_bytes_before_external_group_by = {GROUP_MEMORY_BYTES:d}{settings}"""
    frame = _run(client, url, f"the request aggregates of {table}", sql, params)
    return _tidy_aggregates(frame, bucket_s)


def _tidy_aggregates(frame: pl.DataFrame, bucket_s: int) -> RequestAggregates:
    """The grouped rows as `RequestAggregates`: routes for path shapes, counts and histograms apart.
    Lazy, so each output is one pass over the rows: the result of 10M spans is ~340k rows, and every
    materialised intermediate copy of it cost ~40 MB."""
    shapes = frame.filter(pl.col("from_path") == 1)["value"].unique()
    # a service whose spans never carry service.version is versioned by its pods' template hash (spantree._release)
    unversioned = (frame.filter(pl.col("dimension") == "version").group_by("service")
                   .agg(pl.col("value").is_not_null().any().alias("_any")).filter(~pl.col("_any"))["service"])
    value = pl.col("value")
    if shapes.len():
        value = pl.when(pl.col("from_path") == 1).then(value.replace_strict(shapes, routes_from_shapes(shapes), default=None)).otherwise(value)
    if unversioned.len():
        value = pl.when((pl.col("dimension") == "version") & pl.col("service").is_in(unversioned.implode())).then(pl.col("pod_release_key")).otherwise(value)
    # shapes of different paths may share a route (and a route a path's), and pods a release: one row per key,
    # as for files; only those rows are regrouped
    regroup = pl.lit(False)
    if shapes.len():
        regroup = regroup | (pl.col("dimension") == "endpoint")
    if unversioned.len():
        regroup = regroup | (pl.col("dimension") == "version")
    rows = frame.lazy().with_columns(value.alias("value"), pl.col("bucket_us").cast(pl.Datetime("us", "UTC")).alias("bucket"),
                                     pl.lit("trace").alias("signal"))
    count_rows = rows.filter(pl.col("histogram") == 0).select(
        *AGGREGATE_KEY, pl.col("method_key").alias("method"), "requests", "errors", "client_errors", "with_status", pl.lit(0).alias("bytes"),
        pl.col("requests").alias("timed"), "duration_ms_sum", pl.lit(0).alias("upstream_timed"), pl.lit(0.0).alias("upstream_ms_sum"))
    sketch_rows = rows.filter(pl.col("histogram") == 1).select(*AGGREGATE_KEY, pl.lit("duration_ms").alias("metric"), "bin",
                                                                 pl.col("requests").alias("count"))
    sums = [pl.col(c).sum() for c in REQUEST_AGGREGATES_SCHEMA if c not in (*AGGREGATE_KEY, "method")]
    counts = pl.concat([count_rows.filter(~regroup), count_rows.filter(regroup).group_by(*AGGREGATE_KEY, "method").agg(sums)], how="diagonal_relaxed")
    sketches = pl.concat([sketch_rows.filter(~regroup), sketch_rows.filter(regroup).group_by(*AGGREGATE_KEY, "metric", "bin").agg(pl.col("count").sum())],
                         how="diagonal_relaxed")
    return RequestAggregates(bucket_s, conform(counts, "counts", REQUEST_AGGREGATES_SCHEMA).collect(),
                             conform(sketches, "sketches", LATENCY_SKETCH_SCHEMA).collect())


# --- writing (rca ingest --out URL) -----------------------------------------------------------------

# The exporter's default DDL (maps for attributes), from its documentation; rca creates these when absent.
TRACES_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))"""
LOGS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)"""
GAUGE_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))"""
# canonical span column -> the attribute the exporter's SpanAttributes carries it under (current names)
_SPAN_ATTRIBUTES = {"http_route": "http.route", "http_method": "http.request.method", "http_status": "http.response.status_code",
                    "url_path": "url.path", "client_address": "client.address", "peer_service": "service.peer.name",
                    "db_system": "db.system.name"}
_SPAN_RESOURCE = {"service": "service.name", "service_version": "service.version", "host": "host.name",
                  "deployment_environment": "deployment.environment.name"}
_SEVERITY_NUMBERS = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}


def write_store(dataset: Dataset, text: str) -> dict[str, int]:
    """Write the spans, log events and metric points of `dataset` into the exporter's tables at `text`
    (created with the exporter's DDL when absent); returns rows written per table."""
    url = parse_store_url(text)
    client = connect(url)
    try:
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{url.database}`")
            for kind, ddl in (("traces", TRACES_DDL), ("logs", LOGS_DDL), ("gauge", GAUGE_DDL)):
                client.command(ddl.format(table=_quoted(url.database, url.tables[kind])))
        except Exception as exc:
            raise InputError(f"cannot create the exporter's tables: {_first_line(exc)}", file=url.display) from None
        check_tables(client, url)
        written: dict[str, int] = {}
        for kind, rows in (("traces", _span_rows(dataset.spans, dataset.requests)), ("logs", _log_rows(dataset.events)), ("gauge", _gauge_rows(dataset.metrics))):
            if rows.height:
                try:
                    client.insert(url.database, url.tables[kind], _to_arrow(rows))
                except Exception as exc:
                    raise InputError(f"writing {url.tables[kind]} failed: {_first_line(exc)}", file=url.display) from None
                written[url.tables[kind]] = rows.height
        return written
    finally:
        client.close()


def _attribute_map(pairs: dict[str, pl.Expr]) -> pl.Expr:
    """A list of {key, value} structs (null values left out), turned into a Map by `_to_arrow`."""
    items = [pl.struct(pl.lit(key).alias("key"), value.cast(pl.String).alias("value")) for key, value in pairs.items()]
    return pl.concat_list(items).list.eval(pl.element().filter(pl.element().struct.field("value").is_not_null()))


def _ns(column: str) -> pl.Expr:
    return pl.col(column).dt.cast_time_unit("ns")


def _span_rows(spans: pl.DataFrame, requests: pl.DataFrame) -> pl.DataFrame:
    if spans.height == 0:
        return spans
    # the user agent is a request's, not a span's column: back onto the server span the request was made of
    # (same input, trace, service and start; one agent per span where several requests would match)
    key = ["origin", "trace_id", "service", "ts"]
    agents = (requests.lazy().filter((pl.col("signal") == "trace") & pl.col("user_agent").is_not_null() & pl.col("trace_id").is_not_null())
              .select(*key, "user_agent").unique(subset=key, keep="first").with_columns(pl.lit("server").alias("kind")).collect())
    spans = spans.join(agents, on=[*key, "kind"], how="left") if agents.height else spans.with_columns(pl.lit(None, pl.String).alias("user_agent"))
    return spans.select(
        _ns("ts").alias("Timestamp"), pl.col("trace_id").fill_null("").alias("TraceId"), pl.col("span_id").fill_null("").alias("SpanId"),
        pl.col("parent_span_id").fill_null("").alias("ParentSpanId"), pl.col("name").fill_null("").alias("SpanName"),
        ("SPAN_KIND_" + pl.col("kind").fill_null("unspecified").str.to_uppercase()).alias("SpanKind"),
        pl.col("service").fill_null("").alias("ServiceName"),
        _attribute_map({key: pl.col(c) for c, key in _SPAN_RESOURCE.items()}).alias("ResourceAttributes"),
        _attribute_map({key: pl.col(c) for c, key in {**_SPAN_ATTRIBUTES, "user_agent": "user_agent.original"}.items()}).alias("SpanAttributes"),
        (pl.col("duration_ms").fill_null(0.0) * 1e6).round().cast(pl.UInt64).alias("Duration"),
        ("STATUS_CODE_" + pl.col("status").fill_null("unset").str.to_uppercase()).alias("StatusCode"),
    )


def _log_rows(events: pl.DataFrame) -> pl.DataFrame:
    if events.height == 0:
        return events
    return events.select(
        _ns("ts").alias("Timestamp"), pl.col("trace_id").fill_null("").alias("TraceId"),
        pl.col("level").fill_null("").alias("SeverityText"),
        pl.col("level").replace_strict(_SEVERITY_NUMBERS, default=0, return_dtype=pl.UInt8).alias("SeverityNumber"),
        pl.col("service").fill_null("").alias("ServiceName"), pl.col("message").fill_null("").alias("Body"),
        _attribute_map({"service.name": pl.col("service"), "host.name": pl.col("host")}).alias("ResourceAttributes"),
        _json_object_map("attributes").alias("LogAttributes"),
    )


def _gauge_rows(metrics: pl.DataFrame) -> pl.DataFrame:
    if metrics.height == 0:
        return metrics
    return metrics.select(
        _ns("ts").alias("TimeUnix"), pl.col("service").fill_null("").alias("ServiceName"), pl.col("name").fill_null("").alias("MetricName"),
        pl.col("unit").fill_null("").alias("MetricUnit"), pl.col("value").alias("Value"),
        _attribute_map({"service.name": pl.col("service"), "host.name": pl.col("host")}).alias("ResourceAttributes"),
        _json_object_map("attributes").alias("Attributes"),
    )


def _json_object_map(column: str) -> pl.Expr:
    """A JSON object text (our `attributes` columns) as a list of {key, value} structs, values as text."""
    import orjson

    def pairs(text: str | None) -> list[dict[str, str]]:
        if not text:
            return []
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        return [{"key": str(k), "value": v if isinstance(v, str) else orjson.dumps(v).decode()} for k, v in obj.items() if v is not None]

    return pl.col(column).map_elements(pairs, return_dtype=pl.List(pl.Struct({"key": pl.String, "value": pl.String})))


def _to_arrow(frame: pl.DataFrame) -> pa.Table:
    """Arrow table with the list-of-{key, value} columns as Arrow maps (ClickHouse's Map on insert)."""
    import pyarrow as pa

    table = frame.to_arrow()
    columns = []
    for column in table.columns:
        if pa.types.is_large_list(column.type) or pa.types.is_list(column.type):
            chunk = column.combine_chunks().cast(pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])))
            entries = chunk.flatten()
            column = pa.MapArray.from_arrays(chunk.offsets, entries.field("key"), entries.field("value"))
        elif pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


__all__ = ["is_store_url", "parse_store_url", "read_store", "write_store"]
