"""The OTLP vocabulary and the helpers every span format shares.

Span kinds and status codes (numbers and the collector's enum names), the semantic-convention attribute
names read into span columns with the older names still written by many exporters (`ALIASES`, first
listed wins), the resource attributes (`RESOURCE_ALIASES`), and the raw span frame every OTLP, Jaeger
and Zipkin path hands to `finish_spans` (`RAW_SPAN_TYPES`). Log records and metric points of both
OTLP encodings are mapped here once (`log_event`, `metric_points`, `signal_frames`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any, cast

import orjson
import polars as pl

from rca.model import conform

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


STATUS = {0: "unset", 1: "ok", 2: "error"}


ALIASES = {
    "http_method": ("http.request.method", "http.method"),
    "http_route": ("http.route",),
    "http_status": ("http.response.status_code", "http.status_code"),
    "url_path": ("url.path", "http.target"),
    "client_address": ("client.address", "http.client_ip", "net.sock.peer.addr", "network.peer.address"),
    # a client span's target: its name, its address, else the host of the URL it called (finish_spans keeps the host)
    "peer_service": ("service.peer.name", "peer.service", "server.address", "net.peer.name", "url.full", "http.url"),
    "db_system": ("db.system.name", "db.system"),
    "user_agent": ("user_agent.original", "http.user_agent"),
}


RESOURCE_ALIASES = {
    "service": ("service.name",),
    "service_version": ("service.version",),
    "deployment_environment": ("deployment.environment.name", "deployment.environment"),
    # the pod first: in Kubernetes it is the unit that restarts, leaks and rolls out (its name carries the
    # pod-template hash), while host.name is often the node (a DaemonSet collector's resourcedetection),
    # which would merge the old and new pods of a rollout and every service scheduled beside them
    "host": ("k8s.pod.name", "host.name", "service.instance.id"),
}


SPAN_COLUMNS = ("trace_id", "span_id", "parent_span_id", "service", "name", "kind", "start_ns", "end_ns", "status",
                *ALIASES, "service_version", "deployment_environment", "host", "line")


# the raw span frame every OTLP path hands to finish_spans
RAW_SPAN_TYPES: dict[str, pl.DataType] = {
    **dict.fromkeys(("trace_id", "span_id", "parent_span_id", "service", "name", "kind"), pl.String()),
    "start_ns": pl.Int64(), "end_ns": pl.Int64(), "status": pl.String(),
    **{c: (pl.Int32() if c == "http_status" else pl.String()) for c in ALIASES},
    "service_version": pl.String(), "deployment_environment": pl.String(), "host": pl.String(), "line": pl.Int64(),
    "ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
}


# attribute key -> (column, priority): the first alias listed wins when a span carries several
ATTRIBUTE_COLUMNS = {name: (column, rank) for column, names in ALIASES.items() for rank, name in enumerate(names)}


LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}


SEVERITY_NUMBERS = [(21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE")]


def hex_id(value: Any, size: int) -> str | None:
    """An OTLP id as lower-case hex: hex text as is, base64 text decoded, bytes hexed."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex() if any(value) else None
    text = str(value)
    if len(text) == size * 2:
        try:
            int(text, 16)
            return text.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
        if len(raw) == size:
            return raw.hex()
    except (binascii.Error, ValueError):
        pass
    if all(c in "0123456789abcdefABCDEF" for c in text) and len(text) < size * 2:
        return text.lower().rjust(size * 2, "0")  # old Jaeger-style ids with leading zeros dropped
    return None


KIND_NAMES = {f"SPAN_KIND_{v.upper()}": k for k, v in KINDS.items()}


STATUS_NAMES = {f"STATUS_CODE_{v.upper()}": k for k, v in STATUS.items()}


def enum_value(value: Any, names: dict[str, int]) -> int:
    """OTLP/JSON enums are integers; protojson writers emit names: accept both, 0 when unreadable."""
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    return names.get(text.upper(), 0)


