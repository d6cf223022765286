"""Which signal an OTLP protobuf message holds, and protobuf logs and metrics in the JSON path's shape.

`TracesData`, `LogsData` and `MetricsData` (= the Export*ServiceRequest messages) all put their
resource messages in field 1 and their scope messages in field 2 of those, so the top of a message does
not say which it is. The first span, log record or metric does: the wire types of its fields are read
(no decoding) and checked against each schema. A Span has its start/end times as fixed64 fields 7/8
and a LogRecord its times as fixed64 fields 1/11 and a varint severity (field 2), where a Metric has
length-delimited fields only; a message whose first element fits more than one schema (a metric of a
name and a gauge looks like a span of a trace id and a name) or none is ambiguous and needs `--signal`.

Log records and metrics are decoded with opentelemetry-proto and turned into the OTLP/JSON shape
(`timeUnixNano`, `severityNumber`, AnyValue objects, `dataPoints`, ...) that `json` maps for
JSON input, so both encodings give the same events and metrics rows: one mapping, two encodings.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

# Protobuf bytes as given: a message, or a view into the payload it was cut from (not copied).
Blob = bytes | memoryview

SIGNALS = ("traces", "logs", "metrics")
_ALIASES = {"trace": "traces", "traces": "traces", "spans": "traces", "log": "logs", "logs": "logs",
            "metric": "metrics", "metrics": "metrics"}

# (field number, wire type) pairs each element type may carry; wire types: 0 varint, 1 fixed64,
# 2 length-delimited, 5 fixed32
_SPAN = {(1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (6, 0), (7, 1), (8, 1), (9, 2), (10, 0), (11, 2), (12, 0), (13, 2),
         (14, 0), (15, 2), (16, 5)}
_LOG = {(1, 1), (11, 1), (2, 0), (3, 2), (5, 2), (6, 2), (7, 0), (8, 5), (9, 2), (10, 2), (12, 2)}
_METRIC = {(1, 2), (2, 2), (3, 2), (5, 2), (7, 2), (9, 2), (10, 2), (11, 2), (12, 2)}
_SCHEMAS = {"traces": _SPAN, "logs": _LOG, "metrics": _METRIC}


class Corrupt(ValueError):
    """Bytes that are not protobuf at all."""


def normalize_signal(value: str | None) -> str | None:
    """`--signal` as one of SIGNALS (singular forms accepted); ValueError for anything else."""
    if value is None or value == "":
        return None
    try:
        return _ALIASES[value.strip().lower()]
    except KeyError:
        raise ValueError(f"--signal must be one of {', '.join(SIGNALS)}, got {value!r}") from None


def wire_fields(data: Blob) -> list[tuple[int, int, int, int]]:
    """Top-level (field number, wire type, start, end) of a message's fields; Corrupt if it is not one."""
    return list(_iter_fields(data))


def _iter_fields(data: Blob) -> Iterator[tuple[int, int, int, int]]:
    """`wire_fields` one at a time: a caller that stops early reads no further (nor checks the rest)."""
    pos, size = 0, len(data)
    while pos < size:
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise Corrupt("field number 0")
        start = pos
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            start, pos = pos, pos + length
        elif wire == 5:
            pos += 4
        else:
            raise Corrupt(f"wire type {wire}")
        if pos > size:
            raise Corrupt("truncated field")
        yield number, wire, start, pos


