"""Simple metrics CSV: a header with `ts`, `name`, `value` and optionally `host`, `service`, `unit`.

Column names are matched case-insensitively with common aliases (`timestamp`/`time` for `ts`,
`metric` for `name`). Timestamps may be ISO-8601 or epoch (s/ms/µs/ns by magnitude). Rows whose
timestamp or value cannot be read are rejected with their line number. Read with polars' CSV reader
(all columns as text), then converted with expressions, a block of rows at a time (`_record_blocks`): the
text and strings of a big file are never held whole, only its metric points.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import polars as pl

from rca.errors import InputError
from rca.model import analyzed_metrics, conform
from rca.parsers import ParseOptions, ParseResult, register
from rca.parsers.bounded import compact
from rca.parsers.decoding import parse_timestamp
from rca.parsers.lines import read_blocks, rejected_examples
from rca.parsers.sources import Sample, Source

ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "@timestamp", "datetime", "date"),
    "name": ("name", "metric", "metric_name"),
    "value": ("value", "val", "metric_value"),
    "host": ("host", "hostname", "instance", "node"),
    "service": ("service", "service_name", "job", "app"),
    "unit": ("unit", "units"),
}


def _columns(header: list[str]) -> dict[str, str]:
    lowered = {h.strip().lower(): h for h in header}
    found: dict[str, str] = {}
    for canonical, aliases in ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                found[canonical] = lowered[alias]
                break
    return found


class MetricsCsvParser:
    """`ts,name,value[,host][,service][,unit]` CSV with a header row."""

    name = "metrics_csv"
    description = "metrics as CSV with a header: ts,name,value[,host][,service][,unit]"

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        header = [h.strip().strip('"') for h in sample.lines[0].split(",")]
        found = _columns(header)
        if not {"ts", "name", "value"} <= set(found):
            return 0.0
        rows = sample.lines[1:20]
        if rows and not all(line.count(",") == len(header) - 1 for line in rows):
            return 0.3
        return 0.9

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        warnings: list[str] = []
        header = b""
        parts: list[pl.DataFrame] = []
        bad_rows: list[pl.DataFrame] = []
        rows = bad = 0
        for block in _record_blocks(source, warnings):
            if not header:  # the header row heads every later block, so each parses as the whole file would
                cut = block.find(b"\n") + 1 or len(block)
                header, block = block[:cut] if block[cut - 1 : cut] == b"\n" else block[:cut] + b"\n", block[cut:]
            metrics, rejected, count = _parse_rows(header + block, source.origin, options, first_line=2 + rows, warnings=warnings)
            del block
            parts.append(metrics)
            rows += count
            bad += rejected.height
            if sum(r.height for r in bad_rows) < 5:
                bad_rows.append(rejected.head(5))
        if not header:
            _parse_rows(b"", source.origin, options, first_line=2)  # the error of an empty input
        text = pl.concat(bad_rows) if bad_rows else pl.DataFrame(schema={"line": pl.Int64, "text": pl.String})
        reason = (
            pl.when(pl.col("text").str.split(",").list.get(0) == "")
            .then(pl.lit("missing timestamp"))
            .otherwise(pl.lit("unreadable timestamp, name or value"))
        )
        return ParseResult(
            format=self.name,
            frames={"metrics": pl.concat(parts)},
            lines=rows,
            rejected=bad,
            rejected_examples=rejected_examples(text, reason),
            warnings=warnings,
        )


# Bytes of CSV rows parsed at a time: the text of a few hundred thousand rows (the whole file read at once
# held its bytes, every field as a string and the parsed frame together: 2.7 GB for 5M rows, 370 MB).
BLOCK_BYTES = 8 << 20


def _record_blocks(source: Source, warnings: list[str]) -> Iterator[bytes]:
    """The input's bytes in blocks of whole rows of about BLOCK_BYTES: cut at line ends outside quotes (an even
    count of quote characters before the cut), so a quoted field holding a line break stays in one block."""
    pending: list[bytes] = []
    quotes = 0
    for block, _ in read_blocks(source, BLOCK_BYTES, warnings):
        pending.append(block)
        quotes += block.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(pending)
            pending, quotes = [], 0
    if pending:
        yield b"".join(pending)


def _first_odd_quote_row(payload: bytes) -> int | None:
    """0-based index (the header being 0) of the first row holding an odd count of quote characters, if any."""
    for index, row in enumerate(payload.split(b"\n")):
        if row.count(b'"') % 2:
            return index
    return None


def _parse_rows(
    payload: bytes, origin: str, options: ParseOptions, first_line: int, warnings: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The metric points of CSV text with its header (rows numbered from `first_line`), the rejected rows
    (`line`, `text`), and the number of rows. A quote left open (a row cut short, a stray `"`) makes the CSV
    reader refuse the whole text: it is read again with quotes as plain characters, so the row holding it is
    rejected and counted (its value unreadable) instead of the whole file being lost, and a warning names it."""
    def read(quote_char: str | None) -> pl.DataFrame:
        return pl.read_csv(io.BytesIO(payload), infer_schema=False, encoding="utf8-lossy", truncate_ragged_lines=True,
                           quote_char=quote_char)

    try:
        raw = read('"')
    except pl.exceptions.PolarsError as exc:
        odd = _first_odd_quote_row(payload)
        error = InputError(f"not a readable CSV ({str(exc).splitlines()[0]})", file=origin, line=1 if odd is None else max(1, first_line + odd - 1))
        if odd is None or odd == 0:
            raise error from None
        try:
            raw = read(None)
        except pl.exceptions.PolarsError:
            raise error from None
        if warnings is not None:
            warnings.append(f"line {first_line + odd - 1}: a quote left open; rows read with quotes as plain characters")
    found = _columns(raw.columns)
    missing = {"ts", "name", "value"} - set(found)
    if missing:
        raise InputError(
            f"metrics CSV lacks column(s) {', '.join(sorted(missing))}",
            file=origin,
            line=1,
            hint="expected a header like ts,name,value,host,service",
        )
    frame = (
        raw.select(
            pl.col(found[c]).str.strip_chars().alias(c) if c in found else pl.lit(None, pl.String).alias(c)
            for c in ("ts", "name", "value", "host", "service", "unit")
        )
        .with_row_index("line", offset=first_line)
        .with_columns(pl.col("line").cast(pl.Int64))
    )
    del raw
    ts = parse_timestamp(frame["ts"], options.tz)
    frame = frame.with_columns(ts.alias("_ts"), pl.col("value").cast(pl.Float64, strict=False).alias("_value"))
    readable = pl.col("_ts").is_not_null() & pl.col("_value").is_not_null() & pl.col("name").is_not_null()
    metrics = frame.filter(readable).select(
        pl.col("_ts").alias("ts"),
        "name",
        pl.col("_value").alias("value"),
        "unit",
        "service",
        "host",
        pl.lit(None, pl.String).alias("attributes"),
        pl.lit(origin).alias("origin"),
        "line",
        pl.lit("metric").alias("signal"),
    )
    rejected = frame.filter(~readable).select(
        "line", pl.concat_str([pl.col(c).fill_null("") for c in ("ts", "name", "value")], separator=",").alias("text")
    )
    metrics = conform(metrics, "metrics")  # type: ignore[assignment]
    # per block: the whole file's points as String columns would be held before analysis narrows them
    kept = compact(metrics) if options.metric_columns is None else analyzed_metrics(metrics, options.metric_columns)
    return kept, rejected, frame.height


register(MetricsCsvParser())
