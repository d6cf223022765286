"""Values every structured format reads: JSON lines decoded record by record (flattened to dotted keys)
and timestamps in any common spelling (epochs in s/ms/us/ns told apart by magnitude, ISO-8601 with any
offset). Apart from `parsers.fields` (the mapping of records to canonical frames): the change-file
and metrics parsers read only these, and the mapping reads change announcements (`parsers.changes`,
through `parsers.bounded_events`), which would otherwise import it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import polars as pl


def flatten(record: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested objects to dotted keys; lists are kept as values."""
    if out is None:
        out = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


def parse_timestamp(values: pl.Series, tz: str = "UTC") -> pl.Series:
    """Epoch numbers (s/ms/µs/ns by magnitude, numeric strings too) or ISO-8601 text -> Datetime(us, UTC)."""
    if values.dtype.is_integer():
        # integers exactly (a float64 loses the last digits of nanosecond epochs)
        ints = values.cast(pl.Int64)
        mag = ints.abs()
        exact = pl.select(
            pl.when(pl.lit(mag) < 10**11).then(pl.lit(ints) * 1_000_000)
            .when(pl.lit(mag) < 10**14).then(pl.lit(ints) * 1_000)
            .when(pl.lit(mag) < 10**17).then(pl.lit(ints))
            .otherwise(pl.lit(ints) // 1_000)
            .cast(pl.Datetime("us", "UTC"))
        ).to_series()
        return exact.alias("ts")
    if values.dtype.is_numeric():
        return _epoch_micros(values.cast(pl.Float64)).alias("ts")
    text = values.cast(pl.String).str.strip_chars()
    iso = parse_iso(text, tz)
    if iso.null_count() == text.null_count():  # every time ISO-8601: no epochs to look for
        return iso.alias("ts")
    return pl.select(pl.coalesce(pl.lit(iso), pl.lit(_epoch_micros(text.cast(pl.Float64, strict=False))))).to_series().alias("ts")


def _epoch_micros(num: pl.Series) -> pl.Series:
    """Epoch numbers in s/ms/µs/ns (told apart by magnitude) -> Datetime(us, UTC)."""
    magnitude = num.abs()
    return pl.select(
        pl.when(magnitude < 1e11).then(num * 1e6)
        .when(magnitude < 1e14).then(num * 1e3)
        .when(magnitude < 1e17).then(num)
        .otherwise(num / 1e3)
        .round(0)
        .cast(pl.Int64, strict=False)  # beyond the Int64 range (9.2e21 s): no readable time, not a crash
        .cast(pl.Datetime("us", "UTC"))
    ).to_series()


def parse_iso(text: pl.Series, tz: str) -> pl.Series:
    # the usual shape (`2026-01-05T14:00:00.363Z`) in one pass; anything else through the rules below
    usual = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us", time_zone="UTC")
    if usual.null_count() == text.null_count():
        return usual
    norm = (
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"([+-]\d{2})(\d{2})$", "${1}:${2}")
        .str.replace(r",(\d+)", ".${1}")
    )
    has_zone = norm.str.contains(r"[+-]\d{2}:\d{2}$")
    zone = "+00:00" if tz.upper() in ("UTC", "Z") else None
    if zone is None:
        naive = norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
        naive = naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    else:
        naive = (norm + zone).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC")
    zoned = norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC")
    return pl.select(pl.when(pl.lit(has_zone)).then(pl.lit(zoned)).otherwise(pl.lit(naive))).to_series()


def parse_json_lines(texts: Iterable[str | None]) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str, str]]]:
    """orjson over each line: (flattened records, their 1-based positions, rejected (pos, text, reason))."""
    records: list[dict[str, Any]] = []
    positions: list[int] = []
    rejected: list[tuple[int, str, str]] = []
    loads = orjson.loads
    for i, text in enumerate(texts):
        if text is None or not text.strip():
            continue
        try:
            value = loads(text)
        except orjson.JSONDecodeError as exc:
            rejected.append((i, text[:160], f"invalid JSON ({str(exc).split(':')[0]})"))
            continue
        if not isinstance(value, dict):
            rejected.append((i, text[:160], "JSON value is not an object"))
            continue
        records.append(flatten(value))
        positions.append(i)
    return records, positions, rejected
