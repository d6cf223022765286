"""Plain-text logs with a leading timestamp, and syslog (RFC 3164 and RFC 5424).

Each input's timestamp layout is chosen from its first lines among: ISO-8601 (log4j/logback, Python
logging's `2026-01-05 10:00:01,234`, Go, ...), RFC 5424 syslog (`<PRI>1 ISO host app ...`), RFC 3164
syslog (`Mmm dd HH:MM:SS host tag[pid]:`, no year: `--year`, or the latest year not after the file was written, stated as a
warning), `dd/Mon/yyyy:HH:MM:SS`, `[Www Mmm dd HH:MM:SS yyyy]`, `yyMMdd HHmmss` and epoch seconds.
A line that does not start with a timestamp continues the record before it (Java and Python stack
traces stay one event). `text_events_in_stream` reads the plain-text lines of a JSON-lines stream the
same way, times, services and hosts taken from the neighbouring records. All of it is vectorized: one regex per line with `str.extract_groups`, record
ids by a cumulative sum over "starts a record", continuation lines joined with a group-by.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import cast

import polars as pl

from rca.model import Rejected, conform, empty_frame, storage_schema
from rca.parsers import ParseOptions, ParseResult, Streamed, lazy_batches, register
from rca.parsers.bounded_events import Announcements, BoundedEvents
from rca.parsers.changes import dedupe_changes
from rca.parsers.decoding import parse_iso, parse_timestamp
from rca.parsers.lines import (
    LineChunk,
    Lines,
    chunk_lines,
    line_chunks,
    map_chunks,
    read_lines,
    read_share,
    rejected_examples,
)
from rca.parsers.sources import Sample, Source

_LEVEL_NAMES = "TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|SEVERE|FATAL|CRITICAL|CRIT|EMERG|ALERT"
# Upper-case or Title-case bare (`INFO`, `Info`), any case in brackets (`[notice]`); a pid may precede it.
_LEVEL = (
    r"(?:(?:\d+ +)?(?:\[(?P<level>(?i:" + _LEVEL_NAMES + r"))\]|(?P<level_bare>" + _LEVEL_NAMES
    + r"|Trace|Debug|Info|Notice|Warn|Warning|Error|Severe|Fatal|Critical)\b))"
)
_REST = rf"[\s:|\-,]*{_LEVEL}?[\s:|\-]*(?:\[(?P<host>[^\]\s]+)\]\s*)?(?:(?P<logger>[\w.$\-]+(?:\[\d+\])?)(?: - |: ))?(?P<message>.*)$"


@dataclass(frozen=True)
class Layout:
    name: str
    pattern: str  # anchored; must have a `ts` group and the fields of _REST or its own
    signal: str = "text_log"


LAYOUTS = (
    Layout("rfc5424", r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<logger>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|(?:\[[^\]]*\])+) ?(?P<message>.*)$", "syslog"),
    Layout("rfc3164", r"^(?:<(?P<pri>\d{1,3})>)?(?P<ts>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}) (?P<host>\S+) (?:(?P<logger>[^\s:\[]+)(?:\[(?P<procid>\d+)\])?: )?(?P<message>.*)$", "syslog"),
    Layout("iso", r"^(?:[\w.\-]+\.log\S* )?\[?(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\]?" + _REST),
    Layout("clf", r"^\[?(?P<ts>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?)\]?" + _REST),
    Layout("ctime", r"^\[(?P<ts>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4})\]" + _REST),
    Layout("yymmdd", r"^(?P<ts>\d{6} \d{6})(?: \d+)?" + _REST),
    Layout("yy/mm/dd", r"^(?P<ts>\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})" + _REST),
    Layout("android", r"^(?P<ts>\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3})\s+\d+\s+\d+ (?P<level>[VDIWEF]) (?P<logger>[^:]+?)\s*: (?P<message>.*)$"),
    Layout("compact", r"^(?P<ts>\d{8}-\d{1,2}:\d{1,2}:\d{1,2}[:.]\d{1,3})\|(?P<logger>[^|]*)\|(?P<procid>\d*)\|(?P<message>.*)$"),
    Layout("mm.dd", r"^\[(?P<ts>\d{2}\.\d{2} \d{2}:\d{2}:\d{2})\] (?:(?P<logger>\S+) - )?(?P<message>.*)$"),
    Layout("flag-epoch", r"^\S+ (?P<ts>1\d{9}) \d{4}\.\d{2}\.\d{2} (?P<host>\S+) (?P<message>.*)$"),
    Layout("node-epoch", r"^\d+ (?P<host>\S+) (?P<logger>\S+) \S+ (?P<ts>1\d{9}) -?\d+ (?P<message>.*)$"),
    Layout("epoch", r"^(?P<ts>1\d{9}(?:\.\d+)?)\b" + _REST),
)
_NOT_BLANK = pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != "")
_ORPHAN = "no timestamp at the start and no record before it"
_BAD_TS = "unreadable timestamp"
_COMPILED = {layout.name: re.compile(layout.pattern) for layout in LAYOUTS}
_LEVELS = {"V": "TRACE", "D": "DEBUG", "I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL", "WARNING": "WARN", "ERR": "ERROR", "SEVERE": "ERROR", "CRITICAL": "FATAL", "CRIT": "FATAL",
           "EMERG": "FATAL", "ALERT": "FATAL", "NOTICE": "INFO"}
_SYSLOG_SEVERITY = {0: "FATAL", 1: "FATAL", 2: "FATAL", 3: "ERROR", 4: "WARN", 5: "INFO", 6: "INFO", 7: "DEBUG"}


def _best_layout(lines: tuple[str, ...]) -> tuple[Layout | None, float]:
    best, best_hits = None, 0
    for layout in LAYOUTS:
        hits = sum(1 for line in lines if _COMPILED[layout.name].match(line))
        if hits > best_hits:
            best, best_hits = layout, hits
    return best, (best_hits / len(lines) if lines else 0.0)


def _timestamps(ts: pl.Expr, layout: Layout, options: ParseOptions, year: int) -> pl.Expr:
    if layout.name == "rfc3164":
        text = pl.lit(str(year)) + pl.lit(" ") + ts.str.replace(r"  ", " 0")
        naive = text.str.strptime(pl.Datetime("us"), "%Y %b %d %H:%M:%S", strict=False)
        return naive.dt.replace_time_zone(_tz(options.tz), ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    if layout.name == "clf":
        zoned = ts.str.strptime(pl.Datetime("us", "UTC"), "%d/%b/%Y:%H:%M:%S %z", strict=False)
        naive = ts.str.strptime(pl.Datetime("us"), "%d/%b/%Y:%H:%M:%S", strict=False).dt.replace_time_zone(_tz(options.tz), ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
        return pl.coalesce(zoned, naive)
    if layout.name == "ctime":
        naive = ts.str.replace(r"  ", " 0").str.strptime(pl.Datetime("us"), "%a %b %d %H:%M:%S%.f %Y", strict=False)
        return naive.dt.replace_time_zone(_tz(options.tz), ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    if layout.name in ("yymmdd", "yy/mm/dd", "android", "compact", "mm.dd"):
        if layout.name == "android":
            ts = pl.lit(str(year)) + pl.lit("-") + ts
        if layout.name == "mm.dd":
            ts = pl.lit(str(year)) + pl.lit(".") + ts
        if layout.name == "compact":
            ts = ts.str.replace(r"[:.]\d{1,3}$", ".") + ts.str.extract(r"[:.](\d{1,3})$", 1).str.zfill(3)
        fmt = {"yymmdd": "%y%m%d %H%M%S", "yy/mm/dd": "%y/%m/%d %H:%M:%S", "android": "%Y-%m-%d %H:%M:%S%.f",
               "compact": "%Y%m%d-%H:%M:%S%.f", "mm.dd": "%Y.%m.%d %H:%M:%S"}[layout.name]
        naive = ts.str.strptime(pl.Datetime("us"), fmt, strict=False)
        return naive.dt.replace_time_zone(_tz(options.tz), ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    raise ValueError(layout.name)


_YEARLESS = ("rfc3164", "android", "mm.dd")


def _reference_time(source: Source) -> tuple[datetime, str]:
    """The latest time the log can hold: the file's modification time, or now for stdin."""
    if source.path is not None:
        try:
            return datetime.fromtimestamp(source.path.stat().st_mtime, UTC), "the file's modification time"
        except OSError:
            pass
    return datetime.now(UTC), "now"