def int_value(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def any_value(value: dict[str, Any] | None) -> Any:
    """An OTLP/JSON AnyValue as a Python value."""
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: any_value(kv.get("value")) for kv in value["kvlistValue"].get("values", [])}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attrs(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    return {cast(str, kv.get("key")): any_value(kv.get("value")) for kv in items or ()}


def pick(attributes: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None:
            return value
    return None


def empty_span_columns() -> dict[str, list[Any]]:
    return {c: [] for c in SPAN_COLUMNS}


def resource_fields(resource_attrs: dict[str, Any]) -> dict[str, Any]:
    return {column: pick(resource_attrs, names) for column, names in RESOURCE_ALIASES.items()}


TEXT_ALIASES = tuple(c for c in ALIASES if c != "http_status")


def attribute_text(value: Any) -> str | None:
    """An attribute value as column text: strings as they are, booleans lower-case, arrays and maps
    as JSON, other values by `str`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def text_series(name: str, values: list[Any]) -> pl.Series:
    """Attribute values -> a String column (`attribute_text` for what is not a string already)."""
    try:
        return pl.Series(name, values, dtype=pl.String, strict=True)
    except TypeError:
        return pl.Series(name, [attribute_text(v) for v in values], dtype=pl.String)


def status_series(values: list[Any]) -> pl.Series:
    """`http_status` values -> Int32: integers, or text that reads as one; null otherwise."""
    return pl.Series("http_status", [None if v is None else str(v) for v in values], dtype=pl.String).cast(pl.Int32, strict=False)


def span_columns_frame(cols: dict[str, list[Any]]) -> pl.DataFrame:
    """Raw span columns (`empty_span_columns` filled) as a frame of RAW_SPAN_TYPES: typed whatever the values,
    so the frames of a reader's blocks stack even when a column is all null in one of them."""
    plain = {k: v for k, v in cols.items() if k not in ALIASES}
    frame = pl.DataFrame(plain, schema_overrides={k: RAW_SPAN_TYPES[k] for k in plain}, strict=False)
    return frame.with_columns(
        status_series(cols["http_status"]),
        *(text_series(c, cols[c]) for c in TEXT_ALIASES),
        (pl.col("start_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"),
        (pl.col("end_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("end"),
    )


def severity(number: int, text: str | None) -> str | None:
    if text:
        upper = text.upper()
        upper = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "INFORMATION": "INFO", "NOTICE": "INFO"}.get(upper, upper)
        if upper in LEVELS:
            return upper
    for low, name in SEVERITY_NUMBERS:
        if number >= low:
            return name
    return None


def log_event(rec: dict[str, Any], resource: dict[str, Any], line: int) -> dict[str, Any]:
    """One OTLP/JSON-shaped LogRecord (dict) -> an events row before framing (shared by JSON and protobuf)."""
    ts = int(rec.get("timeUnixNano") or rec.get("observedTimeUnixNano") or 0)
    extra = attrs(rec.get("attributes"))
    if rec.get("eventName"):
        extra["event.name"] = rec["eventName"]
    body = any_value(rec.get("body"))
    return {
        "ts_ns": ts, "level": severity(int(rec.get("severityNumber", 0) or 0), rec.get("severityText")),
        "service": resource["service"], "host": resource["host"], "logger": None,
        "message": body if isinstance(body, str) else (None if body is None else orjson.dumps(body).decode()),
        "attributes": orjson.dumps(extra, default=str).decode() if extra else None,
        "trace_id": hex_id(rec.get("traceId"), 16), "line": line,
    }


def signal_frames(events: list[dict[str, Any]], metrics: list[dict[str, Any]], origin: str) -> dict[str, pl.DataFrame]:
    """Events and metric rows -> the canonical `events` and `metrics` frames (shared by JSON and protobuf)."""
    frames: dict[str, pl.DataFrame] = {}
    if events:
        frame = pl.DataFrame(events).with_columns(
            (pl.col("ts_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"), origin=pl.lit(origin), signal=pl.lit("otlp_log"))
        frames["events"] = conform(frame, "events")  # type: ignore[assignment]
    if metrics:
        frame = pl.DataFrame(metrics).with_columns(
            (pl.col("ts_ns") // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"), origin=pl.lit(origin), signal=pl.lit("metric"))
        frames["metrics"] = conform(frame, "metrics")  # type: ignore[assignment]
    return frames


def metric_points(metric: dict[str, Any], resource: dict[str, Any], line: int) -> list[dict[str, Any]]:
    name, unit = metric.get("name"), metric.get("unit")
    out = []
    for kind in ("gauge", "sum"):
        for point in (metric.get(kind) or {}).get("dataPoints") or ():
            value = point.get("asDouble", point.get("asInt"))
            if value is None:
                continue
            a = attrs(point.get("attributes"))
            out.append({"ts_ns": int(point.get("timeUnixNano", 0) or 0), "name": name, "value": float(value), "unit": unit,
                        "service": resource["service"], "host": resource["host"],
                        "attributes": orjson.dumps(a, default=str).decode() if a else None, "line": line})
    for kind in ("histogram", "exponentialHistogram", "summary"):
        for point in (metric.get(kind) or {}).get("dataPoints") or ():
            count = float(point.get("count", 0) or 0)
            total = point.get("sum")
            a = attrs(point.get("attributes"))
            base = {"ts_ns": int(point.get("timeUnixNano", 0) or 0), "unit": unit, "service": resource["service"], "host": resource["host"],
                    "attributes": orjson.dumps(a, default=str).decode() if a else None, "line": line}
            out.append({**base, "name": f"{name}.count", "value": count, "unit": "1"})
            if total is not None:
                out.append({**base, "name": f"{name}.sum", "value": float(total)})
                if count:
                    out.append({**base, "name": f"{name}.avg", "value": float(total) / count})
    return out


def proto_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which in ("array_value", "kvlist_value", "bytes_value"):
        return str(getattr(value, which))
    return getattr(value, which)


def concat_raw_spans(pieces: list[pl.DataFrame]) -> pl.DataFrame:
    """Raw span frames of any path, cast to `RAW_SPAN_TYPES` and stacked in order."""
    return pl.concat([p.select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()]) for p in pieces])


OTLP_JSON_TOP_KEY = re.compile(rb'"(?:resourceSpans|resourceLogs|resourceMetrics|batches)"\s*:')


def looks_like_otlp_json(head: bytes) -> bool:
    """An OTLP/JSON document: a JSON object (first character `{`) with one of the top-level keys as a key
    (a quoted word followed by `:`), so a log line that merely mentions `"resourceSpans"` is not one."""
    text = head[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    return text[:1] == b"{" and OTLP_JSON_TOP_KEY.search(text) is not None
