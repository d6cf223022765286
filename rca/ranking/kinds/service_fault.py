"""`service_fault` (and `network_delay`): one candidate per suspected service, gathering its metric and trace evidence.

Each signal is read for what it says about *which service* is at fault, then the services are ranked:
- **Call waits** (`call_wait_shift`, traces): a slow edge has two ends. The service at fault is the end
  the slow edges have in common: for service v, `coverage` is the share of all the extra wait that
  lies on edges touching v, `concentration` the share of v's callers whose calls to v slowed, or of
  the callee pods v calls whose calls from v slowed, whichever is larger. A network delay on a callee
  pod slows the edges into it (coverage 1, concentration 1) while its callers keep their other edges,
  and their calls to the callee's other pods, fast (concentration 1/8); a CPU-starved caller slows all
  its outgoing edges. A caller whose slow edges all lead to one callee shares them with that callee,
  the deeper end and so the likelier (`TUNING.one_callee_caller_share` of its concentration).
  Localisation = coverage x concentration.
- **Resources** (`metric_shift` of cpu, memory, network, disk, syscalls): a shift of the service's own
  pod resources, localised by construction (localisation 1).
- **Vanished calls** (`call_drop`, traces): a caller whose calls to a callee per request of its own
  fell (an exception or a wrong return short-circuits its code). The caller is at fault in proportion
  to the share of its callees it stopped calling (`dropped`); but when several callers stopped calling
  the same callee, that callee failing is what made them give up: it takes the share of its callers
  that dropped it, and a caller's own share is discounted by the largest such share among its callees.
- **Changed paths** (`shape_shift`, traces): a service whose requests take a path they never took (or
  stop taking one) changed its own behaviour; when the new path stops right after a call, the callee
  takes it instead if its own paths changed too or several paths stop at it (`_localise_shapes`).
- **Own time** (`service_time_shift`, traces): its server spans less the calls they make took longer:
  the service's own part by construction (localisation 1), so of a slowdown propagating up a chain of
  callers only the deepest service carries it; unless its requests rose as much as `TUNING.calls_rose`
  (then the load slowed it: a traffic surge's effect, not its fault).
- **Own symptoms** (`metric_shift` of latency on the serving side, errors): a slowdown propagates to
  every caller, so a service's own latency shift counts only for the part its waiting on others
  (its client-side latency shift) does not explain: 1 - z(client) / z(own), floored at 0, and not at
  all when its calls to another service wait longer (traces show what it waited on). The deepest
  slowed service keeps it whole.

A service's findings are those that localise to it; its specificity is the best localisation among
them (so scoring multiplies the strongest evidence by how precisely it names this service), and the
signals they come from (metrics, traces) raise it by agreement as every candidate's are. The
hypothesis is a `network_delay` when the evidence is call waits without a resource shift on the
service's pods (calls to it wait longer while its own pods are not busier), a `service_fault`
otherwise; `where` is the pod when the evidence concentrates on one pod of several.

A resource shift alone does not make a cause when its service shows no effect of it while others do
(`discount_without_effect`, also applied to `resource_exhaustion`): a memory jump on a pod whose calls,
latency and errors stay as they were loses to the service whose shift explains the symptoms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from rca.figures import hhmm, number, ratio
from rca.findings import (
    CallDropDetails,
    CallWaitDetails,
    MetricShiftDetails,
    ServiceTimeDetails,
    ShapeShiftDetails,
)
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.surge_effects import explain_by_surge
from rca.ranking.tuning import TUNING

NETWORK_KIND = "network_delay"
SERVICE_KIND = "service_fault"


@dataclass
class ServiceEvidence:
    """What the findings say about one service."""

    service: str
    findings: list[Finding] = field(default_factory=list)
    edge_localisation: float = 0.0
    own_symptom: float = 0.0  # unexplained share of its own latency/error shift
    resource: bool = False
    dropped_calls: float = 0.0  # localisation from calls that vanished (see `_localise_drops`)
    path_change: float = 0.0  # localisation from request paths that changed (see `_localise_shapes`)
    pods: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # pod -> weight of evidence

    @property
    def specificity(self) -> float:
        return max(self.edge_localisation, 1.0 if self.resource else 0.0, self.own_symptom, self.dropped_calls, self.path_change)

    @property
    def kind(self) -> str:
        network = self.edge_localisation > 0 and not self.resource and self.dropped_calls == 0 and self.path_change == 0
        return NETWORK_KIND if network else SERVICE_KIND

    @property
    def where(self) -> str:
        """The pod when one carries at least two thirds of the evidence among several, else the service."""
        if len(self.pods) >= 2:
            total = sum(self.pods.values())
            pod, weight = max(self.pods.items(), key=lambda kv: (kv[1], kv[0]))
            if total > 0 and weight / total >= 2 / 3:
                return pod
        if len(self.pods) == 1:
            return next(iter(self.pods))
        return self.service


def service_evidence(findings: list[Finding]) -> list[ServiceEvidence]:
    """Per service, the findings that localise to it and how precisely they do."""
    out: dict[str, ServiceEvidence] = {}

    def of(service: str) -> ServiceEvidence:
        return out.setdefault(service, ServiceEvidence(service))

    _localise_edges([f for f in findings if f.kind == "call_wait_shift"], of)
    _localise_drops([f for f in findings if f.kind == "call_drop"], of)
    _localise_shapes([f for f in findings if f.kind == "shape_shift"], of)
    for f in findings:
        if isinstance(f.details, ServiceTimeDetails) and f.details.requests_ratio < TUNING.calls_rose:
            ev = of(f.subject)
            ev.own_symptom = 1.0  # self time leaves out the calls it waits on: this service's own part
            ev.findings.append(f)
            if f.where:
                ev.pods[f.where] += f.confidence
    # a service whose calls to another wait longer: its own latency shift is that wait, not its own part
    waiting = {f.details.caller for f in findings if isinstance(f.details, CallWaitDetails)}
    shifts = [(f, f.details) for f in findings if f.kind == "metric_shift" and isinstance(f.details, MetricShiftDetails)]
    client_z: dict[str, float] = defaultdict(float)
    for f, d in shifts:
        if d.family == "latency" and d.side == "client":
            client_z[f.subject] = max(client_z[f.subject], d.z)
    for f, d in shifts:
        z = d.z
        if d.role == "resource":
            ev = of(f.subject)
            ev.resource = True
        elif d.family in ("latency", "errors") and d.side == "own":
            unexplained = 0.0 if d.family == "latency" and f.subject in waiting else max(0.0, 1.0 - client_z[f.subject] / z)
            if unexplained <= 0:
                continue
            ev = of(f.subject)
            ev.own_symptom = max(ev.own_symptom, unexplained)
        else:
            continue
        ev.findings.append(f)
        if f.where:
            ev.pods[f.where] += f.confidence
    return [ev for ev in out.values() if ev.findings]


def _localise_edges(edges: list[Finding], of: Callable[[str], ServiceEvidence]) -> None:
    slow = [(f, f.details) for f in edges if isinstance(f.details, CallWaitDetails)]
    if not slow:
        return
    excess = {id(f): max(float(f.incident or 0) - float(f.baseline or 0), 0.0) for f, _ in slow}
    top = max(excess.values())
    slow = [(f, d) for f, d in slow if top > 0 and excess[id(f)] >= TUNING.service_edge_min_share * top]
    total = sum(excess[id(f)] for f, _ in slow)
    if total <= 0:
        return
    callees: dict[str, set[str]] = defaultdict(set)  # slow edges per service, by direction
    callers: dict[str, set[str]] = defaultdict(set)
    fan_out: dict[str, int] = {}  # all edges per service, by direction, as the detector counted them
    fan_in: dict[str, int] = {}
    for _, d in slow:
        callees[d.caller].add(f"{d.callee}\x00{d.callee_pod}")
        callers[d.callee].add(d.caller)
        fan_out[d.caller] = max(fan_out.get(d.caller, 0), d.caller_fan_out)
        fan_in[d.callee] = max(fan_in.get(d.callee, 0), d.callee_fan_in)
    for service in sorted(set(callees) | set(callers)):
        touching = [(f, d) for f, d in slow if service in (d.caller, d.callee)]
        coverage = sum(excess[id(f)] for f, _ in touching) / total
        caller_side = len(callees[service]) / max(fan_out.get(service, 1), len(callees[service]), 1)
        if len({c.split("\x00")[0] for c in callees[service]}) == 1:
            caller_side *= TUNING.one_callee_caller_share
        concentration = max(caller_side, len(callers[service]) / max(fan_in.get(service, 1), len(callers[service]), 1))
        ev = of(service)
        ev.edge_localisation = max(ev.edge_localisation, coverage * concentration)
        for f, d in touching:
            ev.findings.append(f)
            if d.callee == service and d.callee_pod:
                ev.pods[d.callee_pod] += f.confidence * excess[id(f)] / total


def _localise_drops(drops: list[Finding], of: Callable[[str], ServiceEvidence]) -> None:
    pairs = [(f, f.details) for f in drops if isinstance(f.details, CallDropDetails)]
    dropped_callees: dict[str, set[str]] = defaultdict(set)
    dropping_callers: dict[str, set[str]] = defaultdict(set)
    for _, d in pairs:
        dropped_callees[d.caller].add(d.callee)
        dropping_callers[d.callee].add(d.caller)
    callee_share = {callee: len(callers) / max(d.callee_fan_in, len(callers))
                    for _, d in pairs for callee, callers in [(d.callee, dropping_callers[d.callee])]
                    if len(callers) >= TUNING.call_drop_min_callers}
    for f, d in pairs:
        blamed = callee_share.get(d.callee, 0.0)
        own = len(dropped_callees[d.caller]) / max(d.caller_fan_out, len(dropped_callees[d.caller]))
        explained = max((callee_share.get(c, 0.0) for c in dropped_callees[d.caller]), default=0.0)
        caller = of(d.caller)
        caller.dropped_calls = max(caller.dropped_calls, own * (1.0 - explained))
        if caller.dropped_calls > 0:
            caller.findings.append(f)
        if blamed > 0:
            callee = of(d.callee)
            callee.dropped_calls = max(callee.dropped_calls, blamed)
            callee.findings.append(f)


def _localise_shapes(shifts: list[Finding], of: Callable[[str], ServiceEvidence]) -> None:
    """Changed request paths, localised to the deepest service whose own path changed. Only paths that lost
    calls count (code stopping part-way); a path gaining calls is a fallback the dependency kinds read.

    A service's requests that now stop right after calling a callee stopped there because of that callee
    when the callee's own paths changed too, or when `shape_stop_min_paths` different paths (operations
    or callers) stop at it; the callee (or the callee its own changes stop at, and so on down) then
    takes the operation's changes as its evidence. Otherwise
    the change is the service's own (and the callee it stops at is listed below it, the path's other
    possible origin), unless a caller's own changed paths called it (its requests then came from a caller
    that behaves differently: the caller explains it)."""
    pairs = [(f, f.details) for f in shifts if isinstance(f.details, ShapeShiftDetails) and f.details.shorter]
    if not pairs:
        return
    changed = {d.service for _, d in pairs}
    stopping: dict[str, set[tuple[str, str, tuple[str, ...]]]] = defaultdict(set)
    for _, d in pairs:
        if d.direction == "appeared" and d.stop and d.stop != d.service:
            stopping[d.stop].add((d.service, d.operation, d.calls))
    passed: dict[tuple[str, str], str] = {}  # (service, operation) -> the callee its changed paths stop at
    for _f, d in sorted(pairs, key=lambda fd: -fd[0].confidence):
        stop = d.stop
        if (d.direction == "appeared" and stop and stop != d.service and (d.service, d.operation) not in passed
                and (stop in changed or len(stopping[stop]) >= TUNING.shape_stop_min_paths)):
            passed[(d.service, d.operation)] = stop
    onward = {service: callee for (service, _), callee in sorted(passed.items())}  # a callee whose own changes stop deeper

    def deepest(callee: str) -> str:
        seen = {callee}
        while callee in onward and onward[callee] not in seen:
            callee = onward[callee]
            seen.add(callee)
        return callee

    for f, d in pairs:
        to = passed.get((d.service, d.operation))
        if to is not None:
            ev = of(deepest(to))
        elif any(cd.service != d.service and d.service in cd.callees and passed.get((cd.service, cd.operation)) != d.service
                 for _, cd in pairs):
            continue  # a caller whose own paths changed sends it other requests than before
        else:
            ev = of(d.service)
            if f.where:
                ev.pods[f.where] += f.confidence
            if d.direction == "appeared" and d.stop and d.stop != d.service:
                callee = of(d.stop)  # one path stopping at it: its answer may be what the caller failed on
                callee.path_change = max(callee.path_change, TUNING.shape_single_stop_localisation)
                callee.findings.append(f)
        ev.path_change = 1.0
        ev.findings.append(f)


def services_showing_effects(findings: list[Finding]) -> set[str]:
    """The services where the incident shows in service-level evidence: their own latency, error or
    throughput metrics or their own time in traces shifted, calls into them wait longer, calls between
    them vanished, or their requests' paths were cut short (or stop at them)."""
    shown: set[str] = set()
    for f in findings:
        d = f.details
        if (isinstance(d, MetricShiftDetails) and d.role == "symptom") or isinstance(d, ServiceTimeDetails):
            shown.add(f.subject)
        elif isinstance(d, CallWaitDetails):
            shown.add(d.callee)  # the calls into it wait: a caller waiting shows its callee's effect, not its own
        elif isinstance(d, CallDropDetails):
            shown.update((d.caller, d.callee))
        elif isinstance(d, ShapeShiftDetails) and d.shorter:
            shown.update(s for s in (d.service, d.stop) if s)
    return shown