def _without_year(records: pl.DataFrame, layout: Layout, options: ParseOptions, reference: tuple[datetime, str]) -> tuple[pl.Series, tuple[int, ...]]:
    """Timestamps without a year read in the latest year that puts them no later than the reference
    (a day of slack for the zone): a syslog written in December and read in January is last year's,
    and never dated in the future. Returns the times and the years they were given."""
    ref, _ = reference
    this = _timestamps(pl.col("ts"), layout, options, ref.year)
    last = _timestamps(pl.col("ts"), layout, options, ref.year - 1)
    limit = pl.lit(ref + timedelta(days=1), pl.Datetime("us", "UTC"))
    ts = records.select(pl.when(this > limit).then(last).otherwise(pl.coalesce(this, last))).to_series()
    return ts, tuple(ts.dt.year().drop_nulls().unique().sort().to_list())


def _year_note(years: tuple[int, ...], options: ParseOptions, reference: tuple[datetime, str]) -> str:
    """The warning stating the year assumed for timestamps without one."""
    ref, what = reference
    years = tuple(sorted(years)) or (ref.year,)
    assumed = str(years[0]) if years[0] == years[-1] else f"{years[0]}-{years[-1]}"
    return (f"timestamps have no year: assumed {assumed} (none after {what}, {ref:%Y-%m-%d}) in {options.tz} "
            "(set --year/--tz)")


