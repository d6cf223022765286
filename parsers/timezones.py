"""Times without a UTC offset beside times with one: warn, and infer the offset when the data shows it.

A log whose timestamps carry no offset (`2026-01-05 14:00:00`, syslog's `Jan  5 14:00:00`) is read in
`--tz` (UTC by default). When another input states its offset (`Z`, `+02:00`, Apache's `-0700`) or
counts time from the epoch (OTLP, Jaeger, Zipkin), a local clock read as UTC would shift that log by
hours against the rest, so each such file gets a warning naming it. When its lines carry trace ids that
spans of the other inputs carry too, the gap between a line and its trace's first span is the clock's
offset (plus the request's own seconds): when most of those gaps agree with a whole quarter-hour of at
least half an hour, that offset is stated as the likely one, with the `--tz` that reads it.

Without shared trace ids, the file's activity is lined up with the others' (`aligned_offset_s`): its rows
per minute and theirs, each as a share of its own total, overlap (histogram intersection) when shifted by
the right offset. Every zone offset (quarter-hours, -12 h to +14 h) is tried. When the best is zero and
it overlaps clearly better (by `ALIGN_MARGIN`) than every offset of an hour or more, the times were right
to be read as UTC and nothing is said; when the best is another offset, clearly better than every offset
half an hour or more from it (zero included), that offset is stated. A day of steady traffic overlaps alike at many offsets: no
offset wins and the warning stays as it was.

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
ZONE_OFFSETS_S = range(-12 * 3600, 14 * 3600 + 1, QUARTER_H_S)  # UTC-12:00 .. UTC+14:00
MIN_ALIGN = 0.5  # the best offset's overlap (0..1) must be at least this
ALIGN_MARGIN = 1.5  # ... and this many times that of every other offset at least half an hour away


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
    """The warning for one input whose times carry no offset, beside `others` that do (`matched_with`:
    the inputs whose spans gave `offset_s` by trace ids; empty when the activity did)."""
    named = ", ".join(others[:2]) + (f" and {len(others) - 2} more" if len(others) > 2 else "")
    text = f"times without a UTC offset were read as UTC, while {named} state{'s' if len(others) == 1 else ''} theirs"
    if offset_s is None:
        return text + "; if this file's clock is local, pass --tz with its zone"
    zone = offset_text(offset_s)
    hint = f" (e.g. --tz Etc/GMT{'-' if offset_s > 0 else '+'}{abs(offset_s) // 3600})" if offset_s % 3600 == 0 else ""
    hours = offset_text(abs(offset_s)).lstrip("+")
    evidence = (f"its lines read {hours} h {'after' if offset_s > 0 else 'before'} the spans of {matched_with} with the same trace ids"
                if matched_with else f"its activity lines up with the others' only when moved {hours} h {'earlier' if offset_s > 0 else 'later'}")
    return f"{text}; {evidence}: its clock is likely UTC{zone}, pass --tz with that zone{hint}"


def rows_per_minute(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Timed rows of `frames` per minute: (minute: epoch minutes, rows)."""
    stamps = [f.select((pl.col("ts").dt.epoch("s") // 60).alias("minute")) for f in frames if "ts" in f.columns and f.height]
    if not stamps:
        return pl.DataFrame(schema={"minute": pl.Int64, "rows": pl.UInt32})
    return pl.concat(stamps).drop_nulls().group_by("minute").len("rows")


def aligned_offset_s(local: pl.DataFrame, reference: pl.DataFrame) -> int | None:
    """The zone offset (seconds) that lines up the activity of a clock read as UTC (`local`, rows per
    minute) with that of clocks known to be right (`reference`), when one clearly does (module docstring);
    0 when reading it as UTC is right; None when no offset stands out."""
    if local.height == 0 or reference.height == 0:
        return None
    share = pl.col("rows") / pl.col("rows").sum()
    ref = reference.group_by("minute").agg(pl.col("rows").sum()).select("minute", share.alias("ref"))
    mine = local.group_by("minute").agg(pl.col("rows").sum()).select("minute", share.alias("mine"))
    if ref["minute"].max() - ref["minute"].min() + mine["minute"].max() - mine["minute"].min() > 4 * 24 * 60:  # type: ignore[operator]
        return None  # days of data: activity repeats daily, an offset cannot stand out (and the grid would be large)
    offsets = pl.DataFrame({"offset_s": list(ZONE_OFFSETS_S)}, schema={"offset_s": pl.Int64})
    # a local clock at UTC+o reads o ahead: its minute m is UTC minute m - o/60
    shifted = offsets.join(mine, how="cross").with_columns((pl.col("minute") - pl.col("offset_s") // 60).alias("minute"))
    overlap = (shifted.join(ref, on="minute").group_by("offset_s").agg(pl.min_horizontal("mine", "ref").sum().alias("overlap"))
               .sort("overlap", descending=True))
    if overlap.height == 0:
        return None
    best, score = overlap.row(0)
    # UTC (the reading given) needs only to beat the whole-hour zones clearly; another offset must beat
    # every offset half an hour or more from it, UTC included
    apart = 3600 if abs(best) < MIN_OFFSET_S else MIN_OFFSET_S
    rivals = overlap.filter((pl.col("offset_s") - best).abs() >= apart)["overlap"]
    runner_up = float(rivals.max()) if rivals.len() else 0.0  # type: ignore[arg-type]
    if score < MIN_ALIGN or score < ALIGN_MARGIN * runner_up:
        return None
    return int(best) if abs(best) >= MIN_OFFSET_S else 0


@dataclass(frozen=True)
class Clock:
    """What one input says about its clock: whether its times state an offset, the frames to match, and
    its rows per minute."""

    origin: str
    state: str | None  # offset_state, or "offset" for formats whose times are absolute
    events: pl.DataFrame | None = None
    spans: pl.DataFrame | None = None
    minutes: pl.DataFrame | None = None  # rows_per_minute of its frames


def clock_of(origin: str, fmt: str, lines: Sequence[str], frames: dict[str, pl.DataFrame] | None) -> Clock:
    """The clock of one parsed input (its format, its first lines, its frames when kept)."""
    state = "offset" if fmt in ABSOLUTE_FORMATS else offset_state(lines)
    if frames is None:
        return Clock(origin, state)
    return Clock(origin, state, frames.get("events"), frames.get("spans"), rows_per_minute(list(frames.values())))


def naive_time_warnings(clocks: Sequence[Clock]) -> dict[str, str]:
    """Per input whose times carry no offset while another input's do, the warning to give (module docstring)."""
    known = [c for c in clocks if c.state == "offset"]
    if not known:
        return {}
    with_spans = [c for c in known if c.spans is not None and c.spans.height]
    spans = pl.concat([c.spans.select("trace_id", "ts") for c in with_spans if c.spans is not None]) if with_spans else None
    timed = [c.minutes for c in known if c.minutes is not None and c.minutes.height]
    reference = pl.concat(timed) if timed else None
    out = {}
    for c in clocks:
        if c.state != "naive":
            continue
        offset = inferred_offset_s(c.events, spans) if c.events is not None and spans is not None else None
        matched_with = ", ".join(s.origin for s in with_spans[:2])
        if offset is None and c.minutes is not None and reference is not None:
            offset = aligned_offset_s(c.minutes, reference)
            if offset == 0:
                continue  # its activity lines up with the others' as read: UTC was right
            matched_with = ""
        out[c.origin] = naive_time_warning([k.origin for k in known], offset, matched_with)
    return out