def discount_without_effect(candidates: list[Candidate], kind: str, located: Callable[[Candidate], str | None],
                            seen: Observations) -> None:
    """A resource that rose on a service whose own calls, latency and errors stayed as they were did not
    make the incident: when the service-level evidence shows the incident elsewhere, such a candidate of
    `kind` (located at the service `located` names) is discounted by `TUNING.no_effect_discount`. A CPU or
    memory jump on an idle neighbour then loses to the service whose shift explains the symptoms; with no
    service-level evidence at all, nothing changes."""
    shown = services_showing_effects(seen.findings)
    if not shown:
        return
    for cand in candidates:
        service = located(cand)
        if cand.kind == kind and service is not None and service not in shown:
            cand.discount *= TUNING.no_effect_discount
            cand.related.append(f"no effect on {service} itself: its calls, latency and errors stayed as they were")


def evidence_clause(cand: Candidate) -> str:
    """The evidence in a clause: the strongest shift per family, then the slowest edge into it."""
    parts: list[str] = []
    seen: set[str] = set()
    for f in sorted(cand.findings, key=lambda f: -f.confidence):
        d = f.details
        if isinstance(d, MetricShiftDetails) and d.family not in seen:
            seen.add(d.family)
            parts.append(f"{f.metric} {number(f.baseline)} -> {number(f.incident)} (z {d.z:.0f})")
    own_time = [(f, f.details) for f in cand.findings if isinstance(f.details, ServiceTimeDetails)]
    if own_time:
        f, d = max(own_time, key=lambda fd: (fd[0].confidence, fd[0].magnitude))
        on = f" on {d.pod}" if d.pod and len(own_time) > 1 else ""
        parts.append(f"its own time per request (less the calls it makes) {number(d.reference_ms)} -> {number(d.self_ms)} ms "
                     f"({ratio(f.magnitude)}){on}")
    waits = [(f, f.details) for f in cand.findings if isinstance(f.details, CallWaitDetails) and f.details.callee == cand.subject]
    if waits:
        f, d = max(waits, key=lambda fd: fd[1].wait_ms - fd[1].reference_ms)
        callers = sorted({dd.caller for _, dd in waits})
        parts.append(f"calls from {', '.join(callers)} wait {number(d.reference_ms)} -> {number(d.wait_ms)} ms beyond its own "
                     f"{number(d.callee_server_ms)} ms of server time")
    elif any(isinstance(f.details, CallWaitDetails) for f in cand.findings):
        outgoing = [f.details for f in cand.findings if isinstance(f.details, CallWaitDetails) and f.details.caller == cand.subject]
        if outgoing:
            parts.append(f"its calls to {len(outgoing)} service{'s' if len(outgoing) > 1 else ''} wait longer "
                         f"(up to {number(max(d.wait_ms for d in outgoing))} ms)")
    drops = [f.details for f in cand.findings if isinstance(f.details, CallDropDetails)]
    own_drops = sorted({d.callee for d in drops if d.caller == cand.subject})
    if own_drops:
        parts.append(f"it stopped making calls to {', '.join(own_drops)} while its own requests went on")
    elif drops:
        parts.append(f"{', '.join(sorted({d.caller for d in drops}))} stopped calling it")
    parts.extend(_path_clauses(cand))
    return "; ".join(parts[:4])


