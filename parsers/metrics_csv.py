"""Simple metrics CSV: a header with `ts`, `name`, `value` and optionally `host`, `service`, `unit`.

Column names are matched case-insensitively with common aliases (`timestamp`/`time` for `ts`,
`metric` for `name`). Timestamps may be ISO-8601 or epoch (s/ms/µs/ns by magnitude). Rows whose
timestamp or value cannot be read are rejected with their line number. Read with polars' CSV reader
(all columns as text), then converted with expressions.
"""

from __future__ import annotations

import io

import polars as pl

from rca.errors import InputError
from rca.model import conform
from rca.parsers import ParseOptions, ParseResult, register
from rca.parsers.decoding import parse_timestamp
from rca.parsers.lines import read_payload, rejected_examples
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
        payload, warnings = read_payload(source)
        try:
            raw = pl.read_csv(
                io.BytesIO(payload), infer_schema=False, encoding="utf8-lossy", truncate_ragged_lines=True
            )
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"not a readable CSV ({str(exc).splitlines()[0]})", file=source.origin, line=1
            ) from None
        found = _columns(raw.columns)
        missing = {"ts", "name", "value"} - set(found)
        if missing:
            raise InputError(
                f"metrics CSV lacks column(s) {', '.join(sorted(missing))}",
                file=source.origin,
                line=1,
                hint="expected a header like ts,name,value,host,service",
            )
        frame = (
            raw.select(
                pl.col(found[c]).str.strip_chars().alias(c)
                if c in found
                else pl.lit(None, pl.String).alias(c)
                for c in ("ts", "name", "value", "host", "service", "unit")
            )
            .with_row_index("line", offset=2)
            .with_columns(pl.col("line").cast(pl.Int64))
        )
        ts = parse_timestamp(frame["ts"], options.tz)
        frame = frame.with_columns(
            ts.alias("_ts"), pl.col("value").cast(pl.Float64, strict=False).alias("_value")
        )
        bad = frame.filter(pl.col("_ts").is_null() | pl.col("_value").is_null() | pl.col("name").is_null())
        good = frame.filter(
            pl.col("_ts").is_not_null() & pl.col("_value").is_not_null() & pl.col("name").is_not_null()
        )
        metrics = good.select(
            pl.col("_ts").alias("ts"),
            "name",
            pl.col("_value").alias("value"),
            "unit",
            "service",
            "host",
            pl.lit(None, pl.String).alias("attributes"),
            pl.lit(source.origin).alias("origin"),
            "line",
            pl.lit("metric").alias("signal"),
        )
        text = bad.select(
            "line",
            pl.concat_str([pl.col(c).fill_null("") for c in ("ts", "name", "value")], separator=",").alias(
                "text"
            ),
        )
        reason = (
            pl.when(pl.col("text").str.split(",").list.get(0) == "")
            .then(pl.lit("missing timestamp"))
            .otherwise(pl.lit("unreadable timestamp, name or value"))
        )
        return ParseResult(
            format=self.name,
            frames={"metrics": conform(metrics, "metrics")},  # type: ignore[dict-item]
            lines=frame.height,
            rejected=bad.height,
            rejected_examples=rejected_examples(text, reason),
            warnings=warnings,
        )


register(MetricsCsvParser())
