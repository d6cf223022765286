"""Renderers: draw a `Report` as terminal text, JSON, Markdown or a chart. They compute nothing new."""

from __future__ import annotations

from datetime import datetime

from rca.figures import growth, hhmm, number, quantity, ratio, stamp, time_range, times_for

__all__ = ["growth", "hhmm", "iso", "number", "quantity", "ratio", "stamp", "time_range", "times_for"]


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, to the second, or to the millisecond or microsecond the time carries:
    `09:30:02Z`, `09:30:02.152Z`, `12:53:21.205441Z`."""
    if ts is None:
        return None
    spec = "seconds" if not ts.microsecond else "milliseconds" if ts.microsecond % 1000 == 0 else "microseconds"
    return ts.isoformat(timespec=spec).replace("+00:00", "Z")
