"""Times without a UTC offset beside times with one (#15 left item): a warning naming the file, and the offset
when trace ids shared with spans show it. Generated inputs; offsets, names and rates vary by seed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rca.cli import app
from rca.parsers.timezones import inferred_offset_s, offset_state

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_offset_state_reads_the_first_timestamp_of_each_line():
    assert offset_state(['{"ts":"2026-05-04T09:00:00.123Z","msg":"x"}']) == "offset"
    assert offset_state(["2026-05-04 09:00:00,123+0200 INFO started"]) == "offset"
    assert offset_state(['1.2.3.4 - - [04/May/2026:09:00:00 -0700] "GET / HTTP/1.1" 200 5']) == "offset"
    assert offset_state(["2026-05-04 09:00:00,123 INFO  [web-1] started"]) == "naive"
    assert offset_state(['{"time":"2026-05-04T09:00:00.5","level":"info"}']) == "naive"
    assert offset_state(["May  4 09:00:00 web-1 sshd[12]: accepted"]) == "naive"
    assert offset_state(['{"ts":1777885200.5,"msg":"epoch"}']) is None


def _frames(seed: int, offset_s: int, n: int = 40) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spans of `n` traces, and a log line per trace written some seconds into it by a clock `offset_s` ahead of UTC."""
    rng = np.random.default_rng(seed)
    starts = [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 3600, n))]
    ids = [f"{rng.integers(0, 2**63):032x}" for _ in range(n)]
    spans = pl.DataFrame({"trace_id": ids, "ts": starts}, schema={"trace_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    lines = [t + timedelta(seconds=offset_s + float(rng.uniform(0.01, 4.0))) for t in starts]
    events = pl.DataFrame({"trace_id": ids, "ts": lines}, schema={"trace_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    return events, spans


@pytest.mark.parametrize("seed", range(6))
def test_the_offset_is_inferred_from_shared_trace_ids(seed):
    offset_s = int(np.random.default_rng([seed, 9]).choice([-7 * 3600, -3 * 3600, 3600, 2 * 3600, 5 * 3600 + 1800, 9 * 3600]))
    events, spans = _frames(seed, offset_s)
    assert inferred_offset_s(events, spans) == offset_s
    assert inferred_offset_s(*_frames(seed, 0)) is None  # the same clock: nothing to infer
    mixed = pl.concat([events.head(20), _frames(seed + 100, 0)[0].head(20)])  # half the lines disagree: no clear offset
    assert inferred_offset_s(mixed, pl.concat([spans, _frames(seed + 100, 0)[1]])) is None


def _write(tmp_path: Path, seed: int, offset_h: int) -> tuple[Path, Path]:
    """An access log with offsets and a JSON-lines app log whose clock is `offset_h` ahead of UTC, written
    without offset; both see the same requests (the app log's lines carry the request's trace id, and the
    traces are in OTLP/JSON)."""
    rng = np.random.default_rng(seed)
    access, app_log, traces = tmp_path / "access.log", tmp_path / "app.jsonl", tmp_path / "traces.otlp.json"
    service = f"svc{rng.integers(10, 99)}"
    access_lines, app_lines, spans = [], [], []
    for i, s in enumerate(np.sort(rng.uniform(0, 1800, 400))):
        t = T0 + timedelta(seconds=float(s))
        trace = f"{seed:08x}{i:024x}"
        access_lines.append(f'10.0.{i % 7}.{i % 200} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /api/items/{i} HTTP/1.1" 200 512')
        local = t + timedelta(hours=offset_h, milliseconds=float(rng.uniform(5, 900)))
        app_lines.append(json.dumps({"ts": f"{local:%Y-%m-%dT%H:%M:%S.%f}"[:-3], "level": "info", "service": service,
                                     "msg": "request done", "trace_id": trace, "duration_ms": round(float(rng.uniform(5, 90)), 1)}))
        ns = int(t.timestamp() * 1e9)
        spans.append({"traceId": trace, "spanId": f"{i:016x}", "name": "GET /api/items", "kind": 2,
                      "startTimeUnixNano": str(ns), "endTimeUnixNano": str(ns + 20_000_000)})
    access.write_text("\n".join(access_lines) + "\n")
    app_log.write_text("\n".join(app_lines) + "\n")
    traces.write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                                                     "scopeSpans": [{"spans": spans}]}]}) + "\n")
    return access, app_log


