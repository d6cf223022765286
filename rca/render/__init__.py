"""Renderers: draw a `Report` as terminal text, JSON, Markdown or a chart. They compute nothing new."""

from __future__ import annotations

import math
from datetime import datetime


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, second precision (microseconds when present)."""
    if ts is None:
        return None
    text = ts.isoformat()
    return text.replace("+00:00", "Z")


def ratio(value: float | None) -> str:
    """Ratios as x12.3."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"x{value:.1f}" if value < 1000 else f"x{value:,.0f}"


def hhmm(ts: datetime | None) -> str:
    return ts.strftime("%H:%M UTC") if ts else "?"
