"""Generated microservice incidents end to end (files in, ranked hypotheses out): 30 minutes of per-pod
metrics with Prometheus-style names (a CPU seconds counter, working-set bytes, a server latency quantile)
as CSV, and the last 3 minutes of traces as OTLP/JSON or Jaeger JSON. Faults: CPU on one pod of a
service (its CPU rate and latency rise, calls into it wait), and a network delay on one service's pod
(calls into it wait; nothing else moves). Service names, call graph fan-out and numbers vary by seed."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from rca.pipeline import AnalyzeOptions, analyze

T0 = datetime(2026, 4, 7, 9, tzinfo=UTC)
FAULT_AT = T0 + timedelta(minutes=30, seconds=5)
END = T0 + timedelta(minutes=33)


def _topology(rng: np.random.Generator) -> tuple[str, list[str], dict[str, str]]:
    words = ["cart", "ledger", "quote", "stock", "mail", "auth", "rank", "geo", "price", "bill"]
    picked = rng.choice(words, size=int(rng.integers(4, 7)), replace=False)
    backends = [f"{w}-svc" for w in picked]
    pods = {s: f"{s}-{rng.integers(1000, 9999):x}-{rng.integers(10000, 99999):x}" for s in ["edge", *backends]}
    return "edge", backends, pods


def _metrics_csv(path: Path, rng: np.random.Generator, pods: dict[str, str], faulty: str | None, cpu_fault: bool) -> None:
    lines = ["ts,name,value,host,service"]
    cpu_seconds = {s: float(rng.uniform(100, 1000)) for s in pods}
    for minute in range(34):
        ts = T0 + timedelta(minutes=minute, seconds=17)
        after = ts >= FAULT_AT
        for service, pod in pods.items():
            busy = cpu_fault and after and service == faulty
            cores = (0.95 if busy else float(rng.uniform(0.18, 0.26))) + float(rng.normal(0, 0.01))
            cpu_seconds[service] += max(cores, 0.0) * 60
            latency = (0.25 if busy else 0.02) * float(rng.uniform(0.9, 1.1))
            memory = 300e6 * float(rng.uniform(0.98, 1.02))
            stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
            lines += [f"{stamp},container_cpu_usage_seconds_total,{cpu_seconds[service]:.3f},{pod},{service}",
                      f"{stamp},container_memory_working_set_bytes,{memory:.0f},{pod},{service}",
                      f"{stamp},http_server_request_duration_seconds_p95,{latency:.5f},{pod},{service}"]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def _calls(rng: np.random.Generator, front: str, backends: list[str], faulty: str | None, cpu_fault: bool) -> list[dict]:
    """One request every 0.25 s over the last 3 minutes: the front calls each backend once."""
    spans = []
    start = END - timedelta(minutes=3)
    for i in range(720):
        t = start + timedelta(seconds=0.25 * i)
        after = t >= FAULT_AT
        trace = f"{rng.integers(1 << 62):016x}{i:016x}"
        root = f"{i:08x}00000000"
        at = t + timedelta(microseconds=200)
        for k, callee in enumerate(backends, start=1):
            slow = after and callee == faulty
            server_ms = float(rng.uniform(1, 3)) * (6 if slow and cpu_fault else 1)
            wait_ms = float(rng.uniform(1, 2)) + (float(rng.uniform(30, 60)) if slow else 0.0)
            client = {"trace": trace, "id": f"{i:08x}{k:04x}0001", "parent": root, "service": front, "name": f"{callee}/Call",
                      "kind": "client", "start": at, "ms": server_ms + wait_ms}
            server = {"trace": trace, "id": f"{i:08x}{k:04x}0002", "parent": client["id"], "service": callee, "name": "Serve",
                      "kind": "server", "start": at + timedelta(milliseconds=wait_ms / 2), "ms": server_ms}
            spans += [client, server]
            at += timedelta(milliseconds=server_ms + wait_ms + 0.1)
        spans.append({"trace": trace, "id": root, "parent": None, "service": front, "name": "GET /", "kind": "server",
                      "start": t, "ms": (at - t).total_seconds() * 1000 + 0.2})
    return spans


def _ns(t: datetime) -> str:
    return str(int(t.timestamp() * 1_000_000) * 1000)


def _write_otlp(path: Path, spans: list[dict], pods: dict[str, str]) -> None:
    kinds = {"server": 2, "client": 3}
    by_service: dict[str, list[dict]] = {}
    for s in spans:
        end = s["start"] + timedelta(milliseconds=s["ms"])
        by_service.setdefault(s["service"], []).append({
            "traceId": s["trace"], "spanId": s["id"], **({"parentSpanId": s["parent"]} if s["parent"] else {}), "name": s["name"],
            "kind": kinds[s["kind"]], "startTimeUnixNano": _ns(s["start"]), "endTimeUnixNano": _ns(end)})
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}},
                                                          {"key": "k8s.pod.name", "value": {"stringValue": pods[svc]}}]},
                              "scopeSpans": [{"spans": rows}]} for svc, rows in sorted(by_service.items())]}
    path.write_bytes(gzip.compress((json.dumps(doc) + "\n").encode()))


def _write_jaeger(path: Path, spans: list[dict], pods: dict[str, str]) -> None:
    pids = {svc: f"p{i}" for i, svc in enumerate(sorted(pods))}
    traces: dict[str, list[dict]] = {}
    for s in spans:
        traces.setdefault(s["trace"], []).append({
            "traceID": s["trace"], "spanID": s["id"], "operationName": s["name"], "processID": pids[s["service"]],
            "references": [{"refType": "CHILD_OF", "traceID": s["trace"], "spanID": s["parent"]}] if s["parent"] else [],
            "startTime": int(s["start"].timestamp() * 1_000_000), "duration": int(s["ms"] * 1000),
            "tags": [{"key": "span.kind", "type": "string", "value": s["kind"]}]})
    processes = {pid: {"serviceName": svc, "tags": [{"key": "hostname", "type": "string", "value": pods[svc]}]} for svc, pid in pids.items()}
    doc = {"data": [{"traceID": t, "spans": rows, "processes": processes} for t, rows in traces.items()]}
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("trace_format", ["otlp", "jaeger"])
@pytest.mark.parametrize(("fault", "seed"), [("cpu", 1), ("cpu", 2), ("network", 3), ("network", 4)])
def test_faulty_service_first(tmp_path, fault, seed, trace_format):
    rng = np.random.default_rng(seed)
    front, backends, pods = _topology(rng)
    faulty = str(rng.choice(backends))
    cpu = fault == "cpu"
    _metrics_csv(tmp_path / "metrics.csv.gz", rng, pods, faulty, cpu)
    spans = _calls(rng, front, backends, faulty, cpu)
    trace_file = tmp_path / ("traces.otlp.jsonl.gz" if trace_format == "otlp" else "traces.jaeger.json")
    (_write_otlp if trace_format == "otlp" else _write_jaeger)(trace_file, spans, pods)
    report = analyze([str(tmp_path / "metrics.csv.gz"), str(trace_file)], AnalyzeOptions())
    top = report.hypotheses[0]
    assert (top.kind, top.subject, top.where) == ("service_fault" if cpu else "network_delay", faulty, pods[faulty])
