"""Telemetry in the OpenTelemetry collector's ClickHouse tables, read through chDB (the embedded engine).

The tables come from the exporter's own DDL (otel_clickhouse_exporter.sql, transcribed from its
documentation), filled by `rca ingest --out chdb:` from a shipped sample's traces; the analysis of the
store must rank the same causes and rule out the same explanations as the analysis of the files.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from rca.cli import app
from rca.errors import InputError
from rca.parsers import ParseOptions
from rca.parsers.loader import load_dataset

chdb = pytest.importorskip("chdb")
from chdb import session as chdb_session  # noqa: E402

from rca.parsers.clickhouse import parse_store_url, read_store  # noqa: E402

runner = CliRunner()
SAMPLE = Path(__file__).parents[2] / "samples" / "cache-exhaustion" / "telemetry"
TRACES = SAMPLE / "traces.otlp.jsonl.gz"
LOGS = SAMPLE / "app.jsonl.gz"
DDL = (Path(__file__).parent / "otel_clickhouse_exporter.sql").read_text()


def _sql(path: Path, *statements: str) -> list[str]:
    sess = chdb_session.Session(str(path))
    try:
        return [str(sess.query(statement, "CSV")) for statement in statements]
    finally:
        sess.close()


def _exporter_tables(path: Path, db: str = "otel") -> None:
    body = "\n".join(line for line in DDL.splitlines() if not line.startswith("--"))
    _sql(path, *(s.replace("{db}", db) for s in body.split(";\n") if s.strip()))


def _causes(report: dict) -> tuple[list, list]:
    return ([(h["kind"], h["subject"], h["where"]) for h in report["hypotheses"]],
            [(r["kind"], r["subject"]) for r in report["ruled_out"]])


def _analyze(*args: str) -> dict:
    result = runner.invoke(app, ["analyze", *args, "--format", "json", "-q"])
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)


def _fails(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rca: error:") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The exporter's tables holding the sample's traces (and, in database `withlogs`, its app log too)."""
    path = tmp_path_factory.mktemp("chdb") / "data"
    _exporter_tables(path)
    _exporter_tables(path, "withlogs")
    for target, inputs in (("otel", [TRACES]), ("withlogs", [TRACES, LOGS])):
        result = runner.invoke(app, ["ingest", *map(str, inputs), "--out", f"chdb:{path}?database={target}", "-q"])
        assert result.exit_code == 0, result.stderr
    return path


def test_the_store_ranks_the_same_causes_and_rules_out_the_same_as_the_files(store):
    from_files = _analyze(str(TRACES))
    from_store = _analyze(f"chdb:{store}")
    assert from_files["hypotheses"] and from_files["ruled_out"], "the sample has a cause and a ruled-out path"
    assert _causes(from_store) == _causes(from_files)
    store_input, file_input = from_store["inputs"][0], from_files["inputs"][0]
    assert store_input["format"] == "clickhouse" and store_input["path"] == f"chdb:{store}/otel"
    assert store_input["rows_by_frame"] == file_input["rows_by_frame"]
    assert store_input["top_endpoints"] == file_input["top_endpoints"]


def test_spans_and_log_events_round_trip_through_the_exporter_schema(store):
    files = load_dataset([str(TRACES), str(LOGS)])
    stored = load_dataset([f"chdb:{store}?database=withlogs&since=30d"])
    span_cols = [c for c in files.spans.columns if c not in ("origin", "line")]
    key = ["trace_id", "span_id"]
    assert stored.spans.select(span_cols).sort(key).equals(files.spans.select(span_cols).sort(key))
    agents = ["trace_id", "ts", "service", "user_agent"]
    from_spans = files.requests.filter(pl.col("signal") == "trace").select(agents).sort(agents)
    assert from_spans["user_agent"].drop_nulls().len() > 0
    assert stored.requests.select(agents).sort(agents).equals(from_spans)
    event_cols = ["ts", "level", "service", "host", "message", "trace_id"]
    order = ["ts", "message"]
    assert stored.events.height == files.events.height
    assert stored.events.select(event_cols).sort(order).equals(files.events.select(event_cols).sort(order))
    assert set(stored.events["signal"]) == {"otlp_log"}


