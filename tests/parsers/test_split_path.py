"""The access-log fast path (polars' CSV reader splitting fields) must give exactly what the regex path
gives, line for line, on valid lines and on every kind of odd line, which it hands back to the regex."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rca.parsers import ParseOptions
from rca.parsers.access_log import DESCRIPTIONS, FORMATS, AccessLogParser, parse_lines, split_layout
from rca.parsers.endpoints import normalize_endpoint_expr, normalize_endpoints
from rca.parsers.lines import read_lines
from rca.parsers.sources import Source

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COMBINED = AccessLogParser("combined", FORMATS["combined"], DESCRIPTIONS["combined"])

good_line = st.builds(
    lambda ip, user, day, zone, method, path, status, size, ua, rt, up: (
        f'{ip} - {user} [{day:02d}/Mar/2026:1{day % 10}:0{day % 6}:{day + 10} {zone}] "{method} {path} HTTP/1.1" {status} {size} '
        f'"-" "{ua}"{rt}{up}'
    ),
    ip=st.sampled_from(["10.0.0.1", "192.168.1.20", "2001:db8::1", "-"]),
    user=st.sampled_from(["-", "frank", "a.b@example.com", "fr\u00e9d", "x\ty"]),
    day=st.integers(1, 28),
    zone=st.sampled_from(["+0000", "-0700", "+0530", "+1400"]),
    method=st.sampled_from(["GET", "post", "PUT"]),
    path=st.sampled_from(["/", "/api/messages/12345", "/a/1/2/3?x=1", "/u/550e8400-e29b-41d4-a716-446655440000", "/x//9", "http://h/a/7",
                          "/static/app.3f9a8b7c.js", "/v2/users/42/orders/7", "/q?a=b#f", "/x/1.5", "/d/2024-01-01"]),
    status=st.sampled_from(["200", "404", "503", "-"]),
    size=st.sampled_from(["0", "1234", "-"]),
    ua=st.sampled_from(["-", "curl/8.0", "Mozilla/5.0 (X11; Linux x86_64)", ""]),
    rt=st.sampled_from(["", " 0.123", " 12", " -"]),
    up=st.sampled_from(["", " 0.100", " -", " 0.010, 0.020", " 0.1 : 0.2", " extra stuff"]),
)
odd_line = st.sampled_from([
    "", "   ", "garbage", "  leading spaces", '1.2.3.4 - - [99/Foo/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
    '1.2.3.4 - - [01/Mar/2026:00:00:00 +0000] "\\x16\\x03\\x01" 400 0 "-" "-"', '1.2.3.4 - - [01/Mar/2026:00:00:00] "GET / HTTP/1.1" 200 1',
    '1.2.3.4 - - [01/Mar/2026:00:00:00 +0000] "GET /a\tb HTTP/1.1" 200 1 "-" "-"', '1.2.3.4 - - [01/Mar/2026:00:00:00 +0000] "GET" 200 1 "-" "-"',
    '1.2.3.4 - "x y" [01/Mar/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"', "\u00e9t\u00e9 caf\u00e9",
])


def _both(text: str) -> tuple:
    source = Source(origin="access.log", data=text.encode())
    fast = COMBINED.parse(source, ParseOptions())
    lines = read_lines(source)
    slow, bad = parse_lines(lines.frame, COMBINED.compiled, source.origin)
    return fast, slow, bad.height + lines.rejected_count


@SETTINGS
@given(st.lists(st.one_of(good_line, good_line, odd_line), min_size=1, max_size=25))
def test_fast_path_equals_regex_path(lines):
    fast, slow, rejected = _both("\n".join(lines) + "\n")
    assert fast.frames["requests"].equals(slow), (fast.frames["requests"], slow)
    assert fast.rejected == rejected


real_line = st.builds(
    lambda ip, day, second, zone, method, path, query, status, size, referer, ua, timing: (
        f'{ip} - - [{day:02d}/Mar/2026:10:00:{second:02d} {zone}] "{method} {path}{query} HTTP/1.1" {status} {size} "{referer}" "{ua}"{timing}'
    ),
    ip=st.sampled_from(["10.0.0.1", "2001:db8:85a3::8a2e:370:7334", "::1", "203.0.113.9"]),
    day=st.integers(1, 3),  # few distinct seconds and requests: lines repeat, as in real logs
    second=st.integers(0, 2),
    zone=st.sampled_from(["+0000", "-0700", "+0530"]),
    method=st.sampled_from(["GET", "GET", "HEAD", "post"]),
    path=st.sampled_from(["/", "/api/items/42", "/static/app.3f9a8b7c.js", "/a//b/7", "/search", "http://h/x/9", "*"]),
    query=st.sampled_from(["", "", "?q=a%20b&page=2", "?x=\\\"y\\\"", "#top"]),
    status=st.sampled_from(["200", "304", "404", "500"]),
    size=st.sampled_from(["0", "-", "5120"]),
    referer=st.sampled_from(["-", "https://www.google.com/search?q=x&hl=en", 'http://r/\\"q\\"']),
    ua=st.sampled_from(["-", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                        'crawler \\"quoted\\" 1.0', "ends \\\\"]),
    timing=st.sampled_from(["", " 0.004", " 1534", " 0.120 0.100", " 0.300 0.010, 0.020 : 0.250", " 0.050 -"]),
)


@SETTINGS
@given(lines=st.lists(st.one_of(real_line, real_line, real_line, real_line.map(lambda line: line[: len(line) * 2 // 3]), odd_line),
                      min_size=1, max_size=60),
       chunk=st.sampled_from([300, 2000, 1 << 20]))
def test_fast_path_equals_regex_path_on_real_shaped_lines_in_chunks(monkeypatch, lines, chunk):
    """IPv6, query strings, `-` bytes, escaped quotes, %D microseconds, request and upstream times, zones,
    truncated lines (unbalanced quotes), repeated values, over chunk boundaries: the same rows and
    rejections as the regex reads, line numbers included."""
    from rca.parsers import lines as lines_module

    monkeypatch.setattr(lines_module, "CHUNK_BYTES", chunk)
    fast, slow, rejected = _both("\n".join(lines) + "\n")
    assert fast.frames["requests"].equals(slow), (fast.frames["requests"], slow)
    assert fast.rejected == rejected
    assert fast.slow_lines <= len(lines) - fast.frames["requests"].height + sum(" : " in line or ", " in line for line in lines)


def test_fast_path_takes_clean_lines_and_reports_odd_ones_with_line_numbers():
    text = "\n".join([
        '10.0.0.1 - - [01/Mar/2026:10:00:00 +0100] "GET /api/messages/17 HTTP/1.1" 200 5 "-" "curl/8" 0.250 0.200',
        "",
        "not a log line",
        '10.0.0.2 - - [01/Mar/2026:10:00:01 +0100] "POST /api/messages HTTP/1.1" 503 0 "-" "-" 1.500 0.010, 1.400',
    ]) + "\n"
    fast, slow, _ = _both(text)
    requests = fast.frames["requests"]
    assert requests.get_column("line").to_list() == [1, 4]
    assert requests.get_column("endpoint").to_list() == ["/api/messages/{id}", "/api/messages"]
    assert requests.get_column("upstream_ms").to_list() == [200.0, 1410.0]  # the upstream list is summed by the regex path
    assert str(requests.get_column("ts")[0]) == "2026-03-01 09:00:00+00:00"
    assert fast.rejected == 1 and fast.rejected_examples[0].line == 3
    assert fast.slow_lines == 1  # the upstream list was read from its columns, not by the regex
    assert requests.equals(slow)


def test_unbalanced_quote_sends_only_its_own_line_to_the_regex():
    good = [f'1.1.1.{i} - - [01/Mar/2026:10:00:{i:02d} +0000] "GET /c/{i} HTTP/1.1" 200 5 "-" "curl/8"' for i in range(40)]
    lines = [*good[:10], '1.1.1.1 - - [01/Mar/2026:10:00:00 +0000] "GET /a"b HTTP/1.1" 200 5 "-" "-"', *good[10:20],
             '9.9.9.9 - - [01/Mar/2026:10:00:09 +0000] "GET /t HTTP/1.1" 200 5 "-" "Mozilla/5.0 (compatible; Googlebot/2.1', *good[20:]]
    fast, slow, rejected = _both("\n".join(lines) + "\n")
    assert fast.frames["requests"].equals(slow) and fast.frames["requests"].height == 40
    assert fast.rejected == rejected == 2
    assert [r.line for r in fast.rejected_examples] == [11, 22]
    assert fast.slow_lines == 2  # the other lines were split


def test_escaped_quotes_and_backslashes_stay_on_the_fast_path():
    lines = [
        '1.1.1.1 - - [01/Mar/2026:10:00:00 +0000] "GET /a?q=\\"x\\" HTTP/1.1" 200 5 "http://r/\\"q\\"" "UA \\"quoted\\" 1.0"',
        '1.1.1.2 - - [01/Mar/2026:10:00:01 +0000] "GET /b HTTP/1.1" 200 5 "-" "ends with a backslash \\\\"',
        '1.1.1.3 - - [01/Mar/2026:10:00:02 +0000] "GET /c HTTP/1.1" 200 5 "-" "\\\\\\"both\\""',
    ]
    fast, slow, rejected = _both("\n".join(lines) + "\n")
    assert fast.frames["requests"].equals(slow) and fast.frames["requests"].height == 3
    assert fast.frames["requests"].get_column("user_agent")[0] == 'UA \\"quoted\\" 1.0'
    assert fast.slow_lines == 0 and fast.rejected == rejected == 0


def test_invalid_utf8_is_decoded_lossily_on_the_fast_path():
    source = Source(origin="access.log", data=b'1.1.1.1 - - [01/Mar/2026:10:00:00 +0000] "GET /caf\xe9 HTTP/1.1" 200 5 "-" "\xff"\n')
    result = COMBINED.parse(source, ParseOptions())
    row = result.frames["requests"].row(0, named=True)
    assert row["path"] == "/caf\ufffd" and row["user_agent"] == "\ufffd"


referer_line = st.builds(
    lambda referer, ua, tail: f'1.1.1.1 - - [01/Mar/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 {referer} {ua}{tail}',
    referer=st.sampled_from(['"-"', '""', '"http://r/?q=a b"', '"http://r/\\"q\\""', '"\u00e9\tx"', '"a" "b"']),
    ua=st.sampled_from(['"curl/8"', '""', ""]),
    tail=st.sampled_from(["", " 0.010", " 0.010 0.002", " x"]),
)


@SETTINGS
@given(st.lists(st.one_of(referer_line, odd_line, st.sampled_from(['         "x"', '        "x" ', ' "y"'])), min_size=1, max_size=20))
def test_referers_the_split_does_not_read_are_judged_as_the_regex_judges_them(lines):
    """The referer is split but not read (no canonical column is made of it): empty, with spaces or escaped
    quotes, or alone on a line otherwise blank, a line is taken or rejected as the regex does."""
    fast, slow, rejected = _both("\n".join(lines) + "\n")
    assert fast.frames["requests"].equals(slow), (fast.frames["requests"], slow)
    assert fast.rejected == rejected


def test_a_line_too_long_in_a_field_not_read_is_still_rejected():
    from rca.parsers.access_log import unread_columns
    from rca.parsers.lines import MAX_LINE_BYTES

    assert unread_columns(COMBINED.layout) == ("http_referer",)
    line = '1.1.1.1 - - [01/Mar/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "{referer}" "curl/8"'
    text = "\n".join([line.format(referer="-"), line.format(referer="r" * (MAX_LINE_BYTES + 10)), line.format(referer="-")]) + "\n"
    fast, slow, rejected = _both(text)
    assert fast.frames["requests"].get_column("line").to_list() == [1, 3] and fast.frames["requests"].equals(slow)
    assert fast.rejected == rejected == 1 and "too long" in fast.rejected_examples[0].reason


def test_split_layout_only_for_space_separated_formats():
    assert split_layout(FORMATS["combined"], trailer=True) is not None
    assert split_layout('$remote_addr [$time_local] "$request" $status rt=$request_time', trailer=False) is None
    assert split_layout('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"', trailer=False) is None


segments = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.+@ABCDEF", min_size=0, max_size=24),
    st.integers(0, 10**12).map(str),
    st.uuids().map(str),
)


@SETTINGS
@given(st.lists(st.lists(segments, min_size=0, max_size=5).map(lambda s: "/" + "/".join(s)), min_size=1, max_size=30),
       st.sampled_from(["", "?a=1/2", "#x", "http://h:8080"]))
def test_normalizing_distinct_shapes_equals_the_full_rules(paths, extra):
    paths = [extra + p if extra.startswith("http") else p + extra for p in paths]
    series = pl.Series(paths, dtype=pl.String)
    expected = pl.select(normalize_endpoint_expr(pl.lit(series))).to_series()
    assert normalize_endpoints(series).to_list() == expected.to_list()


def _mixed_log(tmp_path, unbalanced: bool = False) -> str:
    rows = []
    for i in range(40):
        rows.append(f'10.0.{i % 3}.{i} - - [01/Mar/2026:10:{i:02d}:00 +0000] "GET /api/items/{i} HTTP/1.1" 200 {i} "-" "curl/8" 0.{i:03d} -')
        if i % 7 == 0:
            rows.append(f'10.0.0.9 - - [01/Mar/2026:10:{i:02d}:30 +0000] "POST /api/items HTTP/1.1" 503 0 "-" "-" 1.500 0.010, 1.400')
        if i % 11 == 0:
            rows += ["", "this is not an access log line"]
    if unbalanced:
        rows.insert(5, '10.0.0.1 - - [01/Mar/2026:10:05:00 +0000] "GET /a"b HTTP/1.1" 200 5 "-" "-"')
    path = tmp_path / "access.log"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("origin", "line")


def test_ingest_streams_the_fast_path_to_parquet_and_reads_back_the_same_rows(tmp_path):
    from rca.parsers.loader import ingest_to_parquet, load_dataset

    for unbalanced in (False, True):
        log = _mixed_log(tmp_path, unbalanced)
        out = tmp_path / "frames"
        summaries = ingest_to_parquet([log], out)
        direct = load_dataset([log])
        again = load_dataset([str(out)])
        assert _sorted(again.requests).equals(_sorted(direct.requests))
        assert summaries[0].rejected == direct.inputs[0].rejected == 4 + unbalanced
        assert summaries[0].rows == direct.inputs[0].rows
        assert summaries[0].lines == direct.inputs[0].lines
        assert (summaries[0].first_ts, summaries[0].last_ts) == (direct.inputs[0].first_ts, direct.inputs[0].last_ts)
        # every line was streamed, those the regex read in their chunk too
        assert sorted(p.name for p in out.iterdir()) == ["requests.0.parquet"]


def test_ingest_replaces_the_frames_of_an_earlier_ingest(tmp_path):
    from rca.parsers.loader import ingest_to_parquet, load_dataset

    out = tmp_path / "frames"
    out.mkdir()
    (out / "requests.7.parquet").write_bytes(b"stale")
    (out / "notes.txt").write_text("mine")
    ingest_to_parquet([_mixed_log(tmp_path)], out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "requests.0.parquet"]
    assert load_dataset([str(out / "requests.0.parquet")]).requests.height == 46


def test_an_ingest_that_fails_or_reads_its_own_output_keeps_the_earlier_frames(tmp_path):
    """The frames are written aside and moved in at the end: `rca ingest DIR -o DIR` reads the earlier frames
    before replacing them (it deleted them first, then found nothing to read), an ingest with nothing
    readable leaves them as they were, and a directory holding the output folder is read without it (run
    twice, `rca ingest logs -o logs/frames` read its earlier frames as inputs: every row twice)."""
    import pytest

    from rca.errors import InputError
    from rca.parsers.loader import ingest_to_parquet, load_dataset

    logs = tmp_path / "logs"
    logs.mkdir()
    Path(_mixed_log(logs)).replace(logs / "access.log")
    out = logs / "frames"
    for _ in range(2):
        ingest_to_parquet([str(logs)], out)
        assert load_dataset([str(out)]).requests.height == 46
    ingest_to_parquet([str(out)], out)
    assert sorted(p.name for p in out.iterdir()) == ["requests.parquet"]
    assert load_dataset([str(out)]).requests.height == 46
    with pytest.raises(InputError):
        ingest_to_parquet([str(tmp_path / "missing.log")], out)
    assert sorted(p.name for p in out.iterdir()) == ["requests.parquet"]
    assert load_dataset([str(out)]).requests.height == 46


def test_unbalanced_quotes_among_escaped_ones_keep_the_other_lines_on_the_fast_path():
    good = '1.1.1.{i} - - [01/Mar/2026:10:00:00 +0000] "GET /c/{i} HTTP/1.1" 200 5 "http://r/\\"q\\"" "UA \\"x\\" {i}" 0.010 0.002, 0.008'
    lines = [good.format(i=i) for i in range(60)]
    lines[3] = lines[3][:70]  # cut inside the request: its quote never closes
    lines[40] = lines[40][:-30]  # cut inside the user agent
    fast, slow, rejected = _both("\n".join(lines) + "\n")
    assert fast.frames["requests"].equals(slow) and fast.frames["requests"].height == 58
    assert fast.rejected == rejected == 2 and fast.slow_lines == 2


def test_loading_reports_the_bytes_read_of_each_file(tmp_path, monkeypatch):
    from rca.parsers import lines as lines_module
    from rca.parsers.loader import load_dataset

    monkeypatch.setattr(lines_module, "CHUNK_BYTES", 1024)  # several chunks
    access = _mixed_log(tmp_path)
    app = tmp_path / "app.jsonl"
    app.write_text("".join(f'{{"ts": "2026-03-01T10:00:{i % 60:02d}Z", "msg": "m{i}", "service": "api"}}\n' for i in range(200)))
    calls: list[tuple[str, int, int]] = []
    load_dataset([access, str(app)], progress=lambda stage, done, total: calls.append((stage, done, total)))
    for path in (access, str(app)):
        mine = [(done, total) for stage, done, total in calls if path in stage]
        size = Path(path).stat().st_size
        assert mine[0] == (0, size) and mine[-1] == (size, size) and len(mine) > 3
        assert [d for d, _ in mine] == sorted(d for d, _ in mine)  # bytes only grow


@SETTINGS
@given(lines=st.lists(st.text(alphabet='ab "\\', max_size=12), min_size=1, max_size=40), pieces=st.sampled_from([1, 3, 64]))
def test_line_index_finds_lines_and_unbalanced_quotes_as_a_line_by_line_count_does(monkeypatch, lines, pieces):
    from rca.parsers.access_log import _LineIndex

    monkeypatch.setattr(_LineIndex, "PIECES", pieces)
    data = ("\n".join(lines) + "\n").encode()
    index = _LineIndex(data)
    assert [data[slice(*index.span(i))].decode() for i in range(len(lines))] == lines
    odd = [i for i, line in enumerate(lines) if line.count('"') % 2]
    assert index.odd_quote_lines(every_piece=True).tolist() == odd
    assert set(index.odd_quote_lines().tolist()) <= set(odd)  # pieces where two cancel out are skipped
    blanked = index.blanked(index.odd_quote_lines(every_piece=True)).decode().split("\n")[:-1]
    assert blanked == ["" if i in odd else line for i, line in enumerate(lines)]


def test_upstream_lists_after_chunks_without_them_stay_on_the_fast_path(monkeypatch):
    """Chunks are read with one spare column until one holds an upstream list (`SpareColumns`): that chunk
    is read again with all of them, as are the chunks after it. The list lines are split (none goes to the
    regex) and every row equals the regex's; a line with an extra field that is no list still goes there."""
    from rca.parsers import lines as lines_module

    monkeypatch.setattr(lines_module, "CHUNK_BYTES", 2000)
    head = '10.0.0.{i} - - [01/Mar/2026:10:00:{s:02d} +0000] "GET /api/items/{i} HTTP/1.1" {status} 5 "-" "curl/8.0" 0.120'
    plain = [head.format(i=i, s=i % 60, status=200) + " 0.100" for i in range(60)]
    listed = [head.format(i=i, s=i % 60, status=502) + timing for i in range(60) for timing in [" 0.010, 0.020 : 0.250", " 0.3 :0.1", " -"][i % 3:][:1]]
    extra = [head.format(i=1, s=1, status=200) + " 0.100 surplus"]
    fast, slow, rejected = _both("\n".join(plain + listed + extra + plain) + "\n")
    assert fast.frames["requests"].equals(slow), (fast.frames["requests"], slow)
    assert fast.rejected == rejected == 0
    assert fast.slow_lines == 1  # the surplus field: lists were split
    assert slow.filter(pl.col("status") == 502).get_column("upstream_ms").drop_nulls().round(6).unique().sort().to_list() == [280.0, 400.0]


