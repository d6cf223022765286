"""The `rca` command through typer's test runner: exit codes, streams, formats, bad input."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from rca import __version__
from rca.cli import app
from rca.simulate import generate

runner = CliRunner()


@pytest.fixture(scope="module")
def incident(tmp_path_factory):
    path = tmp_path_factory.mktemp("incident")
    generate("third-party-surge", 4, minutes=60, scale=0.5, formats=("access", "jsonl", "text")).write(path)
    return path


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"rca {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "analyze" in result.output


def test_analyze_json_is_parseable_and_names_the_source(incident):
    result = runner.invoke(app, ["analyze", str(incident / "telemetry"), "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    truth = orjson.loads((incident / "truth.json").read_bytes())
    assert report["schema_version"] == 1 and report["incident_detected"] is True
    assert report["hypotheses"][0]["subject"] in truth["root_cause"]["accept"]
    assert any(r["kind"] == "deploy" for r in report["ruled_out"])


def test_analyze_markdown_and_chart_to_files(incident, tmp_path):
    out, chart = tmp_path / "report.md", tmp_path / "chart.svg"
    result = runner.invoke(app, ["analyze", str(incident / "telemetry"), "-f", "markdown", "-o", str(out), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for section in ("## Summary", "## Timeline", "## Root cause", "## Ruled out (misleading paths)", "## Appendix", "```mermaid"):
        assert section in text
    assert chart.read_bytes().startswith(b"<?xml")


def test_terminal_report_is_plain_without_a_tty(incident):
    result = runner.invoke(app, ["analyze", str(incident / "telemetry")], env={"NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert "Likely causes" in result.stdout and "Ruled out" in result.stdout


def test_nothing_readable_exits_2_through_the_runner(tmp_path):
    bad = tmp_path / "binary.dat"
    bad.write_bytes(b"\x00\x01" * 500)
    result = runner.invoke(app, ["analyze", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("rca: error:") and "binary" in result.stderr


def test_nothing_readable_exits_2_with_one_line(tmp_path, capsys):
    from rca.cli import main

    bad = tmp_path / "empty.log"
    bad.write_text("")
    import sys

    argv = sys.argv
    sys.argv = ["rca", "analyze", str(bad)]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = argv
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rca: error:") and "empty file" in err[0] and "Traceback" not in err[0]


def test_bad_option_exits_2():
    assert runner.invoke(app, ["analyze", "x", "--bucket", "soon"]).exit_code == 2
    assert runner.invoke(app, ["analyze", "--nope"]).exit_code == 2


def test_ingest_then_analyze_parquet(incident, tmp_path):
    out = tmp_path / "frames"
    result = runner.invoke(app, ["ingest", str(incident / "telemetry"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert list(out.glob("requests.*parquet")) and list(out.glob("events.*parquet"))  # whole (`<frame>.parquet`) or streamed (`<frame>.<n>.parquet`)
    again = runner.invoke(app, ["analyze", str(out), "-f", "json", "-q"])
    direct = runner.invoke(app, ["analyze", str(incident / "telemetry"), "-f", "json", "-q"])
    first = orjson.loads(again.stdout)["hypotheses"][0]
    assert first["subject"] == orjson.loads(direct.stdout)["hypotheses"][0]["subject"]


def test_ingest_into_a_file_or_an_unwritable_place_is_one_line_and_exit_2(incident, tmp_path):
    taken = tmp_path / "report.md"
    taken.write_text("mine")
    for out, says in ((taken, "is a file: --out takes a directory"), (taken / "sub", "cannot write there")):
        result = runner.invoke(app, ["ingest", str(incident / "telemetry"), "--out", str(out)])
        assert result.exit_code == 2 and result.stderr.strip() == f"rca: error: {out}: {says}" + (": Not a directory" if out != taken else "")
    assert taken.read_text() == "mine"


def test_an_output_over_an_input_is_refused_before_anything_is_read(incident, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("2026-03-01T10:00:00Z ERROR job failed\n")
    for args in (["analyze", str(log), "-o", str(log)], ["analyze", str(tmp_path / "*.log"), "-o", str(log)],
                 ["compare", "--baseline", str(log), "--candidate", str(incident / "telemetry"), "--junit", str(log)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "over one of the inputs" in result.stderr, (args, result.output)
    assert log.read_text() == "2026-03-01T10:00:00Z ERROR job failed\n"


def test_formats_lists_parsers():
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 0 and "combined" in result.output and "jsonl" in result.output


def test_months_of_logs_warn_that_buckets_are_coarse_on_stderr_only(tmp_path):
    log = tmp_path / "batch.log"
    days = [f"2026-0{1 + d // 28}-{1 + d % 28:02d}T0{h}:00:00Z ERROR job {h} failed" for d in range(150) for h in range(3)]
    log.write_text("\n".join(days) + "\n")
    result = runner.invoke(app, ["analyze", str(log), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert "buckets are 24 h" in result.stderr and "--since/--until" in result.stderr
    assert orjson.loads(result.stdout)["window"]["bucket_s"] == 86400
    focused = runner.invoke(app, ["analyze", str(log), "--format", "json", "--bucket", "1h"])
    assert "buckets are" not in focused.stderr


def test_a_file_whose_every_line_is_rejected_exits_2_saying_so(tmp_path):
    log = tmp_path / "odd.jsonl"
    log.write_text('{"ts": 1e25}\n{"ts": "nope", "msg": 1}\n')
    result = runner.invoke(app, ["analyze", str(log)])
    assert result.exit_code == 2
    assert "all 2 line(s) rejected (first at line 1: no readable timestamp)" in result.stderr
