"""Typed details of findings: one frozen dataclass per finding shape, declared once here.

A detector builds the details of each `Finding` it emits from one of these classes; the ranker, the
renderers and the tests read them by attribute (a misspelt name fails loudly instead of reading a
default). The JSON report writes `details.to_dict()`: the field names below are the keys of
`findings[].details` in `schema_version` 1, so renaming or removing a field breaks the contract.

All classes are keyword-only: a detector names every figure it records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# The ratio above which "the calls sent to a dependency rose": the span detector then reports a fan-out
# growth and looks for the caller that drives the extra calls, and the ranker takes a dependency slowed
# while its calls rose this much for an effect of that load. One value for both, so they never disagree
# (the ranker used 1.3, the detector 1.5: at 1.5 for both, none of 84 reference reports changed, while at
# 1.3 the detector reported caller shares of x1.4 on a quiet day as the largest deviation).
CALLS_ROSE_RATIO = 1.5


@dataclass(frozen=True, kw_only=True)
class FindingDetails:
    """The figures behind a finding beyond its common fields; this base carries none."""

    def to_dict(self) -> dict[str, Any]:
        """The details as the JSON report writes them (field name -> value); a `basis` left unset is omitted."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not (f.metadata.get("optional") and getattr(self, f.name) is None)}


def basis_field() -> Any:
    """What a finding's figures were computed from, when not from every row (`Dataset.request_aggregates`
    carried the vantage, whose rows are a sample; `Dataset.trace_share`: the spans are a sample of whole
    traces): written to JSON only when set, so a report of rows reads as before."""
    return field(default=None, metadata={"optional": True})


@dataclass(frozen=True, kw_only=True)
class VantageDetails(FindingDetails):
    """Details of a finding measured from one vantage point (an access log's file, a service's spans)."""

    vantage: str


@dataclass(frozen=True, kw_only=True)
class ServiceTrafficDetails(VantageDetails):
    """`traffic_spike` on a whole service: how many clients carry the extra load."""

    clients: int  # fewest clients that make 80% of the extra requests
    contributors: int  # clients that sent more than expected
    top_share: float  # the largest single client's share of the extra requests
    new_sources: int  # clients not seen in the baseline
    z: float


@dataclass(frozen=True, kw_only=True)
class TrafficSpikeDetails(VantageDetails):
    """`traffic_spike` (or drop) of one value of a dimension (source, endpoint, user agent, host ...)."""

    method: str | None  # the value's usual HTTP method
    new: bool  # no request in the baseline
    z: float
    baseline_share: float  # its share of the baseline's requests
    lift: float  # its share of the extra load over its share of normal load
    baseline_requests: int
    incident_requests: int


@dataclass(frozen=True, kw_only=True)
class LatencyShiftDetails(VantageDetails):
    """`latency_shift`: percentiles before and after, and the test that found it."""

    method: str | None
    p_value: float
    p50_before_ms: float
    p50_after_ms: float
    p95_before_ms: float
    p95_after_ms: float
    p99_before_ms: float
    p99_after_ms: float
    n_before: int
    n_after: int
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class ErrorRateDetails(VantageDetails):
    """`error_rate` as a share of requests (5xx)."""

    errors_before: int
    requests_before: int
    errors_after: int
    requests_after: int
    z: float


@dataclass(frozen=True, kw_only=True)
class ErrorEventsDetails(FindingDetails):
    """`error_rate` as a rate of error-level log events."""

    errors_before: int
    errors_after: int
    z: float


@dataclass(frozen=True, kw_only=True)
class TemplateDetails(FindingDetails):
    """`template_burst`, `new_template`, `error_message`: a log template's counts and an example line."""

    template_id: str
    events_before: int
    events_after: int
    new: bool
    error_share: float
    host: str | None
    example: str
    z: float


@dataclass(frozen=True, kw_only=True)
class ResourceEventsDetails(FindingDetails):
    """`resource_saturation` told by log events (OOM, GC, pool exhausted ...)."""

    events_before: int
    events_after: int
    error_events: int
    host: str | None  # the busiest host
    example: str
    z: float


@dataclass(frozen=True, kw_only=True)
class HostResourceDetails(ResourceEventsDetails):
    """`resource_saturation` whose events concentrate on one host of several (a host-local problem)."""

    host_share: float  # the host's share of the resource's incident events
    hosts: int  # hosts seen in the data
    services: tuple[str, ...]  # the services (or syslog tags) whose events on the host tell it


@dataclass(frozen=True, kw_only=True)
class ResourceMetricDetails(FindingDetails):
    """`resource_saturation` told by a metric."""

    metric: str
    near_limit: bool
    z: float


@dataclass(frozen=True, kw_only=True)
class CallsDetails(FindingDetails):
    """A finding about the calls sent to a dependency (`caller_share`)."""

    dependency: str
    calls_ratio: float  # calls per minute to the dependency, incident over baseline
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class OperationCallsDetails(CallsDetails):
    """`fanout_growth`: the calls per request to a dependency grew."""

    operations: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SelfTimeDetails(OperationCallsDetails):
    """`self_time_shift`: a dependency's own time grew; calls per request tell load from slowness."""

    calls_per_request_before: float
    calls_per_request_after: float
    p_value: float
    n_before: int
    n_after: int


