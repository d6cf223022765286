"""JSON lines: one JSON object per line (application logs, ECS, pino, zap, journald, Docker json-file).

Each line is decoded with orjson and flattened to dotted keys; `parsers.fields` maps the keys to the
canonical frames by common conventions. Lines that are not JSON objects are rejected with their line
number. Documents that the OTLP parsers own (`resourceSpans`/`resourceLogs`/`resourceMetrics`) are not
claimed here.
"""

from __future__ import annotations

import contextlib
from pathlib import PurePath

import orjson
import polars as pl

from rca.model import Rejected
from rca.parsers import ParseOptions, ParseResult, register
from rca.parsers.fields import parse_json_lines, records_to_frames
from rca.parsers.lines import read_lines
from rca.parsers.otlp import looks_like_otlp_json
from rca.parsers.sources import Sample, Source


class JsonLinesParser:
    name = "jsonl"
    description = "JSON lines application logs (ECS, pino/bunyan, zap, logrus/slog, structlog, journald, Docker)"

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        if looks_like_otlp_json(sample.head):
            return 0.0
        good = 0
        for line in sample.lines:
            with contextlib.suppress(orjson.JSONDecodeError):
                good += isinstance(orjson.loads(line), dict)
        return 0.9 * good / len(sample.lines)

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        lines = read_lines(source)
        texts = lines.frame["text"].to_list()
        numbers = lines.frame["line"].to_list()
        records, positions, bad = parse_json_lines(texts)
        default_service = PurePath(source.origin).name.split(".")[0] or None
        frames, no_ts = records_to_frames(
            records, [numbers[p] for p in positions], source.origin, "app_log", options.fields, options.tz,
            default_service=default_service,
        )
        rejected = list(lines.rejected) + [Rejected(numbers[p], reason, text) for p, text, reason in bad[:5]]
        rejected += [Rejected(r["line"], r["reason"], "") for r in no_ts.head(5).iter_rows(named=True)]
        return ParseResult(
            format=self.name,
            frames=frames,
            lines=lines.total,
            rejected=lines.rejected_count + len(bad) + no_ts.height,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=list(lines.warnings),
        )


register(JsonLinesParser())
__all__ = ["JsonLinesParser", "pl"]
