"""Renderers: draw a `Report` as terminal text, JSON, Markdown or a chart. They compute nothing new."""

from __future__ import annotations

from datetime import datetime

from rca.figures import growth, hhmm, number, quantity, ratio, stamp, time_range, times_for

__all__ = ["growth", "hhmm", "iso", "number", "quantity", "ratio", "stamp", "time_range", "times_for"]


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, second precision (microseconds when present)."""
    if ts is None:
        return None
    text = ts.isoformat()
    return text.replace("+00:00", "Z")
