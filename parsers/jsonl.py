"""JSON lines: one JSON object per line (application logs, ECS, pino, zap, journald, Docker json-file).

Lines that are objects are decoded by polars' NDJSON reader in batches and flattened to dotted keys
(`parsers.fields.json_objects`; a batch it refuses is halved down to a few lines read record by record
with orjson); `parsers.fields` maps the keys to the
canonical frames by common conventions. Lines that do not start like JSON are plain text the same
stream wrote (a container's stderr, a crash dump, start-up lines): read as text events of the stream
(`parsers.text.text_events_in_stream`); lines that start like JSON and do not parse are rejected with
their line number. Documents that the OTLP parsers own (`resourceSpans`/`resourceLogs`/`resourceMetrics`) are not
claimed here.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import PurePath

import orjson
import polars as pl

from rca.errors import InputError
from rca.model import Rejected, empty_frame
from rca.parsers import ParseOptions, ParseResult, Streamed, register
from rca.parsers.decoding import parse_json_lines
from rca.parsers.fields import (
    FinishedRows,
    JsonRead,
    MappedRows,
    RowsFinisher,
    json_parts,
    map_flat,
    records_to_frames,
    streamed_records,
)
from rca.parsers.lines import Lines, read_lines
from rca.parsers.otlp.common import looks_like_otlp_json
from rca.parsers.sources import Sample, Source
from rca.parsers.text import text_events_in_stream

_LIKE_JSON = re.compile(r'^\s*(?:\{|\[\s*[\[{"\]])')  # an object or an array of them, not `[1:0x5e1c040] ...`


class JsonLinesParser:
    name = "jsonl"
    description = "JSON lines application logs (ECS, pino/bunyan, zap, logrus/slog, structlog, journald, Docker)"

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        if looks_like_otlp_json(sample.head):
            return 0.0
        objects = []
        for line in sample.lines:
            is_object = False
            with contextlib.suppress(orjson.JSONDecodeError):
                is_object = isinstance(orjson.loads(line), dict)
            objects.append(is_object)
        share = sum(objects) / len(objects)
        # a container's stream: JSON records among plain-text lines (stderr, start-up lines, a crash dump).
        # Few objects among text lines is a text log, unless it opens with an object: the text parsers
        # yield on that, and this parser reads every other line as text of the stream, losing none.
        if share == 1.0 or (share < 0.2 and not objects[0]):
            return 0.9 * share
        return 0.6 + 0.3 * share

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        finisher = RowsFinisher(options.max_request_rows, options.request_columns, options.max_event_rows)
        read = JsonRead()
        for part, share in self._parts(source, options, read):
            finisher.add(part, share)
        finisher.add_events(self._text_events(source, options, read))  # after every record: they need their neighbours
        return self._read_result(source, read, finisher.finish())

    def stream(self, source: Source, options: ParseOptions) -> Streamed:
        """The chunked parse as a stream of request and event rows (for `rca ingest`): each chunk's rows go
        out as it is read (`parsers.fields.streamed_records`), the same rows as `parse`'s."""
        finisher = RowsFinisher()
        read = JsonRead()
        return streamed_records(lambda: (part for part, _ in self._parts(source, options, read)), finisher,
                                lambda finished: self._read_result(source, read, finished), lambda: self._text_events(source, options, read))

    @staticmethod
    def _parts(source: Source, options: ParseOptions, read: JsonRead) -> Iterator[tuple[MappedRows, float | None]]:
        default_service = PurePath(source.origin).name.split(".")[0] or None
        return json_parts(source, lambda flat: map_flat(flat, source.origin, "app_log", options.fields, options.tz, default_service), read)

    def _text_events(self, source: Source, options: ParseOptions, read: JsonRead) -> pl.DataFrame:
        return self.text_events(read.lines.frame, read.bad, read.neighbour_records(), source.origin, options)

    def _read_result(self, source: Source, read: JsonRead, finished: FinishedRows) -> ParseResult:
        if read.lines.total == 0 and read.lines.warnings:
            raise InputError(read.lines.warnings[0], file=source.origin)
        result = self._result(read.lines, finished, read.bad)
        result.slow_lines = read.slow
        return result

    def parse_per_record(self, source: Source, options: ParseOptions) -> ParseResult:
        """`parse` with orjson record by record (the reference the vectorized path is held equal to)."""
        lines = read_lines(source)
        numbers = lines.frame["line"].to_list()
        records, positions, rejected = parse_json_lines(lines.frame["text"].to_list())
        default_service = PurePath(source.origin).name.split(".")[0] or None
        finished = records_to_frames(records, [numbers[p] for p in positions], source.origin, "app_log", options.fields, options.tz,
                                     default_service=default_service)
        bad = [(numbers[p], text, reason) for p, text, reason in rejected]
        frames = finished.frames
        neighbours = pl.concat([frames[name].select("line", "ts", "service", "host") for name in ("requests", "events")])
        frames["events"] = pl.concat([frames["events"], self.text_events(lines.frame, bad, neighbours, source.origin, options)])
        return self._result(lines, finished, bad)

    def _result(self, lines: Lines, finished: FinishedRows, bad: list[tuple[int, str, str]]) -> ParseResult:
        broken = [(n, text, reason) for n, text, reason in bad if _LIKE_JSON.match(text)]
        warnings = list(lines.warnings)
        if len(broken) < len(bad):
            warnings.append(f"{len(bad) - len(broken):,} line(s) not JSON read as plain text of the same stream")
        rejected = list(lines.rejected) + [Rejected(n, reason, text) for n, text, reason in broken[:5]]
        rejected += [Rejected(r["line"], r["reason"], "") for r in finished.no_ts.iter_rows(named=True)]
        return ParseResult(
            format=self.name,
            frames=finished.frames,
            lines=lines.total,
            rejected=lines.rejected_count + len(broken) + finished.no_ts_count,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=warnings,
            request_sample=finished.request_sample,
            event_sample=finished.event_sample,
        )

    @staticmethod
    def text_events(lines: pl.DataFrame, bad: list[tuple[int, str, str]], neighbours: pl.DataFrame, origin: str,
                    options: ParseOptions) -> pl.DataFrame:
        """Events of the lines of `bad` that do not even start like JSON: text the same stream wrote (stderr,
        a crash dump), placed by their JSON `neighbours` (line, ts, service, host of the records around
        them). A line that starts like JSON and does not parse is a broken record (rejected)."""
        text_lines = [n for n, text, _ in bad if not _LIKE_JSON.match(text)]
        if not text_lines:
            return empty_frame("events")
        text = lines.filter(pl.col("line").is_in(text_lines))
        return text_events_in_stream(text, neighbours, options, origin, "app_log")


register(JsonLinesParser())
__all__ = ["JsonLinesParser"]