def _tz(tz: str) -> str:
    return "UTC" if tz.upper() in ("UTC", "Z", "+00:00") else tz


class TextLogParser:
    """Plain-text or syslog lines; `layouts` restricts which timestamp layouts this parser claims."""

    def __init__(self, name: str, description: str, layouts: tuple[str, ...]):
        self.name = name
        self.description = description
        self.layouts = layouts

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        if sample.lines[0].lstrip().startswith(("{", "[{")):
            return 0.0
        layout, share = _best_layout(sample.lines)
        if layout is None or layout.name not in self.layouts:
            return 0.0
        # Generic text yields to specific formats (JSON, logfmt, access logs score higher).
        return (0.7 if layout.signal == "syslog" else 0.55) * share

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        if options.max_event_rows is not None:  # analysis: in chunks, in bounded memory
            return self._parse_in_chunks(source, options)
        lines = read_lines(source)
        frame = lines.frame.filter(_NOT_BLANK)
        layout = self._layout(frame)
        parsed = text_records(frame, layout, options, source.origin, reference=_reference_time(source))
        events = parsed.records.with_columns(signal=pl.lit(layout.signal))
        bad_ts = events.filter(pl.col("ts").is_null())
        events = events.filter(pl.col("ts").is_not_null())
        rejected = list(lines.rejected)
        rejected += rejected_examples(parsed.orphans, _ORPHAN)
        rejected += rejected_examples(bad_ts.select("line", "text"), _BAD_TS)
        return ParseResult(
            format=self._format(layout),
            frames={"events": conform(events, "events")},  # type: ignore[dict-item]
            lines=lines.total,
            rejected=lines.rejected_count + parsed.orphans.height + bad_ts.height,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=list(lines.warnings) + parsed.warnings,
        )

    def _layout(self, frame: pl.DataFrame) -> Layout:
        layout, _ = _best_layout(tuple(frame["text"].head(200).to_list()))
        return layout or next(item for item in LAYOUTS if item.name == self.layouts[0])

    def _format(self, layout: Layout) -> str:
        return f"{self.name}:{layout.name}" if self.name == "text" else self.name

    def _parse_in_chunks(self, source: Source, options: ParseOptions) -> ParseResult:
        """`parse` reading the input a chunk of lines at a time (two at once) into `BoundedEvents`: the same
        records (a record whose continuation lines begin the next chunk gets them), at most
        `options.max_event_rows` rows kept, with exact counts of every event beyond."""
        read = _ChunkedRead()
        bounded = BoundedEvents(options.max_event_rows)
        for records, share in self._records(source, options, read):
            read.rejected_count += self._emit(records, cast(Layout, read.layout), bounded, read.rejected, share)
        if read.layout is None:
            return ParseResult(format=self.name, frames={"events": empty_frame("events")}, lines=0, warnings=read.warnings)
        result = self._read_result(read, options, source, {"events": bounded.frame(empty_frame("events")), "changes": bounded.changes(empty_frame("changes"))})
        result.event_sample = bounded.sample()
        return result

    def stream(self, source: Source, options: ParseOptions) -> Streamed | None:
        """The chunked parse as a streaming pipeline (for `rca ingest`): each chunk's complete records go out
        as one batch of events the caller sinks to Parquet, so no more than a few chunks are ever held;
        `remainder()` then gives the counts and the changes the events announced."""
        schema = storage_schema("events")
        read = _ChunkedRead()
        announced = Announcements()

        def batches() -> Iterator[pl.DataFrame]:
            for records, _share in self._records(source, options, read):
                bad_ts = records.filter(pl.col("ts").is_null())
                read.rejected_count += bad_ts.height
                if bad_ts.height and len(read.rejected) < 50:
                    read.rejected += rejected_examples(bad_ts.select("line", "text"), _BAD_TS)
                events = conform(records.filter(pl.col("ts").is_not_null()).with_columns(signal=pl.lit(cast(Layout, read.layout).signal)), "events")
                announced.add(events)
                yield events.select(list(schema)).cast(schema)  # type: ignore[arg-type]

        def remainder() -> ParseResult:
            if read.layout is None:
                return ParseResult(format=self.name, frames={}, lines=0, warnings=read.warnings)
            return self._read_result(read, options, source, {"changes": dedupe_changes(announced.frame(empty_frame("changes")))})

        return Streamed({"events": lazy_batches(batches, schema)}, remainder)

    def _records(self, source: Source, options: ParseOptions, read: _ChunkedRead) -> Iterator[tuple[pl.DataFrame, float | None]]:
        """The input's complete records a chunk at a time (two chunks parsed at once), with the share of the
        input read with them; `read` collects the layout, line counts, rejected lines and warnings."""
        chunks = line_chunks(source, read.warnings)
        first = next(chunks, None)
        if first is None:
            return
        head_lines = chunk_lines(source.origin, first)
        layout = read.layout = self._layout(head_lines.frame.filter(_NOT_BLANK))
        reference = read.reference = _reference_time(source)

        def one(chunk: LineChunk) -> tuple[Lines, TextRecords, float | None]:
            lines = head_lines if chunk is first else chunk_lines(source.origin, chunk)
            return lines, text_records(lines.frame.filter(_NOT_BLANK), layout, options, source.origin, reference=reference), read_share(chunk)

        held: pl.DataFrame | None = None  # the last record read: its continuation may begin the next chunk
        for index, (lines, parsed, share) in enumerate(map_chunks(source, read.warnings, one, chunks=itertools.chain([first], chunks))):
            read.total += lines.total
            read.rejected_count += lines.rejected_count
            read.rejected += lines.rejected
            read.years.update(parsed.years)
            read.year_less = read.year_less or bool(parsed.warnings)
            records, orphans = parsed.records, parsed.orphans
            if orphans.height and held is not None and index:  # lines continuing the record before the chunk
                more = "\n".join(orphans["text"].to_list())
                held = held.with_columns(pl.col("message") + pl.lit("\n" + more))
            elif orphans.height:
                read.rejected_count += orphans.height
                read.rejected += rejected_examples(orphans, _ORPHAN)
            if not records.height:
                continue
            done = records.head(records.height - 1)
            if held is not None:
                done = pl.concat([held.select(done.columns), done], how="vertical_relaxed")
            held = records.tail(1)
            yield done, share
        if held is not None:
            yield held, None

    def _read_result(self, read: _ChunkedRead, options: ParseOptions, source: Source, frames: dict[str, pl.DataFrame]) -> ParseResult:
        if read.year_less:
            read.warnings.append(_year_note(tuple(read.years), options, cast(tuple[datetime, str], read.reference)))
        return ParseResult(
            format=self._format(cast(Layout, read.layout)),
            frames=frames,  # type: ignore[arg-type]
            lines=read.total,
            rejected=read.rejected_count,
            rejected_examples=sorted(read.rejected, key=lambda r: r.line)[:5],
            warnings=read.warnings,
        )

    @staticmethod
    def _emit(records: pl.DataFrame, layout: Layout, bounded: BoundedEvents, rejected: list[Rejected], read_share: float | None = None) -> int:
        """Hand complete records to `bounded` (`read_share`: of the input read with them); returns how many had an
        unreadable timestamp (rejected)."""
        bad_ts = records.filter(pl.col("ts").is_null())
        if bad_ts.height and len(rejected) < 50:
            rejected += rejected_examples(bad_ts.select("line", "text"), _BAD_TS)
        bounded.add(conform(records.filter(pl.col("ts").is_not_null()).with_columns(signal=pl.lit(layout.signal)), "events"), read_share)
        return bad_ts.height


