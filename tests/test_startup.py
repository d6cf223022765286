"""Start-up of the `rca` command: what a command imports is what it uses (at a million lines, `rca ingest`
takes about a second, of which the start-up was half). Checked by module, not by time (no timed tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rca.cli import app

LINE = '203.0.113.9 - - [12/Jan/2026:08:40:00 +0000] "GET /api/orders/7?x=1 HTTP/1.1" 200 512 "-" "curl/8.0"\n'

# Runs the console entry point (as the `rca` script does) and prints the modules it imported.
RUN = """
import sys
sys.argv = ["rca", *sys.argv[1:]]
from rca.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(" ".join(sorted(sys.modules)))
"""


def _imported(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_quiet_ingest_imports_no_option_validation_nor_console_nor_analysis(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(LINE * 3)
    modules = _imported("ingest", str(log), "--out", str(tmp_path / "frames"), "-q", "--tz", "UTC")
    assert (tmp_path / "frames" / "requests.0.parquet").exists() or (tmp_path / "frames" / "requests.parquet").exists()
    tops = {m.split(".")[0] for m in modules}
    assert not tops & {"pydantic", "rich", "matplotlib"}
    assert not {m for m in modules if m.startswith(("rca.detectors", "rca.ranking", "rca.render", "rca.findings"))}


def test_help_imports_neither_polars_nor_numpy():
    tops = {m.split(".")[0] for m in _imported("--help")}
    assert not tops & {"polars", "numpy", "pydantic", "rich"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "twenty"], "Invalid value for '--year': Input should be a valid integer"),
        (["-f", "xml"], "'xml' is not one of 'terminal', 'json', 'markdown'"),
    ],
)
def test_values_that_need_converting_are_still_checked(tmp_path, args, message):
    """Values taken as they are (a `str` for a `str`) skip typer's converters; the others still go through them."""
    log = tmp_path / "access.log"
    log.write_text(LINE)
    done = CliRunner().invoke(app, ["analyze", str(log), "-q", *args])
    assert done.exit_code == 2
    assert message in done.output
