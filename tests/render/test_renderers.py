"""Terminal, Markdown, chart and JSON renderers on a shipped sample (third-party surge with a decoy deploy
and rollback): the content a responder needs is there, colour follows the console, output is stable."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from rca.pipeline import analyze
from rca.render.chart import write_chart
from rca.render.json import render_json
from rca.render.markdown import render_markdown
from rca.render.terminal import render_terminal
from rca.truth import load_truth, matches

SAMPLE = Path(__file__).resolve().parent.parent.parent / "samples" / "third-party-surge"


@pytest.fixture(scope="module")
def report():
    return analyze([str(SAMPLE / "telemetry")])


def _terminal(report, **console_options) -> str:
    out = io.StringIO()
    console = Console(file=out, width=120, **console_options)
    render_terminal(report, console)
    return out.getvalue()


def test_terminal_has_headline_ranking_ruled_out_and_inputs(report):
    text = _terminal(report, color_system=None)
    top = report.hypotheses[0]
    assert matches(top, load_truth(SAMPLE / "truth.json")["root_cause"])
    assert top.subject in text
    assert "UTC" in text
    for ruled in report.ruled_out:
        assert ruled.subject.split()[-1] in text
    for summary in report.inputs:
        assert summary.format in text
    assert "\x1b[" not in text  # no colour codes without a colour system


def test_terminal_styles_only_on_a_terminal(report):
    assert "\x1b[" in _terminal(report, force_terminal=True, color_system="standard")
    assert "\x1b[" not in _terminal(report)  # a file is not a TTY: plain text


def test_markdown_sections_and_chart(report, tmp_path):
    chart = tmp_path / "chart.svg"
    write_chart(report, chart)
    md = render_markdown(report, chart_path=chart)
    for heading in ("## Summary", "## Timeline", "## Root cause", "## Ruled out", "## Appendix"):
        assert heading in md
    assert "xychart-beta" in md and "chart.svg" in md
    assert chart.read_text().startswith("<?xml") and "<svg" in chart.read_text()
    again = tmp_path / "again.svg"
    write_chart(report, again)
    assert again.read_bytes() == chart.read_bytes()  # deterministic SVG


def test_json_hypotheses_best_first_with_decoys_ruled_out(report):
    doc = orjson.loads(render_json(report))
    scores = [h["score"] for h in doc["hypotheses"]]
    assert scores == sorted(scores, reverse=True)
    assert [h["rank"] for h in doc["hypotheses"]] == list(range(1, len(scores) + 1))
    ruled = " ".join(f"{r['subject']} {r['reason']}" for r in doc["ruled_out"])
    for decoy in load_truth(SAMPLE / "truth.json")["decoys"]:
        assert decoy["subject"] in ruled


def test_time_ranges_for_people_read_to_the_second_in_utc_with_the_end_date_only_when_it_differs() -> None:
    from datetime import UTC, datetime

    from rca.figures import stamp, time_range

    start = datetime(2026, 1, 5, 14, 46, tzinfo=UTC)
    assert time_range(start, datetime(2026, 1, 5, 15, 30, 1, 975001, tzinfo=UTC)) == "2026-01-05 14:46:00 to 15:30:02 UTC"
    assert time_range(start, datetime(2026, 1, 5, 15, 30, 1, 400000, tzinfo=UTC)) == "2026-01-05 14:46:00 to 15:30:01 UTC"
    assert time_range(start, datetime(2026, 1, 6, 0, 1, tzinfo=UTC)) == "2026-01-05 14:46:00 to 2026-01-06 00:01:00 UTC"
    assert stamp(None) == "-"


def test_times_of_day_carry_their_date_only_in_reports_of_data_spanning_days() -> None:
    from datetime import UTC, datetime, timedelta

    from rca.figures import hhmm, times_for
    from rca.model import AnalysisContext, Window

    t = datetime(2026, 1, 6, 18, 30, tzinfo=UTC)
    hours = Window(t - timedelta(hours=3), t)
    days = Window(t - timedelta(days=3), t)
    with times_for(AnalysisContext(bucket_s=60, span=hours, baseline=hours, incident=hours)):
        assert hhmm(t) == "18:30 UTC"
    with times_for(AnalysisContext(bucket_s=3600, span=days, baseline=days, incident=days)):
        assert hhmm(t) == "Jan 06 18:30 UTC"
    assert hhmm(t) == "18:30 UTC"
    # issue #18 item 5: over a span of years, the year too (which "Jan 06" otherwise?)
    years = Window(t - timedelta(days=400), t)
    with times_for(AnalysisContext(bucket_s=86400, span=years, baseline=years, incident=years)):
        assert hhmm(t) == "2026-01-06 18:30 UTC"
    new_year = Window(datetime(2025, 12, 30, tzinfo=UTC), t)
    with times_for(AnalysisContext(bucket_s=3600, span=new_year, baseline=new_year, incident=new_year)):
        assert hhmm(t) == "2026-01-06 18:30 UTC"
