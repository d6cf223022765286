"""Figures as every report writes them (rca.figures), and the rates they quote (#18 item 5)."""

import io
from dataclasses import replace

from rich.console import Console

from rca.detectors.stats import per_minute
from rca.figures import before_after, change, finding_label, quantity, ratio
from rca.render.terminal import render_terminal


def test_small_rates_are_written_in_a_unit_that_shows_them():
    assert quantity(26.2, "events_per_min") == "26.2 events/min"
    assert quantity(0.1, "events_per_min") == "0.1 events/min"
    assert quantity(0.05, "error_events_per_min") == "3 errors/h"
    assert quantity(2 / 43_200, "events_per_min") == "0.067 events/day"  # twice in a month
    assert quantity(0.0, "events_per_min") == "0 events/min"
    assert quantity(0.004, "p95_ms") == "0.004 ms"  # not a rate: as it is


def test_rates_of_rare_events_are_not_rounded_to_zero():
    month_s = 30 * 86_400
    assert per_minute(2, month_s) > 0
    assert quantity(per_minute(2, month_s), "events_per_min") == "0.067 events/day"
    assert per_minute(1_573, 60) == 1_573.0
    assert per_minute(1, 7) == 8.571  # three decimals as before for ordinary rates


def test_a_shift_from_nothing_reads_none_and_new():
    assert before_after(0.0, 0.0001, "events_per_min", 3.0) == "none -> 0.14 events/day (new)"
    assert before_after(6.2, 663.0, "requests_per_min", 106.9) == "6.2 req/min -> 663 req/min (x106.9)"
    assert before_after(None, None, "p95_ms", 1.0) == "none -> n/a (new)"


def test_a_dimension_the_kind_names_is_said_once():
    assert finding_label("new_template", "template", "disk <*> full") == "new template disk <*> full"
    assert finding_label("template_burst", "template", "x") == "template burst x"
    assert finding_label("traffic_spike", "endpoint", "/api/x") == "traffic spike endpoint /api/x"


def test_a_fall_reads_as_the_ratio_of_after_to_before():
    # a detector may carry a fall's size as before/after (x4.4 fewer calls): the figure still reads x0.2
    assert before_after(0.57, 0.13, "calls_per_request", 4.4) == "0.57 calls/request -> 0.13 calls/request (x0.2)"


def test_the_evidence_column_quotes_a_fall_as_after_over_before() -> None:
    # the terminal's evidence column read x4.4 for a fall while the prose read x0.2 (the Markdown tables share `change`)
    from rca.findings import CallDropDetails
    from rca.model import Dataset
    from rca.ranking import build_report
    from tests.ranking.test_ranker import CONTEXT, finding, latency

    drop = CallDropDetails(caller="checkout", callee="payments", reference="windows", requests_before=300, requests_after=300,
                           calls_before=171, calls_after=39, p=1e-12, caller_fan_out=1, callee_fan_in=1)
    fall = finding("call_drop", "edge", "checkout", 31.0, metric="calls_per_request", magnitude=4.4, signal="trace",
                   where=None, details=drop)
    fall = replace(fall, baseline=0.57, incident=0.13)
    report = build_report(Dataset(), CONTEXT, [fall, latency("/api/checkout", 31.0)])
    falls = [f for h in report.hypotheses for f in h.findings
             if f.baseline and f.incident is not None and f.incident < f.baseline]
    assert report.incident_detected and falls, "a caller whose calls per request fell"
    out = io.StringIO()
    render_terminal(report, Console(file=out, width=140, force_terminal=False, color_system=None))
    terminal = out.getvalue()
    for f in falls:
        assert change(f.baseline, f.incident, f.magnitude) == ratio(f.incident / f.baseline)
    assert "calls/request (x0.2)" in terminal and "(x4.4)" not in terminal