@SETTINGS
@given(st.lists(st.one_of(good_line, real_line, st.text(alphabet=st.sampled_from(' -"[]:/\t\x1c\x1d\x1e\x85\xa0\u2028\u3000aZ09.+\\'), max_size=40),
                          real_line.map(lambda line: line.replace(" ", "\x1c", 1)), real_line.map(lambda line: line.replace(" ", "\u3000", 1))),
                min_size=1, max_size=30))
@example(['10.0.0.1 - fr\x1cank [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"'])  # a match to polars, none to `re`
def test_lines_python_finds_unmatched_are_rejected_as_the_regex_path_rejects_them(lines):
    """The few lines a chunk's split hands the regex are first tried with Python's `re` (`_unmatched_apart`):
    whitespace Python and polars' engine disagree on (`\\x1c`-`\\x1f`; not `\\x1f`, `read_lines`' separator) and
    Unicode spaces among them, the rows, rejected counts and examples equal the regex path's."""
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n"
    fast, slow, rejected = _both(text)
    assert fast.frames["requests"].equals(slow), (fast.frames["requests"], slow)
    assert fast.rejected == rejected
    source = Source(origin="access.log", data=text.encode())
    lines_read = read_lines(source)
    _, bad = parse_lines(lines_read.frame, COMBINED.compiled, source.origin)
    expected = [(r["line"], r["reason"], r["text"][:160]) for r in bad.head(5).iter_rows(named=True)]
    assert [(r.line, r.reason, r.text) for r in fast.rejected_examples] == expected
