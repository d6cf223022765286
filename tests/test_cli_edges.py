"""The rough edges a new user hits first (issue #18): exit codes through a real closed pipe, outputs
checked before the work, too little data said so, and help texts that list what a command takes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rca.cli import app
from rca.simulate import SCENARIOS, generate

runner = CliRunner()
RCA = [sys.executable, "-m", "rca.cli"]


@pytest.fixture(scope="module")
def incident(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("incident")
    generate("third-party-surge", 4, minutes=60, scale=0.5, formats=("access", "text")).write(path)
    return path / "telemetry"


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A quiet run, the same platform with other noise (a compare that passes), and one with a slow
    release (a compare that fails)."""
    paths = [tmp_path_factory.mktemp(name) for name in ("base", "cand", "worse")]
    generate("quiet", 3, minutes=30, scale=0.5, formats=("access",)).write(paths[0])
    generate("quiet", 3, minutes=30, scale=0.5, formats=("access",), noise_seed=4).write(paths[1])
    generate("quiet", 3, minutes=30, scale=0.5, formats=("access",), noise_seed=4, latency_regression=2.0,
             regression_endpoint="/api/chats").write(paths[2])
    return tuple(p / "telemetry" for p in paths)


def _into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    """Run rca with stdout a pipe whose reader is already gone: every write gets EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(args, stdout=write, stderr=subprocess.PIPE, timeout=120, check=False)
    finally:
        os.close(write)


# --- item 8: a closed pipe is not a failure ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["terminal", "json", "markdown"])
def test_analyze_into_a_closed_pipe_exits_0(incident, fmt):
    done = _into_closed_pipe([*RCA, "analyze", str(incident), "-f", fmt, "-q"])
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr


def test_compare_into_a_closed_pipe_keeps_its_verdict(twins, tmp_path):
    base, cand, worse = twins
    passing = _into_closed_pipe([*RCA, "compare", "--baseline", str(base), "--candidate", str(cand), "--fail-on", "p95>+50%"])
    assert passing.returncode == 0, passing.stderr
    failing = _into_closed_pipe([*RCA, "compare", "--baseline", str(base), "--candidate", str(worse), "--fail-on", "p95>+20%"])
    assert failing.returncode == 1, failing.stderr  # a gate that trips still says so


def test_head_closing_the_pipe_under_pipefail(incident):
    """`set -o pipefail; rca ... | head -n 1`: the pipeline's status is rca's own, and it is 0."""
    command = " ".join([*(f"'{a}'" for a in RCA), "analyze", f"'{incident}'", "-f", "json", "-q", "|", "head", "-n", "1"])
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"{\n"


# --- item 7: outputs checked before the work --------------------------------------------------------


def test_a_missing_output_folder_fails_before_reading_anything(tmp_path):
    started = time.monotonic()
    result = runner.invoke(app, ["analyze", str(tmp_path / "no-such-input"), "-o", str(tmp_path / "missing" / "x.md")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'missing' / 'x.md'}: cannot write the report: no directory" in result.stderr
    assert "unexpected" not in result.stderr and time.monotonic() - started < 5


def test_a_chart_of_an_unknown_kind_fails_before_the_work(incident, tmp_path):
    result = runner.invoke(app, ["analyze", str(incident), "--chart", str(tmp_path / "x.jpg"), "-o", str(tmp_path / "r.md")])
    assert result.exit_code == 2
    assert "--chart writes .svg, .png, .pdf" in result.stderr and "unexpected" not in result.stderr
    assert not (tmp_path / "r.md").exists()


def test_the_report_is_written_even_when_the_chart_cannot_be(incident, tmp_path, monkeypatch):
    def fail(report, path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("rca.render.chart.write_chart", fail)
    out = tmp_path / "r.md"
    result = runner.invoke(app, ["analyze", str(incident), "-f", "markdown", "-o", str(out), "--chart", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert "cannot write the chart: Permission denied (the report was written)" in result.stderr
    assert out.read_text().startswith("# Incident analysis")


def test_the_image_link_is_relative_to_the_markdown_file(incident, tmp_path):
    """Item 11: -o and --chart in different folders gave a link to the chart's bare name."""
    (tmp_path / "docs" / "pm").mkdir(parents=True)
    (tmp_path / "img").mkdir()
    out, chart = tmp_path / "docs" / "pm" / "report.md", tmp_path / "img" / "top cause.png"
    result = runner.invoke(app, ["analyze", str(incident), "-f", "markdown", "-o", str(out), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert "![Top cause and symptom](../../img/top%20cause.png)" in out.read_text()
    assert (out.parent / "../../img/top cause.png").resolve().read_bytes().startswith(b"\x89PNG")


# --- item 6: too little data -------------------------------------------------------------------------


@pytest.mark.parametrize("lines", [1, 3])
def test_a_few_seconds_of_data_say_too_little_data(tmp_path, lines):
    log = tmp_path / "tiny.log"
    log.write_text("".join(f"2026-01-05 10:00:0{i + 1} ERROR failed {i}\n" for i in range(lines)))
    result = runner.invoke(app, ["analyze", str(log), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert '"headline": "Too little data: the inputs span' in result.stdout
    assert '"window": null' in result.stdout  # no zero-length incident, no baseline ending after it starts


# --- item 10: help texts -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["analyze"], ["compare"], ["simulate"], ["ingest"], ["formats"]])
def test_every_help_has_examples_and_no_bool_metavar(command):
    text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"}).stdout
    assert "Examples:" in text and "<bool>" not in text


def test_compare_help_lists_both_sides_and_the_config_tables():
    text = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "100"}).stdout
    assert "--baseline INPUTS..." in text and "--candidate INPUTS..." in text
    assert "rca.toml [gates]" in text and "[tool.rca.gates]" in text


def test_simulate_help_lists_the_scenarios_and_requires_out():
    text = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "100"}).stdout
    assert all(name in text for name in SCENARIOS)
    out = next(line for line in text.splitlines() if "--out DIR" in line)
    assert "[required]" in out or "[required]" in text.split("--out DIR", 1)[1].split("--", 1)[0]
    assert runner.invoke(app, ["simulate", "quiet"]).exit_code == 2
    listed = runner.invoke(app, ["simulate", "--list"])
    assert listed.exit_code == 0 and listed.stdout.startswith(next(iter(SCENARIOS)))
