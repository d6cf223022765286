"""The CLI's one error boundary: each exception type maps to an exit code and at most one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rca.cli import app, main

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _crash(exc: BaseException):
    def raise_it(*args, **kwargs):
        raise exc

    return raise_it


def test_no_arguments_print_the_help_and_exit_2():
    result = subprocess.run([sys.executable, "-c", "from rca.cli import main; main()"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Usage: rca" in result.stdout and "analyze" in result.stdout
    assert "unexpected" not in result.stderr and "Error" not in result.stderr


def test_an_unexpected_error_is_one_line_and_exit_2(monkeypatch):
    monkeypatch.setattr("rca.parsers.all_parsers", _crash(ValueError("synthetic failure")))
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["rca: error: unexpected ValueError: synthetic failure (run with --debug for a traceback)"]


def test_debug_shows_the_traceback_before_or_after_the_command(monkeypatch, capsys):
    monkeypatch.setattr("rca.parsers.all_parsers", _crash(ValueError("synthetic failure")))
    assert isinstance(runner.invoke(app, ["--debug", "formats"]).exception, ValueError)
    monkeypatch.setattr(sys, "argv", ["rca", "formats", "--debug"])
    with pytest.raises(ValueError, match="synthetic failure"):
        main()
    # --debug is remembered for one run only
    assert runner.invoke(app, ["formats"]).exit_code == 2


def test_an_interrupt_exits_130(monkeypatch):
    monkeypatch.setattr("rca.parsers.all_parsers", _crash(KeyboardInterrupt()))
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 130 and result.stderr.strip() == "rca: interrupted"


def test_a_usage_error_while_parsing_exits_2_without_traceback():
    result = subprocess.run([sys.executable, "-c", "from rca.cli import main; main()", "analyze", "--nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "No such option" in result.stderr and "Traceback" not in result.stderr


def test_a_closed_pipe_is_not_a_failure():
    """The reader of the report goes away after a few bytes: rca stops quietly with exit 0."""
    command = [sys.executable, "-c", "from rca.cli import main; main()", "analyze", str(ROOT / "samples" / "third-party-surge" / "telemetry"),
               "-f", "json", "-q"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.read(100)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0 and err == ""