def test_kind_and_status_as_newer_exporters_write_them(store, tmp_path):
    """'Server'/'Error' (pdata's names) read as 'SPAN_KIND_SERVER'/'STATUS_CODE_ERROR' do."""
    path = tmp_path / "data"
    _exporter_tables(path)
    source = chdb_session.Session(str(store))
    try:
        rows = source.query("SELECT * FROM otel.otel_traces", "Parquet").bytes()
    finally:
        source.close()
    (tmp_path / "rows.parquet").write_bytes(rows)
    _sql(path, f"INSERT INTO otel.otel_traces SELECT * REPLACE ("
               f"multiIf(SpanKind = 'SPAN_KIND_SERVER', 'Server', SpanKind = 'SPAN_KIND_CLIENT', 'Client', SpanKind = 'SPAN_KIND_INTERNAL', 'Internal', SpanKind) AS SpanKind, "
               f"multiIf(StatusCode = 'STATUS_CODE_ERROR', 'Error', StatusCode = 'STATUS_CODE_OK', 'Ok', 'Unset') AS StatusCode) "
               f"FROM file('{tmp_path / 'rows.parquet'}', Parquet)")
    assert _sql(path, "SELECT countIf(SpanKind = 'Server') > 0 AND countIf(StatusCode = 'Error') > 0 FROM otel.otel_traces")[0].strip() == "1"
    assert _causes(_analyze(f"chdb:{path}")) == _causes(_analyze(f"chdb:{store}"))


def test_a_bounded_sample_keeps_whole_traces_and_says_what_is_exact(store):
    whole = load_dataset([f"chdb:{store}?since=30d"])
    sampled = load_dataset([f"chdb:{store}?since=30d&max_spans=2000"])
    assert 0 < sampled.spans.height < 0.5 * whole.spans.height
    per_trace = whole.spans.group_by("trace_id").len()
    kept = sampled.spans.group_by("trace_id").len()
    assert kept.join(per_trace, on="trace_id", suffix="_all").filter(pl.col("len") != pl.col("len_all")).height == 0
    summary = sampled.inputs[0]
    assert summary.lines == whole.inputs[0].lines  # totals from ClickHouse, not from the sample
    assert summary.top_endpoints == whole.inputs[0].top_endpoints  # exact aggregates
    assert whole.request_aggregates is None  # every row read: the detectors get them all
    pushed = sampled.request_aggregates  # every request of the range counted in ClickHouse
    assert pushed is not None and pushed.counts.filter(pl.col("dimension") == "service")["requests"].sum() == whole.requests.height
    notes = " ".join(summary.warnings)
    assert "sampled" in notes and "exact over the range (ClickHouse)" in notes and "p95" in notes


