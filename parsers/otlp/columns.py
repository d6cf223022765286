"""OTLP protobuf spans decoded column by column: upb parses, numpy and polars assemble, no Python object
per span field.

Touching a upb message from Python costs 100-200 ns per field access or element, so a walk over a
million spans with four attributes costs seconds however it is written. Here each field of every span
in a batch of messages comes out of upb as one repeated column instead:

1. The messages are parsed with a reduced schema (built at runtime with descriptor_pb2 and
   message_factory) in which `ScopeSpans.spans` is `repeated bytes`: upb copies each span's bytes and
   decodes nothing inside them.
2. The span payloads are joined with a constant *marker* after each: one record per field of interest
   with a value no real span uses (ids and timestamps of all 0xff bytes, kind 127, name "\\x00", an
   attribute keyed "\\x00"). The join is parsed as one `SpanColumns` message whose fields are all
   repeated, so protobuf's merge rule appends every span's value of a field, and its marker, to one
   list: `[trace_id of span 1, MARK, trace_id of span 2, MARK, ...]`. Ids, kind and timestamps are
   declared packed `fixed64`/`uint64` (an 8- or 16-byte id is one or two fixed64 elements on the
   wire), so after clearing the string fields the message serializes to one contiguous array per field
   that numpy reads with `frombuffer`. `attributes` is one non-repeated `KeyValueColumns` message that
   merges every span's key/value pairs into two parallel lists; `status` merges likewise into codes.
3. Between two markers lie the values of one span: none (field absent, proto3 default) or one. Every
   batch is checked: the marker count must equal the span count, every gap must hold 0 or exactly one
   value (so a real value equal to a marker, a duplicated field, an id that is not 8/16 bytes or a
   multi-byte kind sends the batch to the exact per-span walk in `json`), keys and values must
   have their markers at the same positions.
4. Only attributes whose key is in the alias table are kept (polars `replace_strict` to a column and
   rank code), the best-ranked alias per span and column when a span has several (sorting only then); their AnyValue bytes are read in polars when they are the canonical
   one-field encoding of a string, a small integer, a double or a bool, and by upb otherwise (arrays,
   kvlists, bytes). Ids are hexed in polars. Resource values and message numbers are repeated per
   scope's span count.

One caveat a reader of the wire format should know: keys and values are paired by position within a
span, so a KeyValue that repeats its key field while another one in the same span has none (no encoder
writes either; both are invalid OTLP) would be paired wrongly. Fields not declared here are skipped in
C, as with any unknown field; unlike the full schema, broken UTF-8 in a field rca does not read is not
an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from rca.parsers.otlp.common import ALIASES, KINDS, STATUS, proto_value, resource_fields
from rca.parsers.otlp.signals import Blob, wire_fields

MARK64 = 0xFFFF_FFFF_FFFF_FFFF
MARK_SMALL = 127  # kind and status code markers: one varint byte, no such enum value
MARK_NAME = "\x00"
MARK_KEY = "\x00"
MARK_VALUE = b"\xff"  # not a valid AnyValue encoding
BATCH_SPANS = 65_536
_HEX = np.array([int.from_bytes(f"{b:02x}".encode(), "little") for b in range(256)], dtype="<u2")  # byte -> "xy"
_COLUMNS = list(ALIASES)
_RANKS = max(len(names) for names in ALIASES.values())
_ALIAS_RANK = [(name, _COLUMNS.index(column), rank) for column, names in ALIASES.items() for rank, name in enumerate(names)]
_ALIAS_NAMES = [name for name, _, _ in _ALIAS_RANK]
_ALIAS_CODES = [column * _RANKS + rank for _, column, rank in _ALIAS_RANK]


@dataclass(frozen=True)
class _Schema:
    traces_data: Any
    span_columns: Any
    marker: bytes


_SCHEMA: _Schema | None = None


def _schema() -> _Schema:
    """The reduced messages, built once: the top of TracesData with spans as bytes, and SpanColumns."""
    global _SCHEMA
    if _SCHEMA is not None:
        return _SCHEMA
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="rca_otlp_columns.proto", package="rca_otlp_columns", syntax="proto3")

    def message(name: str, fields: list[tuple[str, int, int, int, str | None, bool]]) -> None:
        m = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name, packed in fields:
            field = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".rca_otlp_columns.{type_name}"
            if packed:
                field.options.packed = True

    one, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("TracesData", [("resource_spans", 1, f.TYPE_MESSAGE, rep, "ResourceSpans", False)])
    message("ResourceSpans", [("resource", 1, f.TYPE_BYTES, one, None, False),
                              ("scope_spans", 2, f.TYPE_MESSAGE, rep, "ScopeSpans", False)])
    message("ScopeSpans", [("spans", 2, f.TYPE_BYTES, rep, None, False)])
    message("KeyValueColumns", [("key", 1, f.TYPE_STRING, rep, None, False), ("value", 2, f.TYPE_BYTES, rep, None, False)])
    message("StatusColumns", [("code", 3, f.TYPE_UINT64, rep, None, True)])
    message("SpanColumns", [
        ("trace_id", 1, f.TYPE_FIXED64, rep, None, True), ("span_id", 2, f.TYPE_FIXED64, rep, None, True),
        ("parent_span_id", 4, f.TYPE_FIXED64, rep, None, True), ("name", 5, f.TYPE_STRING, rep, None, False),
        ("kind", 6, f.TYPE_UINT64, rep, None, True), ("start", 7, f.TYPE_FIXED64, rep, None, True),
        ("end", 8, f.TYPE_FIXED64, rep, None, True), ("attributes", 9, f.TYPE_MESSAGE, one, "KeyValueColumns", False),
        ("status", 15, f.TYPE_MESSAGE, one, "StatusColumns", False),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    cls = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"rca_otlp_columns.{name}"))
           for name in ("TracesData", "SpanColumns")}
    mark = cls["SpanColumns"]()
    mark.trace_id.extend([MARK64, MARK64])
    for column in (mark.span_id, mark.parent_span_id, mark.start, mark.end):
        column.append(MARK64)
    mark.name.append(MARK_NAME)
    mark.kind.append(MARK_SMALL)
    mark.attributes.key.append(MARK_KEY)
    mark.attributes.value.append(MARK_VALUE)
    mark.status.code.append(MARK_SMALL)
    _SCHEMA = _Schema(cls["TracesData"], cls["SpanColumns"], mark.SerializeToString())
    return _SCHEMA


class Misaligned(Exception):
    """A batch the columns cannot represent exactly: decode it span by span instead."""


@dataclass(frozen=True)
class Scope:
    """One ScopeSpans of a message: its message number, resource values and span count."""

    line: int
    resource: dict[str, Any]
    spans: int


def parse_top(blob: Blob) -> tuple[list[Any], list[tuple[dict[str, Any], int]]]:
    """One TracesData message -> the span payload containers of its scopes, with each one's resource.

    Raises whatever upb raises on bytes that are not such a message."""
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    schema = _schema()
    message = schema.traces_data()
    message.ParseFromString(blob)
    containers, scopes = [], []
    for rs in message.resource_spans:
        resource = Resource()
        resource.ParseFromString(rs.resource)
        values = resource_fields({kv.key: proto_value(kv.value) for kv in resource.attributes})
        for ss in rs.scope_spans:
            count = len(ss.spans)
            if count:
                containers.append(ss.spans)
                scopes.append((values, count))
    return containers, scopes


def _records(data: Blob) -> dict[int, Blob]:
    """Top-level length-delimited records of a serialized message (few: one per packed column); a
    field written twice is Misaligned (upb writes a packed column once)."""
    out: dict[int, Blob] = {}
    for number, wire, start, end in wire_fields(data):
        if wire != 2 or number in out:
            raise Misaligned
        out[number] = data[start:end]
    return out


def _gaps(is_mark: np.ndarray, spans: int, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Marker positions -> (position of the marker that closes each span, whether the span had a
    value); raises Misaligned unless there are `spans` markers with 0 or `width` elements before each."""
    marks = np.flatnonzero(is_mark)
    if len(marks) != spans * width:
        raise Misaligned
    if width == 2:
        if not np.array_equal(marks[1::2], marks[0::2] + 1):
            raise Misaligned
        marks = marks[0::2]
    previous = np.empty_like(marks)
    previous[0] = -width
    previous[1:] = marks[:-1]
    gap = marks - previous - width
    present = gap == width
    if not (present | (gap == 0)).all():
        raise Misaligned
    return marks, present


