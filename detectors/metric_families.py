"""Metric families: one table that says what a metric measures, whatever naming scheme wrote it.

A metric name is matched (case-insensitively, first match wins) against `METRIC_FAMILIES`, which maps
it to
- a **family**: `cpu`, `memory`, `network`, `disk`, `syscalls` are *resources* (a shift there can be a
  cause); `latency`, `errors`, `throughput` are *symptoms* (they locate where a fault shows, as spans do);
- a **kind**: `gauge` (a level: bytes in use, millicores, a latency quantile), `utilisation` (a share of a
  limit, 0-1 or 0-100 %: comparable across pods, and a shift of a fraction of a percent of a limit is
  noise whatever its z), `counter` (a cumulative total: turned into a rate per second before comparing);
- a **direction**: whether a rise (`+1`) or a fall (`-1`, a success rate) is the bad way.

Rows cover Prometheus/cAdvisor and node-exporter names (`container_cpu_usage_seconds_total`,
`container_memory_working_set_bytes`, `container_network_receive_bytes_total`, ...), OpenTelemetry
semantic conventions (`system.cpu.utilization`, `k8s.pod.cpu.utilization`, `container.memory.usage`,
`http.server.request.duration`, ...) and names written with units in brackets as some exporters do
(`CpuUsageRate(%)`, `MemoryUsage(Mi)`, `PodServerLatencyP95(s)`, `NetworkReceiveBytes`,
`SyscallRead`, `PodWorkload(Ops)`, `PodSuccessRate(%)`). A name that matches no row is not used as
evidence: guessing what an unknown metric means would turn noise into causes.

Counters are recognised by the usual suffixes (`_total`, `_count`, `.count`, `_sum`) or the OTel
cumulative sums named here; a series whose every step is non-decreasing (and that grew) is a counter
too, whatever its name (`looks_cumulative`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

RESOURCE_FAMILIES = ("cpu", "memory", "network", "disk", "syscalls")
SYMPTOM_FAMILIES = ("latency", "errors", "throughput")


@dataclass(frozen=True)
class MetricClass:
    """What one metric measures: its family, how to read its values, and which way is bad."""

    family: str  # one of RESOURCE_FAMILIES or SYMPTOM_FAMILIES
    kind: str  # gauge | utilisation | counter
    direction: int = 1  # +1: a rise is bad; -1: a fall is bad (success rates)
    scale: float = 1.0  # for utilisation: the value of a full limit (1 for ratios, 100 for percents)

    @property
    def role(self) -> str:
        """`resource` (a possible cause) or `symptom` (where a fault shows)."""
        return "resource" if self.family in RESOURCE_FAMILIES else "symptom"


_PCT = r"(?:\(%\)|_?percent|_pct|%)"  # a percent unit written into the name

# (pattern, family, kind, direction). Order matters: utilisation before usage, success before errors,
# specific before generic. Percent-valued utilisation is recognised from the name (`(%)`, `percent`) and
# gets scale 100; `utilization`/`ratio` names are 0-1.
METRIC_FAMILIES: tuple[tuple[str, str, str, int], ...] = (
    # --- cpu ---
    (rf"cpu.*(?:usage_?rate|util|usage){_PCT}", "cpu", "utilisation", 1),
    (r"cpu.*(?:utili[sz]ation|usage_ratio|ratio)", "cpu", "utilisation", 1),
    (r"cpu.*(?:seconds_total|time_seconds|\.time$|_time$)", "cpu", "counter", 1),  # container_cpu_usage_seconds_total, system.cpu.time
    (r"cpu.*throttl", "cpu", "counter", 1),
    (r"cpu|load_?average|load1|load5", "cpu", "gauge", 1),  # CpuUsage(m), k8s.pod.cpu.usage, node_load1
    # --- memory ---
    (rf"(?:mem|heap).*(?:usage_?rate|util|usage){_PCT}", "memory", "utilisation", 1),
    (r"(?:mem|heap).*(?:utili[sz]ation|ratio)", "memory", "utilisation", 1),
    (r"oom|(?:mem|memory).*(?:fail|evict)", "memory", "counter", 1),
    (r"mem|heap|working_set|\brss\b|_rss|\.rss|gc_?pause|gc\.duration", "memory", "gauge", 1),
    # --- disk ---
    (rf"(?:disk|filesystem|fs_|volume).*(?:util|usage){_PCT}", "disk", "utilisation", 1),
    (r"(?:disk|filesystem|fs_|volume).*(?:utili[sz]ation|ratio)", "disk", "utilisation", 1),
    (r"(?:disk|fs_|filesystem|blkio|io_).*(?:_total|\.io$|\.operations$)", "disk", "counter", 1),
    (r"disk|filesystem|blkio|fs_(?:reads|writes|usage)|iops", "disk", "gauge", 1),
    # --- network ---
    (r"network.*(?:_total|\.io$|\.packets$|\.errors$|\.dropped$)", "network", "counter", 1),
    (r"network|net_|\.net\.|receive_?bytes|transmit_?bytes|tcp_?retrans|packets", "network", "gauge", 1),
    # --- syscalls ---
    (r"syscall", "syscalls", "gauge", 1),
    # --- symptoms ---
    (r"latency|duration|response_?time|(?<![a-z])rt(?:_|$)", "latency", "gauge", 1),
    (rf"success.*(?:rate|ratio){_PCT}?", "errors", "utilisation", -1),
    (r"(?:error|fail|5xx|exception).*(?:_total|\.count$|_count$)", "errors", "counter", 1),
    (r"error|fail|5xx|exception", "errors", "gauge", 1),
    (r"(?:requests?|calls|ops).*(?:_total|\.count$|_count$)", "throughput", "counter", 1),
    (r"workload|throughput|(?<![a-z])(?:qps|rps|calls)(?![a-z])|requests?_per|\(ops\)|request_?rate", "throughput", "gauge", 1),
)
_COMPILED = tuple((re.compile(p, re.IGNORECASE), fam, kind, d) for p, fam, kind, d in METRIC_FAMILIES)
_COUNTER_SUFFIX = re.compile(r"(?:_total|_count|\.count|_sum|\.sum)$", re.IGNORECASE)
_PERCENT = re.compile(rf"{_PCT}|percent", re.IGNORECASE)


def classify_metric(name: str, unit: str | None = None) -> MetricClass | None:
    """The family, kind and bad direction of a metric from its name (and unit when given), or None."""
    for pattern, family, kind, direction in _COMPILED:
        if pattern.search(name):
            if kind == "gauge" and _COUNTER_SUFFIX.search(name):
                kind = "counter"
            scale = 1.0
            if kind == "utilisation":
                scale = 100.0 if (_PERCENT.search(name) or (unit or "").strip() == "%") else 1.0
            return MetricClass(family=family, kind=kind, direction=direction, scale=scale)
    return None


def looks_cumulative(values: np.ndarray) -> bool:
    """A series that never decreases and grew over its span: a counter, whatever its name says."""
    finite = values[np.isfinite(values)]
    if finite.size < 4:
        return False
    steps = np.diff(finite)
    return bool(np.all(steps >= 0) and finite[-1] > finite[0] and np.count_nonzero(steps) >= finite.size // 2)