def _sorted(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.sort(keys, nulls_last=True).with_columns(pl.col(pl.Float64).round(6))


@pytest.fixture(scope="module", params=[3, 11])
def shaped_store(request, tmp_path_factory) -> Path:
    """Spans of varied shape, generated in the exporter's table from a seed: server spans with a route, or
    only a path (numeric ids, uuids, a query string, old attribute names), with or without a client address
    (then called by another service's client span), 2xx-5xx or no status, user agents, hosts, versions (or
    none, and pods of two templates), zero and long durations, a root whose parent is missing, and some
    server spans stored twice."""
    seed = request.param
    path = tmp_path_factory.mktemp(f"shaped{seed}") / "data"
    _exporter_tables(path)
    h = f"cityHash64(t, {seed}"
    _sql(path, f"""
        INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
                                      ResourceAttributes, SpanAttributes, Duration, StatusCode)
        WITH intDiv(number, 2) AS t, number % 2 AS pos, {h}, 1) % 5 AS shape, {h}, 2) % 3 AS caller,
             ['web', 'mobile', 'batch'][1 + caller] AS caller_service,
             if(pos = 0, caller_service, ['api', 'files'][1 + {h}, 4) % 2]) AS svc
        SELECT fromUnixTimestamp64Nano(toInt64(1767600000000000000 + t * 1700000000 + pos * 1000000)),
               leftPad(lower(hex(toUInt128(t + 1))), 32, '0'), leftPad(lower(hex(toUInt64(number + 1))), 16, '0'),
               multiIf(pos = 1, leftPad(lower(hex(toUInt64(number))), 16, '0'), {h}, 7) % 40 = 0, 'ffffffffffffffff', ''),
               'span', if(pos = 0, 'SPAN_KIND_CLIENT', if({h}, 3) % 2 = 0, 'Server', 'SPAN_KIND_SERVER')),
               svc,
               if(svc = 'files', map('k8s.pod.name', concat('files-', if(t < 600, '7d4b9c8f6d', '5f6d8b9c7'), '-x2k9', ['p', 'q'][1 + t % 2])),
                  map('host.name', concat('h', toString({h}, 5) % 4)), 'service.version', if(t < 600, 'v1', 'v2'))),
               if(pos = 0, map('peer.service', 'api'),
                  mapFilter((k, v) -> v != '', map(
                      'http.route', if(shape = 0, '/api/items/{{id}}', ''),
                      if(shape = 4, 'http.target', 'url.path'),
                      multiIf(shape = 1, concat('/api/items/', toString({h}, 6) % 9000)),
                              shape = 2, concat('/api/files/', toString(generateUUIDv4(t)), '/meta'),
                              shape = 3, concat('/api/users/', toString({h}, 6) % 50), '?page=2'),
                              shape = 4, concat('/api/v2/orders/', toString({h}, 6) % 7), '/lines/', toString(t % 3)),
                              '/api/items/1'),
                      if({h}, 8) % 3 = 0, 'http.status_code', 'http.response.status_code'),
                      ['200', '201', '404', '429', '500', '503', ''][1 + {h}, 9) % 7],
                      'http.request.method', ['GET', 'POST', 'PUT'][1 + {h}, 10) % 3],
                      'client.address', if(caller = 0, concat('10.1.', toString({h}, 11) % 30), '.7'), ''),
                      'user_agent.original', if({h}, 12) % 4 = 0, concat('curl/8.', toString({h}, 13) % 3)), '')))),
               toUInt64(if({h}, 14) % 50 = 0, 0, 100000 + {h}, 15) % 900000000)),
               'STATUS_CODE_UNSET'
        FROM numbers(2400)""")
    # an export retried: some server spans stored twice (files keep a span id once)
    _sql(path, f"INSERT INTO otel.otel_traces SELECT * FROM otel.otel_traces WHERE SpanKind != 'SPAN_KIND_CLIENT' AND cityHash64(SpanId, {seed}) % 9 = 0")
    return path


def test_the_aggregates_computed_in_clickhouse_equal_those_of_the_same_rows_in_rca(shaped_store, monkeypatch):
    """Every count and histogram bin of the push-down (made when the rows are sampled) equals
    `aggregate_requests` over the requests the same spans give when all are read as rows: routes and
    normalised path shapes, callers joined, 4xx/5xx, methods, user agents, hosts, versions, bins."""
    import rca.parsers.clickhouse as clickhouse
    from rca.aggregates import aggregate_requests
    from rca.model import AGGREGATE_KEY

    rows = load_dataset([f"chdb:{shaped_store}?since=30d"]).requests
    assert rows["source"].n_unique() > 3 and rows["endpoint"].n_unique() > 3
    pushed = read_store(f"chdb:{shaped_store}?since=30d&max_spans=100", ParseOptions()).aggregates
    assert pushed is not None
    expected = aggregate_requests(rows, pushed.bucket_s)
    keys = [*AGGREGATE_KEY, "method"]
    assert _sorted(pushed.counts, keys).equals(_sorted(expected.counts, keys))
    bins = [*AGGREGATE_KEY, "metric", "bin"]
    assert _sorted(pushed.sketches, bins).equals(_sorted(expected.sketches, bins))
    # above CALLER_JOIN_MAX spans there is no join: only client addresses are sources, callers' requests count under null
    monkeypatch.setattr(clickhouse, "CALLER_JOIN_MAX", 10)
    read = read_store(f"chdb:{shaped_store}?since=30d&max_spans=100", ParseOptions())
    assert read.aggregates is not None and "sources are client addresses only" in " ".join(read.result.warnings)
    sources = read.aggregates.counts.filter(pl.col("dimension") == "source")
    stored = int(_sql(shaped_store, "SELECT count() FROM otel.otel_traces WHERE SpanKind != 'SPAN_KIND_CLIENT'")[0])
    assert sources["requests"].sum() == stored > rows.height  # above the bound, a span stored twice counts twice (and says so)
    assert "a span id stored twice counts twice" in " ".join(read.result.warnings)
    addresses = rows.filter(pl.col("source").str.contains(r"^[0-9.]+$"))["source"]
    assert set(sources["value"].drop_nulls()) == set(addresses)
    addressed = int(_sql(shaped_store, "SELECT count() FROM otel.otel_traces WHERE SpanKind != 'SPAN_KIND_CLIENT' AND SpanAttributes['client.address'] != ''")[0])
    assert sources.filter(pl.col("value").is_null())["requests"].sum() == stored - addressed


def test_the_time_range_is_pushed_down(store):
    whole = load_dataset([f"chdb:{store}?since=30d"])
    end = whole.spans["ts"].max()
    last_hour = load_dataset([f"chdb:{store}?since=1h"])
    assert last_hour.spans["ts"].min() >= end - timedelta(hours=1)
    assert last_hour.spans.height == whole.spans.filter(pl.col("ts") >= end - timedelta(hours=1)).height
    start = (end - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    window = load_dataset([f"chdb:{store}"], ParseOptions(store_since=start))
    assert window.spans["ts"].min() >= end - timedelta(minutes=30)


def test_compare_two_windows_of_one_store(store):
    spans = load_dataset([f"chdb:{store}?since=30d"]).requests
    start, end = spans["ts"].min(), spans["ts"].max()
    middle = start + (end - start) / 2
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    baseline = f"chdb:{store}?since={start.strftime(fmt)}&until={middle.strftime(fmt)}"
    candidate = f"chdb:{store}?since={middle.strftime(fmt)}&until={end.strftime(fmt)}"
    result = runner.invoke(app, ["compare", "--baseline", baseline, "--candidate", candidate, "--fail-on", "p95>+20%", "--format", "json", "-q"])
    assert result.exit_code in (0, 1), result.stderr
    report = orjson.loads(result.stdout)
    rows = {r["subject"]: r for r in report["rows"] if r["scope"] == "service"}
    served = spans.filter(pl.col("service") == "gateway")
    assert rows["gateway"]["n_baseline"] == served.filter(pl.col("ts") <= middle).height
    assert rows["gateway"]["n_candidate"] == served.filter(pl.col("ts") >= middle).height


def test_store_and_file_inputs_mix_in_one_run(store):
    report = _analyze(f"chdb:{store}", str(LOGS))
    assert [i["format"] for i in report["inputs"]] == ["clickhouse", "jsonl"]


@pytest.mark.parametrize(("url", "words"), [
    ("clickhouse://", "needs a host"),
    ("clickhouse://db.example:notaport/otel", "not a valid ClickHouse URL"),
    ("chdb:", "needs a data directory"),
    ("chdb:/tmp/x?trace=otel_traces", "unknown URL parameter 'trace'"),
    ("chdb:/tmp/x?traces=otel_traces;DROP", "not a plain database or table name"),
    ("chdb:/tmp/x?max_spans=-3", "max_spans must be a positive integer"),
])
def test_bad_urls_are_one_line(url, words):
    assert words in _fails("analyze", url)


def test_a_password_is_never_shown(monkeypatch):
    line = _fails("analyze", "clickhouse://alice:s3cret@127.0.0.1:1/otel")
    assert "s3cret" not in line and "cannot connect" in line
    monkeypatch.setenv("RCA_CLICKHOUSE_PASSWORD", "fromenv")
    url = parse_store_url("clickhouses://bob@ch.example/telemetry?traces=spans")
    assert url.password == "fromenv" and url.database == "telemetry" and url.tables["traces"] == "spans"
    assert "fromenv" not in url.display and "fromenv" not in repr(url)


def test_an_unknown_host_is_one_line_without_the_drivers_own_warning():
    # clickhouse-connect logs 'Unexpected Http Driver Exception' on a name it cannot resolve; Python prints such a
    # warning to stderr only outside pytest (whose log capture takes it), so the command runs in its own process
    result = subprocess.run([sys.executable, "-c", "from rca.cli import main; main()", "analyze",
                             "clickhouse://nohost.invalid:1/otel"], capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "cannot connect" in lines[0], result.stderr


def test_missing_tables_columns_and_wrong_types_name_the_table_and_column(store, tmp_path):
    assert "no table otel.nope" in _fails("analyze", f"chdb:{store}?traces=nope")
    assert "nor" in _fails("analyze", f"chdb:{store}?database=empty")
    path = tmp_path / "data"
    _sql(path, "CREATE DATABASE otel",
         "CREATE TABLE otel.otel_traces (Timestamp DateTime64(9), TraceId String, SpanId String, ParentSpanId String, "
         "SpanName String, SpanKind String, ServiceName String, ResourceAttributes Map(String, String), "
         "SpanAttributes Map(String, String), StatusCode String) ENGINE = MergeTree ORDER BY Timestamp",
         "CREATE TABLE otel.otel_logs (Timestamp DateTime64(9), TraceId String, SeverityText String, SeverityNumber UInt8, "
         "ServiceName String, Body String, ResourceAttributes Map(String, String), LogAttributes String) ENGINE = MergeTree ORDER BY Timestamp")
    line = _fails("analyze", f"chdb:{path}")
    assert "otel.otel_traces" in line and "column Duration" in line
    _sql(path, "ALTER TABLE otel.otel_traces ADD COLUMN Duration String")
    line = _fails("analyze", f"chdb:{path}")
    assert "otel.otel_traces: column Duration is String" in line and "integer" in line
    _sql(path, "ALTER TABLE otel.otel_traces MODIFY COLUMN Duration UInt64")
    line = _fails("analyze", f"chdb:{path}")
    assert "otel.otel_logs: column LogAttributes is String" in line and "Map" in line


def test_without_the_extra_a_url_says_which_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "chdb", None)
    line = _fails("analyze", f"chdb:{tmp_path}")
    assert "incident-rca[clickhouse]" in line


def test_reading_a_chdb_path_that_does_not_exist_creates_nothing(tmp_path):
    missing = tmp_path / "no" / "store"
    assert "no chDB data directory" in _fails("analyze", f"chdb:{missing}")
    assert not (tmp_path / "no").exists()


def test_read_store_reports_an_empty_range(store):
    with pytest.raises(InputError, match="time range is empty"):
        read_store(f"chdb:{store}?since=1h&until=2h", ParseOptions())


def test_the_markdown_report_says_what_was_sampled_and_what_is_exact(store):
    result = runner.invoke(app, ["analyze", f"chdb:{store}?max_spans=2000", "--format", "markdown", "-q"])
    assert result.exit_code == 0, result.stderr
    appendix = result.stdout.split("## Appendix", 1)[1]
    assert "Notes on the inputs:" in appendix and "sampled" in appendix and "Exact, computed in ClickHouse" in appendix
    assert "exact over the range (ClickHouse):" in appendix


def test_metric_points_round_trip_and_histograms_read_as_count_sum_avg(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("ts,name,value,host,service,unit\n" + "".join(
        f"2026-01-05T10:{m:02d}:00Z,system.memory.utilization,{0.5 + m / 100},db-1,db,1\n" for m in range(30)))
    path = tmp_path / "data"
    result = runner.invoke(app, ["ingest", str(csv), "--out", f"chdb:{path}", "-q"])
    assert result.exit_code == 0, result.stderr
    _sql(path, "CREATE TABLE otel.otel_metrics_histogram (ResourceAttributes Map(LowCardinality(String), String), "
               "ServiceName LowCardinality(String), MetricName String, MetricUnit String, Attributes Map(LowCardinality(String), String), "
               "TimeUnix DateTime64(9), Count UInt64, Sum Float64, BucketCounts Array(UInt64), ExplicitBounds Array(Float64)) "
               "ENGINE = MergeTree ORDER BY TimeUnix",
         "INSERT INTO otel.otel_metrics_histogram VALUES (map('host.name', 'db-1'), 'db', 'http.server.request.duration', 's', "
         "map(), '2026-01-05 10:10:00', 4, 2.0, [1, 3], [0.5])")
    stored = load_dataset([f"chdb:{path}?since=30d"]).metrics
    files = load_dataset([str(csv)]).metrics
    gauge = stored.filter(pl.col("name") == "system.memory.utilization").sort("ts")
    assert gauge.select("ts", "name", "value", "unit", "service", "host").equals(files.sort("ts").select("ts", "name", "value", "unit", "service", "host"))
    histogram = dict(stored.filter(pl.col("name").str.starts_with("http.server")).select("name", "value").iter_rows())
    assert histogram == {"http.server.request.duration.count": 4.0, "http.server.request.duration.sum": 2.0, "http.server.request.duration.avg": 0.5}


def test_many_metric_points_are_averaged_per_interval_in_clickhouse(tmp_path, monkeypatch):
    csv = tmp_path / "metrics.csv"
    values = [0.5 + m / 100 for m in range(30)]
    csv.write_text("ts,name,value,host,service\n" + "".join(f"2026-01-05T10:{m:02d}:00Z,cpu,{v},db-1,db\n" for m, v in enumerate(values)))
    path = tmp_path / "data"
    assert runner.invoke(app, ["ingest", str(csv), "--out", f"chdb:{path}", "-q"]).exit_code == 0
    monkeypatch.setattr("rca.parsers.clickhouse.MAX_METRIC_POINTS", 10)
    data = load_dataset([f"chdb:{path}?since=1h"])
    assert 1 <= data.metrics.height <= 10
    assert abs(data.metrics["value"].mean() - sum(values) / len(values)) < 0.05  # averages of the points
    assert any("averaged per interval in ClickHouse" in w for w in data.inputs[0].warnings)


class _ServerOverChdb:
    """Stands in for clickhouse_connect's client (no server in tests): the same SQL and parameters, run by chDB."""

    def __init__(self, path: Path, **kwargs):
        self.kwargs = kwargs
        self._session = chdb_session.Session(str(path))

    def query_arrow(self, sql: str, parameters: dict, use_strings: bool | None = None):
        assert use_strings is True
        return self._session.query(sql, "ArrowTable", params=parameters)

    def close(self) -> None:
        self._session.close()


def test_a_clickhouse_server_url_connects_with_its_settings_and_reads_the_same(store, monkeypatch):
    import clickhouse_connect

    made: list[_ServerOverChdb] = []

    def get_client(**kwargs):
        made.append(_ServerOverChdb(store, **kwargs))
        return made[-1]

    monkeypatch.setattr(clickhouse_connect, "get_client", get_client)
    monkeypatch.setenv("RCA_CLICKHOUSE_PASSWORD", "pw-from-env")
    report = _analyze("clickhouses://alice@ch.example/otel")
    kwargs = made[0].kwargs
    assert kwargs["host"] == "ch.example" and kwargs["port"] == 8443 and kwargs["secure"] is True
    assert kwargs["username"] == "alice" and kwargs["password"] == "pw-from-env" and kwargs["database"] == "otel"
    assert kwargs["settings"]["max_execution_time"] > 0 and kwargs["send_receive_timeout"] > kwargs["settings"]["max_execution_time"]
    assert report["inputs"][0]["path"] == "clickhouses://alice@ch.example/otel"
    assert _causes(report) == _causes(_analyze(f"chdb:{store}"))


def _engine_pages_kb() -> int:
    """Resident kB of the chDB library's mappings in this process."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head, _, rest = line.partition(" ")
            if "-" in head and not head.endswith(":"):
                inside = "_chdb" in rest
            elif inside and head == "Rss:":
                total += int(rest.split()[0])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page mappings are read from /proc")
def test_the_engines_library_pages_are_released_and_mapped_back_on_use(store):
    from rca.parsers.clickhouse import _release_library_pages, connect

    client = connect(parse_store_url(f"chdb:{store}"))
    try:
        count = "SELECT count() AS n FROM otel.otel_traces"
        expected = client.query(count)["n"][0]
        client._session.query("SELECT quantiles(0.5, 0.9)(Duration), uniqExact(TraceId) FROM otel.otel_traces")  # type: ignore[attr-defined]
        before = _engine_pages_kb()
        assert _release_library_pages("_chdb") > 0
        assert _engine_pages_kb() < before
        assert client.query(count)["n"][0] == expected > 0  # the code the engine runs comes back on use
    finally:
        client.close()