def _ids(data: Blob, spans: int, width: int) -> pl.Series:
    """A packed fixed64 id column -> lower-case hex per span (null where absent)."""
    elements = np.frombuffer(data, dtype="<u8")
    marks, present = _gaps(elements == MARK64, spans, width)
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 8)
    starts = marks[present] - width
    ids = np.hstack([raw[starts + i] for i in range(width)]) if width > 1 else raw[starts]
    # two hex digits per byte by table, then fixed-width text (hex digits are never NUL, which numpy's
    # fixed-width bytes would drop)
    hexed = pl.Series(np.ascontiguousarray(_HEX[ids]).view(f"S{16 * width}").ravel(), dtype=pl.Binary).cast(pl.String)
    if present.all():
        return hexed
    out = pl.Series(values=[None], dtype=pl.String).extend_constant(None, spans - 1)
    return out.scatter(np.flatnonzero(present), hexed) if present.any() else out


def _scalars(elements: np.ndarray, mark: int, spans: int) -> np.ndarray:
    """A column of one element per present value -> the value per span, 0 where absent."""
    marks, present = _gaps(elements == mark, spans)
    out = np.zeros(spans, dtype=elements.dtype)
    out[present] = elements[marks[present] - 1]
    return out


def _small(data: Blob | None, spans: int) -> np.ndarray:
    """A packed varint column of enum values (one byte each, else Misaligned) -> value per span."""
    if data is None:
        raise Misaligned  # the markers alone make it non-empty
    elements = np.frombuffer(data, dtype=np.uint8)
    if (elements >= 0x80).any():
        raise Misaligned
    return _scalars(elements, MARK_SMALL, spans)


