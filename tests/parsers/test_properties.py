"""Property tests: any generated valid access-log or JSON line round-trips its fields; garbage never
raises anything but the input error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rca.errors import InputError
from rca.parsers import ParseOptions
from rca.parsers.loader import load_dataset
from rca.parsers.sources import Source

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=10)
paths = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
ips = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t)))
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 1, 1)).map(lambda d: d.replace(microsecond=0, tzinfo=UTC))
agents = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'), max_size=60)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(text: bytes, options: ParseOptions | None = None):
    from rca.parsers.loader import _choose_parser

    source = Source(origin="mem.log", data=text)
    parser = _choose_parser(source, options or ParseOptions())
    return parser.parse(source, options or ParseOptions())


@SETTINGS
@given(ip=ips, ts=times, method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=paths,
       status=st.integers(100, 599), size=st.integers(0, 10**9), ua=agents, rt=st.integers(0, 600_000),
       offset=st.integers(-12, 14))
def test_combined_lines_round_trip(ip, ts, method, path, status, size, ua, rt, offset):
    zone = timedelta(hours=offset)
    local = (ts + zone).strftime("%d/") + MONTHS[(ts + zone).month - 1] + (ts + zone).strftime("/%Y:%H:%M:%S")
    sign = "+" if offset >= 0 else "-"
    line = f'{ip} - - [{local} {sign}{abs(offset):02d}00] "{method} {path} HTTP/1.1" {status} {size} "-" "{ua}" {rt / 1000:.3f}\n'
    result = _load(line.encode())
    assert result.rejected == 0
    row = result.frames["requests"].row(0, named=True)
    assert row["source"] == ip and row["method"] == method and row["path"] == path
    assert row["status"] == status and row["bytes"] == size
    assert row["ts"] == ts
    assert abs(row["duration_ms"] - rt) < 1e-6 * max(rt, 1) + 1e-9


@SETTINGS
@given(ts=times, status=st.integers(100, 599), path=paths, latency=st.floats(0, 1e6, allow_nan=False),
       msg=st.text(max_size=40))
def test_json_lines_round_trip(ts, status, path, latency, msg):
    record = {"timestamp": ts.isoformat(), "status_code": status, "url.path": path, "latency_ms": latency, "msg": msg}
    result = _load(orjson.dumps(record) + b"\n")
    row = result.frames["requests"].row(0, named=True)
    assert row["ts"] == ts and row["status"] == status and row["path"] == path
    assert row["duration_ms"] == latency


@SETTINGS
@given(blob=st.binary(max_size=2000))
def test_garbage_never_raises_anything_but_input_error(blob, tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(blob)
    try:
        data = load_dataset([str(path)])
    except InputError:
        return
    summary = data.inputs[0]
    assert summary.rejected >= 0 and summary.lines >= 0
