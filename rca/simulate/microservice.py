"""Generated microservice incidents: 30 minutes of per-pod metrics and the last three minutes of traces,
with one fault, in the formats real collectors write.

Topology (varies by seed): a front service calls each of 3-5 backends once per request, and one of them
heads a chain of three (`front -> a -> b -> c`); every service runs 1-3 pods, requests spread over them.
Service and pod names, call counts, latencies and levels all vary by seed. The fault starts 30 minutes
into the data, give or take 40 s; the traces begin a minute before it (a responder's usual dump).

Faults (`FAULTS`):
- `cpu`: one pod of a service is starved of CPU: its CPU use rises to nearly a core, its own server time
  grows x4-8 and calls into it queue a little; its other pods stay as they were;
- `network`: calls into one pod wait 30-60 ms more beyond the pod's own server time; nothing else moves;
- `propagation`: the deepest service of the chain slows in its own code (x5-10 server time, no resource
  change): every caller up the chain and the front slow by as much, their own time unchanged.
On odd seeds an unrelated service's memory jumps x3 a few minutes before the fault, with no effect on its
calls (a competing resource shift that explains nothing).

Writers: traces as OTLP/JSON lines, OTLP protobuf (length-prefixed, as the collector's file exporter
writes it) or Jaeger JSON; metrics as a Prometheus-style CSV (`ts,name,value,host,service`:
`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
`http_server_request_duration_seconds_p95`) or OTLP/JSON metrics as the kubeletstats receiver names them
(`k8s.pod.cpu.utilization`, `k8s.pod.memory.working_set`, `k8s.pod.network.io`).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

FAULTS = ("cpu", "network", "propagation")
TRACE_FORMATS = ("otlp-json", "otlp-proto", "jaeger")
METRIC_FORMATS = ("prometheus-csv", "otlp-json")
_WORDS = ("cart", "ledger", "quote", "stock", "mail", "auth", "rank", "geo", "price", "bill", "promo", "audit", "label", "fx")
_HISTORY_MIN = 30  # minutes of metrics before the fault
_TRACE_MIN = 3  # minutes of traces: one before the fault, two after
_REQUEST_S = 0.5  # one request to the front every half second


@dataclass
class Microservices:
    """One generated incident: its topology, the fault and where it is, and the calls' timing model."""

    seed: int
    fault: str
    front: str
    calls: dict[str, list[str]]  # caller -> callees, in call order
    pods: dict[str, list[str]]  # service -> its pods
    own_ms: dict[str, float]  # each service's own work per request
    faulty: str
    faulty_pod: str | None  # the pod at fault (None when every pod of the service is)
    decoy: str | None  # a service whose memory jumps, unrelated to the fault
    start: datetime
    fault_at: datetime
    end: datetime
    rng: np.random.Generator = field(repr=False)

    @property
    def expected_where(self) -> str:
        """What `where` should name: the pod at fault, or the service when all of its several pods are."""
        pods = self.pods[self.faulty]
        return self.faulty_pod or (pods[0] if len(pods) == 1 else self.faulty)

    def _slow(self, service: str, pod: str, t: datetime) -> bool:
        if t < self.fault_at or service != self.faulty:
            return False
        return self.faulty_pod is None or pod == self.faulty_pod

    def own_factor(self, service: str, pod: str, t: datetime) -> float:
        """How many times its usual own time a request takes in this pod at t."""
        if not self._slow(service, pod, t):
            return 1.0
        return {"cpu": self._cpu_factor, "propagation": self._code_factor}.get(self.fault, 1.0)

    def extra_wait_ms(self, service: str, pod: str, t: datetime) -> float:
        """Time a call into this pod waits beyond its server time, on top of the usual 1-2 ms."""
        if not self._slow(service, pod, t):
            return 0.0
        return {"network": self._delay_ms, "cpu": self._queue_ms}.get(self.fault, 0.0)

    def __post_init__(self) -> None:
        r = self.rng
        self._cpu_factor = float(r.uniform(4, 8))
        self._code_factor = float(r.uniform(5, 10))
        self._delay_ms = float(r.uniform(30, 60))
        self._queue_ms = float(r.uniform(5, 15))

    def server_ms(self, service: str, pod: str, t: datetime) -> float:
        """A request's usual server time at `service` on `pod` at t: its own work plus its calls, each
        waiting the usual 1.5 ms plus any delay, averaged over the callee's pods."""
        total = self.own_ms[service] * self.own_factor(service, pod, t)
        for callee in self.calls.get(service, []):
            pods = self.pods[callee]
            total += sum(1.5 + self.extra_wait_ms(callee, p, t) + self.server_ms(callee, p, t) for p in pods) / len(pods)
        return total


