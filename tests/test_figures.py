"""Figures as every report writes them (rca.figures), and the rates they quote (#18 item 5)."""

from rca.detectors.stats import per_minute
from rca.figures import before_after, finding_label, quantity


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
