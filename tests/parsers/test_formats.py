"""Golden expectations per format, the real corpus, and the bad-input list of issue #2."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import polars as pl
import pytest

from rca.errors import InputError
from rca.parsers import ParseOptions, get_parser
from rca.parsers.decoding import parse_timestamp
from rca.parsers.endpoints import normalize_endpoint
from rca.parsers.loader import load_dataset
from rca.parsers.sources import Source

COMBINED = (
    '203.0.113.7 - alice [22/Nov/2026:12:00:01 +0100] "GET /api/messages/12345?x=1 HTTP/1.1" 200 512 '
    '"https://ex.com/" "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0" 0.123 0.010, 0.020 : 0.030'
)


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if mode == "w":
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


@pytest.mark.parametrize(
    ("raw", "route"),
    [
        ("/api/messages/12345", "/api/messages/{id}"),
        ("/api/messages/98765?page=2#x", "/api/messages/{id}"),
        ("/u/550e8400-e29b-41d4-a716-446655440000/files", "/u/{uuid}/files"),
        ("/blobs/deadbeefcafe1234", "/blobs/{hex}"),
        ("/s/a8f3k29d0s8f7g6h5j4k", "/s/{token}"),
        ("/static/app.3f9a8b7c.js", "/static/app.{hex}.js"),
        ("https://h.example/api/v1/items/42", "/api/v1/items/{id}"),
        ("/presentations/logstash-monitorama-2013/", "/presentations/logstash-monitorama-2013/"),
        ("/api/v2/users", "/api/v2/users"),
        ("", "/"),
    ],
)
def test_endpoint_normalization(raw, route):
    assert normalize_endpoint(raw) == route


def test_combined_with_timings_golden(tmp_path):
    data = load_dataset([write(tmp_path, "access.log", COMBINED + "\n")])
    row = data.requests.row(0, named=True)
    assert row["ts"] == datetime(2026, 11, 22, 11, 0, 1, tzinfo=UTC)
    assert (row["method"], row["path"], row["endpoint"], row["status"], row["bytes"]) == (
        "GET", "/api/messages/12345", "/api/messages/{id}", 200, 512)
    assert row["source"] == "203.0.113.7"
    assert row["duration_ms"] == pytest.approx(123.0)
    assert row["upstream_ms"] == pytest.approx(60.0)  # a list of upstream tries is summed
    assert row["user_agent"].startswith("Mozilla/5.0")
    assert (row["origin"], row["line"], row["signal"]) == (str(tmp_path / "access.log"), 1, "access_log")
    assert data.inputs[0].format == "combined"


def test_common_and_apache_microseconds(tmp_path):
    common = '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "POST /login HTTP/1.0" 302 -\n'
    apache_d = '10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "GET /a/7 HTTP/1.1" 200 10 "-" "curl/8.0" 2500\n'
    data = load_dataset([write(tmp_path, "a.log", common), write(tmp_path, "b.log", apache_d)])
    by_line = {r["origin"].rsplit("/", 1)[1]: r for r in data.requests.iter_rows(named=True)}
    assert by_line["a.log"]["bytes"] == 0 and by_line["a.log"]["status"] == 302
    assert by_line["b.log"]["duration_ms"] == pytest.approx(2.5)  # %D is microseconds
    assert {s.format for s in data.inputs} == {"common", "combined"}


def test_custom_nginx_log_format(tmp_path):
    fmt = '$remote_addr [$time_iso8601] "$request" $status $request_time "$http_x_forwarded_for" $host'
    line = '10.1.1.1 [2026-11-22T12:00:00+00:00] "PUT /api/items/55 HTTP/2.0" 503 1.500 "198.51.100.9, 10.0.0.1" api.example\n'
    data = load_dataset([write(tmp_path, "custom.log", line)], ParseOptions(log_format=fmt))
    row = data.requests.row(0, named=True)
    assert row["source"] == "198.51.100.9"  # the original client behind the proxy
    assert row["service"] == "api.example"
    assert row["duration_ms"] == pytest.approx(1500.0)
    assert row["endpoint"] == "/api/items/{id}" and row["status"] == 503


def test_real_apache_corpus(corpus):
    data = load_dataset([str(corpus / "apache_logs" / "apache_logs")])
    summary = data.inputs[0]
    assert summary.format == "combined"
    assert summary.lines == 10_000
    assert summary.rejected == 1 and summary.rejected_examples[0].line == 8899  # a truncated line in the file
    assert data.requests.height == 9_999
    assert summary.top_endpoints[0][0] == "/favicon.ico"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1763812800, datetime(2025, 11, 22, 12, 0, tzinfo=UTC)),
        (1763812800123, datetime(2025, 11, 22, 12, 0, 0, 123000, tzinfo=UTC)),
        (1763812800123456, datetime(2025, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)),
        (1763812800123456789, datetime(2025, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)),
        ('"2025-11-22T13:00:00+01:00"', datetime(2025, 11, 22, 12, 0, tzinfo=UTC)),
        ('"2025-11-22 12:00:00.5Z"', datetime(2025, 11, 22, 12, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_jsonl_timestamps(tmp_path, value, expected):
    path = write(tmp_path, "app.jsonl", f'{{"ts": {value}, "msg": "hello", "level": "info"}}\n')
    assert load_dataset([path]).events["ts"][0] == expected


def test_timestamp_text_mixing_iso_and_epochs_reads_both():
    """Epochs spelled as text among ISO-8601 times (the epochs are looked for only where the ISO read left
    a null): each value read by its own spelling, text that is neither stays null."""
    values = pl.Series(["2025-11-22T12:00:00.250Z", " 1763812800 ", "1763812800123", None, "soon", "2025-11-22T13:00:00+01:00"])
    assert parse_timestamp(values).to_list() == [
        datetime(2025, 11, 22, 12, 0, 0, 250000, tzinfo=UTC), datetime(2025, 11, 22, 12, 0, tzinfo=UTC),
        datetime(2025, 11, 22, 12, 0, 0, 123000, tzinfo=UTC), None, None, datetime(2025, 11, 22, 12, 0, tzinfo=UTC)]
    assert parse_timestamp(values.head(1)).to_list() == [datetime(2025, 11, 22, 12, 0, 0, 250000, tzinfo=UTC)]


def test_an_epoch_beyond_any_datetime_is_a_rejected_line_not_a_crash(tmp_path):
    path = write(tmp_path, "app.jsonl", '{"ts": 1e25, "msg": "far"}\n{"ts": 1.5e9, "msg": "near"}\n')
    data = load_dataset([path])
    assert data.events["message"].to_list() == ["near"]
    assert data.inputs[0].rejected == 1 and data.inputs[0].rejected_examples[0].line == 1


def test_jsonl_conventions_and_overrides(tmp_path):
    lines = "\n".join([
        '{"@timestamp":"2026-11-22T12:00:00Z","log":{"level":"warn"},"message":"disk 91%","host":{"name":"h1"},"service":{"name":"api"}}',
        '{"time":1763812800000,"level":50,"msg":"boom","hostname":"h2","req":{"url":"/api/x/9","method":"post"},"res":{"statusCode":500},"responseTime":42}',
        '{"ts":"2026-11-22T12:00:02Z","level":"info","http":{"route":"/api/x/{id}"},"url":{"path":"/api/x/3"},"status":200,"duration":0.25,"my_client":"partner-a"}',
    ]) + "\n"
    data = load_dataset([write(tmp_path, "app.jsonl", lines)], ParseOptions(fields={"source": "my_client"}))
    event = data.events.row(0, named=True)
    assert (event["level"], event["host"], event["service"], event["message"]) == ("WARN", "h1", "api", "disk 91%")
    pino, route = data.requests.sort("status", descending=True).to_dicts()
    assert pino["method"] == "POST" and pino["status"] == 500 and pino["duration_ms"] == 42.0
    assert pino["endpoint"] == "/api/x/{id}" and pino["ts"] == datetime(2025, 11, 22, 12, 0, tzinfo=UTC)
    assert route["endpoint"] == "/api/x/{id}"  # the route given by the log wins
    assert route["duration_ms"] == pytest.approx(250.0)  # a fractional `duration` is seconds
    assert route["source"] == "partner-a"  # --field source=my_client


def test_logfmt(tmp_path):
    text = 'ts=2026-11-22T12:00:00Z level=error msg="db timeout after 30s" service=users path=/u/7 status=504 duration_ms=30000\n'
    data = load_dataset([write(tmp_path, "svc.log", text)])
    assert data.inputs[0].format == "logfmt"
    row = data.requests.row(0, named=True)
    assert (row["endpoint"], row["status"], row["duration_ms"], row["service"]) == ("/u/{id}", 504, 30000.0, "users")


def test_changes_from_versions_messages_and_file(tmp_path):
    lines = "\n".join([
        '{"ts":"2026-11-22T12:00:00Z","service":"api","host":"a1","service.version":"2.3.0","msg":"ok"}',
        '{"ts":"2026-11-22T12:05:00Z","service":"api","host":"a1","service.version":"2.3.1","msg":"ok"}',
        '{"ts":"2026-11-22T12:20:00Z","service":"api","host":"a1","msg":"rolled back api to v2.3.0"}',
        '{"ts":"2026-11-22T12:30:00Z","service":"api","host":"a1","msg":"configuration reloaded"}',
    ]) + "\n"
    markers = write(tmp_path, "deploys.csv", "ts,kind,service,subject\n2026-11-22T11:00:00Z,deploy,web,v9\n")
    data = load_dataset([write(tmp_path, "app.jsonl", lines)], changes_files=[markers])
    got = [(r["kind"], r["service"], r["subject"]) for r in data.changes.sort("ts").iter_rows(named=True)]
    assert got == [("deploy", "web", "v9"), ("deploy", "api", "v2.3.1"), ("rollback", "api", "v2.3.0"), ("config", "api", None)]


# --- bad input: one clear message, counted, never a traceback -----------------------------------


def test_missing_file_is_reported_and_others_still_read(tmp_path):
    good = write(tmp_path, "access.log", COMBINED + "\n")
    data = load_dataset([good, str(tmp_path / "nope.log")])
    failed = [s for s in data.inputs if s.format == "unreadable"]
    assert failed and "no such file" in failed[0].warnings[0]
    assert data.requests.height == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"\x00\x01\x02\x03binary\x00" * 100, "binary"), (b"hello there\nthis is prose\n", "unknown format")],
)
def test_nothing_readable_raises_one_input_error(tmp_path, content, reason):
    path = write(tmp_path, "x.dat", content, mode="wb")
    with pytest.raises(InputError) as info:
        load_dataset([path])
    assert reason in str(info.value) and "x.dat" in str(info.value)


def test_truncated_gzip_keeps_what_was_readable(tmp_path):
    body = (COMBINED + "\n").encode() * 2000
    packed = gzip.compress(body)
    path = write(tmp_path, "access.log.gz", packed[: len(packed) // 2], mode="wb")
    data = load_dataset([path])
    summary = data.inputs[0]
    assert 0 < data.requests.height < 2000
    assert any("truncated" in w for w in summary.warnings)


def test_broken_timestamp_long_line_and_invalid_utf8_are_counted(tmp_path):
    lines = [
        COMBINED,
        COMBINED.replace("22/Nov/2026:12:00:01", "99/Foo/2026:12:00:01"),
        '1.2.3.4 - - [22/Nov/2026:12:00:01 +0000] "GET /' + "a" * (10 * 1024 * 1024) + ' HTTP/1.1" 200 1 "-" "x" 0.1',
        COMBINED.replace("alice", "al\udcffice"),
    ]
    payload = "\n".join(lines).encode("utf-8", errors="surrogateescape") + b"\n"
    path = write(tmp_path, "access.log", payload, mode="wb")
    data = load_dataset([path])
    summary = data.inputs[0]
    assert summary.lines == 4
    assert summary.rejected == 2
    reasons = {r.line: r.reason for r in summary.rejected_examples}
    assert "timestamp" in reasons[2] and "too long" in reasons[3]
    assert data.requests.height == 2  # the invalid UTF-8 byte is replaced, the line kept


def test_input_format_override_and_unknown_name(tmp_path):
    path = write(tmp_path, "a.log", COMBINED + "\n")
    assert load_dataset([path], ParseOptions(input_format="combined")).requests.height == 1
    with pytest.raises(InputError, match="unknown input format"):
        load_dataset([path], ParseOptions(input_format="nope"))


def test_registry_lists_formats():
    for name in ("combined", "common", "vcombined", "vcommon", "jsonl", "logfmt", "parquet", "text", "syslog"):
        assert get_parser(name).name == name


def test_parquet_roundtrip(tmp_path):
    from rca.parsers.loader import ingest_to_parquet

    path = write(tmp_path, "access.log", COMBINED + "\n")
    ingest_to_parquet([path], tmp_path / "frames")
    again = load_dataset([str(tmp_path / "frames")])
    original = load_dataset([path])
    assert again.requests.equals(original.requests)
    assert pl.scan_parquet(tmp_path / "frames" / "requests*.parquet").collect().height == 1


def test_a_log_line_naming_an_otlp_key_is_not_taken_for_otlp(tmp_path):
    """The OTLP/JSON sniffer wants a JSON object with the key as a key, not the word anywhere."""
    access = tmp_path / "access.log"
    access.write_text('1.2.3.4 - - [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "resourceMetrics"\n')
    app = tmp_path / "app.jsonl"
    app.write_text('{"ts": 1772359200, "msg": "exported \\"resourceSpans\\": 3 batches"}\n')
    dataset = load_dataset([str(access), str(app)])
    assert [s.format for s in dataset.inputs] == ["combined", "jsonl"]
    otlp = tmp_path / "traces.json"
    otlp.write_text('\n  {"resourceSpans" : []}\n')
    assert get_parser("otlp-json").sniff(Source(origin=str(otlp), path=otlp).sample()) > 0.9