def _path_clauses(cand: Candidate) -> list[str]:
    """Its own requests' changed paths, or the callers' paths that now stop at it."""
    shapes = [(f, f.details) for f in sorted(cand.findings, key=lambda f: -f.confidence) if isinstance(f.details, ShapeShiftDetails)]
    own = [(f, d) for f, d in shapes if d.service == cand.subject]
    stopped = sorted({f"{d.service} {d.operation}" for _, d in shapes if d.service != cand.subject and d.stop == cand.subject})
    out = []
    if own:
        f, d = next(((f, d) for f, d in own if d.direction == "appeared"), own[0])
        cut = ", ".join(d.missing[:3]) + (f" and {len(d.missing) - 3} more" if len(d.missing) > 3 else "")
        if d.direction == "appeared":
            out.append(f"{d.requests_with_shape} of its {d.requests} {d.operation} requests stop short of {cut} from {hhmm(f.onset)}, "
                       "a path never taken before")
        else:
            out.append(f"its {d.operation} requests no longer reach {cut} from {hhmm(f.onset)}")
    if stopped:
        out.append(f"requests of {'; '.join(stopped)} now stop right after calling it")
    return out


def candidates_of_kind(kind: str, seen: Observations) -> list[Candidate]:
    """The candidates whose evidence makes them of `kind` (`service_fault` or `network_delay`)."""
    return [Candidate(kind, "service", ev.service, ev.where, findings=list(ev.findings), specificity=ev.specificity)
            for ev in service_evidence(seen.findings) if ev.kind == kind]


@register_kind
class ServiceFault(HypothesisKind):
    name = SERVICE_KIND
    finding_kinds = ("metric_shift", "call_drop", "shape_shift")
    suggestions = (
        "Look at the named pod first: its resource limits, its neighbours on the node, its recent restarts and logs.",
        "Move or restart the pod if a neighbour starves it; raise its limits or scale the service out if it is itself busy.",
        "Alert on each service's own latency and resource use against its own baseline, not on fixed thresholds.",
    )
    order = 25

    def candidates(self, seen: Observations) -> list[Candidate]:
        return candidates_of_kind(self.name, seen)

    def adjust(self, candidates: list[Candidate], seen: Observations) -> None:
        discount_without_effect(candidates, self.name, lambda cand: cand.subject, seen)
        explain_by_surge(candidates, self.name, seen)

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        at = f" (pod {cand.where})" if cand.where and cand.where != cand.subject else ""
        verb = "slowed" if cand.effect_of else "is at fault"  # an effect of another cause is not called a fault
        return f"{cand.subject}{at} {verb} from {hhmm(cand.onset)}: {evidence_clause(cand)}{effect_clause(cand, explained)}."

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the fault in {hypothesis.where or hypothesis.subject}"
