"""How figures are written in every report: ratios as x12.3, times as HH:MM UTC, values to three
significant digits with their unit (`662.754 req/min` reads `663 req/min`, `0.378` reads `0.38`).

The ranker writes summaries and evidence with these, and the renderers draw tables with them, so a
figure reads the same in the headline, the table, the Markdown and the JSON texts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rca.model import AnalysisContext

# How times of day are written: with their date for a report whose data spans more than a day, and with
# the year too when the data spans years (`Jan 06` of which year?).
_DATED: ContextVar[str] = ContextVar("rca_dated_times", default="%H:%M UTC")

METRIC_UNITS = {
    "requests_per_min": " req/min",
    "p95_ms": " ms",
    "p50_ms": " ms",
    "p99_ms": " ms",
    "self_ms": " ms",
    "error_rate": "",
    "events_per_min": " events/min",
    "error_events_per_min": " errors/min",
    "calls_per_min": " calls/min",
    "calls_per_request": " calls/request",
    "failing_traces": " failing traces",
}


# Names people read for the metrics (prose never shows internal column names such as requests_per_min).
METRIC_LABELS = {"requests_per_min": "requests", "p95_ms": "p95", "p50_ms": "p50", "p99_ms": "p99", "self_ms": "self time",
                 "error_rate": "5xx", "events_per_min": "events", "error_events_per_min": "errors", "calls_per_min": "calls",
                 "calls_per_request": "calls per request", "failing_traces": "failing traces"}


# Rates per minute written in a longer unit when they are this small: a template seen twice in a month is
# "0.07 events/day", not "0 events/min".
_RATE_UNITS = {" req/min": "req", " events/min": "events", " errors/min": "errors", " calls/min": "calls"}
_SMALL_RATE = 0.1


def finding_label(kind: str, dimension: str, subject: str) -> str:
    """`traffic spike endpoint /api/x`; a dimension the kind already names is said once (`new template X`,
    not `new template template X`)."""
    words = kind.replace("_", " ")
    return f"{words} {subject}" if dimension in words.split() else f"{words} {dimension} {subject}"


def metric_label(metric: str) -> str:
    """`requests_per_min` reads `requests`, `p95_ms` reads `p95`."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def ratio(value: float | None) -> str:
    """Ratios as x12.3 (x1,234 from a thousand on); n/a when unknown."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"x{value:.1f}" if value < 1000 else f"x{value:,.0f}"


def growth(baseline: float | None, magnitude: float | None) -> str:
    """How much a value grew: x12.3, or `new` when there was none before (a ratio to zero is no figure)."""
    return "new" if not baseline else ratio(magnitude)


@contextmanager
def times_for(context: AnalysisContext | None) -> Iterator[None]:
    """Within this block, `hhmm` gives the date too (`Jan 06 18:30 UTC`) if the data spans over a day, and
    the year (`2025-12-30 18:30 UTC`) if it spans more than one calendar year."""
    fmt = "%H:%M UTC"
    if context is not None and context.span.duration > timedelta(days=1):
        fmt = "%Y-%m-%d %H:%M UTC" if context.span.start.year != context.span.end.year else "%b %d %H:%M UTC"
    token = _DATED.set(fmt)
    try:
        yield
    finally:
        _DATED.reset(token)


def hhmm(ts: datetime | None) -> str:
    """A time of day in UTC, stated: `14:43 UTC` (`Jan 06 14:43 UTC` within `times_for` days of data,
    `2025-12-30 14:43 UTC` over years)."""
    if not ts:
        return "?"
    return ts.strftime(_DATED.get())


def stamp(ts: datetime | None) -> str:
    """A date and time for people, to the second, in UTC: `2026-01-05 14:46:00`; `-` when unknown."""
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def time_range(start: datetime, end: datetime) -> str:
    """A time range for people: `2026-01-05 14:46:00 to 15:30:02 UTC` (the end's date only when it differs)."""
    end = end.replace(microsecond=0) + (timedelta(seconds=1) if end.microsecond >= 500_000 else timedelta(0))
    tail = end.strftime("%H:%M:%S") if end.date() == start.date() else stamp(end)
    return f"{stamp(start)} to {tail} UTC"


def before_after(baseline: float | None, incident: float | None, metric: str, magnitude: float | None) -> str:
    """A shift as every report writes it: `6.2 req/min -> 663 req/min (x106.9)`, `none -> 0.15 events/day (new)`."""
    before = "none" if not baseline else quantity(baseline, metric)
    after = "n/a" if incident is None else quantity(incident, metric)
    return f"{before} -> {after} ({change(baseline, incident, magnitude)})"


def change(baseline: float | None, incident: float | None, magnitude: float | None) -> str:
    """The ratio a shift is quoted with: after/before for a fall (0.57 -> 0.13 reads x0.2, whatever the
    detector's effect size), else how much it grew (`growth`)."""
    if baseline and incident is not None and 0 <= incident < baseline:
        return ratio(incident / baseline)
    return growth(baseline, magnitude)


def number(value: float | None) -> str:
    """A measured value to about three significant digits: 663, 53.5, 6.2, 0.38, 0.004."""
    if value is None or not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}".removesuffix(".0")
    if size >= 1:
        return f"{value:.2f}".rstrip("0").removesuffix(".")
    if size == 0:
        return "0"
    return f"{value:.2g}"


def quantity(value: float | None, metric: str) -> str:
    """A value with the unit of its metric: `663 req/min`, `92.8 ms`, `0.4%` (a rate is a fraction)."""
    if metric == "error_rate" and value is not None and math.isfinite(value):
        return f"{number(100 * value)}%"
    unit = METRIC_UNITS.get(metric, "")
    noun = _RATE_UNITS.get(unit)
    if noun and value is not None and math.isfinite(value) and 0 < abs(value) < _SMALL_RATE:
        per_hour = 60 * value
        return f"{number(per_hour)} {noun}/h" if abs(per_hour) >= _SMALL_RATE else f"{number(24 * per_hour)} {noun}/day"
    return f"{number(value)}{unit}"
