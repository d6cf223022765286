"""Per-service evidence: the metric families table, metric shifts against their own baseline (utilisation
told apart from absolute usage, counters as rates), call waits on generated traces, and the windows taken
from the signal with the longest history. Names and numbers vary by seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.detectors.metric_families import classify_metric, looks_cumulative
from rca.detectors.service_calls import detect_call_waits
from rca.detectors.service_metrics import detect_metric_shifts, sustained_level
from rca.detectors.windows import choose_context
from rca.model import AnalysisContext, Dataset, Window, conform
from rca.parsers.spantree import finish_spans

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "family", "kind"),
    [
        ("container_cpu_usage_seconds_total", "cpu", "counter"),
        ("CpuUsageRate(%)", "cpu", "utilisation"),
        ("CpuUsage(m)", "cpu", "gauge"),
        ("k8s.pod.cpu.utilization", "cpu", "utilisation"),
        ("system.cpu.utilization", "cpu", "utilisation"),
        ("container_memory_working_set_bytes", "memory", "gauge"),
        ("MemoryUsage(Mi)", "memory", "gauge"),
        ("container.memory.usage", "memory", "gauge"),
        ("container_network_receive_bytes_total", "network", "counter"),
        ("NetworkTransmitBytes", "network", "gauge"),
        ("container_fs_writes_bytes_total", "disk", "counter"),
        ("SyscallRead", "syscalls", "gauge"),
        ("PodServerLatencyP95(s)", "latency", "gauge"),
        ("http.server.request.duration", "latency", "gauge"),
        ("PodSuccessRate(%)", "errors", "utilisation"),
        ("http_requests_errors_total", "errors", "counter"),
        ("PodWorkload(Ops)", "throughput", "gauge"),
        ("http_requests_total", "throughput", "counter"),
    ],
)
def test_metric_families_table(name, family, kind):
    found = classify_metric(name)
    assert found is not None and (found.family, found.kind) == (family, kind)
    assert found.role == ("resource" if family in ("cpu", "memory", "network", "disk", "syscalls") else "symptom")


def test_unknown_metric_and_scales():
    assert classify_metric("queue.widgets.florps") is None
    assert classify_metric("CpuUsageRate(%)").scale == 100.0
    assert classify_metric("system.cpu.utilization").scale == 1.0
    assert classify_metric("PodSuccessRate(%)").direction == -1
    assert looks_cumulative(np.array([1.0, 3, 3, 8, 9, 15])) and not looks_cumulative(np.array([1.0, 3, 2, 8, 9, 15]))
    assert sustained_level(np.array([1.0, 9.0, 2.0, 5.0, 6.0]), 1) == 5.0  # one spike is not a level
    assert sustained_level(np.array([9.0]), 1) == 9.0


def _context(minutes: int = 40, incident_from: int = 30) -> AnalysisContext:
    return AnalysisContext(
        bucket_s=60, span=Window(T0, T0 + timedelta(minutes=minutes)),
        baseline=Window(T0, T0 + timedelta(minutes=incident_from - 1)),
        incident=Window(T0 + timedelta(minutes=incident_from), T0 + timedelta(minutes=minutes)),
    )


def _metric_frame(series: dict[tuple[str, str, str], np.ndarray]) -> pl.DataFrame:
    rows = []
    for (service, pod, name), values in series.items():
        for i, v in enumerate(values):
            rows.append({"ts": T0 + timedelta(minutes=i, seconds=19), "name": name, "value": float(v), "service": service, "host": pod})
    frame = pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    return conform(frame, "metrics")  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(4))
def test_metric_shifts_utilisation_absolute_and_counters(seed):
    rng = np.random.default_rng(seed)
    names = [f"svc{k}-{rng.integers(100, 999)}" for k in range(5)]
    hot, quiet, busy, counting = names[0], names[1], names[2], names[3]
    n, onset = 40, 30
    step = np.arange(n) >= onset
    series = {}
    for s in names:
        series[(s, f"{s}-pod-a", "CpuUsageRate(%)")] = 20 + rng.normal(0, 1.5, n)
        series[(s, f"{s}-pod-a", "CpuUsage(m)")] = 300 + rng.normal(0, 20, n)
    # 20% -> 95% of a limit: a shift. 0.2% -> 0.6% of a limit: noise, whatever its own z.
    series[(hot, f"{hot}-pod-a", "CpuUsageRate(%)")] = np.where(step, 95, 20) + rng.normal(0, 1.5, n)
    series[(quiet, f"{quiet}-pod-a", "CpuUsageRate(%)")] = np.where(step, 0.6, 0.2) + rng.normal(0, 0.01, n)
    # absolute usage: 1.7 -> 6 millicores beside pods at 300 is no resource problem; 300 -> 900 is
    series[(quiet, f"{quiet}-pod-a", "CpuUsage(m)")] = np.where(step, 6.0, 1.7) + rng.normal(0, 0.05, n)
    series[(busy, f"{busy}-pod-a", "CpuUsage(m)")] = np.where(step, 900, 300) + rng.normal(0, 20, n)
    # a counter whose rate triples
    rate = np.where(step, 3000.0, 1000.0) + rng.normal(0, 30, n)
    series[(counting, f"{counting}-pod-a", "container_network_transmit_bytes_total")] = np.cumsum(rate * 60)
    for s in names:
        if s != counting:
            series[(s, f"{s}-pod-a", "container_network_transmit_bytes_total")] = np.cumsum((1000.0 + rng.normal(0, 30, n)) * 60)
    findings = detect_metric_shifts(Dataset(metrics=_metric_frame(series)), _context(n, onset))
    flagged = {(f.subject, f.metric) for f in findings}
    assert (hot, "CpuUsageRate(%)") in flagged
    assert (busy, "CpuUsage(m)") in flagged
    assert (counting, "container_network_transmit_bytes_total") in flagged
    assert not any(f.subject == quiet for f in findings)
    assert len(flagged) == 3
    net = next(f for f in findings if f.subject == counting)
    assert net.details.metric_kind == "counter" and 2.5 < net.incident / net.baseline < 3.5  # compared as rates
    assert net.where == f"{counting}-pod-a" and net.details.family == "network"


def _call(rows: list[dict], trace: str, span_base: str, parent_id: str, caller: str, callee: str, at: datetime,
          server_ms: float, wait_ms: float) -> tuple[datetime, str]:
    """A caller's span and the callee's server span inside it, `wait_ms` of the caller's span outside it."""
    cid, sid = f"{span_base}0001", f"{span_base}0002"
    end = at + timedelta(milliseconds=server_ms + wait_ms)
    rows.append({"trace_id": trace, "span_id": cid, "parent_span_id": parent_id, "service": caller, "name": f"{callee}/Call",
                 "kind": "internal", "ts": at, "end": end})
    s_at = at + timedelta(milliseconds=wait_ms / 2)
    rows.append({"trace_id": trace, "span_id": sid, "parent_span_id": cid, "service": callee, "name": f"{callee}/Serve",
                 "kind": "server", "ts": s_at, "end": s_at + timedelta(milliseconds=server_ms), "host": f"{callee}-pod-1"})
    return end, sid


