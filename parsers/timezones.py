"""Times without a UTC offset beside times with one: warn, and infer the offset when the data shows it.

A log whose timestamps carry no offset (`2026-01-05 14:00:00`, syslog's `Jan  5 14:00:00`) is read in
`--tz` (UTC by default). When another input states its offset (`Z`, `+02:00`, Apache's `-0700`) or
counts time from the epoch (OTLP, Jaeger, Zipkin), a local clock read as UTC would shift that log by
hours against the rest, so each such file gets a warning naming it. When its lines carry trace ids that
spans of the other inputs carry too, the gap between a line and its trace's first span is the clock's
offset (plus the request's own seconds): when most of those gaps agree with a whole quarter-hour of at
least half an hour, that offset is stated as the likely one, with the `--tz` that reads it.

Which inputs carry offsets is read from their first lines (`offset_state`): the first timestamp of each
line, ISO 8601 or Apache's or syslog's, with or without an offset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

# formats whose times are absolute by construction (epoch counts)
ABSOLUTE_FORMATS = frozenset({"otlp-json", "otlp-proto", "jaeger", "zipkin"})
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(\s?(?:Z|z|[+-]\d{2}:?\d{2}))?(?![\d:])")
_APACHE = re.compile(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}(\s[+-]\d{4})?")
_SYSLOG = re.compile(r"^(?:<\d+>)?[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}\b")
QUARTER_H_S = 900
MIN_OFFSET_S = 1800  # a gap under half an hour is the requests' own time or clock skew, not a zone
AGREE_S = 120  # a gap within two minutes of the quarter-hour agrees with it
MIN_AGREE = 0.8  # share of the matched traces that must agree
MIN_TRACES = 5


def offset_state(lines: Sequence[str]) -> str | None:
    """`offset` when the timestamps of these lines state their UTC offset, `naive` when they do not, None
    when no timestamp is recognised (epoch numbers, unknown layouts)."""
    with_offset = without = 0
    for line in lines:
        iso, apache, syslog = _ISO.search(line), _APACHE.search(line), _SYSLOG.search(line)
        first = min((m for m in (iso, apache) if m is not None), key=lambda m: m.start(), default=None)
        if first is not None:
            if first.group(1):
                with_offset += 1
            else:
                without += 1
        elif syslog is not None:
            without += 1
    if with_offset + without == 0:
        return None
    return "offset" if with_offset >= without else "naive"


def inferred_offset_s(events: pl.DataFrame, spans: pl.DataFrame) -> int | None:
    """The offset (seconds, local minus UTC) of a clock read as UTC, from lines whose trace ids match spans
    read with their offsets: the gap of each trace's first line to its first span, when at least
    `MIN_AGREE` of the traces agree with one quarter-hour of at least half an hour. None otherwise."""
    if events.height == 0 or spans.height == 0:
        return None
    lines = events.filter(pl.col("trace_id").is_not_null()).group_by("trace_id").agg(pl.col("ts").min().alias("line_ts"))
    first_spans = spans.filter(pl.col("trace_id").is_not_null()).group_by("trace_id").agg(pl.col("ts").min().alias("span_ts"))
    gaps = lines.join(first_spans, on="trace_id").select(((pl.col("line_ts") - pl.col("span_ts")).dt.total_milliseconds() / 1000).alias("gap_s"))
    if gaps.height < MIN_TRACES:
        return None
    median = float(gaps["gap_s"].median())  # type: ignore[arg-type]
    offset = round(median / QUARTER_H_S) * QUARTER_H_S
    if abs(offset) < MIN_OFFSET_S:
        return None
    agree = gaps.filter((pl.col("gap_s") - offset).abs() <= AGREE_S).height / gaps.height
    return offset if agree >= MIN_AGREE else None


def offset_text(offset_s: int) -> str:
    """`+02:00` for 7200."""
    sign = "+" if offset_s >= 0 else "-"
    minutes = abs(offset_s) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def naive_time_warning(others: Sequence[str], offset_s: int | None, matched_with: str | None) -> str:
    """The warning for one input whose times carry no offset, beside `others` that do."""
    named = ", ".join(others[:2]) + (f" and {len(others) - 2} more" if len(others) > 2 else "")
    text = f"times without a UTC offset were read as UTC, while {named} state{'s' if len(others) == 1 else ''} theirs"
    if offset_s is None:
        return text + "; if this file's clock is local, pass --tz with its zone"
    zone = offset_text(offset_s)
    hint = f" (e.g. --tz Etc/GMT{'-' if offset_s > 0 else '+'}{abs(offset_s) // 3600})" if offset_s % 3600 == 0 else ""
    return (f"{text}; its lines read {offset_text(abs(offset_s)).lstrip('+')} h {'after' if offset_s > 0 else 'before'} the spans "
            f"of {matched_with} with the same trace ids: its clock is likely UTC{zone}, pass --tz with that zone{hint}")


@dataclass(frozen=True)
class Clock:
    """What one input says about its clock: whether its times state an offset, and the frames to match."""

    origin: str
    state: str | None  # offset_state, or "offset" for formats whose times are absolute
    events: pl.DataFrame | None = None
    spans: pl.DataFrame | None = None


def clock_of(origin: str, fmt: str, lines: Sequence[str], frames: dict[str, pl.DataFrame] | None) -> Clock:
    """The clock of one parsed input (its format, its first lines, its frames when kept)."""
    frames = frames or {}
    return Clock(origin, "offset" if fmt in ABSOLUTE_FORMATS else offset_state(lines), frames.get("events"), frames.get("spans"))


def naive_time_warnings(clocks: Sequence[Clock]) -> dict[str, str]:
    """Per input whose times carry no offset while another input's do, the warning to give (module docstring)."""
    known = [c for c in clocks if c.state == "offset"]
    if not known:
        return {}
    with_spans = [c for c in known if c.spans is not None and c.spans.height]
    spans = pl.concat([c.spans.select("trace_id", "ts") for c in with_spans if c.spans is not None]) if with_spans else None
    out = {}
    for c in clocks:
        if c.state != "naive":
            continue
        offset = inferred_offset_s(c.events, spans) if c.events is not None and spans is not None else None
        out[c.origin] = naive_time_warning([k.origin for k in known], offset, ", ".join(s.origin for s in with_spans[:2]))
    return out
