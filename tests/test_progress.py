"""Progress on stderr: bytes read of each file with its total and rate, then a stage line per detector
and for ranking; only on an interactive terminal, never on a pipe, under CI or with --quiet."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rca.cli import _progress, app
from rca.pipeline import AnalyzeOptions, analyze

ACCESS = (
    '10.0.0.{c} - - [01/Mar/2026:12:{m:02d}:{s:02d} +0000] "GET /api/items/{k} HTTP/1.1" {status} 512 "-" "curl/8.5.0" 0.{d:03d}\n'
)


def _access_log(path: Path) -> Path:
    lines = [ACCESS.format(c=i % 7, m=i // 60 % 60, s=i % 60, k=i % 5, status=500 if i > 2400 and i % 3 == 0 else 200, d=20 + i % 50)
             for i in range(3000)]
    path.write_text("".join(lines))
    return path


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system=None), out


def test_progress_draws_bytes_total_rate_and_stages_on_a_terminal(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    console, out = _terminal()
    progress, update = _progress(console, quiet=False)
    assert progress is not None and update is not None
    with progress:
        update("reading access.log", 50_000_000, 200_000_000)
        progress.refresh()
        drawn = out.getvalue()
        update("detecting: latency (4/15)", 0, 0)
        progress.refresh()
    assert "reading access.log" in drawn and "50/200 MB" in drawn
    assert "detecting: latency (4/15)" in out.getvalue()


def test_no_progress_with_quiet_on_a_pipe_or_under_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    assert _progress(_terminal()[0], quiet=True) == (None, None)
    assert _progress(Console(file=io.StringIO()), quiet=False) == (None, None)  # not a terminal: a pipe or a file
    monkeypatch.setenv("CI", "true")
    assert _progress(_terminal()[0], quiet=False) == (None, None)


def test_analysis_reports_each_file_each_detector_and_ranking(tmp_path: Path):
    log = _access_log(tmp_path / "access.log")
    calls: list[tuple[str, int, int]] = []
    analyze([str(log)], AnalyzeOptions(), progress=lambda stage, done, total: calls.append((stage, done, total)))
    reading = [c for c in calls if c[0].startswith("reading ")]
    assert reading and reading[-1][1] == reading[-1][2] == log.stat().st_size  # every byte, out of the file's size
    stages = [c[0] for c in calls if not c[0].startswith("reading ")]
    detecting = [s for s in stages if s.startswith("detecting: ")]
    assert len(detecting) > 3 and detecting[0].endswith(f"(1/{len(detecting)})") and detecting[-1].endswith(f"({len(detecting)}/{len(detecting)})")
    assert stages.index("choosing windows") < stages.index(detecting[0]) < stages.index("ranking")


def test_cli_on_a_pipe_writes_nothing_but_the_report(tmp_path: Path):
    log = _access_log(tmp_path / "access.log")
    result = CliRunner().invoke(app, ["analyze", str(log), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.lstrip().startswith("{")