@dataclass(frozen=True, kw_only=True)
class ErrorOriginDetails(FindingDetails):
    """`error_origin`: failing traces whose deepest error is this operation."""

    traces: int
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class ChangeEffectDetails(FindingDetails):
    """`change_effect`: the before/after comparison around one change event."""

    change_kind: str  # one of CHANGE_KINDS
    service: str | None
    subject: str | None  # version, flag or config name
    scope: str  # what was compared: the service's requests, or all requests
    description: str | None
    origin: str | None
    line: int | None
    effect: bool  # a latency or error degradation right after it
    enough_data: bool
    window_min: int
    after_min: float
    p95_before_ms: float | None
    p95_after_ms: float | None
    error_rate_before: float | None
    error_rate_after: float | None
    rate_before_per_min: float
    rate_after_per_min: float
    p_value: float
    minutes_before_incident: float
    in_incident: bool
    # What moved: "all of checkout", one route ("GET /api/cart/{id}"), or the new release against the old
    # one; the figures of that comparison (n_old, n_new, p95_old_ms, p95_new_ms, error_rate_old,
    # error_rate_new, p_latency, p_errors), and of the canary split when the requests name their release.
    moved: str | None = None
    moved_figures: dict[str, Any] | None = None
    canary: dict[str, Any] | None = None
    canary_effect: bool | None = None  # None: no canary split (no release per request, or too few of one)
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class MetricShiftDetails(FindingDetails):
    """`metric_shift`: one series of a service's pod against its own baseline (detectors/service_metrics)."""

    family: str  # cpu, memory, network, disk, syscalls (resources); latency, errors, throughput (symptoms)
    role: str  # resource | symptom
    metric_kind: str  # gauge | utilisation | counter (compared as a rate per second)
    side: str  # client (time waiting on others) | own
    pod: str | None
    z: float  # the shift in units of the floored baseline spread
    baseline_median: float
    baseline_scale: float
    incident_level: float  # the most extreme level held for two samples in a row
    limit_share_change: float | None  # utilisation: the change as a share of the limit (0.75 = +75 points)


@dataclass(frozen=True, kw_only=True)
class CallWaitDetails(FindingDetails):
    """`call_wait_shift`: how long one caller -> callee edge waits beyond the callee's own server time."""

    caller: str
    callee: str
    callee_pod: str | None
    reference: str  # "own baseline" | "own earlier calls" | "other calls"
    reference_ms: float
    wait_ms: float
    callee_server_ms: float  # the callee's own median server time over the same calls
    z: float
    calls: int
    caller_fan_out: int  # callee pods the caller calls in the incident
    callee_fan_in: int  # services that call the callee in the incident
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class ServiceTimeDetails(FindingDetails):
    """`service_time_shift`: a service's own time per request on one pod (its server spans less the calls
    they make), against its own earlier requests."""

    service: str
    pod: str | None
    reference: str  # "own baseline" | "own earlier calls"
    reference_ms: float
    self_ms: float
    z: float
    requests: int
    requests_ratio: float  # its requests per second after the change / before it
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class CallDropDetails(FindingDetails):
    """`call_drop`: one caller -> callee edge carries fewer calls per request of the caller than before."""

    caller: str
    callee: str
    reference: str  # "windows" (baseline vs incident) | "own earlier requests" (a split inside the data)
    requests_before: int  # the caller's server requests on each side
    requests_after: int
    calls_before: int  # the edge's calls on each side
    calls_after: int
    p: float  # one-sided conditional binomial p of so few calls after, splits tested accounted for
    caller_fan_out: int  # services the caller calls over the data
    callee_fan_in: int  # services that call the callee over the data
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class ShapeShiftDetails(FindingDetails):
    """`shape_shift`: the requests of one service operation took a path (the set of operations their own
    spans started) they never took before (`appeared`) or stopped taking one (`vanished`)."""

    service: str
    operation: str  # the server span's name
    direction: str  # "appeared" | "vanished"
    calls: tuple[str, ...]  # the path: the distinct operations its own spans started, sorted
    callees: tuple[str, ...]  # the services requests of this path called
    stop: str  # appeared: the service most of its requests called last; "" when they stopped in their own code
    shorter: bool  # the change cut calls out of the path (code stopping part-way), rather than adding some
    missing: tuple[str, ...]  # shorter: the calls cut (those of the path it replaced that it lacks)
    requests_with_shape: int
    requests: int  # the operation's requests over the data
    p: float  # exact p of so late a first (or so early a last) request under exchangeable order, corrected
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class NetworkSplitDetails(FindingDetails):
    """`network_split`: p95 of request time, upstream (backend) time and the time outside the backend,
    before and during the incident, over the scope named by the finding's subject."""

    total_before_ms: float
    total_after_ms: float
    upstream_before_ms: float
    upstream_after_ms: float
    outside_before_ms: float
    outside_after_ms: float
    endpoints: tuple[str, ...]  # the endpoints judged; empty: all proxied requests
    basis: str | None = basis_field()


@dataclass(frozen=True, kw_only=True)
class HostSpreadDetails(FindingDetails):
    """`host_spread`: each host of a service with its p95 before and after the incident began."""

    hosts: tuple[tuple[str, float, float], ...]  # (host, p95 before ms, p95 after ms), by host
    basis: str | None = basis_field()


def basis_of(details: FindingDetails) -> str | None:
    """What a finding's figures were computed from when not every row (`basis_field`), else None."""
    return next((getattr(details, f.name) for f in fields(details) if f.metadata.get("optional") and getattr(details, f.name) is not None), None)


def vantage_of(details: FindingDetails) -> str | None:
    """The vantage point a finding was measured from, when its kind records one."""
    return details.vantage if isinstance(details, VantageDetails) else None


def calls_ratio_of(details: FindingDetails) -> float:
    """How much the calls to a dependency rose (1.0 when the finding is not about calls)."""
    return details.calls_ratio if isinstance(details, CallsDetails) else 1.0
