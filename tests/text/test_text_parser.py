"""Golden tests for the plain-text and syslog parsers, and a property test for record grouping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.parsers import ParseOptions, get_parser, sniff
from rca.parsers.sources import Source


def parse(text: str, parser: str | None = None, **options):
    source = Source(origin="app.log", data=text.encode())
    chosen = get_parser(parser) if parser else sniff(source.sample())[0]
    assert chosen is not None
    return chosen.parse(source, ParseOptions(**options))


def rows(result):
    return result.frames["events"].to_dicts()


def test_log4j_with_java_stack_trace_is_one_event():
    text = (
        "2026-11-22 12:00:01,234 WARN  [messages-2] cache.MessageCache - cache full, evicted 512 entries\n"
        "2026-11-22 12:00:02,000 ERROR [messages-2] app.Server - java.lang.OutOfMemoryError: Java heap space\n"
        "\tat java.util.Arrays.copyOf(Arrays.java:3236)\n"
        "\tat com.example.Handler.handle(Handler.java:42)\n"
        "2026-11-22 12:00:03,500 INFO  [messages-2] http.Server - handled 10 requests\n"
    )
    result = parse(text)
    assert result.rejected == 0
    events = rows(result)
    assert len(events) == 3
    first, oom, last = events
    assert first["ts"] == datetime(2026, 11, 22, 12, 0, 1, 234000, tzinfo=UTC)
    assert (first["level"], first["host"], first["service"], first["logger"]) == (
        "WARN",
        "messages-2",
        "messages",
        "cache.MessageCache",
    )
    assert first["message"] == "cache full, evicted 512 entries"
    assert oom["level"] == "ERROR" and oom["line"] == 2
    assert oom["message"].splitlines() == [
        "java.lang.OutOfMemoryError: Java heap space",
        "\tat java.util.Arrays.copyOf(Arrays.java:3236)",
        "\tat com.example.Handler.handle(Handler.java:42)",
    ]
    assert last["line"] == 5 and all(e["signal"] == "text_log" for e in events)


def test_python_logging_traceback():
    text = (
        "2026-01-05 10:00:01,000 ERROR worker: job failed\n"
        "Traceback (most recent call last):\n"
        '  File "w.py", line 3, in run\n'
        "ValueError: bad\n"
        "2026-01-05 10:00:02,500 INFO worker: retrying\n"
    )
    events = rows(parse(text))
    assert [e["level"] for e in events] == ["ERROR", "INFO"]
    assert events[0]["logger"] == "worker"
    assert events[0]["message"].endswith("ValueError: bad")
    assert events[1]["message"] == "retrying"


def test_iso_with_zone_is_converted_to_utc():
    events = rows(parse("2026-01-05T10:00:00+02:00 ERROR db: too many connections\n"))
    assert events[0]["ts"] == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert events[0]["level"] == "ERROR"


def test_rfc3164_needs_year_and_warns():
    text = "<11>Nov  2 03:04:05 web-1 kernel: Out of memory: Killed process 4242 (java)\nNov 12 03:04:06 web-1 sshd[99]: Accepted key\n"
    result = parse(text, year=2025, tz="UTC")
    events = rows(result)
    assert result.format == "syslog" and result.warnings == []
    assert events[0]["ts"] == datetime(2025, 11, 2, 3, 4, 5, tzinfo=UTC)
    assert (events[0]["host"], events[0]["logger"], events[0]["level"]) == (
        "web-1",
        "kernel",
        "ERROR",
    )  # PRI 11 -> severity 3
    assert events[1]["logger"] == "sshd" and events[1]["message"] == "Accepted key"
    assert all(e["signal"] == "syslog" for e in events)
    assert any("no year" in w for w in parse(text).warnings)


def test_rfc3164_local_zone():
    events = rows(
        parse(
            "Jan  5 10:00:00 db-1 postgres[7]: remaining connection slots are reserved\n",
            year=2026,
            tz="Europe/Paris",
        )
    )
    assert events[0]["ts"] == datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_rfc5424():
    text = '<165>1 2026-01-05T10:00:00.003Z host-7 cache-svc 812 ID47 [exampleSDID@32473 iut="3"] evicted 9 entries\n'
    result = parse(text)
    event = rows(result)[0]
    assert result.format == "syslog"
    assert event["ts"] == datetime(2026, 1, 5, 10, 0, 0, 3000, tzinfo=UTC)
    assert (event["host"], event["logger"], event["level"], event["message"]) == (
        "host-7",
        "cache-svc",
        "INFO",
        "evicted 9 entries",
    )


@pytest.mark.parametrize(
    ("line", "expected", "level"),
    [
        (
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
            datetime(2005, 12, 4, 4, 47, 44, tzinfo=UTC),
            "ERROR",
        ),
        ("05/Jan/2026:10:00:00 +0100 WARN pool exhausted", datetime(2026, 1, 5, 9, tzinfo=UTC), "WARN"),
        ("1767607200 ERROR disk: no space left on device", datetime(2026, 1, 5, 10, tzinfo=UTC), "ERROR"),
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
            datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC),
            "INFO",
        ),
        (
            "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered",
            datetime(2017, 6, 9, 20, 10, 40, tzinfo=UTC),
            "INFO",
        ),
        (
            "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack",
            datetime(2016, 9, 28, 4, 30, 30, tzinfo=UTC),
            "INFO",
        ),
    ],
)
def test_timestamp_layouts(line, expected, level):
    result = parse(line + "\n" + line + "\n")
    events = rows(result)
    assert result.rejected == 0 and len(events) == 2
    assert events[0]["ts"] == expected and events[0]["level"] == level


def test_orphan_continuation_lines_are_rejected_with_line_numbers():
    result = parse("\tat nowhere\n2026-01-05 10:00:00 INFO a: b\n", parser="text")
    assert result.rejected == 1 and result.rejected_examples[0].line == 1
    assert len(rows(result)) == 1


def test_does_not_steal_json_logfmt_or_access_logs():
    samples = {
        '{"ts":"2026-01-05T10:00:00Z","level":"info","msg":"hi"}\n': "text",
        'ts=2026-01-05T10:00:00Z level=info msg="hi there" service=api\n': "text",
        '10.0.0.1 - - [05/Jan/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8"\n': "text",
    }
    for text, loser in samples.items():
        source = Source(origin="x", data=(text * 5).encode())
        best, _ = sniff(source.sample())
        assert best is not None and best.name != loser, text


def test_simulated_app_log_reads_without_rejects():
    from rca.simulate import generate

    incident = generate("memory-exhaustion", seed=3, formats=("text",))
    (name,) = [n for n in incident.files if n.endswith("app.log.gz")]
    import gzip

    source = Source(origin=name, data=gzip.decompress(incident.files[name]))
    result = get_parser("text").parse(source, ParseOptions())
    events = result.frames["events"]
    assert result.rejected == 0 and events.height > 100
    assert events["level"].null_count() == 0 and events["service"].null_count() == 0
    # The OutOfMemoryError stack trace stays one event.
    oom = events.filter(events["message"].str.starts_with("java.lang.OutOfMemoryError"))
    assert oom.height >= 1 and oom["message"].str.contains("\n").all()


def test_loghub_samples_parse_without_rejects(corpus: Path):
    for log in sorted((corpus / "loghub").glob("*/*_2k.log")):
        source = Source(origin=log.name, data=log.read_bytes())
        parser, score = sniff(source.sample())
        assert parser is not None and parser.name in ("text", "syslog") and score > 0, log.name
        result = parser.parse(source, ParseOptions(year=2026))
        assert result.rejected == 0, (log.name, result.rejected)
        events = result.frames["events"]
        assert events.height == 2000 and events["ts"].null_count() == 0, log.name  # one record per line


messages = (
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["INFO", "WARN", "ERROR"]), messages, st.integers(0, 3)),
        min_size=1,
        max_size=15,
    )
)
def test_records_and_continuations_round_trip(records):
    lines, expected = [], []
    for second, (level, message, extra) in enumerate(records):
        lines.append(f"2026-01-05 10:00:{second:02d},000 {level} app.Main - {message}")
        tail = [f"\tat frame{k}" for k in range(extra)]
        lines.extend(tail)
        expected.append((level, "\n".join([message, *tail])))
    result = parse("\n".join(lines) + "\n", parser="text")
    got = [(e["level"], e["message"]) for e in rows(result)]
    assert result.rejected == 0
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert len(got) == len(expected)
    for (_, message), (_, want) in zip(got, expected, strict=True):
        assert message.split("\n")[1:] == want.split("\n")[1:]


def test_syslog_without_year_is_never_dated_after_the_file_was_written(tmp_path):
    """Issue #18 item 6: the current year put lines of last December five days into the future. Each line
    takes the latest year that dates it no later than the file's modification time (a day of slack)."""
    import os

    path = tmp_path / "messages"
    path.write_text("Dec 30 23:59:00 web-1 app[1]: before the new year\n"
                    "Jan  2 00:01:00 web-1 app[1]: after it\n")
    written = datetime(2027, 1, 3, 8, 0, tzinfo=UTC)
    os.utime(path, (written.timestamp(), written.timestamp()))
    result = get_parser("syslog").parse(Source(origin=str(path), path=path), ParseOptions())
    stamps = [e["ts"] for e in rows(result)]
    assert stamps == [datetime(2026, 12, 30, 23, 59, tzinfo=UTC), datetime(2027, 1, 2, 0, 1, tzinfo=UTC)]
    assert any("assumed 2026-2027" in w and "modification time" in w for w in result.warnings)
    # from stdin, nothing later than now
    now = datetime.now(UTC)
    future = now.replace(day=1, month=now.month % 12 + 1)
    stamps = [e["ts"] for e in rows(parse(f"{future:%b %d %H:%M:%S} web-1 app[1]: x\n", parser="syslog"))]
    assert stamps[0] <= now
