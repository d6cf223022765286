"""Real-world log and trace formats for the incidents in the wild (`rca.simulate.wild`).

JSON lines as structlog, ECS (Elastic Common Schema), zap and pino write them, with the release under
one of its common keys (or none: the pod names carry it); Apache access logs with `%D` and the server's
local offset; Spring Boot's default console layout; rsyslog's RFC 5424 output; OTLP/JSON traces with the
old or the new HTTP, database and peer semantic conventions. Every writer takes `Traffic` and returns
bytes; times derive from `Traffic.start`, so the same seed writes the same bytes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import orjson

from rca.simulate.traffic import Traffic

JSON_STYLES = ("structlog", "ecs", "zap", "pino")
VERSION_KEYS: tuple[str | None, ...] = ("version", "app.version", None, "app_version", "release", "service.version", "build")
_PINO_LEVELS = {"TRACE": 10, "DEBUG": 20, "INFO": 30, "WARN": 40, "ERROR": 50, "FATAL": 60}


def _put(record: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key as nested objects; a plain value on the way becomes `{"name": value}`."""
    *parents, leaf = dotted.split(".")
    cursor = record
    for part in parents:
        current = cursor.get(part)
        if not isinstance(current, dict):
            cursor[part] = {} if current is None else {"name": current}
        cursor = cursor[part]
    cursor[leaf] = value


def _iso(traffic: Traffic, second: float, offset_min: int = 0) -> str:
    ts = traffic.start + timedelta(seconds=float(second), minutes=offset_min)
    text = ts.replace(tzinfo=None).isoformat(timespec="microseconds")
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min >= 0 else "-"
    return f"{text}{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


def _record(style: str, traffic: Traffic, t: float, level: str, service: str, host: str, logger: str, message: str) -> dict[str, Any]:
    t = float(t)
    if style == "structlog":
        return {"timestamp": _iso(traffic, t), "level": level.lower().replace("warn", "warning"), "event": message, "logger": logger,
                "service": service, "host": host}
    if style == "ecs":
        return {"@timestamp": _iso(traffic, t)[:-4] + "Z", "log": {"level": level.lower(), "logger": logger}, "message": message,
                "service": {"name": service}, "host": {"name": host}, "ecs": {"version": "8.11.0"}}
    if style == "zap":
        return {"level": level.lower(), "ts": round((traffic.start.timestamp() + t), 6), "caller": f"{logger}/server.go:112", "msg": message,
                "service": service, "pod": host}
    return {"level": _PINO_LEVELS[level], "time": int((traffic.start.timestamp() + t) * 1000), "pid": 1, "hostname": host,
            "name": service, "msg": message}


def _request_fields(style: str, record: dict[str, Any], method: str, path: str, status: int, duration_ms: float) -> None:
    if style == "ecs":
        _put(record, "http.request.method", method)
        _put(record, "http.response.status_code", status)
        _put(record, "url.path", path)
        _put(record, "event.duration", int(duration_ms * 1e6))
    elif style == "pino":
        record["req"] = {"method": method, "url": path}
        record["res"] = {"statusCode": status}
        record["responseTime"] = round(duration_ms, 1)
    elif style == "zap":
        record.update({"method": method, "path": path, "status": status, "latency_ms": round(duration_ms, 3)})
    else:
        record.update({"method": method, "path": path, "status_code": status, "duration_ms": round(duration_ms, 2)})


