"""OTLP/JSON spans decoded by msgspec into typed structs that declare only the fields rca reads, then
turned into columns with one list comprehension per field and polars.

msgspec skips unknown fields in C and builds the structs without the garbage collector tracking them
(`gc=False`); a line whose shape the structs do not accept (a field of an unexpected JSON type) is left
to the orjson dict walk in `json`, so both read the same documents the same way. AnyValues
stay plain dicts (faster to build than a struct of seven optional fields) that `any_value` reads.
Columns: ids that are 32/16 hex characters are lower-cased in polars and everything else goes through
`hex_id` (base64, short Jaeger-style ids); kinds and status codes, integers or enum names, are mapped
per distinct value; timestamps are read by polars and, where it cannot, by `int_value`; only attributes
whose key is in the alias table are looked at (a polars join on the keys), the best-ranked alias per
span first; resource values are repeated per scope's span count.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter, methodcaller
from typing import Any

import msgspec
import numpy as np
import orjson
import polars as pl

from rca.parsers.otlp.common import (
    ALIASES,
    KIND_NAMES,
    KINDS,
    STATUS,
    STATUS_NAMES,
    any_value,
    enum_value,
    hex_id,
    int_value,
    resource_fields,
    status_series,
    text_series,
)


class KeyValue(msgspec.Struct, gc=False):
    key: Any = None
    value: dict[str, Any] | None = None  # an AnyValue object, read by any_value as the dict walk reads it


class Status(msgspec.Struct, gc=False):
    code: Any = None


class Span(msgspec.Struct, gc=False):
    traceId: Any = None
    spanId: Any = None
    parentSpanId: Any = None
    name: Any = None
    kind: Any = None
    startTimeUnixNano: Any = None
    endTimeUnixNano: Any = None
    attributes: list[KeyValue] | None = None
    status: Status | None = None


class ScopeSpans(msgspec.Struct, gc=False):
    spans: list[Span] | None = None


class Resource(msgspec.Struct, gc=False):
    attributes: list[KeyValue] | None = None


class ResourceSpans(msgspec.Struct, gc=False):
    resource: Resource | None = None
    scopeSpans: list[ScopeSpans] | None = None
    instrumentationLibrarySpans: list[ScopeSpans] | None = None


class Document(msgspec.Struct, gc=False):
    """A line: spans typed, logs and metrics kept raw for the dict walk."""

    resourceSpans: list[ResourceSpans] | None = None
    batches: list[ResourceSpans] | None = None
    resourceLogs: msgspec.Raw = msgspec.Raw(b"")
    resourceMetrics: msgspec.Raw = msgspec.Raw(b"")


DECODER = msgspec.json.Decoder(Document)
BATCH_SPANS = 65_536  # spans turned into columns at a time
_KEY, _VALUE, _STRING = attrgetter("key"), attrgetter("value"), methodcaller("get", "stringValue")
_COLUMNS = list(ALIASES)
_RANKS = max(len(names) for names in ALIASES.values())
_ALIAS_RANK = [(name, _COLUMNS.index(column), rank) for column, names in ALIASES.items() for rank, name in enumerate(names)]


def resource_of(rs: ResourceSpans) -> dict[str, Any]:
    attributes = rs.resource.attributes if rs.resource is not None else None
    return resource_fields({kv.key: any_value(kv.value) for kv in attributes or ()})


def raw_of(document: Document) -> dict[str, Any] | None:
    """The logs and metrics of a line as dicts for the dict walk (None when the line has neither)."""
    out = {}
    for key in ("resourceLogs", "resourceMetrics"):
        raw = getattr(document, key)
        if raw:
            out[key] = orjson.loads(memoryview(raw))
    return out or None


def _ids(values: list[Any], size: int) -> pl.Series:
    """Ids as lower-case hex: 2*size hex characters in polars, anything else by `hex_id`."""
    try:
        series = pl.Series(values, dtype=pl.String, strict=True)
        given = series.is_not_null().to_numpy()
    except TypeError:  # numbers or objects among them: hex_id reads those
        series = pl.Series([v if isinstance(v, str) else None for v in values], dtype=pl.String)
        given = np.array([v is not None for v in values], dtype=bool)
    plain = (series.str.len_bytes().eq(2 * size) & series.str.contains("^[0-9A-Fa-f]+$")).fill_null(False)
    out = pl.select(pl.when(pl.lit(plain)).then(pl.lit(series).str.to_lowercase())).to_series()
    odd = np.flatnonzero(~plain.to_numpy() & given)
    if len(odd):
        out = out.scatter(odd, pl.Series([hex_id(values[i], size) for i in odd], dtype=pl.String))
    return out


def _enum(values: list[Any], names: dict[str, int], labels: dict[int, str], default: str) -> list[str]:
    """Integers or enum names -> labels, mapped once per distinct value."""
    try:
        mapping = {v: labels.get(enum_value(v, names), default) for v in set(values)}
    except TypeError:  # an unhashable value: map each
        return [labels.get(enum_value(v, names), default) for v in values]
    return list(map(mapping.__getitem__, values))


def _times(values: list[Any]) -> pl.Series:
    """Nanosecond timestamps, numbers or decimal strings; what polars cannot read goes through `int_value`."""
    try:  # decimal strings, as the spec writes them
        out = pl.Series(values, dtype=pl.String, strict=True).str.to_integer(strict=False).cast(pl.Int64, strict=False)
    except TypeError:
        try:
            out = pl.Series(values, dtype=pl.Int64, strict=True)
        except (TypeError, OverflowError):
            out = pl.Series([None if v is None else str(v) for v in values], dtype=pl.String).str.to_integer(strict=False).cast(pl.Int64, strict=False)
    odd = np.flatnonzero(out.is_null().to_numpy())
    if len(odd):
        out = out.scatter(odd, pl.Series([int_value(values[i]) for i in odd], dtype=pl.Int64))
    return out


def spans_frame(scopes: list[tuple[int, dict[str, Any], list[Span]]]) -> pl.DataFrame:
    """(line, resource values, spans) per scope -> the raw span frame `finish_spans` takes."""
    spans = [s for _, _, batch in scopes for s in batch]
    n = len(spans)
    counts = np.array([len(batch) for _, _, batch in scopes], dtype=np.int64)
    scope_of_span = np.repeat(np.arange(len(scopes)), counts)
    resources = pl.DataFrame(
        {
            "service": [r["service"] for _, r, _ in scopes],
            "service_version": [r["service_version"] for _, r, _ in scopes],
            "deployment_environment": [r["deployment_environment"] for _, r, _ in scopes],
            "host": [r["host"] for _, r, _ in scopes],
            "line": [line for line, _, _ in scopes],
        },
        schema_overrides={"line": pl.Int64},
        strict=False,
    )[scope_of_span]

    def field_values(name: str) -> list[Any]:
        return list(map(attrgetter(name), spans))

    statuses = field_values("status")
    core = pl.DataFrame({
        "trace_id": _ids(field_values("traceId"), 16),
        "span_id": _ids(field_values("spanId"), 8),
        "parent_span_id": _ids(field_values("parentSpanId"), 8),
        "name": pl.Series(field_values("name"), strict=False),
        "kind": pl.Series(_enum(field_values("kind"), KIND_NAMES, KINDS, "unspecified"), dtype=pl.String),
        "start_ns": _times(field_values("startTimeUnixNano")),
        "end_ns": _times(field_values("endTimeUnixNano")),
        "status": pl.Series(_enum([None if st is None else st.code for st in statuses], STATUS_NAMES, STATUS, "unset"), dtype=pl.String),
    })

    attribute_lists = [a or () for a in field_values("attributes")]
    kvs = list(chain.from_iterable(attribute_lists))
    per_span = np.fromiter(map(len, attribute_lists), dtype=np.int64, count=n)
    aliases = pl.DataFrame(_ALIAS_RANK, schema={"key": pl.String, "column": pl.Int64, "rank": pl.Int64}, orient="row")
    picked = (
        pl.DataFrame({
            "key": pl.Series(list(map(_KEY, kvs)), dtype=pl.String, strict=False),
            "span": np.repeat(np.arange(n, dtype=np.int64), per_span),
        })
        .with_row_index("_kv")
        .join(aliases, on="key", how="inner", maintain_order="left")
        .with_columns((pl.col("span") * len(_COLUMNS) + pl.col("column")).alias("_slot"))
        .sort(pl.col("_slot") * _RANKS + pl.col("rank"), maintain_order=True)  # stable: the first of equal ranks wins
        .filter(pl.col("_slot") != pl.col("_slot").shift(1).fill_null(-1))
    )
    values_all = np.fromiter(map(_VALUE, kvs), dtype=object, count=len(kvs))
    alias_series = []
    parts = picked.partition_by("column", as_dict=True)  # one pass instead of a filter per column
    empty = picked.clear()
    for index, column in enumerate(_COLUMNS):
        rows = parts.get((index,), empty)
        picked_values = values_all[rows["_kv"].to_numpy()].tolist()
        strings = [None if v is None else v.get("stringValue") for v in picked_values] if None in picked_values else list(map(_STRING, picked_values))
        try:  # only string values: polars takes them as they are (None: not a string value, or null)
            if None in strings:
                raise ValueError
            text = pl.Series(column, strings, dtype=pl.String, strict=True)
        except (TypeError, ValueError):  # others too: as any_value reads each
            values = [s if s.__class__ is str else any_value(v) for s, v in zip(strings, picked_values, strict=True)]
            text = None
        if column == "http_status":
            read = text.cast(pl.Int32, strict=False) if text is not None else status_series(values)
            full = pl.Series(column, [None], dtype=pl.Int32)
        else:
            read = text if text is not None else text_series(column, values)
            full = pl.Series(column, [None], dtype=pl.String)
        full = full.extend_constant(None, n - 1)
        alias_series.append(full.scatter(rows["span"], read) if rows.height else full)
    frame = pl.concat([core, resources, pl.DataFrame(alias_series)], how="horizontal")
    return frame.with_columns(
        pl.col("name").cast(pl.String, strict=False),
        (pl.col("start_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"),
        (pl.col("end_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("end"),
    )