def _varint(data: Blob, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise Corrupt("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def sniff_signal(blob: Blob, look: int = 16, strict: bool = False) -> str | None:
    """"traces", "logs" or "metrics" from the wire types of the first elements (up to `look`); None
    when the message holds none or each fits several schemas. Raises Corrupt on non-protobuf bytes:
    the top level of the message and of the resources read, each element read; the top level of a
    scope (one record per element, hundreds) only up to the element that decides unless `strict`.
    The decoder parses every scope whole anyway, and asks again with `strict` when it fails, so that
    bytes which are not protobuf get the same message either way."""
    seen = 0
    for number, wire, start, end in wire_fields(blob):
        if number != 1 or wire != 2:
            continue
        resource = blob[start:end]
        for n2, w2, s2, e2 in wire_fields(resource):
            if n2 != 2 or w2 != 2:
                continue
            scope = resource[s2:e2]
            for n3, w3, s3, e3 in wire_fields(scope) if strict else _iter_fields(scope):
                if n3 != 2 or w3 != 2:
                    continue
                signal = _element_signal(wire_fields(scope[s3:e3]))
                seen += 1
                if signal is not None or seen >= look:
                    return signal
    return None


def _element_signal(fields: list[tuple[int, int, int, int]]) -> str | None:
    shape = {(n, w) for n, w, _, _ in fields}
    fits = {signal for signal, allowed in _SCHEMAS.items() if shape <= allowed}
    if fits == {"traces", "metrics"}:
        # no timestamps: a span still has a 16-byte trace id (field 1) and an 8-byte span id (field 2)
        sizes = {n: e - s for n, w, s, e in fields if w == 2}
        if sizes.get(1) != 16 or sizes.get(2, 8) != 8:
            return "metrics"
    return next(iter(fits)) if len(fits) == 1 else None


def has_elements(blob: Blob) -> bool:
    """Whether any resource of the message has a scope with at least one element."""
    for number, wire, start, end in wire_fields(blob):
        if number == 1 and wire == 2:
            resource = blob[start:end]
            for n2, w2, s2, e2 in wire_fields(resource):
                if n2 == 2 and w2 == 2 and any(n == 2 and w == 2 for n, w, _, _ in wire_fields(resource[s2:e2])):
                    return True
    return False


def any_json(value: Any) -> dict[str, Any]:
    """A protobuf AnyValue as its OTLP/JSON object (`{"stringValue": ...}`, bytes as base64)."""
    which = value.WhichOneof("value")
    if which is None:
        return {}
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "int_value":
        return {"intValue": value.int_value}
    if which == "double_value":
        return {"doubleValue": value.double_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "array_value":
        return {"arrayValue": {"values": [any_json(v) for v in value.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": key_values(value.kvlist_value.values)}}
    return {"bytesValue": base64.b64encode(value.bytes_value).decode()}


def key_values(items: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": any_json(kv.value)} if kv.HasField("value") else {"key": kv.key} for kv in items]


def log_json(record: Any) -> dict[str, Any]:
    """A protobuf LogRecord as the OTLP/JSON object the JSON path reads (ids stay bytes: `hex_id`
    reads both)."""
    return {
        "timeUnixNano": record.time_unix_nano, "observedTimeUnixNano": record.observed_time_unix_nano,
        "severityNumber": record.severity_number, "severityText": record.severity_text or None,
        "body": any_json(record.body) if record.HasField("body") else None,
        "attributes": key_values(record.attributes), "eventName": record.event_name or None,
        "traceId": record.trace_id,
    }


def _points(points: Any, numbers: bool) -> list[dict[str, Any]]:
    out = []
    for p in points:
        point: dict[str, Any] = {"timeUnixNano": p.time_unix_nano, "attributes": key_values(p.attributes)}
        if numbers:
            which = p.WhichOneof("value")
            if which == "as_double":
                point["asDouble"] = p.as_double
            elif which == "as_int":
                point["asInt"] = p.as_int
        else:
            point["count"] = p.count
            # histograms declare `optional double sum`; a summary's sum has no presence: OTLP/JSON
            # writers leave it out when it is 0
            if (p.HasField("sum") if p.DESCRIPTOR.fields_by_name["sum"].has_presence else p.sum != 0):
                point["sum"] = p.sum
        out.append(point)
    return out


def metric_json(metric: Any) -> dict[str, Any]:
    """A protobuf Metric as the OTLP/JSON object `_metric_points` reads."""
    out: dict[str, Any] = {"name": metric.name or None, "unit": metric.unit or None}
    which = metric.WhichOneof("data")
    if which in ("gauge", "sum"):
        out[which] = {"dataPoints": _points(getattr(metric, which).data_points, True)}
    elif which in ("histogram", "summary"):
        out[which] = {"dataPoints": _points(getattr(metric, which).data_points, False)}
    elif which == "exponential_histogram":
        out["exponentialHistogram"] = {"dataPoints": _points(metric.exponential_histogram.data_points, False)}
    return out