def json_lines(traffic: Traffic, style: str, version_key: str | None, services: set[str], rng: np.random.Generator,
               hosts: set[str] | None = None) -> bytes:
    """The JSON-lines stream of `services` (and `hosts`): one record per request and per event; events
    with a plain-text form (crash dumps, stack traces) are written as that text, as a container's
    stdout and stderr interleave."""
    if style == "ecs" and version_key is not None:
        version_key = "service.version"
    keep = np.isin(traffic.service, list(services))
    if hosts is not None:
        keep &= np.isin(traffic.host, list(hosts))
    idx = np.flatnonzero(keep)
    paths = traffic.path(rng)[idx]
    methods = traffic.method()[idx]
    lines: list[tuple[float, int, bytes]] = []
    message = {"structlog": "request finished", "ecs": "request handled", "zap": "request", "pino": "request completed"}[style]
    for k, i in enumerate(idx):
        status = int(traffic.status[i])
        level = "ERROR" if status >= 500 else "INFO"
        record = _record(style, traffic, traffic.t[i], level, traffic.service[i], traffic.host[i], "http", message)
        _request_fields(style, record, methods[k], paths[k], status, float(traffic.duration_ms[i]))
        if version_key is not None and traffic.version[i] is not None:
            _put(record, version_key, traffic.version[i])
        lines.append((float(traffic.t[i]), 0, orjson.dumps(record)))
    for e in traffic.events:
        if e["service"] not in services or (hosts is not None and e["host"] not in hosts):
            continue
        if e["text"] is not None:
            lines.append((e["t"], 1, e["text"].encode()))
            continue
        record = _record(style, traffic, e["t"], e["level"], e["service"], e["host"], e["logger"], e["message"])
        record.update({k: v for k, v in e["fields"].items() if k != "version"})
        if version_key is not None and "version" in e["fields"]:
            _put(record, version_key, e["fields"]["version"])
        lines.append((e["t"], 1, orjson.dumps(record)))
    lines.sort(key=lambda x: (x[0], x[1]))
    return b"\n".join(line for _, _, line in lines) + b"\n"


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def apache(traffic: Traffic, rng: np.random.Generator, layout: str, offset_min: int, services: set[str] | None = None) -> bytes:
    """Apache `combined`, `vhost_combined` or `common` with `%D` (microseconds) appended; `%t` in local time
    at `offset_min` from UTC."""
    keep = np.ones(traffic.t.size, dtype=bool) if services is None else np.isin(traffic.service, list(services))
    idx = np.flatnonzero(keep)
    paths = traffic.path(rng)[idx]
    methods = traffic.method()[idx]
    sign = "+" if offset_min >= 0 else "-"
    zone = f"{sign}{abs(offset_min) // 60:02d}{abs(offset_min) % 60:02d}"
    base = traffic.start + timedelta(minutes=offset_min)
    out = []
    for k, i in enumerate(idx):
        ts = base + timedelta(seconds=float(traffic.t[i]))
        stamp = f"[{ts.day:02d}/{_MONTHS[ts.month - 1]}/{ts.year}:{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d} {zone}]"
        size = int(rng.integers(200, 9000)) if traffic.status[i] < 500 else 0
        head = f'{traffic.client[i]} - - {stamp} "{methods[k]} {paths[k]} HTTP/1.1" {int(traffic.status[i])} {size or "-"}'
        micros = int(traffic.duration_ms[i] * 1000)
        if layout == "common":
            out.append(f"{head} {micros}")
        else:
            line = f'{head} "-" "{traffic.agent[i]}" {micros}'
            out.append(f"{traffic.service[i]}.example.com:443 {line}" if layout == "vhost_combined" else line)
    return ("\n".join(out) + "\n").encode()


