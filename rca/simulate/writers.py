"""Writers for the simulated telemetry: nginx access log, JSON-lines app log, text app log, OTLP/JSON traces.

Line formats are built with polars string expressions over whole columns, not per-line Python, except
for the OTLP documents, which are nested and written with orjson per batch (hex ids, integer enums and
64-bit integers as decimal strings, per the OTLP/JSON rules).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import orjson
import polars as pl

from rca.simulate.platform import DB_TABLES, Platform
from rca.simulate.requests import Requests
from rca.simulate.scenarios import Effects


def _base_frame(platform: Platform, req: Requests) -> pl.DataFrame:
    """The request columns every writer needs, built once per incident (strings gathered by index)."""
    cached = getattr(req, "_frame", None)
    if cached is not None:
        return cached
    ep = platform.endpoints
    start_us = int(platform.start.timestamp() * 1_000_000)
    index = pl.Series(req.endpoint.astype(np.int64))
    frame = pl.DataFrame(
        {
            "start": (start_us + (req.second * 1e6).astype(np.int64)),
            "duration_ms": req.duration_ms,
            "client_extra_ms": req.client_extra_ms,
            "route": pl.Series([e.route for e in ep], dtype=pl.String).gather(index),
            "method": pl.Series([e.method for e in ep], dtype=pl.String).gather(index),
            "service": pl.Series([e.service for e in ep], dtype=pl.String).gather(index),
            "id": (np.arange(len(req)) * 7919 % 900_000 + 1000).astype(np.int64),
            "ip": pl.Series(req.ip.tolist(), dtype=pl.String),
            "ua": pl.Series(req.user_agent.tolist(), dtype=pl.String),
            "api_client": pl.Series(req.api_client.tolist(), dtype=pl.String),
            "status": req.status,
            "host": pl.Series(req.host.tolist(), dtype=pl.String),
        }
    ).with_columns(pl.col("start").cast(pl.Datetime("us", "UTC")))
    object.__setattr__(req, "_frame", frame)
    return frame


def _paths(frame: pl.DataFrame) -> pl.Expr:
    parts = pl.col("route").str.split_exact("{id}", 1)
    head, tail = parts.struct.field("field_0"), parts.struct.field("field_1")
    return (
        pl.when(tail.is_null())
        .then(head)
        .otherwise(pl.concat_str([head, pl.col("id").cast(pl.String), tail]))
    )


def _seconds_ms(seconds: pl.Expr) -> pl.Expr:
    """Seconds with exactly three decimals, as nginx prints `$request_time` (`0.030`, `12.504`)."""
    ms = (seconds * 1000).round().cast(pl.Int64)
    return pl.concat_str(
        [(ms // 1000).cast(pl.String), pl.lit("."), (ms % 1000).cast(pl.String).str.zfill(3)]
    )


def write_access_log(platform: Platform, req: Requests) -> bytes:
    """nginx `combined` + ` $request_time $upstream_response_time`, ordered by log-write time."""
    frame = (
        _base_frame(platform, req)
        .with_columns(
            path=_paths(pl.DataFrame()),
            upstream_s=(pl.col("duration_ms") / 1000.0),
            request_s=((pl.col("duration_ms") + 1.0 + pl.col("client_extra_ms")) / 1000.0),
            bytes=(pl.col("id") % 9000 + 200),
        )
        .with_columns(
            end=pl.col("start") + pl.duration(microseconds=(pl.col("request_s") * 1e6).cast(pl.Int64)),
        )
    )
    line = pl.concat_str(
        [
            pl.col("ip"),
            pl.lit(" - - ["),
            pl.col("end").dt.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            pl.lit('] "'),
            pl.col("method"),
            pl.lit(" "),
            pl.col("path"),
            pl.lit(' HTTP/1.1" '),
            pl.col("status").cast(pl.String),
            pl.lit(" "),
            pl.col("bytes").cast(pl.String),
            pl.lit(' "-" "'),
            pl.col("ua"),
            pl.lit('" '),
            _seconds_ms(pl.col("request_s")),
            pl.lit(" "),
            pl.when(pl.col("status") == 504).then(pl.lit("-")).otherwise(_seconds_ms(pl.col("upstream_s"))),
        ]
    )
    out = frame.sort("end", "start", maintain_order=True).select(line.alias("line"))
    return ("\n".join(out["line"].to_list()) + "\n").encode()


def _versions_at(platform: Platform, effects: Effects, service: str, seconds: np.ndarray) -> np.ndarray:
    history = sorted((c["second"], c["version"]) for c in effects.changes if c["service"] == service)
    versions = np.array([platform.versions[service]] + [v for _, v in history], dtype=object)
    cut = np.array([s for s, _ in history], dtype=float)
    return versions[np.searchsorted(cut, seconds, side="right")]


def write_app_jsonl(platform: Platform, req: Requests, effects: Effects) -> bytes:
    """One JSON object per line: request logs of the app services, deploy announcements, all with
    `service.version` as it was at that moment."""
    frame = _base_frame(platform, req).with_columns(
        end=pl.col("start") + pl.duration(microseconds=(pl.col("duration_ms") * 1000).cast(pl.Int64))
    )
    version = np.empty(len(req), dtype=object)
    for svc in {e.service for e in platform.endpoints}:
        mask = frame["service"].to_numpy() == svc
        version[mask] = _versions_at(platform, effects, svc, req.second[mask])
    frame = frame.with_columns(pl.Series("version", version.astype(str)), path=_paths(pl.DataFrame()))
    level = pl.when(pl.col("status") >= 500).then(pl.lit("error")).otherwise(pl.lit("info"))
    api = (
        pl.when(pl.col("api_client").is_not_null())
        .then(pl.concat_str([pl.lit(',"api_client":"'), pl.col("api_client"), pl.lit('"')]))
        .otherwise(pl.lit(""))
    )
    request_lines = frame.select(
        pl.col("end").alias("ts"),
        pl.concat_str(
            [
                pl.lit('{"ts":"'),
                pl.col("end").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
                pl.lit('","level":"'),
                level,
                pl.lit('","service":"'),
                pl.col("service"),
                pl.lit('","host":"'),
                pl.col("host"),
                pl.lit('","service.version":"'),
                pl.col("version"),
                pl.lit('","msg":"request completed","http.route":"'),
                pl.col("route"),
                pl.lit('","url.path":"'),
                pl.col("path"),
                pl.lit('","method":"'),
                pl.col("method"),
                pl.lit('","status":'),
                pl.col("status").cast(pl.String),
                pl.lit(',"duration_ms":'),
                pl.col("duration_ms").round(1).cast(pl.String),
                pl.lit(',"client.address":"'),
                pl.col("ip"),
                pl.lit('"'),
                api,
                pl.lit("}"),
            ]
        ).alias("line"),
    )
    event_rows = []
    for second, lvl, svc, host, logger, message in effects.events:
        if logger != "deploy":
            continue
        ts = platform.t(second)
        record = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": lvl.lower(),
            "service": svc,
            "host": host,
            "service.version": str(_versions_at(platform, effects, svc, np.array([second + 0.001]))[0]),
            "msg": message,
            "logger": logger,
        }
        event_rows.append({"ts": ts, "line": orjson.dumps(record).decode()})
    events = pl.DataFrame(event_rows, schema={"ts": pl.Datetime("us", "UTC"), "line": pl.String})
    out = pl.concat([request_lines, events]).sort("ts", maintain_order=True)
    return ("\n".join(out["line"].to_list()) + "\n").encode()


def write_app_text(rng: np.random.Generator, platform: Platform, req: Requests, effects: Effects) -> bytes:
    """log4j-style lines `yyyy-MM-dd HH:mm:ss,SSS LEVEL [host] logger - message`; stack traces span lines.
    Baseline noise: a per-minute request summary per host, pool statistics, and a few slow-request warnings."""
    rows: list[tuple[float, str, str, str, str]] = []
    counts = (
        _base_frame(platform, req)
        .select("host", minute=pl.Series(req.second.astype(np.int64) // 60))
        .group_by("host", "minute")
        .len()
        .sort("minute", "host")
    )
    for host, minute, count in counts.iter_rows():
        rows.append(
            (minute * 60 + 59.5, "INFO", host, "http.Server", f"handled {count} requests in the last 60s")
        )
    for hosts in platform.hosts.values():
        for minute in range(0, platform.minutes, 5):
            for host in hosts:
                rows.append(
                    (
                        minute * 60 + float(rng.uniform(0, 30)),
                        "INFO",
                        host,
                        "db.Pool",
                        f"pool stats: active={int(rng.integers(1, 8))} idle={int(rng.integers(2, 10))} waiting=0",
                    )
                )
    slow = np.flatnonzero(req.duration_ms > np.percentile(req.duration_ms, 99.7))
    for i in slow[:: max(1, len(slow) // 40)]:
        rows.append(
            (
                float(req.second[i]),
                "WARN",
                str(req.host[i]),
                "http.Server",
                f"slow request took {int(req.duration_ms[i])}ms",
            )
        )
    for second, lvl, svc, host, logger, message in effects.events:
        if logger == "deploy":
            if message.startswith("deployed"):
                version = message.split(" v")[1].split(" ")[0]
                rows.append((second + 5.0, "INFO", host, "app.Server", f"Starting {svc} service v{version}"))
            continue
        rows.append((second, lvl, host, logger, message))
    rows.sort(key=lambda r: r[0])
    lines = []
    for second, lvl, host, logger, message in rows:
        ts = platform.t(second)
        lines.append(
            f"{ts:%Y-%m-%d %H:%M:%S},{ts.microsecond // 1000:03d} {lvl:<5} [{host}] {logger} - {message}"
        )
    return ("\n".join(lines) + "\n").encode()


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _str(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def write_traces(
    rng: np.random.Generator, platform: Platform, req: Requests, effects: Effects, sample: float
) -> bytes:
    """OTLP/JSON lines: sampled requests as traces gateway -> service -> cache/database; one
    ExportTraceServiceRequest per (service, host, minute)."""
    start_ns = int(platform.start.timestamp()) * 1_000_000_000
    chosen = np.flatnonzero(rng.random(len(req)) < sample)
    trace_ids = rng.bytes(16 * len(chosen))
    span_ids = rng.bytes(8 * len(chosen) * 16)
    sid = 0
    batches: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    gateway_hosts = platform.hosts["gateway"]

    def next_span() -> str:
        nonlocal sid
        value = span_ids[sid * 8 : sid * 8 + 8].hex()
        sid += 1
        return value

    def span(
        trace: str,
        span_id: str,
        parent: str | None,
        name: str,
        kind: int,
        t0: int,
        dur_ns: int,
        attrs: list,
        error: bool,
    ) -> dict[str, Any]:
        out = {
            "traceId": trace,
            "spanId": span_id,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(t0),
            "endTimeUnixNano": str(t0 + max(dur_ns, 1000)),
            "attributes": attrs,
            "status": {"code": 2} if error else {},
        }
        if parent:
            out["parentSpanId"] = parent
        return out

    # Attribute lists that do not vary per span are built once and shared (orjson writes them per span).
    route_attrs = {
        e.route: [_str("http.request.method", e.method), _str("http.route", e.route)]
        for e in platform.endpoints
    }
    peer_attrs = {
        e.route: [
            _str("http.request.method", e.method),
            _str("server.address", e.service),
            _str("peer.service", e.service),
        ]
        for e in platform.endpoints
    }
    cache_attrs = [
        _str("db.system.name", "redis"),
        _str("db.operation.name", "GET"),
        _str("peer.service", "redis"),
    ]
    db_attrs = {
        (op, table): [
            _str("db.system.name", "postgresql"),
            _str("db.operation.name", op),
            _str("db.collection.name", table),
            _str("peer.service", "postgres"),
        ]
        for op in ("SELECT", "INSERT")
        for table in {*DB_TABLES.values(), *(e.service for e in platform.endpoints)}
    }
    for n, i in enumerate(chosen):
        ep = platform.endpoints[int(req.endpoint[i])]
        trace = trace_ids[n * 16 : n * 16 + 16].hex()
        t0 = start_ns + int(req.second[i] * 1e9)
        total = int(req.duration_ms[i] * 1e6)
        status = int(req.status[i])
        error = status >= 500
        minute = int(req.second[i] // 60)
        ghost = gateway_hosts[int(i) % len(gateway_hosts)]
        path = ep.route.replace("{id}", str(int(i) * 7919 % 900_000 + 1000))
        code = {"key": "http.response.status_code", "value": {"intValue": str(status)}}
        http = [*route_attrs[ep.route], _str("url.path", path), code]
        g_server, g_client, s_server = next_span(), next_span(), next_span()
        gw = batches[("gateway", ghost, minute)]
        gw.append(
            span(
                trace,
                g_server,
                None,
                f"{ep.method} {ep.route}",
                2,
                t0,
                total + 1_000_000,
                [
                    *http,
                    _str("client.address", str(req.ip[i])),
                    _str("user_agent.original", str(req.user_agent[i])),
                ],
                error,
            )
        )
        gw.append(
            span(
                trace,
                g_client,
                g_server,
                ep.method,
                3,
                t0 + 300_000,
                total + 400_000,
                [*peer_attrs[ep.route], code],
                error,
            )
        )
        svc_batch = batches[(ep.service, str(req.host[i]), minute)]
        svc_batch.append(
            span(trace, s_server, g_client, f"{ep.method} {ep.route}", 2, t0 + 500_000, total, http, error)
        )
        cursor = t0 + 500_000 + int(req.app_ms[i] * 0.5e6)
        if req.cache_ms[i] > 0:
            dur = int(req.cache_ms[i] * 1e6)
            svc_batch.append(span(trace, next_span(), s_server, "GET", 3, cursor, dur, cache_attrs, False))
            cursor += dur
        calls = int(req.db_calls[i])
        if calls:
            each = int(req.db_ms[i] * 1e6 / calls)
            table = DB_TABLES.get(ep.service, ep.service)
            operation = "SELECT" if ep.method == "GET" else "INSERT"
            for _ in range(calls):
                svc_batch.append(
                    span(
                        trace,
                        next_span(),
                        s_server,
                        f"{operation} {table}",
                        3,
                        cursor,
                        each,
                        db_attrs[(operation, table)],
                        False,
                    )
                )
                cursor += each
    lines = []
    for (service, host, minute), spans in sorted(
        batches.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])
    ):
        version = str(_versions_at(platform, effects, service, np.array([minute * 60 + 30.0]))[0])
        doc = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            _attr("service.name", service),
                            _attr("service.version", version),
                            _attr("host.name", host),
                            _attr("deployment.environment.name", "production"),
                        ]
                    },
                    "scopeSpans": [{"scope": {"name": "rca.simulate", "version": "1"}, "spans": spans}],
                }
            ]
        }
        lines.append(orjson.dumps(doc))
    return b"\n".join(lines) + b"\n"