def _spans(seed: int, slow_callee: str | None, delay_ms: float, minutes: int = 6, onset_min: int = 3) -> tuple[pl.DataFrame, dict[str, str]]:
    """front -> {b, c, d}, b -> d; every 0.5 s a request; from `onset_min` the calls into `slow_callee` wait
    `delay_ms` more (a network delay on its pod: its own server time unchanged)."""
    rng = np.random.default_rng(seed)
    names = {k: f"{k}-{rng.integers(10, 99)}" for k in ("front", "b", "c", "d")}
    slow = names.get(slow_callee or "")
    rows: list[dict] = []
    for i in range(minutes * 120):
        start = T0 + timedelta(seconds=0.5 * i)
        after = start >= T0 + timedelta(minutes=onset_min)
        trace, root = f"{seed:04x}{i:028x}", f"{i:08x}00000000"

        def wait(callee: str, after: bool = after) -> float:
            return float(rng.uniform(1, 3)) + (delay_ms if after and callee == slow else 0.0)

        t = start
        for k, callee in enumerate((names["b"], names["c"], names["d"]), start=1):
            t, sid = _call(rows, trace, f"{i:08x}{k:04x}", root, names["front"], callee, t, float(rng.uniform(2, 4)), wait(callee))
            if callee == names["b"]:
                b_start = next(r["ts"] for r in rows if r["span_id"] == sid)
                _call(rows, trace, f"{i:08x}{9:04x}", sid, names["b"], names["d"], b_start, 0.5, wait(names["d"]))
        rows.append({"trace_id": trace, "span_id": root, "parent_span_id": None, "service": names["front"], "name": "GET /",
                     "kind": "server", "ts": start, "end": t + timedelta(milliseconds=1), "host": "front-pod-1"})
    raw = pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC")})
    frames, _ = finish_spans(raw, "gen")
    return frames["spans"], names


@pytest.mark.parametrize("seed", range(3))
def test_call_waits_find_the_delayed_edges_only(seed):
    spans, names = _spans(seed, "d", delay_ms=80.0)
    context = AnalysisContext(bucket_s=10, span=Window(T0, T0 + timedelta(minutes=6)),
                              baseline=Window(T0, T0 + timedelta(minutes=2, seconds=50)),
                              incident=Window(T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)))
    findings = detect_call_waits(Dataset(spans=spans), context)
    slow = {(f.details.caller, f.details.callee) for f in findings}
    assert slow == {(names["front"], names["d"]), (names["b"], names["d"])}
    f = findings[0]
    assert f.details.reference == "own baseline" and f.incident - f.baseline > 60 and f.where == f"{names['d']}-pod-1"