def spring_boot(traffic: Traffic, rng: np.random.Generator) -> bytes:
    """Spring Boot's default console layout (`yyyy-MM-dd HH:mm:ss.SSS  LEVEL pid --- [thread] logger : message`)
    for the events, with periodic housekeeping lines; stack traces follow their line."""
    pid = int(rng.integers(1000, 60000))
    rows = [(e["t"], e["level"], e["logger"], e["message"], e["fields"]) for e in traffic.events]
    span = float(traffic.t.max()) if traffic.t.size else 0.0
    rows += [(float(s), "INFO", "scheduler", "Evicted expired sessions", {}) for s in np.arange(30, span, 60.0)]
    out = []
    for t, level, logger, message, fields in sorted(rows, key=lambda r: r[0]):
        ts = (traffic.start + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        thread = f"nio-8080-exec-{int(rng.integers(1, 10))}" if logger == "web" else "main"
        name = {"web": "c.e.shop.web.ApiController", "config": "o.s.c.e.event.RefreshEventListener"}.get(logger, f"c.e.shop.{logger}.Task")
        out.append(f"{ts} {level:>5} {pid} --- [{thread:>15}] {name:<40} : {message}")
        if level == "ERROR" and fields.get("error"):
            out.append(f"java.lang.{fields['error']}: {message}")
            out += ["\tat com.example.shop.web.ApiController.handle(ApiController.java:88)",
                    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)"]
    return ("\n".join(out) + "\n").encode()


def rsyslog(traffic: Traffic, services: set[str] | None = None, loggers: set[str] | None = None) -> bytes:
    """RFC 5424 lines as rsyslog's RSYSLOG_SyslogProtocol23Format writes them, for the events of `loggers`."""
    out = []
    severity = {"FATAL": 2, "ERROR": 3, "WARN": 4, "INFO": 6, "DEBUG": 7}
    for e in sorted(traffic.events, key=lambda e: e["t"]):
        if (services is not None and e["service"] not in services) or (loggers is not None and e["logger"] not in loggers):
            continue
        pri = 0 * 8 + severity.get(e["level"], 6)  # facility kern
        out.append(f"<{pri}>1 {_iso(traffic, e['t'])} {e['host']} {e['logger']} - - - {e['message']}")
    return ("\n".join(out) + "\n").encode()


# OTLP attribute names, old (before the HTTP and database conventions went stable) and new.
SEMCONV = {
    "old": {"method": "http.method", "status": "http.status_code", "route": "http.route", "url": "http.url",
            "peer": "peer.service", "address": "net.peer.name", "db": "db.system", "db_op": "db.operation"},
    "new": {"method": "http.request.method", "status": "http.response.status_code", "route": "http.route", "url": "url.full",
            "peer": "service.peer.name", "address": "server.address", "db": "db.system.name", "db_op": "db.operation.name"},
}


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def otlp_json(traffic: Traffic, spans: list[dict[str, Any]], hosts: dict[str, str], versions: dict[str, str | None],
              nodes: dict[str, str] | None = None) -> bytes:
    """OTLP/JSON lines (the collector's file exporter): one ExportTraceServiceRequest per service, host and
    minute. `spans` hold service, trace, id, parent, name, kind, t (s), dur_ms, error, attrs (dict) and
    optionally host (else `hosts[service]`). A service whose version is None writes no `service.version`.
    With `nodes` (pod -> node), hosts are Kubernetes pods: written as `k8s.pod.name`, with the node as
    `host.name`, as the collector's k8sattributes and resourcedetection processors set them."""
    start_ns = int(traffic.start.timestamp() * 1e9)
    batches: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for s in spans:
        t0 = start_ns + int(s["t"] * 1e9)
        span = {"traceId": s["trace"], "spanId": s["id"], "name": s["name"], "kind": s["kind"], "startTimeUnixNano": str(t0),
                "endTimeUnixNano": str(t0 + max(int(s["dur_ms"] * 1e6), 1000)),
                "attributes": [_attr(k, v) for k, v in s["attrs"].items()], "status": {"code": 2} if s["error"] else {}}
        if s["parent"]:
            span["parentSpanId"] = s["parent"]
        batches.setdefault((s["service"], s.get("host") or hosts[s["service"]], int(s["t"] // 60)), []).append(span)
    out = []
    for (service, host, _), group in sorted(batches.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        attributes = [_attr("service.name", service)]
        if versions.get(service) is not None:
            attributes.append(_attr("service.version", versions[service]))
        if nodes is None:
            attributes.append(_attr("host.name", host))
        else:
            attributes += [_attr("k8s.namespace.name", "prod"), _attr("k8s.pod.name", host), _attr("host.name", nodes[host])]
        doc = {"resourceSpans": [{"resource": {"attributes": attributes}, "scopeSpans": [{"scope": {"name": "io.opentelemetry.http"}, "spans": group}]}]}
        out.append(orjson.dumps(doc))
    return b"\n".join(out) + b"\n"