def generate(seed: int, fault: str) -> Microservices:
    """A microservice incident of `fault` (one of `FAULTS`), its shape drawn from `seed`."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: one of {', '.join(FAULTS)}")
    rng = np.random.default_rng(seed)
    words = [str(w) for w in rng.choice(_WORDS, size=int(rng.integers(6, 9)), replace=False)]
    front, backends, chain = f"{words[0]}-front", [f"{w}-svc" for w in words[1:-2]], [f"{w}-svc" for w in words[-2:]]
    head = backends[int(rng.integers(len(backends)))]
    calls = {front: list(backends), head: [chain[0]], chain[0]: [chain[1]]}
    services = [front, *backends, *chain]
    # a Deployment's pods share its pod-template hash and differ in a five-character suffix
    templates = {s: f"{int(rng.integers(0x10000000, 0xffffffff)):x}" for s in services}
    pods = {s: [f"{s}-{templates[s]}-{''.join(rng.choice(list('bcdfghjklmnpqrstvwxz2456789'), 5))}"
                for _ in range(int(rng.integers(1, 4)))] for s in services}
    own_ms = {s: float(rng.uniform(1, 4)) for s in services}
    start = datetime(2026, 4, 7, 9, tzinfo=UTC) + timedelta(minutes=int(rng.integers(0, 600)))
    fault_at = start + timedelta(minutes=_HISTORY_MIN, seconds=int(rng.integers(0, 40)))
    if fault == "propagation":
        faulty, faulty_pod = chain[1], None
    else:
        faulty = [*backends, *chain][int(rng.integers(len(backends) + len(chain)))]
        faulty_pod = pods[faulty][int(rng.integers(len(pods[faulty])))]
    others = [s for s in services if s != faulty and s != front]
    decoy = others[int(rng.integers(len(others)))] if seed % 2 else None
    return Microservices(seed=seed, fault=fault, front=front, calls=calls, pods=pods, own_ms=own_ms, faulty=faulty,
                         faulty_pod=faulty_pod, decoy=decoy, start=start, fault_at=fault_at,
                         end=fault_at + timedelta(minutes=_TRACE_MIN - 1), rng=rng)


# --- spans -------------------------------------------------------------------------------------------


def spans(m: Microservices) -> list[dict[str, Any]]:
    """Every span of the traces: trace, id, parent, service, pod, name, kind (server|client), start, ms."""
    out: list[dict[str, Any]] = []
    r = m.rng
    t0 = m.fault_at - timedelta(minutes=1)
    n = int((m.end - t0).total_seconds() / _REQUEST_S)
    counter = iter(range(1, 1 << 40))

    def serve(trace: str, parent: str | None, service: str, pod: str, at: datetime, name: str) -> float:
        """The server span of `service` on `pod` from `at`, with its calls; returns its duration (ms)."""
        span_id = f"{next(counter):016x}"
        own = m.own_ms[service] * m.own_factor(service, pod, at) * float(r.uniform(0.8, 1.2))
        t = at + timedelta(milliseconds=own / 2)
        for callee in m.calls.get(service, []):
            callee_pod = m.pods[callee][int(r.integers(len(m.pods[callee])))]
            client_id = f"{next(counter):016x}"
            wait = float(r.uniform(1, 2)) + m.extra_wait_ms(callee, callee_pod, t)
            inner = serve(trace, client_id, callee, callee_pod, t + timedelta(milliseconds=wait / 2), f"{callee}/Handle")
            out.append({"trace": trace, "id": client_id, "parent": span_id, "service": service, "pod": pod,
                        "name": f"{callee}/Call", "kind": "client", "start": t, "ms": inner + wait})
            t += timedelta(milliseconds=inner + wait + 0.05)
        ms = (t - at).total_seconds() * 1000 + own / 2
        out.append({"trace": trace, "id": span_id, "parent": parent, "service": service, "pod": pod, "name": name,
                    "kind": "server", "start": at, "ms": ms})
        return ms

    for i in range(n):
        at = t0 + timedelta(seconds=_REQUEST_S * i + float(r.uniform(0, _REQUEST_S / 2)))
        serve(f"{m.seed:08x}{i:024x}", None, m.front, m.pods[m.front][i % len(m.pods[m.front])], at, "GET /")
    return out


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def _resource(service: str, pod: str) -> dict[str, Any]:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                           {"key": "k8s.pod.name", "value": {"stringValue": pod}}]}


def traces_otlp_json(rows: list[dict[str, Any]]) -> bytes:
    """OTLP/JSON lines, one export request per pod (the collector's file exporter)."""
    by_pod: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in rows:
        span = {"traceId": s["trace"], "spanId": s["id"], "name": s["name"], "kind": 2 if s["kind"] == "server" else 3,
                "startTimeUnixNano": str(_ns(s["start"])), "endTimeUnixNano": str(_ns(s["start"]) + int(s["ms"] * 1e6))}
        if s["parent"]:
            span["parentSpanId"] = s["parent"]
        by_pod.setdefault((s["service"], s["pod"]), []).append(span)
    lines = [orjson.dumps({"resourceSpans": [{"resource": _resource(svc, pod), "scopeSpans": [{"spans": group}]}]})
             for (svc, pod), group in sorted(by_pod.items())]
    return b"\n".join(lines) + b"\n"


def traces_otlp_proto(rows: list[dict[str, Any]]) -> bytes:
    """OTLP protobuf TracesData messages, one per pod, each with a 4-byte big-endian length before it."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

    by_pod: dict[tuple[str, str], list[Span]] = {}
    for s in rows:
        start = _ns(s["start"])
        by_pod.setdefault((s["service"], s["pod"]), []).append(Span(
            trace_id=bytes.fromhex(s["trace"]), span_id=bytes.fromhex(s["id"]),
            parent_span_id=bytes.fromhex(s["parent"]) if s["parent"] else b"", name=s["name"],
            kind=Span.SPAN_KIND_SERVER if s["kind"] == "server" else Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start, end_time_unix_nano=start + int(s["ms"] * 1e6)))
    out = b""
    for (svc, pod), group in sorted(by_pod.items()):
        resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=svc)),
                                        KeyValue(key="k8s.pod.name", value=AnyValue(string_value=pod))])
        message = TracesData(resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=group)])])
        out += struct.pack(">I", message.ByteSize()) + message.SerializeToString()
    return out


def traces_jaeger(rows: list[dict[str, Any]]) -> bytes:
    """The Jaeger query API's `{"data": [trace, ...]}`, one process per pod."""
    pids: dict[tuple[str, str], str] = {}
    traces: dict[str, list[dict[str, Any]]] = {}
    for s in rows:
        pid = pids.setdefault((s["service"], s["pod"]), f"p{len(pids) + 1}")
        traces.setdefault(s["trace"], []).append({
            "traceID": s["trace"], "spanID": s["id"], "operationName": s["name"], "processID": pid,
            "references": [{"refType": "CHILD_OF", "traceID": s["trace"], "spanID": s["parent"]}] if s["parent"] else [],
            "startTime": _ns(s["start"]) // 1000, "duration": int(s["ms"] * 1000),
            "tags": [{"key": "span.kind", "type": "string", "value": s["kind"]}]})
    processes = {pid: {"serviceName": svc, "tags": [{"key": "hostname", "type": "string", "value": pod}]} for (svc, pod), pid in pids.items()}
    return orjson.dumps({"data": [{"traceID": t, "spans": group, "processes": processes} for t, group in traces.items()]})


# --- metrics -----------------------------------------------------------------------------------------


def metric_samples(m: Microservices) -> list[tuple[datetime, str, str, str, float]]:
    """Per pod and minute: (ts, kind, pod, service, value) for kind cpu (cores), memory (bytes), latency
    (p95 seconds of its server time) and network (bytes received per second)."""
    r = m.rng
    out = []
    level = {pod: (float(r.uniform(0.05, 0.3)), float(r.uniform(80e6, 400e6)), float(r.uniform(2e4, 2e5)))
             for pods in m.pods.values() for pod in pods}
    decoy_at = m.fault_at - timedelta(minutes=int(r.integers(2, 5)))
    for minute in range(_HISTORY_MIN + _TRACE_MIN + 1):
        ts = m.start + timedelta(minutes=minute, seconds=17)
        for service, pods in m.pods.items():
            for pod in pods:
                cores, memory, net = level[pod]
                starved = m.fault == "cpu" and pod == m.faulty_pod and ts >= m.fault_at
                cores = 0.95 if starved else cores
                memory *= 3.0 if service == m.decoy and ts >= decoy_at else 1.0
                latency = m.server_ms(service, pod, ts) * 1.6 / 1000  # a p95 about 1.6x the typical time
                out += [(ts, "cpu", pod, service, max(cores * float(r.normal(1, 0.05)), 0.0)),
                        (ts, "memory", pod, service, memory * float(r.normal(1, 0.01))),
                        (ts, "latency", pod, service, latency * float(r.uniform(0.9, 1.1))),
                        (ts, "network", pod, service, net * float(r.normal(1, 0.05)))]
    return out


def metrics_prometheus_csv(samples: list[tuple[datetime, str, str, str, float]]) -> bytes:
    """`ts,name,value,host,service` with cAdvisor's and a latency histogram's quantile names; the CPU and
    network counters accumulate as Prometheus's do."""
    totals: dict[tuple[str, str], float] = {}
    lines = ["ts,name,value,host,service"]
    for ts, kind, pod, service, value in samples:
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind in ("cpu", "network"):
            totals[(kind, pod)] = totals.get((kind, pod), 1000.0) + value * 60
            name = "container_cpu_usage_seconds_total" if kind == "cpu" else "container_network_receive_bytes_total"
            lines.append(f"{stamp},{name},{totals[(kind, pod)]:.3f},{pod},{service}")
        else:
            name = "container_memory_working_set_bytes" if kind == "memory" else "http_server_request_duration_seconds_p95"
            lines.append(f"{stamp},{name},{value:.6g},{pod},{service}")
    return ("\n".join(lines) + "\n").encode()


def metrics_otlp_json(samples: list[tuple[datetime, str, str, str, float]]) -> bytes:
    """OTLP/JSON metrics lines, one per pod and minute, named as the kubeletstats receiver names them (the
    CPU as a utilisation of one core, the network as a cumulative sum); no latency (kubelets have none)."""
    totals: dict[str, float] = {}
    by_key: dict[tuple[datetime, str, str], list[dict[str, Any]]] = {}
    for ts, kind, pod, service, value in samples:
        t = str(_ns(ts))
        if kind == "cpu":
            metric = {"name": "k8s.pod.cpu.utilization", "unit": "1", "gauge": {"dataPoints": [{"timeUnixNano": t, "asDouble": value}]}}
        elif kind == "memory":
            metric = {"name": "k8s.pod.memory.working_set", "unit": "By", "gauge": {"dataPoints": [{"timeUnixNano": t, "asInt": str(int(value))}]}}
        elif kind == "network":
            totals[pod] = totals.get(pod, 0.0) + value * 60
            metric = {"name": "k8s.pod.network.io", "unit": "By", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                {"timeUnixNano": t, "asInt": str(int(totals[pod])), "attributes": [{"key": "direction", "value": {"stringValue": "receive"}}]}]}}
        else:
            continue
        by_key.setdefault((ts, service, pod), []).append(metric)
    lines = [orjson.dumps({"resourceMetrics": [{"resource": _resource(svc, pod), "scopeMetrics": [{"metrics": group}]}]})
             for (_, svc, pod), group in sorted(by_key.items())]
    return b"\n".join(lines) + b"\n"


def write(m: Microservices, out: Path, trace_format: str, metric_format: str) -> list[Path]:
    """Write the incident's metrics and traces into `out` in the given formats; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    samples = metric_samples(m)
    if metric_format == "prometheus-csv":
        metrics_path, data = out / "metrics.csv.gz", gzip.compress(metrics_prometheus_csv(samples), mtime=0)
    elif metric_format == "otlp-json":
        metrics_path, data = out / "metrics.otlp.jsonl.gz", gzip.compress(metrics_otlp_json(samples), mtime=0)
    else:
        raise ValueError(f"unknown metric format {metric_format!r}: one of {', '.join(METRIC_FORMATS)}")
    metrics_path.write_bytes(data)
    rows = spans(m)
    writers = {"otlp-json": ("traces.otlp.jsonl", traces_otlp_json), "otlp-proto": ("traces.otlp.pb", traces_otlp_proto),
               "jaeger": ("traces.jaeger.json", traces_jaeger)}
    if trace_format not in writers:
        raise ValueError(f"unknown trace format {trace_format!r}: one of {', '.join(TRACE_FORMATS)}")
    name, writer = writers[trace_format]
    traces_path = out / name
    traces_path.write_bytes(writer(rows))
    return [metrics_path, traces_path]