def test_call_waits_without_a_baseline_compare_edges():
    """Traces that start after the fault: the delayed edge stands out among the other edges."""
    spans, names = _spans(5, "c", delay_ms=150.0, minutes=3, onset_min=0)
    context = AnalysisContext(bucket_s=10, span=Window(T0 - timedelta(minutes=30), T0 + timedelta(minutes=3)),
                              baseline=Window(T0 - timedelta(minutes=30), T0 - timedelta(minutes=1)),
                              incident=Window(T0, T0 + timedelta(minutes=3)))
    findings = detect_call_waits(Dataset(spans=spans), context)
    assert [(f.details.caller, f.details.callee, f.details.reference) for f in findings] == [(names["front"], names["c"], "other calls")]


def test_windows_from_the_signal_with_the_longest_history():
    """30 minutes of minute metrics and 2 minutes of traces: one-minute buckets, the incident starting
    at the metrics' sustained shift, the baseline before it."""
    rng = np.random.default_rng(11)
    n, onset = 33, 30
    series = {}
    for k in range(6):
        s = f"svc{k}"
        shift = (k < 2) * (np.arange(n) >= onset)
        series[(s, f"{s}-p", "CpuUsageRate(%)")] = 30 + 50 * shift + rng.normal(0, 2, n)
        series[(s, f"{s}-p", "PodServerLatencyP95(s)")] = 0.05 * (1 + 4 * shift) + rng.normal(0, 0.002, n)
    metrics = _metric_frame(series)
    spans, _ = _spans(1, "c", 50.0, minutes=2, onset_min=0)
    spans = spans.with_columns(pl.col("ts") + timedelta(minutes=31))
    context = choose_context(Dataset(metrics=metrics, spans=spans))
    assert context is not None and context.bucket_s == 60
    assert context.incident.start == T0 + timedelta(minutes=onset)
    assert context.baseline.end <= context.incident.start and context.baseline.start == T0 + timedelta(seconds=19)


def _whole_traces(minutes: float) -> AnalysisContext:
    """The windows the metrics' fallback gives: the incident is where the traces begin, the baseline before."""
    return AnalysisContext(bucket_s=60, span=Window(T0 - timedelta(minutes=30), T0 + timedelta(minutes=minutes)),
                           baseline=Window(T0 - timedelta(minutes=30), T0 - timedelta(minutes=1)),
                           incident=Window(T0, T0 + timedelta(minutes=minutes)))


@pytest.mark.parametrize("seed", range(2))
def test_call_waits_find_a_late_change_inside_the_traces(seed):
    """Three minutes of traces, the delay in the last forty seconds: the edge's own earlier calls are its
    baseline, and the change is dated where it happened."""
    spans, names = _spans(seed, "c", delay_ms=60.0, minutes=3, onset_min=2 + 20 / 60)
    findings = detect_call_waits(Dataset(spans=spans), _whole_traces(3))
    assert [(f.details.caller, f.details.callee, f.details.reference) for f in findings] == [(names["front"], names["c"], "own earlier calls")]
    assert abs((findings[0].onset - (T0 + timedelta(minutes=2, seconds=20))).total_seconds()) <= 2


def test_call_waits_ignore_a_burst_in_the_last_seconds():
    """Every call of the traces' last four seconds slowed: no sustained change, no finding."""
    spans, _ = _spans(3, "c", delay_ms=60.0, minutes=3, onset_min=3 - 4 / 60)
    assert detect_call_waits(Dataset(spans=spans), _whole_traces(3)) == []


@pytest.mark.parametrize("seed", range(3))
def test_an_earlier_fault_in_the_baseline_is_left_out(seed):
    """Ten minutes of an earlier fault inside the baseline neither move its centre nor widen its spread:
    the fault after it reads as far off as on a clean baseline."""
    rng = np.random.default_rng(seed)
    clean = 20 + rng.normal(0, 2, 34)
    clean[30:] += 65
    earlier = clean.copy()
    earlier[6:16] += 65
    shifts = {}
    for label, values in (("clean", clean), ("earlier", earlier)):
        findings = detect_metric_shifts(Dataset(metrics=_metric_frame({("svc", "svc-pod", "CpuUsageRate(%)"): values})), _context(34, 30))
        shifts[label] = next(f for f in findings if f.metric == "CpuUsageRate(%)")
    assert abs(shifts["earlier"].baseline - shifts["clean"].baseline) < 1.5
    assert shifts["earlier"].details.z > 0.8 * shifts["clean"].details.z > 10