@pytest.mark.parametrize("seed, offset_h", [(0, 2), (1, -5)])
def test_the_cli_names_the_file_read_as_utc_and_its_likely_offset(tmp_path, seed, offset_h):
    access, app_log = _write(tmp_path, seed, offset_h)
    result = CliRunner().invoke(app, ["analyze", str(tmp_path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "without a UTC offset" in line]
    assert warning.startswith(f"rca: warning: {app_log}: times without a UTC offset were read as UTC")
    assert f"likely UTC{offset_h:+03d}:00" in warning and str(access) not in warning.split(":")[2]
    assert json.loads(result.stdout)["inputs"]  # the report still comes
    chosen = CliRunner().invoke(app, ["analyze", str(tmp_path), "-f", "json", "--tz", f"Etc/GMT{-offset_h:+d}"])
    assert "without a UTC offset" not in chosen.stderr  # a zone the user chose is not second-guessed


def _activity(tmp_path: Path, seed: int, offset_h: float, minutes: int) -> tuple[Path, Path]:
    """An access log with offsets and a JSON-lines app log without trace ids whose clock is `offset_h`
    ahead of UTC, written without offset; both follow the same traffic, whose shape (bursts, lulls)
    varies with the seed."""
    rng = np.random.default_rng(seed)
    rate = np.repeat(rng.gamma(2.0, 1.0, minutes // 5 + 1), 5)[:minutes]  # five-minute levels
    rate[rng.integers(0, minutes)] *= 8  # a burst
    access, app_log = tmp_path / "access.log", tmp_path / "app.jsonl"
    access_lines, app_lines = [], []
    for minute, level in enumerate(rate):
        for s in np.sort(rng.uniform(0, 60, rng.poisson(20 * level))):
            t = T0 + timedelta(minutes=minute, seconds=float(s))
            access_lines.append(f'10.0.0.{int(s) % 200} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /api/items HTTP/1.1" 200 512')
        for s in np.sort(rng.uniform(0, 60, rng.poisson(3 * level))):
            local = T0 + timedelta(minutes=minute, seconds=float(s), hours=offset_h)
            app_lines.append(json.dumps({"ts": f"{local:%Y-%m-%dT%H:%M:%S.%f}"[:-3], "level": "info", "msg": "cache lookup done"}))
    access.write_text("\n".join(access_lines) + "\n")
    app_log.write_text("\n".join(app_lines) + "\n")
    return access, app_log


def _clock_warnings(path: Path) -> list[str]:
    result = CliRunner().invoke(app, ["analyze", str(path), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    return [line for line in result.stderr.splitlines() if "without a UTC offset" in line]


@pytest.mark.parametrize("seed, minutes", [(0, 45), (1, 90), (2, 240)])
def test_a_log_whose_activity_lines_up_as_read_is_not_second_guessed(tmp_path, seed, minutes):
    _activity(tmp_path, seed, 0, minutes)
    assert _clock_warnings(tmp_path) == []


@pytest.mark.parametrize("seed, offset_h", [(3, 2), (4, -7), (5, 5.5)])
def test_the_offset_is_inferred_from_lined_up_activity(tmp_path, seed, offset_h):
    _, app_log = _activity(tmp_path, seed, offset_h, 120)
    [warning] = _clock_warnings(tmp_path)
    zone = f"{'+' if offset_h > 0 else '-'}{int(abs(offset_h)):02d}:{int(abs(offset_h) % 1 * 60):02d}"
    assert warning.startswith(f"rca: warning: {app_log}:") and "activity lines up" in warning and f"likely UTC{zone}" in warning


def test_steady_days_of_activity_leave_the_offset_unknown(tmp_path):
    """Two days of the same traffic every hour line up at every offset: none is claimed, the warning stays."""
    access, app_log = tmp_path / "access.log", tmp_path / "app.jsonl"
    hours = 48
    access.write_text("".join(f'10.0.0.1 - - [{T0 + timedelta(minutes=m, seconds=s):%d/%b/%Y:%H:%M:%S} +0000] "GET / HTTP/1.1" 200 5\n'
                              for m in range(hours * 60) for s in (5, 35)))
    app_log.write_text("".join(json.dumps({"ts": f"{T0 + timedelta(minutes=m, seconds=20):%Y-%m-%dT%H:%M:%S}", "level": "info", "msg": "tick"}) + "\n"
                               for m in range(hours * 60)))
    [warning] = _clock_warnings(tmp_path)
    assert "if this file's clock is local, pass --tz" in warning
