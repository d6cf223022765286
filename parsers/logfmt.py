"""logfmt: `key=value key2="quoted value" ...` lines (Heroku, Go kit, Grafana, Prometheus components).

Pairs are extracted with one vectorized regex (`str.extract_all`), then mapped to canonical frames by the
same conventions as JSON lines (`parsers.fields`).
"""

from __future__ import annotations

import re
from pathlib import PurePath

import polars as pl

from rca.model import Rejected
from rca.parsers import ParseOptions, ParseResult, register
from rca.parsers.fields import records_to_frames
from rca.parsers.lines import read_lines
from rca.parsers.sources import Sample, Source

_PAIR = r'([A-Za-z_@][A-Za-z0-9_.\-/@]*)=("(?:[^"\\]|\\.)*"|[^ ]*)'
_PAIR_RE = re.compile(_PAIR)
SNIFF_CHARS = 4096


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


class LogfmtParser:
    name = "logfmt"
    description = "logfmt key=value lines"

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        good = 0
        for full in sample.lines:
            line = full[:SNIFF_CHARS]  # the pair regex backtracks over a long run of key characters: O(n^2)
            if line.lstrip().startswith(("{", "[")):
                continue
            pairs = _PAIR_RE.findall(line)
            covered = sum(len(k) + len(v) + 1 for k, v in pairs)
            if len(pairs) >= 3 and covered >= 0.8 * len(line.replace(" ", "")):
                good += 1
        return 0.85 * good / len(sample.lines)

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        lines = read_lines(source)
        frame = lines.frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
        pairs = frame.select("line", pl.col("text").str.extract_all(_PAIR).alias("pairs"))
        records: list[dict[str, str]] = []
        numbers: list[int] = []
        bad: list[Rejected] = []
        bad_count = 0
        for line_no, items in pairs.iter_rows():
            record = {}
            for item in items or ():
                key, _, value = item.partition("=")
                record[key] = _unquote(value)
            if len(record) < 2:
                bad_count += 1
                if len(bad) < 5:
                    bad.append(Rejected(line_no, "not key=value pairs"))
                continue
            records.append(record)
            numbers.append(line_no)
        default_service = PurePath(source.origin).name.split(".")[0] or None
        frames, no_ts = records_to_frames(records, numbers, source.origin, "app_log", options.fields, options.tz, default_service)
        rejected = list(lines.rejected) + bad + [Rejected(r["line"], r["reason"]) for r in no_ts.head(5).iter_rows(named=True)]
        return ParseResult(
            format=self.name,
            frames=frames,
            lines=lines.total,
            rejected=lines.rejected_count + bad_count + no_ts.height,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=list(lines.warnings),
        )


register(LogfmtParser())