@dataclass
class _ChunkedRead:
    """What reading a text input a chunk at a time found besides its records."""

    layout: Layout | None = None
    reference: tuple[datetime, str] | None = None
    total: int = 0
    rejected_count: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    years: set[int] = field(default_factory=set)
    year_less: bool = False


@dataclass(frozen=True)
class TextRecords:
    """Text lines made records: one row per record (continuation lines joined into its message) with the
    canonical event columns (`ts` null where unreadable), the lines before any record, and warnings."""

    records: pl.DataFrame
    orphans: pl.DataFrame
    warnings: list[str]
    years: tuple[int, ...] = ()  # the years assumed for timestamps without one (none when they have one)


def text_records(frame: pl.DataFrame, layout: Layout, options: ParseOptions, origin: str,
                 starts_record: pl.Expr | None = None, reference: tuple[datetime, str] | None = None) -> TextRecords:
    """Split (line, text) rows by `layout` into records. A line starts a record when it has a timestamp
    (or `starts_record` holds for it); the lines after it without one continue it. Extra columns of
    `frame` are kept, from each record's first line."""
    fields = frame.with_columns(pl.col("text").str.extract_groups(layout.pattern).alias("m")).unnest("m")
    names = set(_COMPILED[layout.name].groupindex)
    starts = pl.col("ts").is_not_null() if starts_record is None else (pl.col("ts").is_not_null() | starts_record)
    fields = fields.with_columns(starts.alias("_starts")).with_columns(pl.col("_starts").cum_sum().alias("_record"))
    orphans = fields.filter(pl.col("_record") == 0).select("line", "text")
    fields = fields.filter(pl.col("_record") > 0)
    continuation = (
        fields.filter(~pl.col("_starts"))
        .group_by("_record")
        .agg(pl.col("text").str.join("\n").alias("_more"))
    )
    records = fields.filter(pl.col("_starts")).join(continuation, on="_record", how="left", maintain_order="left")
    warnings: list[str] = []
    years: tuple[int, ...] = ()
    if layout.name in ("iso", "rfc5424"):
        ts = parse_iso(records["ts"], options.tz)
    elif layout.name in ("epoch", "flag-epoch", "node-epoch"):
        ts = parse_timestamp(records["ts"])
    elif layout.name in _YEARLESS and options.year is None:
        reference = reference or (datetime.now(UTC), "now")
        ts, years = _without_year(records, layout, options, reference)
        warnings.append(_year_note(years, options, reference))
    else:
        ts = records.select(_timestamps(pl.col("ts"), layout, options, options.year or datetime.now(UTC).year)).to_series()
    records = records.with_columns(ts.alias("_ts"))
    level = pl.col("level").str.to_uppercase().replace(_LEVELS) if "level" in names else pl.lit(None, pl.String)
    if "level_bare" in names:
        level = pl.coalesce(level, pl.col("level_bare").str.to_uppercase().replace(_LEVELS))
    if "pri" in names:
        severity = (pl.col("pri").cast(pl.Int64, strict=False) % 8).replace_strict(_SYSLOG_SEVERITY, default=None, return_dtype=pl.String)
        level = pl.coalesce(level, severity) if "level" in names else severity
    stem = PurePath(origin).name.split(".")[0] or None
    host = pl.col("host") if "host" in names else pl.lit(None, pl.String)
    logger = pl.col("logger").str.replace(r"\[\d+\]$", "") if "logger" in names else pl.lit(None, pl.String)
    service = (
        pl.coalesce(host.str.replace(r"-\d+$", "").str.replace(r"\d+$", ""), pl.lit(stem))
        if layout.signal != "syslog"
        else pl.coalesce(logger, pl.lit(stem))
    )
    own = pl.when(pl.col("message").is_not_null()).then(pl.col("message")).otherwise(pl.col("text"))  # a line of no layout
    message = pl.when(pl.col("_more").is_not_null()).then(own + pl.lit("\n") + pl.col("_more")).otherwise(own)
    records = records.with_columns(
        ts=pl.col("_ts"), level=level, host=host, logger=logger, service=service, message=message,
        origin=pl.lit(origin),
    )
    return TextRecords(records=records, orphans=orphans, warnings=warnings, years=years)