def decode_batch(containers: list[Any], spans: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The span payloads of some scopes -> (core span columns, one row per kept alias attribute)."""
    schema = _schema()
    mark = schema.marker
    parts = []
    for container in containers:
        parts.append(mark.join(container))
        parts.append(mark)
    columns = schema.span_columns()
    columns.ParseFromString(b"".join(parts))
    names = pl.Series("name", columns.name, dtype=pl.String)
    keys = pl.Series("key", columns.attributes.key, dtype=pl.String)
    values = pl.Series("value", columns.attributes.value, dtype=pl.Binary)
    columns.ClearField("name")
    columns.ClearField("attributes")
    columns.DiscardUnknownFields()  # fields the columns do not declare (events, links, flags...) kept by upb
    records = _records(columns.SerializeToString())
    if any(field not in records for field in (1, 2, 4, 7, 8, 15)):
        raise Misaligned

    name_marks, name_present = _gaps((names == MARK_NAME).to_numpy(), spans)
    name = names.gather(np.where(name_present, name_marks - 1, name_marks)).zip_with(pl.Series(name_present), pl.repeat("", spans, eager=True))
    status = _small(_records(records[15]).get(3), spans)
    core = pl.DataFrame({
        "trace_id": _ids(records[1], spans, 2),
        "span_id": _ids(records[2], spans, 1),
        "parent_span_id": _ids(records[4], spans, 1),
        "name": name,
        "kind": _small(records.get(6), spans),
        "start_ns": _scalars(np.frombuffer(records[7], dtype="<u8"), MARK64, spans).view(np.int64),
        "end_ns": _scalars(np.frombuffer(records[8], dtype="<u8"), MARK64, spans).view(np.int64),
        "status": status,
    })

    if keys.len() != values.len():
        raise Misaligned
    key_mark = keys == MARK_KEY
    if not key_mark.equals(values == pl.Series([MARK_VALUE], dtype=pl.Binary)) or key_mark.sum() != spans:
        raise Misaligned
    code = keys.replace_strict(_ALIAS_NAMES, _ALIAS_CODES, default=None, return_dtype=pl.Int64)  # column * _RANKS + rank
    attributes = (
        pl.DataFrame({"span": (key_mark.cum_sum() - key_mark.cast(pl.UInt32)).cast(pl.Int64), "code": code, "value": values})
        .filter(pl.col("code").is_not_null())
        .with_columns((pl.col("code") // _RANKS).alias("column"))
    )
    slot = pl.col("span") * len(_COLUMNS) + pl.col("column")
    if attributes.select(slot.n_unique()).item() != attributes.height:
        # a span with two aliases of one column: per span and column the best-ranked, the first of
        # equals (as the per-span walk keeps it); the sort is stable, so equal ranks keep wire order
        attributes = attributes.sort(slot * _RANKS + pl.col("code") % _RANKS, maintain_order=True).filter(slot.is_first_distinct())
    return core, attributes.select("span", "column", "value")  # in wire order when no slot repeats: readers scatter by span


def any_values(values: pl.Series) -> pl.DataFrame:
    """AnyValue encodings -> text and integer readings (`text`, `int`), null where not that kind.

    Most values are strings of under 128 bytes (a tag, a one-byte length, the text) or integers under
    16384 (a tag and one or two varint bytes): those are read in one pass over all values, the others
    by `_any_values` on their own (its many steps cost more than the values in them)."""
    v = pl.col("value")
    base = pl.DataFrame({"value": values}).with_columns(  # each byte read once, not once per use
        *(v.bin.get(k, null_on_oob=True).cast(pl.Int64).alias(f"b{k}") for k in range(3)), v.bin.size().cast(pl.Int64).alias("size"))
    tag, b1, b2, size = pl.col("b0"), pl.col("b1"), pl.col("b2"), pl.col("size")
    short = ((tag == 0x0A) & (b1 < 0x80) & (size == 2 + b1)).fill_null(False)
    one = ((tag == 0x18) & (size == 2) & (b1 < 0x80)).fill_null(False)
    two = ((tag == 0x18) & (size == 3) & (b1 >= 0x80) & (b2 < 0x80)).fill_null(False)
    small = pl.when(one).then(b1).when(two).then(b1 - 0x80 + b2 * 0x80)
    read = base.select(  # invalid UTF-8 raises, as upb would
        (short | one | two).alias("done"),
        pl.coalesce(pl.when(short).then(v.bin.slice(2)).cast(pl.String), small.cast(pl.String)).alias("text"),
        small.alias("int"),
    )
    text, ints = read["text"], read["int"]
    other = np.flatnonzero(~read["done"].to_numpy())
    if len(other):
        rest = _any_values(values.gather(other))
        text = text.scatter(other, rest["text"])
        ints = ints.scatter(other, rest["int"])
    return pl.DataFrame([text, ints])


def _any_values(values: pl.Series) -> pl.DataFrame:
    """AnyValue encodings -> text and integer readings (`text`, `int`), null where not that kind.

    The canonical one-field encodings of a string, a varint of up to 4 bytes, a double and a bool are
    read in polars; anything else (arrays, kvlists, bytes, long integers, unusual encodings) by upb,
    as `proto_value` reads them in the per-span walk."""
    v = pl.col("value")
    base = pl.DataFrame({"value": values}).with_row_index("i").with_columns(
        v.bin.size().cast(pl.Int64).alias("size"),
        v.bin.get(0, null_on_oob=True).cast(pl.Int64).alias("tag"),
        v.bin.get(1, null_on_oob=True).cast(pl.Int64).alias("b1"),
    )
    size, tag, b1 = pl.col("size"), pl.col("tag"), pl.col("b1")
    byte2 = v.bin.get(2, null_on_oob=True).cast(pl.Int64)
    tagged, rest = base.filter(tag == 0x0A), base.filter(tag.ne_missing(0x0A))  # strings, the rest (null tag: empty)
    strings = pl.concat([
        tagged.filter((b1 < 0x80) & (size == 2 + b1)).select("i", v.bin.slice(2).alias("s")),
        tagged.filter((b1 >= 0x80) & (size > 2)).filter((byte2 < 0x80) & (size == 3 + (b1 - 0x80) + byte2 * 0x80))
        .select("i", v.bin.slice(3).alias("s")),
    ])
    text = strings.select("i", pl.col("s").cast(pl.String).alias("text"))  # invalid UTF-8 raises, as upb would
    ints = rest.filter((tag == 0x18) & (size >= 2) & (size <= 5)).with_columns(
        [v.bin.get(k, null_on_oob=True).cast(pl.Int64).fill_null(0).alias(f"b{k}") for k in range(2, 5)]
    )
    # a varint of n bytes: the first n-1 carry the continuation bit, the last does not
    last = pl.concat_list("b1", "b2", "b3", "b4").list.get(size - 2)
    cont = pl.all_horizontal([(pl.col(f"b{k}") >= 0x80) | (size - 1 <= k) for k in range(1, 4)])
    value = pl.sum_horizontal([(pl.col(f"b{k}") % 0x80) * (1 << (7 * (k - 1))) * (size - 1 >= k).cast(pl.Int64) for k in range(1, 5)])
    ints = ints.filter(cont & (last < 0x80)).select("i", value.alias("int"))
    doubles = rest.filter((tag == 0x21) & (size == 9)).select("i", v.bin.slice(1, 8).bin.reinterpret(dtype=pl.Float64, endianness="little").cast(pl.String).alias("text"))
    bools = rest.filter((tag == 0x10) & (size == 2) & (b1 < 0x80)).select("i", (b1 != 0).cast(pl.String).alias("text"))
    n = values.len()
    text_out = pl.Series("text", [None], dtype=pl.String).extend_constant(None, n - 1)
    int_out = pl.Series("int", [None], dtype=pl.Int64).extend_constant(None, n - 1)
    int_text = ints.select("i", pl.col("int").cast(pl.String).alias("text"))
    read = pl.concat([text, int_text, doubles, bools])
    text_out = text_out.scatter(read["i"], read["text"])
    int_out = int_out.scatter(ints["i"], ints["int"])
    done = np.zeros(n, dtype=bool)
    done[read["i"].to_numpy()] = True
    done[(base["size"] == 0).to_numpy()] = True  # an empty AnyValue: no value
    other = np.flatnonzero(~done)
    if len(other):
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue

        decoded = [proto_value(AnyValue.FromString(b)) for b in values.gather(other).to_list()]
        as_text = pl.Series([None if d is None else (d if isinstance(d, str) else str(d).lower() if isinstance(d, bool) else str(d)) for d in decoded], dtype=pl.String)
        as_int = pl.Series([d if isinstance(d, int) and not isinstance(d, bool) else None for d in decoded], dtype=pl.Int64)
        text_out = text_out.scatter(other, as_text)
        int_out = int_out.scatter(other, as_int)
    return pl.DataFrame([text_out, int_out])


def attribute_columns(attributes: pl.DataFrame, spans: int) -> dict[str, pl.Series]:
    """Kept alias attributes (global `span` index, `column`, `value`) -> one column per alias, per span."""
    readings = pl.concat([attributes.select("span", "column"), any_values(attributes["value"])], how="horizontal")
    out: dict[str, pl.Series] = {}
    parts = readings.partition_by("column", as_dict=True)  # one pass instead of a filter per column
    empty = readings.clear()
    for index, column in enumerate(_COLUMNS):
        rows = parts.get((index,), empty)
        if column == "http_status":  # an integer, or text that reads as one
            values = rows.select(pl.coalesce(pl.col("int"), pl.col("text").cast(pl.Int64, strict=False))).to_series()
            full = pl.Series(column, [None], dtype=pl.Int32).extend_constant(None, spans - 1)
            out[column] = full.scatter(rows["span"], values.cast(pl.Int32, strict=False)) if rows.height else full
        else:
            full = pl.Series(column, [None], dtype=pl.String).extend_constant(None, spans - 1)
            out[column] = full.scatter(rows["span"], rows["text"]) if rows.height else full
    return out


def spans_frame(cores: list[pl.DataFrame], attributes: list[pl.DataFrame], scopes: list[Scope]) -> pl.DataFrame:
    """Decoded batches (in order, span indices global) and their scopes -> the raw span frame that
    `common.span_columns_frame` makes from the per-span walk."""
    core = pl.concat(cores)
    spans = core.height
    counts = np.array([s.spans for s in scopes], dtype=np.int64)
    scope_of_span = np.repeat(np.arange(len(scopes)), counts)
    resources = pl.DataFrame({
        "service": [s.resource["service"] for s in scopes],
        "service_version": [s.resource["service_version"] for s in scopes],
        "deployment_environment": [s.resource["deployment_environment"] for s in scopes],
        "host": [s.resource["host"] for s in scopes],
        "line": [s.line for s in scopes],
    }, schema={"service": pl.String, "service_version": pl.String, "deployment_environment": pl.String, "host": pl.String, "line": pl.Int64})
    repeated = resources[scope_of_span]
    alias = attribute_columns(pl.concat(attributes), spans)
    frame = pl.concat([core, repeated, pl.DataFrame(alias)], how="horizontal")
    return frame.with_columns(
        pl.col("kind").replace_strict(dict(KINDS), default="unspecified", return_dtype=pl.String),
        pl.col("status").replace_strict(dict(STATUS), default="unset", return_dtype=pl.String),
        (pl.col("start_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"),
        (pl.col("end_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("end"),
    )
