"""Structured records (JSON lines, logfmt) -> canonical frames, by common field-name conventions.

Records are flattened to dotted keys (`{"http": {"route": ...}}` -> `http.route`). For each canonical
field the first present key of its candidate list wins (`--field name=path` puts the user's key
first). The columns are then converted in polars: epochs in s/ms/µs/ns told apart by magnitude, ISO-8601
with any offset, levels from names, pino numbers (10-60) or syslog priorities (0-7). A record with a
path/route and a status or duration is a request; every other record is an event. The fields not mapped
are kept as a JSON object in `attributes`. A change in the value of a version field per service becomes
a `changes` row (kind `deploy`).

Dialects covered: ECS, OpenTelemetry semantic conventions, pino/bunyan, zap, logrus/slog, structlog,
journald (`journalctl -o json`), Docker json-file, and the plain `ts/level/msg` family.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import orjson
import polars as pl
from polars.datatypes import (
    DataTypeClass,  # a dtype given as its class (pl.String), as struct fields may hold
)

from rca.aggregates import relabel
from rca.model import EVENTS_SCHEMA, REQUESTS_SCHEMA, Rejected, conform, empty_frame, storage_schema
from rca.parsers import ParseResult, Streamed, lazy_tee
from rca.parsers.bounded import BoundedRequests, RequestSample, compact
from rca.parsers.bounded_events import Announcements, BoundedEvents, EventSample
from rca.parsers.decoding import parse_json_lines, parse_timestamp
from rca.parsers.distinct import per_distinct
from rca.parsers.endpoints import normalize_endpoints, strip_query_expr
from rca.parsers.lines import (
    LineChunk,
    Lines,
    byte_offsets,
    chunk_lines,
    has_long_line,
    map_chunks,
    read_share,
)
from rca.parsers.sources import Source
from rca.parsers.versions import PENDING, VERSION_SIGHTING, VersionState, WaitingRows

CANDIDATES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "time", "timestamp", "@timestamp", "t", "datetime", "date", "time_local", "logged_at",
           "__REALTIME_TIMESTAMP", "eventTime", "timeUnixNano", "time_iso8601", "msec"),
    "level": ("level", "lvl", "severity", "log.level", "levelname", "loglevel", "severity_text", "severityText",
              "PRIORITY", "level_name"),
    "message": ("msg", "message", "MESSAGE", "event", "log", "text", "body", "short_message"),
    "service": ("service", "service.name", "app", "application", "SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT",
                "name", "component", "logger_service"),
    "host": ("host", "hostname", "host.name", "_HOSTNAME", "server", "instance", "pod", "k8s.pod.name"),
    "logger": ("logger", "logger_name", "log.logger", "caller", "module", "category", "source_location"),
    "route": ("http.route", "route", "endpoint", "handler", "url.template"),
    "path": ("path", "url.path", "http.target", "uri", "request_uri", "url", "http.url", "url.full",
             "req.url", "request.path", "request_path", "http.path"),
    "method": ("method", "http.method", "http.request.method", "request_method", "req.method", "verb"),
    "status": ("status", "status_code", "http.status_code", "http.response.status_code", "statusCode",
               "res.statusCode", "response_status", "http_status", "code"),
    "duration": ("duration_ms", "latency_ms", "elapsed_ms", "response_time_ms", "responseTime", "took_ms",
                 "duration", "latency", "elapsed", "request_time", "response_time", "took", "event.duration",
                 "duration_us", "duration_ns", "duration_s"),
    "source": ("client.address", "client", "client_ip", "remote_addr", "remote_ip", "clientip", "client.ip",
               "source.ip", "ip", "http.client_ip", "req.remoteAddress", "api_client", "caller_service",
               "peer.service", "user_id"),
    "user_agent": ("user_agent", "user_agent.original", "http.user_agent", "userAgent", "ua",
                   "http_user_agent", "req.headers.user-agent"),
    "bytes": ("bytes", "bytes_sent", "body_bytes_sent", "response_size", "http.response.body.size", "size",
              "res.contentLength"),
    "trace_id": ("trace_id", "traceId", "trace.id", "traceid", "dd.trace_id", "otelTraceID"),
    "version": ("service.version", "version", "app.version", "app_version", "application.version", "appVersion",
                "build.version", "build", "build_id", "release", "git_sha", "git.sha", "git.commit", "commit",
                "commit_sha", "revision", "container.image.tag", "image.tag", "image_tag", "container.image.name",
                "image"),
}
# Version keys holding an image reference (`registry/api:1.4.2`): the tag is the version.
_IMAGE_KEYS = frozenset({"container.image.name", "image"})
# Duration keys whose unit is not milliseconds.
_DURATION_SCALE = {
    "duration_us": 1e-3, "duration_ns": 1e-6, "event.duration": 1e-6, "duration_s": 1e3,
    "request_time": 1e3, "response_time": None, "elapsed": None, "duration": None, "latency": None, "took": None,
}
CANONICAL_FIELDS = tuple(CANDIDATES)

_LEVEL_NAMES = {
    "trace": "TRACE", "finest": "TRACE", "finer": "TRACE", "verbose": "TRACE",
    "debug": "DEBUG", "dbug": "DEBUG", "fine": "DEBUG", "d": "DEBUG",
    "info": "INFO", "information": "INFO", "informational": "INFO", "notice": "INFO", "i": "INFO", "config": "INFO",
    "warn": "WARN", "warning": "WARN", "w": "WARN",
    "error": "ERROR", "err": "ERROR", "e": "ERROR", "severe": "ERROR",
    "fatal": "FATAL", "critical": "FATAL", "crit": "FATAL", "alert": "FATAL", "emerg": "FATAL",
    "emergency": "FATAL", "panic": "FATAL", "dpanic": "FATAL", "f": "FATAL",
}


def _column(values: list[Any], name: str) -> pl.Series:
    if any(isinstance(v, list | dict) for v in values):  # objects and lists as JSON text, not polars' spelling of them
        return pl.Series(name, [None if v is None else (v if isinstance(v, str) else orjson.dumps(v).decode()) for v in values], dtype=pl.String)
    try:
        series = pl.Series(name, values, strict=False)
    except (TypeError, ValueError, OverflowError):
        series = pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.String)
    if series.dtype == pl.Object or series.dtype == pl.Null or isinstance(series.dtype, pl.List | pl.Struct):
        series = pl.Series(name, [None if v is None else (v if isinstance(v, str) else orjson.dumps(v).decode()) for v in values], dtype=pl.String)
    return series


def _as_string(s: pl.Series) -> pl.Series:
    if s.dtype == pl.String:
        return s
    if s.dtype == pl.Boolean or s.dtype.is_numeric():
        return s.cast(pl.String)
    return s.cast(pl.String, strict=False)


def normalize_level(values: pl.Series) -> pl.Series:
    """Level names, pino numbers (10-60), Monolog numbers (100-600) and syslog priorities (0-7) ->
    TRACE/DEBUG/INFO/WARN/ERROR/FATAL. Worked out once per distinct value: a log has a handful."""
    return per_distinct(_as_string(values), _level_of_text).alias("level")


def _level_of_text(values: pl.Series) -> pl.Series:
    text = values.str.strip_chars()
    num = text.cast(pl.Int64, strict=False)
    by_name = text.str.to_lowercase().replace_strict(_LEVEL_NAMES, default=None, return_dtype=pl.String)
    return pl.select(
        pl.when(pl.lit(num).is_between(0, 7))
        .then(pl.lit(num).replace_strict({0: "FATAL", 1: "FATAL", 2: "FATAL", 3: "ERROR", 4: "WARN", 5: "INFO", 6: "INFO", 7: "DEBUG"}, default=None, return_dtype=pl.String))
        .when(pl.lit(num) >= 100)  # Monolog: 100 DEBUG, 200 INFO, 250 NOTICE, 300 WARNING, 400 ERROR, 500 CRITICAL+
        .then(
            pl.when(pl.lit(num) >= 500).then(pl.lit("FATAL"))
            .when(pl.lit(num) >= 400).then(pl.lit("ERROR"))
            .when(pl.lit(num) >= 300).then(pl.lit("WARN"))
            .when(pl.lit(num) >= 200).then(pl.lit("INFO"))
            .otherwise(pl.lit("DEBUG"))
        )
        .when(pl.lit(num) >= 10)
        .then(
            pl.when(pl.lit(num) >= 60).then(pl.lit("FATAL"))
            .when(pl.lit(num) >= 50).then(pl.lit("ERROR"))
            .when(pl.lit(num) >= 40).then(pl.lit("WARN"))
            .when(pl.lit(num) >= 30).then(pl.lit("INFO"))
            .when(pl.lit(num) >= 20).then(pl.lit("DEBUG"))
            .otherwise(pl.lit("TRACE"))
        )
        .otherwise(pl.lit(by_name))
    ).to_series().alias("level")


LINE = "\x00line"  # the line-number column of a flat frame (a record may have a key named `line`)


# Loggers that put a record's own fields in one object: Monolog (`context`, and `extra` from its
# processors), logrus' and Logstash's `fields`. A field is looked for at the top level first, then in these;
# the time, level, message and logger always come from the top level, and a service only under a name
# that says so (a `context.name` is as likely a customer's).
ENVELOPES = ("context", "extra", "fields")
_NOT_IN_ENVELOPES = frozenset({"ts", "level", "message", "logger"})
_ENVELOPED_SERVICE_KEYS = ("service", "service.name", "app", "application")


def _choose(keys: set[str], overrides: dict[str, str]) -> dict[str, list[str]]:
    """For each canonical field, the present keys of its candidate list in order (the user's first), then
    the same keys inside the `ENVELOPES`."""
    chosen: dict[str, list[str]] = {}
    for name, candidates in CANDIDATES.items():
        wanted = [overrides[name]] if name in overrides else []
        wanted += [c for c in candidates if c not in wanted]
        chosen[name] = [k for k in wanted if k in keys]
        if name not in _NOT_IN_ENVELOPES:
            inner = _ENVELOPED_SERVICE_KEYS if name == "service" else candidates
            chosen[name] += [f"{e}.{k}" for e in ENVELOPES for k in inner if f"{e}.{k}" in keys and f"{e}.{k}" not in chosen[name]]
    return chosen


def records_to_frames(
    records: list[dict[str, Any]],
    line_numbers: list[int],
    origin: str,
    signal: str,
    overrides: dict[str, str] | None = None,
    tz: str = "UTC",
    default_service: str | None = None,
) -> FinishedRows:
    """Flattened records -> their {"requests", "events", "changes"} frames and records without a timestamp."""
    overrides = overrides or {}
    keys: set[str] = set()
    for record in records:
        keys.update(record)
    chosen = _choose(keys, overrides)
    # Keep every key of a mapped field out of attributes, not only the winner.
    used_all: set[str] = {k for ks in chosen.values() for k in ks}
    flat = pl.DataFrame([pl.Series(LINE, line_numbers, dtype=pl.Int64), *(_column([r.get(k) for r in records], k) for k in sorted(used_all))])
    leftovers = [{k: v for k, v in r.items() if k not in used_all} for r in records]
    attributes = pl.Series("attributes", [orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode() if d else None for d in leftovers], dtype=pl.String)
    return finish_rows([_map_rows(flat, chosen, attributes, origin, signal, tz, default_service)])


def flat_to_frames(
    flat: pl.DataFrame, origin: str, signal: str, overrides: dict[str, str] | None = None, tz: str = "UTC", default_service: str | None = None
) -> FinishedRows:
    """A flat frame (one column per dotted key, line numbers in LINE; see `json_objects`) -> the frames
    of `records_to_frames`, with the mapping done as column expressions."""
    return finish_rows([map_flat(flat, origin, signal, overrides, tz, default_service)])


@dataclass(frozen=True)
class MappedRows:
    """A batch of records mapped to canonical rows, before the steps that need every row of the input
    (`finish_rows`: versions filled in per host and service, version changes)."""

    requests: pl.DataFrame  # REQUESTS_SCHEMA, version as logged
    events: pl.DataFrame  # EVENTS_SCHEMA + version as logged
    no_ts: pl.DataFrame  # line, service, host, version of the records without a readable timestamp


_KEPT = {"service": pl.String(), "host": pl.String(), "version": pl.String()}
_EVENTS_AND_VERSION = {**EVENTS_SCHEMA, "version": pl.String()}


def map_flat(
    flat: pl.DataFrame, origin: str, signal: str, overrides: dict[str, str] | None = None, tz: str = "UTC", default_service: str | None = None
) -> MappedRows:
    """A flat frame -> its canonical rows, every step of which reads one row at a time: a big input is
    mapped batch by batch as it is read (the raw columns of a batch are dropped once it is mapped) and
    the batches are finished together by `finish_rows`."""
    chosen = _choose(set(flat.columns) - {LINE}, overrides or {})
    used_all = {k for ks in chosen.values() for k in ks}
    leftover = sorted(c for c in flat.columns if c != LINE and c not in used_all)
    return _map_rows(flat.select(LINE, *used_all, *leftover), chosen, leftover, origin, signal, tz, default_service)


def _attributes_expr(keys: list[str]) -> pl.Expr:
    """The non-null values of `keys` as one JSON object text per row, keys sorted (null when none)."""
    fragments = [
        pl.when(pl.col(k).is_null()).then(None).otherwise(pl.struct(pl.col(k)).struct.json_encode().str.slice(1).str.strip_suffix("}"))
        for k in keys
    ]
    joined = pl.concat_str(fragments, separator=",", ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(pl.concat_str(pl.lit("{"), joined, pl.lit("}"))).alias("attributes")


_PLAIN_KEY = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII but the quote and the backslash: spelled as itself in JSON


def _attributes(frame: pl.DataFrame, keys: list[str]) -> pl.Series:
    """`_attributes_expr` of a frame: each row's values encoded as one object at once, then the null
    fields cut out of the text (a value's quotes are escaped, so `"k":null` is the field). Several times
    faster than a fragment per key joined; keys that JSON would escape go the fragments' way."""
    if not all(_PLAIN_KEY.fullmatch(k) for k in keys):
        return frame.select(_attributes_expr(keys)).to_series()
    text = pl.struct(keys).struct.json_encode()
    for key in keys:
        if frame.get_column(key).null_count():
            field = f'"{key}":null'
            text = text.str.replace_all("," + field, "", literal=True).str.replace("{" + field + ",", "{", literal=True).str.replace("{" + field + "}", "{}", literal=True)
    encoded = frame.select(text).to_series()  # (in an expression used twice it would be encoded twice)
    return pl.select(pl.when(pl.lit(encoded) != "{}").then(pl.lit(encoded))).to_series().alias("attributes")


def _map_rows(
    flat: pl.DataFrame, chosen: dict[str, list[str]], attributes: pl.Series | list[str], origin: str, signal: str, tz: str,
    default_service: str | None,
) -> MappedRows:
    """`attributes`: the attribute texts of every row, or the leftover keys of `flat` to make them of
    (for the events only: requests keep none)."""
    line_numbers = flat.get_column(LINE)
    columns: dict[str, pl.Series] = {"line": line_numbers.alias("line")}
    for name, ks in chosen.items():
        if not ks:
            continue
        series_list = [flat.get_column(k) for k in ks]
        if name == "duration":
            ms_list = []
            for k, s in zip(ks, series_list, strict=True):
                num = _as_string(s).cast(pl.Float64, strict=False) if s.dtype == pl.String else s.cast(pl.Float64, strict=False)
                scale = _DURATION_SCALE.get(k, 1.0)
                if scale is None:
                    # Unit unknown: values under 100 with a fraction look like seconds (request_time style).
                    num = pl.select(pl.when((pl.lit(num) < 100) & (pl.lit(num) % 1 != 0)).then(pl.lit(num) * 1e3).otherwise(pl.lit(num))).to_series()
                    scale = 1.0
                ms_list.append((num * scale).alias(k))
            columns[name] = pl.select(pl.coalesce(ms_list)).to_series().alias(name)
        elif name == "ts":
            ts_list = [parse_timestamp(s, tz) for s in series_list]
            columns[name] = pl.select(pl.coalesce(ts_list)).to_series().alias("ts")
        else:
            str_list = [_as_string(s) for s in series_list]
            if name == "version":
                str_list = [image_tag(s) if k in _IMAGE_KEYS else s for k, s in zip(ks, str_list, strict=True)]
            columns[name] = pl.select(pl.coalesce(str_list)).to_series().alias(name)

    frame = pl.DataFrame(columns)
    for name in CANONICAL_FIELDS:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC") if name == "ts" else (pl.Float64 if name == "duration" else pl.String)).alias(name))
    frame = frame.with_columns(
        level=normalize_level(frame["level"]) if frame["level"].dtype != pl.Null else pl.lit(None, pl.String),
        version=pl.col("version").cast(pl.String),
        origin=pl.lit(origin),
        signal=pl.lit(signal),
    )
    if default_service is not None:
        frame = frame.with_columns(pl.col("service").fill_null(default_service))
    target = pl.coalesce(pl.col("route"), pl.col("path"))
    is_request = (target.is_not_null() & (pl.col("status").is_not_null() | pl.col("duration").is_not_null())).alias("_is_request")
    kind = frame.select(is_request, pl.col("ts").is_not_null().alias("_timed"))
    as_request, as_event = kind["_is_request"] & kind["_timed"], ~kind["_is_request"] & kind["_timed"]

    requests = frame.filter(as_request)
    # the log's route where it gives one, else the path normalized once per distinct path (the full
    # rules cost microseconds a row, and a when/then would run them on every row, routed or not)
    route, raw_path = requests.get_column("route"), requests.get_column("path")
    endpoint = route
    if (route.is_null() & raw_path.is_not_null()).any():
        endpoint = pl.select(pl.coalesce(pl.lit(route), pl.lit(per_distinct(raw_path, normalize_endpoints)))).to_series()
    requests = requests.with_columns(
        duration_ms=pl.col("duration"),
        method=pl.col("method").str.to_uppercase(),
        path=strip_query_expr(pl.col("path").str.replace(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/]*", "")),
        endpoint=pl.lit(endpoint.cast(pl.String)),
        status=pl.col("status").cast(pl.Int32, strict=False),
        bytes=pl.col("bytes").cast(pl.Float64, strict=False).cast(pl.Int64, strict=False),
        trace_id=pl.col("trace_id").str.to_lowercase(),
    )
    if isinstance(attributes, pl.Series):
        event_attributes = attributes.filter(as_event)
    elif attributes:
        event_attributes = _attributes(flat.filter(as_event), attributes)
    else:
        event_attributes = pl.Series("attributes", [None] * int(as_event.sum()), dtype=pl.String)
    events = frame.filter(as_event).with_columns(trace_id=pl.col("trace_id").str.to_lowercase(), attributes=event_attributes)
    return MappedRows(
        requests=conform(requests, "requests"),
        events=conform(events, "events", _EVENTS_AND_VERSION),
        no_ts=conform(frame.filter(~kind["_timed"]), "", {"line": pl.Int64(), **_KEPT}),
    )


@dataclass(frozen=True)
class FinishedRows:
    """An input's canonical frames once every batch is read (`RowsFinisher`)."""

    frames: dict[str, pl.DataFrame]  # requests (every row, or a uniform sample past the bound), events, changes
    no_ts: pl.DataFrame  # (line, text, reason) of the first records without a readable timestamp
    no_ts_count: int  # records without a readable timestamp (rejected)
    request_sample: RequestSample | None  # aggregates of every request when `frames["requests"]` is a sample
    event_sample: EventSample | None  # counts of every event when `frames["events"]` is a sample


NO_TS_EXAMPLES = 5


class RowsFinisher:
    """Mapped batches of one input finished as they come, in line order: versions filled in per host and
    service and version changes from small state (`parsers.versions`), request rows kept through
    `BoundedRequests` (every row up to `max_request_rows`, past it a uniform sample and exact aggregates of
    them all) and event rows through `BoundedEvents` (likewise past `max_event_rows`), or all of them
    handed on as soon as final (`stream`), records without a timestamp counted. No step holds every row at once."""

    def __init__(self, max_request_rows: int | None = None, request_columns: Sequence[str] | None = None, max_event_rows: int | None = None):
        self.versions = VersionState()
        self.requests = BoundedRequests(max_request_rows)
        self.events = BoundedEvents(max_event_rows)
        # `line` decides which rows a sample keeps; the loader drops the columns the analysis does not read
        self.request_columns = None if request_columns is None else [c for c in REQUESTS_SCHEMA if c in (*request_columns, "line")]
        self.no_ts_lines: list[int] = []
        self.no_ts_count = 0
        self.waiting = WaitingRows()  # requests streamed out (`stream`) whose version is pending
        self.announced = Announcements()  # by the events streamed out

    def settle(self, part: MappedRows) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The next batch (batches in line order) taken into the version state and the counts: its requests
        (versions filled, PENDING where the host has logged none yet) and its events (without versions)."""
        self.versions.add(pl.concat([f.select("line", *_KEPT) for f in (part.requests, part.events, part.no_ts)]))
        requests, events = self.versions.fill(part.requests), self.versions.fill(part.events)
        self.versions.sight(pl.concat([f.select(*VERSION_SIGHTING) for f in (requests, events)]))
        self.no_ts_count += part.no_ts.height
        self.no_ts_lines += part.no_ts.get_column("line").head(NO_TS_EXAMPLES - len(self.no_ts_lines)).to_list()
        return requests, events.drop("version")  # versions serve the state only

    def add(self, part: MappedRows, read_share: float | None = None) -> None:
        """Keep the next batch (batches in line order); `read_share`: the share of the input read with
        it, when known (`BoundedRequests.add`: a big input is sampled from its first batch on)."""
        requests, events = self.settle(part)
        self.requests.add(requests if self.request_columns is None else requests.select(self.request_columns), read_share)
        if events.height:
            self.add_events(compact(events), read_share)  # own buffers, not the chunk's

    def stream(self, parts: Iterable[MappedRows], later_events: Callable[[], pl.DataFrame] | None = None) -> Iterator[dict[str, pl.DataFrame]]:
        """The rows of each batch as soon as they are final, for a caller that writes them out (`rca ingest`:
        `parsers.lazy_tee`): events at once (the changes they announce kept), requests but those whose
        version is pending, which wait in `WaitingRows` (bounded); once every batch is read, the events of
        `later_events()` and the waiting requests, resolved. `finish()` then gives the changes and counts only."""
        for part in parts:
            requests, events = self.settle(part)
            waiting = requests.get_column("version").str.starts_with(PENDING).fill_null(False)
            if waiting.any():
                self.waiting.add(requests.filter(waiting))
                requests = requests.filter(~waiting)
            self.announced.add(events)
            yield {"requests": requests, "events": events}
        if later_events is not None and (events := later_events()).height:
            self.announced.add(events)
            yield {"events": events}
        version = self.versions.resolve(pl.col("version"), pl.col("service")).alias("version")
        for requests in self.waiting.drain(lambda rows: rows.with_columns(version)):
            yield {"requests": requests}

    def add_events(self, events: pl.DataFrame, read_share: float | None = None) -> None:
        """Take more events of the input (EVENTS_SCHEMA): each batch's, then any made once every batch is read
        (`read_share` as in `BoundedEvents.add`)."""
        self.events.add(events, read_share)

    def finish(self) -> FinishedRows:
        """The frames of every batch taken, each pending version resolved."""
        version = self.versions.resolve(pl.col("version"), pl.col("service")).alias("version")
        requests = conform(self.requests.frame(empty_frame("requests")), "requests").with_columns(version)
        sample = self.requests.sample()
        if sample is not None:
            resolved = self.versions.resolve(pl.col("value"), pl.col("service"))  # two hosts, or a host and a logged version, may become one
            sample = replace(sample, aggregates=relabel(sample.aggregates, "version", resolved))
        no_ts = pl.DataFrame({"line": self.no_ts_lines, "text": [None] * len(self.no_ts_lines), "reason": ["no readable timestamp"] * len(self.no_ts_lines)},
                             schema={"line": pl.Int64(), "text": pl.String(), "reason": pl.String()})
        # and those announced by events not kept (sampled out, or streamed out)
        changes = pl.concat([self.versions.changes(), self.events.changes(empty_frame("changes")), self.announced.frame(empty_frame("changes"))])
        frames = {"requests": requests, "events": self.events.frame(empty_frame("events")), "changes": changes}
        return FinishedRows(frames, no_ts, self.no_ts_count, sample, self.events.sample())


def finish_rows(parts: Iterable[MappedRows], max_request_rows: int | None = None, request_columns: Sequence[str] | None = None) -> FinishedRows:
    """Mapped batches of one input (in line order) -> its frames (`RowsFinisher`)."""
    finisher = RowsFinisher(max_request_rows, request_columns)
    for part in parts:
        finisher.add(part)
    return finisher.finish()


def streamed_records(parts: Callable[[], Iterable[MappedRows]], finisher: RowsFinisher, remainder: Callable[[FinishedRows], ParseResult],
                     later_events: Callable[[], pl.DataFrame] | None = None) -> Streamed:
    """An input's mapped batches (`parts()`, in line order) as a stream of its request and event rows (`rca
    ingest`: `RowsFinisher.stream`, both frames sunk together), `remainder` making the input's result of
    what is left once they are written (`RowsFinisher.finish`: the changes, the counts)."""
    rows = lazy_tee(lambda: finisher.stream(parts(), later_events), {name: storage_schema(name) for name in ("requests", "events")})
    return Streamed(rows, lambda: remainder(finisher.finish()))


def image_tag(values: pl.Series) -> pl.Series:
    """`registry:5000/team/api:1.4.2` (or `...@sha256:...`) -> `1.4.2`; null when the reference has no tag."""
    tag = values.str.extract(r"^[^@]*/?[^/@:]+:([\w][\w.\-]{0,127})(?:@.*)?$", 1)
    return pl.select(pl.coalesce(pl.lit(tag), pl.lit(values.str.extract(r"@(?:sha256:)?([0-9a-f]{12})", 1)))).to_series().alias(values.name)


JSON_BATCH_LINES = 50_000  # lines decoded by polars at a time; a batch it cannot decode is halved
PER_RECORD_LINES = 1_000  # a batch this small that polars cannot decode goes the per-record way


def json_objects(lines: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, str, str]], int]:
    """(line, text) rows of JSON lines -> (flat frame: one column per dotted key, line numbers in LINE;
    the other lines as (line, text, reason); how many lines were read record by record).

    Lines that start like an object are decoded by polars' NDJSON reader, JSON_BATCH_LINES at a time;
    nested objects become dotted columns as `flatten` makes them. A batch the reader refuses (a broken
    line, a key holding an object in one line and a number in another) is halved until it decodes, down
    to PER_RECORD_LINES lines which go through orjson record by record. Every other line (plain text,
    an array) goes through `parse_json_lines`, which gives the reason it is not a record."""
    present = lines.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    is_object = pl.col("text").str.strip_chars_start().str.starts_with("{")
    objects, others = present.filter(is_object), present.filter(~is_object)
    flats: list[pl.DataFrame] = []
    bad: list[tuple[int, str, str]] = []
    slow: list[int] = []  # lines read record by record
    for start in range(0, objects.height, JSON_BATCH_LINES):
        _decode(objects.slice(start, JSON_BATCH_LINES), flats, bad, slow)
    if others.height:
        _per_record(others, flats, bad, slow)
    flat = _stack(flats)
    if others.height:
        flat = flat.sort(LINE)
    bad.sort()
    return flat, bad, sum(slow)


@dataclass
class JsonRead:
    """What reading JSON lines a chunk at a time found besides their records (`json_parts`)."""

    # the line count, the too-long lines, the text of the lines that are not JSON
    lines: Lines = field(default_factory=lambda: Lines(frame=pl.DataFrame(schema={"line": pl.Int64, "text": pl.String}), total=0))
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # the lines that are not records: (line, text, reason)
    slow: int = 0  # lines read record by record
    neighbours: list[pl.DataFrame] = field(default_factory=list)  # per chunk (`_neighbours`)

    def neighbour_records(self) -> pl.DataFrame:
        """(line, ts, service, host) of the records that may neighbour the lines that are not records:
        every record of a chunk holding such lines, and each chunk's first and last."""
        return pl.concat(self.neighbours) if self.neighbours else _neighbours(None, every=True)


def json_parts(source: Source, map_batch: Callable[[pl.DataFrame], MappedRows], read: JsonRead) -> Iterator[tuple[MappedRows, float | None]]:
    """`json_objects` over a whole input read in chunks of whole lines (never all its text at once),
    each chunk's flat frame mapped by `map_batch` as soon as it is decoded (its raw columns are not
    kept) and yielded with the share of the input read (None when its size is unknown), in input order;
    `read` gathers the rest as they come (complete once every part is taken). A chunk whose every line
    is an object is decoded straight from its bytes; any other chunk goes line by line."""
    seen = _SeenKeys()

    def one(chunk: LineChunk) -> tuple[MappedRows, list[tuple[int, str, str]], int, Lines | None, int, pl.DataFrame]:
        last = chunk.first_line + chunk.lines - 1
        flat = None if has_long_line(chunk) else _whole_chunk(chunk, seen)
        if flat is not None:
            part = map_batch(flat)
            return part, [], 0, None, last, _neighbours(part, every=False)
        lines = chunk_lines(source.origin, chunk)
        flat, bad, slow = json_objects(lines.frame)
        lines.frame = lines.frame.filter(pl.col("line").is_in([n for n, _, _ in bad]))  # kept: the lines that are not records
        part = map_batch(flat)
        return part, bad, slow, lines, last, _neighbours(part, every=bool(bad))

    kept = read.lines
    texts: list[pl.DataFrame] = [kept.frame]
    rejected: list[Rejected] = []
    for share, (part, chunk_bad, chunk_slow, lines, last, near) in map_chunks(source, kept.warnings, lambda chunk: (read_share(chunk), one(chunk))):
        read.bad.extend(chunk_bad)
        read.slow += chunk_slow
        kept.total = last
        read.neighbours.append(near)
        if lines is not None:
            texts.append(lines.frame)
            rejected.extend(lines.rejected)
            kept.rejected_count += lines.rejected_count
        yield part, share
    kept.frame = pl.concat(texts)
    kept.rejected = rejected[:5]


def _neighbours(part: MappedRows | None, every: bool) -> pl.DataFrame:
    """(line, ts, service, host) of the batch's records in line order: all of them, or the first and last."""
    if part is None:
        return pl.DataFrame(schema={"line": pl.Int64(), "ts": pl.Datetime("us", "UTC"), "service": pl.String(), "host": pl.String()})
    records = pl.concat([f.select("line", "ts", "service", "host") for f in (part.requests, part.events)]).sort("line")
    return compact(records if every or records.height <= 2 else records.gather([0, records.height - 1]))  # not views of the whole chunk


SAMPLE_LINES = 100  # lines of a chunk whose keys and types make the schema it is first read with


class _SeenKeys:
    """The schema of the chunks of one input decoded so far (a key's latest type wins): keys that a
    chunk's first lines lack but earlier chunks had (an `error` or `stack` key on a few lines) are
    looked for without inferring the schema of every line."""

    def __init__(self) -> None:
        self.schema: dict[str, Any] = {}

    def add(self, schema: pl.Schema) -> None:
        self.schema = _merged(self.schema, dict(schema))


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` with the keys only `old` has, object fields merged the same way (an empty object in `new`
    stays empty: the reader keeps `{}` as text only when a key never holds fields)."""
    out = dict(new)
    for key, dtype in old.items():
        if key not in out or out[key] == pl.Null:  # null in every line of `new` says nothing of its type
            out[key] = dtype
        elif isinstance(out[key], pl.Struct) and isinstance(dtype, pl.Struct) and out[key].fields:
            fields = _merged({f.name: f.dtype for f in dtype.fields}, {f.name: f.dtype for f in out[key].fields})
            out[key] = pl.Struct(fields)
    return {k: v for k, v in out.items() if v != pl.Null}


def _whole_chunk(chunk: LineChunk, seen: _SeenKeys | None = None) -> pl.DataFrame | None:
    """A chunk of lines decoded at once, or None unless every line is an object polars reads as the
    per-record path would. First read with the schema of its first SAMPLE_LINES lines and of the chunks
    before (one pass), kept when the keys counted in its bytes are all in the frame; else with the
    schema inferred from every line (two passes)."""
    decoded = _read_with_known_schema(chunk, seen) if seen is not None else None  # its nesting checked there
    if decoded is None:
        try:
            decoded = pl.read_ndjson(chunk.data, infer_schema_length=None)
        except (pl.exceptions.PolarsError, ValueError, OverflowError):
            return None
        if _mixed_nesting(decoded, chunk.data):
            return None
    if decoded.height != chunk.lines:
        return None
    if seen is not None:
        seen.add(decoded.schema)
    flat = _flatten_struct_columns(decoded)
    if flat is None:
        return None
    return flat.with_columns(pl.int_range(chunk.first_line, chunk.first_line + chunk.lines, dtype=pl.Int64).alias(LINE))


def _read_with_known_schema(chunk: LineChunk, seen: _SeenKeys) -> pl.DataFrame | None:
    data = chunk.data
    head_end = 0
    for _ in range(min(SAMPLE_LINES, chunk.lines)):
        head_end = data.index(b"\n", head_end) + 1
    try:
        sampled = pl.read_ndjson(data[:head_end], infer_schema_length=None).schema
        decoded = pl.read_ndjson(data, schema=_merged(seen.schema, dict(sampled)))
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        return None
    counts = key_counts(data)
    if counts is None or counts != (_values_present(decoded), _nested_values(decoded), _string_values(decoded)):
        # a key the schema lacks (the reader drops it), an object read as text, a number or a boolean read as
        # text under a key the schema had as text (inferred from these lines, it would be a number), or bytes
        # too odd to count on
        return None
    # keys of earlier chunks that none of these lines holds: as if never seen (an all-null column is a
    # no-op for the mapping, but could clash with a dotted key of the same name when flattened)
    empty = [name for name in decoded.columns if name not in sampled and decoded.get_column(name).null_count() == decoded.height]
    return decoded.drop(empty)


_QUOTE, _COLON, _BACKSLASH, _OPEN_OBJECT, _OPEN_LIST = 34, 58, 92, 123, 91
_SPACES = (32, 9, 13)


def object_keys(data: bytes) -> int | None:
    """How many object keys with a value other than null the JSON lines `data` hold at any depth,
    counted in their bytes (the lines must be valid JSON): quotes not escaped by an odd run of
    backslashes open and close strings in turn, and a closing quote followed by a colon ends a key.
    None when the quotes do not pair up."""
    counts = key_counts(data)
    return None if counts is None else counts[0]


class KeyCounts(NamedTuple):
    """What `key_counts` finds in JSON lines' bytes."""

    keys: int  # object keys with a value other than null, at any depth (`object_keys`)
    nested: int  # of those, the keys holding an object or a list (the value's first byte is `{` or `[`)
    strings: int  # of those, the keys holding a string (the value's first byte is a quote)


def key_counts(data: bytes) -> KeyCounts | None:
    """The keys of JSON lines counted in their bytes (`KeyCounts`; a string that starts with `{` opens
    with a quote: a string). None when the quotes do not pair up."""
    a = np.frombuffer(data, np.uint8)
    # a quote after an odd run of backslashes is escaped: the quotes right after a backslash are found from
    # the backslashes (few; found a quarter megabyte at a time: no mask the size of the chunk), their runs
    # measured, and those quotes taken out of the others (a gather over every quote cost twice as much, and
    # `b'\\"' in data` more still: the substring search stalls on every quote)
    after_backslash = byte_offsets(data, _BACKSLASH) + 1
    behind = after_backslash[after_backslash < a.size]
    behind = behind[a[behind] == _QUOTE]
    quotes = np.flatnonzero(a == _QUOTE)  # (in one piece: dense, the offsets outweigh the compared bytes)
    if behind.size:
        run = np.ones(behind.size, np.int64)
        looking = np.arange(behind.size)
        while looking.size:
            before = behind[looking] - run[looking] - 1
            more = (before >= 0) & (a[np.maximum(before, 0)] == _BACKSLASH)
            looking = looking[more]
            run[looking] += 1
        escaped = behind[run % 2 == 1]
        if escaped.size:
            quotes = np.delete(quotes, np.searchsorted(quotes, escaped))
    if quotes.size % 2:
        return None
    after = _skip_spaces(a, quotes[1::2] + 1)
    colons = after[a[np.minimum(after, a.size - 1)] == _COLON]
    values = _skip_spaces(a, colons + 1)
    values = values[values < a.size]
    first = a[values]
    maybe_null = values[(first == ord("n")) & (values + 4 <= a.size)]
    nulls = np.count_nonzero((a[maybe_null + 1] == ord("u")) & (a[maybe_null + 2] == ord("l")) & (a[maybe_null + 3] == ord("l")))
    nested = np.count_nonzero((first == _OPEN_OBJECT) | (first == _OPEN_LIST))
    return KeyCounts(int(colons.size - nulls), int(nested), int(np.count_nonzero(first == _QUOTE)))


def _skip_spaces(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Each offset in `at` moved past the JSON whitespace there (a line break ends a line: not skipped)."""
    inside = np.minimum(at, a.size - 1)
    found = a[inside]
    looking = np.flatnonzero(((found == _SPACES[0]) | (found == _SPACES[1]) | (found == _SPACES[2])) & (at == inside))
    if not looking.size:  # compact JSON: nothing to skip, nothing to copy
        return at
    at = at.copy()
    at[looking] += 1
    looking = looking[at[looking] < a.size]
    while looking.size:
        found = a[at[looking]]
        looking = looking[(found == _SPACES[0]) | (found == _SPACES[1]) | (found == _SPACES[2])]
        at[looking] += 1
        looking = looking[at[looking] < a.size]
    return at


def _values_present(frame: pl.DataFrame) -> int:
    """Non-null values in the frame, struct fields at any depth and the structs themselves counted (a
    list of objects counts once and its keys not at all, so a chunk holding one never passes)."""
    return _count_values(frame, nested_only=False)


def _string_values(frame: pl.DataFrame) -> int:
    """Non-null text values in the frame, in structs at any depth (not inside lists)."""
    return _count_values(frame, only=lambda dtype: dtype == pl.String)


def _count_values(frame: pl.DataFrame, nested_only: bool = False, only: Callable[[pl.DataType | DataTypeClass], bool] | None = None) -> int:
    """Non-null values in the frame, walking into structs at any depth (not inside lists); with
    `nested_only`, only the object (struct) and list values; with `only`, those of the types it accepts."""
    counts: list[pl.Expr] = []

    def walk(expr: pl.Expr, dtype: pl.DataType | DataTypeClass) -> None:
        if (not nested_only or isinstance(dtype, pl.Struct | pl.List | pl.Array)) and (only is None or only(dtype)):
            counts.append(expr.count())
        if isinstance(dtype, pl.Struct):
            for child in dtype.fields:
                walk(expr.struct.field(child.name), child.dtype)

    for name, dtype in frame.schema.items():
        walk(pl.col(name), dtype)
    return int(frame.select(pl.sum_horizontal(counts)).item()) if counts else 0


def _decode(batch: pl.DataFrame, flats: list[pl.DataFrame], bad: list[tuple[int, str, str]], slow: list[int]) -> None:
    if batch.height <= PER_RECORD_LINES:
        _per_record(batch, flats, bad, slow)
        return
    try:
        data = batch.get_column("text").str.join("\n").item().encode()
        decoded = pl.read_ndjson(data, infer_schema_length=None)
        flat = None if _mixed_nesting(decoded, data) else _flatten_struct_columns(decoded)
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        flat = None
    if flat is None or flat.height != batch.height:
        half = batch.height // 2
        _decode(batch.slice(0, half), flats, bad, slow)
        _decode(batch.slice(half), flats, bad, slow)
        return
    flats.append(flat.with_columns(batch.get_column("line").alias(LINE)))


def _mixed_nesting(frame: pl.DataFrame, data: bytes) -> bool:
    """Whether the reader made text of an object or a list (a key holding one in some lines and a
    scalar in others, or an empty object), where the per-record path flattens it: the objects and lists
    counted in the bytes `data` the frame was read from (`key_counts`) are more than the frame's
    object and list values. Text that merely starts with `[` or `{` (`[INFO] ...`) is a string, as it
    should be. Also True when the bytes cannot be counted."""
    counts = key_counts(data)
    return counts is None or counts[1] != _nested_values(frame)


def _nested_values(frame: pl.DataFrame) -> int:
    """Non-null object (struct) and list values in the frame, in structs at any depth (not inside lists)."""
    return _count_values(frame, nested_only=True)


def _per_record(batch: pl.DataFrame, flats: list[pl.DataFrame], bad: list[tuple[int, str, str]], slow: list[int]) -> None:
    slow.append(batch.height)
    numbers = batch.get_column("line").to_list()
    records, positions, rejected = parse_json_lines(batch.get_column("text").to_list())
    bad.extend((numbers[p], text, reason) for p, text, reason in rejected)
    if records:
        keys = sorted({k for r in records for k in r})
        flats.append(pl.DataFrame([pl.Series(LINE, [numbers[p] for p in positions], dtype=pl.Int64), *(_column([r.get(k) for r in records], k) for k in keys)]))


def _flatten_struct_columns(frame: pl.DataFrame) -> pl.DataFrame | None:
    """Struct columns unnested into dotted columns (`http` {route} -> `http.route`), lists and empty
    objects as JSON text; None when two paths give the same dotted name (`a.b` and `a`: {`b`})."""
    exprs: list[pl.Expr] = []

    def walk(expr: pl.Expr, name: str, dtype: pl.DataType | DataTypeClass) -> None:
        if isinstance(dtype, pl.Struct) and dtype.fields:
            for child in dtype.fields:
                walk(expr.struct.field(child.name), f"{name}.{child.name}", child.dtype)
        elif isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object):
            exprs.append(_json_text(expr).alias(name))
        else:
            exprs.append(expr.alias(name))

    for name, dtype in frame.schema.items():
        walk(pl.col(name), name, dtype)
    names = [e.meta.output_name() for e in exprs]
    if len(set(names)) != len(names) or LINE in names:
        return None
    return frame.select(exprs)


def _json_text(expr: pl.Expr) -> pl.Expr:
    """Values as their JSON text (`[1, "a"]` for a list, `true`, `1.5`), nulls kept."""
    return pl.when(expr.is_null()).then(None).otherwise(pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}"))


def _stack(flats: list[pl.DataFrame]) -> pl.DataFrame:
    """Flat frames of batches as one (columns missing in a batch are nulls). A key whose JSON type
    differs between batches becomes text, each value spelled as JSON (`false` stays `false`, not a 0.0
    of a supertype); integers and floats together are floats."""
    if not flats:
        return pl.DataFrame(schema={LINE: pl.Int64})
    types: dict[str, set[pl.DataType]] = {}
    for flat in flats:
        for name, dtype in flat.schema.items():
            if dtype != pl.Null:
                types.setdefault(name, set()).add(dtype)
    mixed = {name for name, found in types.items() if len(found) > 1 and not all(t.is_numeric() for t in found)}
    if mixed:
        flats = [f.with_columns(_json_text(pl.col(c)).alias(c) for c, t in f.schema.items() if c in mixed and t not in (pl.String, pl.Null)) for f in flats]
    return pl.concat(flats, how="diagonal_relaxed")