_LEVEL_WORDS = ((r"(?i)\b(fatal|panic|crash(?:ed)?|out of memory|oomkilled|segmentation fault|core dumped)\b", "FATAL"),
                (r"(?i)\b(error|exception|traceback|failed|failure|killed)\b", "ERROR"),
                (r"(?i)\b(warn(?:ing)?)\b", "WARN"))


def _level_from_words(message: pl.Expr) -> pl.Expr:
    expr = pl.lit(None, pl.String)
    for pattern, level in reversed(_LEVEL_WORDS):
        expr = pl.when(message.str.contains(pattern)).then(pl.lit(level)).otherwise(expr)
    return expr


def text_events_in_stream(lines: pl.DataFrame, neighbours: pl.DataFrame, options: ParseOptions, origin: str,
                          signal: str) -> pl.DataFrame:
    """The plain-text lines of a structured stream (a container's stdout and stderr together: start-up
    lines, a stack trace, a crash dump among JSON lines) as events of that stream.

    `lines` holds the (line, text) rows that are text; `neighbours` the (line, ts, service, host) of the
    stream's structured records. The text lines between two records form a block; in it a line with a
    timestamp (in the layout most of them follow) starts an event, and so does the block's first line, so
    a crash dump or stack trace without timestamps stays one event. An event without its own time,
    service or host takes the preceding record's (the next one's at the start of the stream); without
    a level it gets one from its words (FATAL, error, exception, warning)."""
    frame = lines.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != "")).sort("line")
    if frame.height == 0:
        return conform(pl.DataFrame(), "events")  # type: ignore[return-value]
    near = neighbours.select("line", "ts", "service", "host").filter(pl.col("ts").is_not_null()).sort("line")
    near = near.rename({c: f"_n_{c}" for c in ("ts", "service", "host")}).with_columns(pl.col("line").alias("_n_line"))
    frame = frame.join_asof(near, on="line", strategy="backward")
    after = near.select("line", *(pl.col(f"_n_{c}").alias(f"_a_{c}") for c in ("ts", "service", "host")))
    frame = frame.join_asof(after, on="line", strategy="forward")
    layout, _ = _best_layout(tuple(frame["text"].head(200).to_list()))
    layout = layout or next(item for item in LAYOUTS if item.name == "iso")
    first_in_block = pl.col("_n_line").is_first_distinct() if frame["_n_line"].null_count() < frame.height else pl.int_range(pl.len()) == 0
    parsed = text_records(frame, layout, options, origin, starts_record=first_in_block)
    records = parsed.records
    message = pl.col("message")
    return conform(records.with_columns(
        ts=pl.coalesce("ts", "_n_ts", "_a_ts"),
        service=pl.coalesce("_n_service", "_a_service", "service"),
        host=pl.coalesce("host", "_n_host", "_a_host"),
        level=pl.coalesce("level", _level_from_words(message)),
        signal=pl.lit(signal),
    ).filter(pl.col("ts").is_not_null()), "events")  # type: ignore[return-value]


register(TextLogParser("text", "plain-text logs with a leading timestamp (log4j/logback, Python logging, ISO, epoch, ...)",
                       ("iso", "clf", "ctime", "yymmdd", "yy/mm/dd", "android", "compact", "mm.dd", "flag-epoch", "node-epoch", "epoch")))
register(TextLogParser("syslog", "syslog RFC 3164 and RFC 5424", ("rfc3164", "rfc5424")))
