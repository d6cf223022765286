"""The ranker: findings -> hypotheses (likely causes, best first) and ruled-out explanations.

Candidate causes are built from findings, never from scenario names:
- `traffic_surge`: a source, network, user-agent family or endpoint whose share of the extra load is
  well above its share of normal load (lift >= 2), or, when no single value stands out, the surge of a
  whole service spread over many clients;
- `resource_exhaustion`: a burst of memory/cpu/cache/pool/disk evidence (logs or metrics);
- `dependency_slowdown`: a downstream service/operation whose own (self) time shifted (traces);
- `deploy`: a change whose before/after comparison shows a degradation right after it;
- `error_burst`: errors that lead the latency symptoms with no other cause before them.

Symptoms are latency shifts and error rates. Each candidate is scored in [0, 1] as the product of
- strength: its best finding's confidence times a magnitude factor (log10 of the ratio, capped at 1);
- precedence: 1 when it starts no later than one bucket after the earliest symptom, decaying with each
  bucket it lags (the first anomaly of a causal chain outranks its effects);
- share/specificity: the share of the excess it explains and how concentrated it is;
- corroboration: the number of independent signals (access log, app log, text log, traces, metrics).
A candidate that starts after a stronger cause and is explained by it (CPU saturation after a surge)
is kept but discounted. An incident is reported when the best score reaches `INCIDENT_THRESHOLD`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from rca import __version__
from rca.figures import growth, hhmm, number, quantity, ratio, times_for
from rca.model import (
    AnalysisContext,
    Dataset,
    Evidence,
    Finding,
    Hypothesis,
    Report,
    RuledOut,
    TimelineEntry,
)

SCHEMA_VERSION = 1
INCIDENT_THRESHOLD = 0.3
SYMPTOM_KINDS = ("latency_shift", "error_rate")
SOURCE_DIMENSIONS = ("source", "source_net", "user_agent", "client")
# Vantage points by how completely they count requests: quoted figures come from the first one present.
_SIGNAL_COMPLETENESS = {"access_log": 0, "app_log": 1, "otlp_log": 2, "text_log": 2, "syslog": 2, "trace": 3, "metric": 4}


def _completeness(f: Finding) -> int:
    return _SIGNAL_COMPLETENESS.get(f.signal, 5)


SIGNAL_NAMES = {"access_log": "access log", "app_log": "app log", "text_log": "text log", "syslog": "syslog",
                "trace": "traces", "otlp_log": "OTLP logs", "metric": "metrics", "external": "change markers"}


@dataclass
class Candidate:
    kind: str
    dimension: str
    subject: str
    where: str | None
    findings: list[Finding] = field(default_factory=list)
    related: list[str] = field(default_factory=list)  # other subjects folded in (more endpoints)
    discount: float = 1.0
    specificity: float = 1.0
    chain_onset: datetime | None = None  # earliest onset of the callers this dependency slows down

    @property
    def onset(self) -> datetime | None:
        onsets = [f.onset for f in self.findings if f.onset is not None]
        if self.chain_onset is not None:
            onsets.append(self.chain_onset)
        return min(onsets) if onsets else None

    @property
    def best(self) -> Finding:
        return max(self.findings, key=lambda f: (f.confidence, f.magnitude))

    @property
    def shown(self) -> Finding:
        """The finding its figures are quoted from: the strongest one seen by the most complete vantage
        point (an access log counts every request, sampled traces only some)."""
        top = min(_completeness(f) for f in self.findings)
        return max((f for f in self.findings if _completeness(f) == top), key=lambda f: (f.confidence, f.magnitude))

    @property
    def signals(self) -> set[str]:
        return {f.signal for f in self.findings}


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60.0


def _magnitude_factor(ratio: float) -> float:
    if not math.isfinite(ratio) or ratio <= 1:
        return 0.1
    return min(1.0, 0.25 + math.log10(ratio))


# --- candidates ------------------------------------------------------------------------------------


def _traffic_candidates(findings: list[Finding]) -> list[Candidate]:
    spikes = [f for f in findings if f.kind == "traffic_spike"]
    out: dict[tuple[str, str], Candidate] = {}
    for f in spikes:
        if f.dimension in SOURCE_DIMENSIONS or f.dimension == "endpoint":
            lift = float(f.details.get("lift", 1.0))
            share = f.share_explained or 0.0
            # proportional growth (every browser family, every endpoint a bit) is not a cause
            if lift < 2.0 or share < 0.15:
                continue
            key = ("source" if f.dimension in SOURCE_DIMENSIONS else "endpoint", f.subject)
            cand = out.setdefault(key, Candidate("traffic_surge", f.dimension, f.subject, None))
            cand.findings.append(f)
            cand.specificity = max(cand.specificity, min(1.0, 0.5 + share))
    # one source hypothesis per actor: the IP, its /24 and its user-agent family are the same caller
    sources = sorted((c for k, c in out.items() if k[0] == "source"), key=lambda c: -max(f.share_explained or 0 for f in c.findings))
    merged: list[Candidate] = []
    for cand in sources:
        host = next((m for m in merged if _same_actor(m, cand)), None)
        if host is None:
            merged.append(cand)
        else:
            host.findings.extend(cand.findings)
            host.related.append(f"{cand.dimension} {cand.subject}")
    endpoints = sorted((c for k, c in out.items() if k[0] == "endpoint"), key=lambda c: -sum(f.excess or 0 for f in c.findings))
    if endpoints:
        top = endpoints[0]
        for other in endpoints[1:]:
            top.findings.extend(other.findings)
            top.related.append(other.subject)
        # A dominant source explains the endpoint spikes: the source is the cause, the endpoints where it lands.
        if merged and max(f.share_explained or 0 for f in merged[0].findings) >= 0.5:
            merged[0].related.extend([top.subject, *[r for r in top.related]])
            merged[0].findings.extend(top.findings)
        else:
            merged.append(top)
    # No source stands out and no endpoint carries most of the extra load: a broad surge over many clients.
    concentrated = any(max(f.share_explained or 0 for f in c.findings) >= 0.5 for c in merged)
    if not concentrated:
        broad = [f for f in spikes if f.dimension == "service" and f.details.get("clients", 0) >= 20]
        if broad:
            best = min(broad, key=lambda f: (_completeness(f), -(f.excess or 0)))
            cand = Candidate("traffic_surge", "clients", f"{number(best.details.get('contributors', best.details.get('clients')))} clients", best.where, specificity=0.6)
            cand.findings.extend(f for f in broad)
            merged.append(cand)
    return merged


def _same_actor(a: Candidate, b: Candidate) -> bool:
    """Do two source candidates describe the same caller (their incident series overlap in time and size)?"""
    fa, fb = a.best, b.best
    if fa.onset and fb.onset and abs(_minutes(fa.onset, fb.onset)) > 3:
        return False
    ea = sum(f.excess or 0 for f in a.findings if f.signal == fa.signal)
    eb = sum(f.excess or 0 for f in b.findings if f.signal == fa.signal) or (fb.excess or 0)
    return ea > 0 and eb > 0 and 0.7 <= eb / ea <= 1.43


def _resource_candidates(findings: list[Finding]) -> list[Candidate]:
    out: dict[str, Candidate] = {}
    for f in findings:
        if f.kind != "resource_saturation":
            continue
        cand = out.setdefault(f.subject, Candidate("resource_exhaustion", "resource", f.subject, f.where))
        cand.findings.append(f)
    for cand in out.values():
        cand.where = max(cand.findings, key=lambda f: f.excess or 0).where
    return list(out.values())


def _dependency_candidates(findings: list[Finding]) -> list[Candidate]:
    """A dependency whose own time shifted. When the calls sent to it grew (more calls per request, or a
    caller sending more), the slowdown is likely an effect of that load: lower specificity."""
    out: dict[str, Candidate] = {}
    for f in findings:
        if f.kind != "self_time_shift":
            continue
        target = str(f.details.get("dependency") or f.subject)
        cand = out.setdefault(target, Candidate("dependency_slowdown", "operation", target, f.where))
        cand.findings.append(f)
        loaded = float(f.details.get("calls_ratio", 1.0)) >= 1.3 or (
            float(f.details.get("calls_per_request_after", 0)) >= 1.3 * max(float(f.details.get("calls_per_request_before", 0)), 1e-9)
        )
        if loaded:
            cand.specificity = 0.4
    # A dependency that itself calls another slowed dependency is slow because of it (users -> postgres).
    for name, cand in out.items():
        for other_name, other in out.items():
            callers = {c.strip() for c in (other.best.where or "").split(",")}
            if other_name != name and name in callers:
                cand.specificity = min(cand.specificity, 0.3)
                cand.related.append(f"waits on {other_name}")
                # A caller cannot slow down from its dependency before the dependency does: when the
                # caller's shift is seen first, the dependency's own onset is a late estimate (sparse
                # spans), and the chain began with the caller's.
                caller_onset = cand.best.onset
                if caller_onset is not None and (other.onset is None or caller_onset < other.onset):
                    other.chain_onset = caller_onset
                    other.related.append(f"slows {name} from {hhmm(caller_onset)}")
    for f in findings:
        if f.kind == "fanout_growth" and str(f.details.get("dependency")) in out:
            out[str(f.details.get("dependency"))].findings.append(f)
    return list(out.values())


def _link_callers(candidates: list[Candidate], findings: list[Finding]) -> None:
    """Traces that show which caller drives a dependency's extra load corroborate that caller's surge."""
    for f in findings:
        if f.kind != "caller_share":
            continue
        for cand in candidates:
            if cand.kind == "traffic_surge" and (cand.subject == f.subject or f"source {f.subject}" in cand.related):
                cand.findings.append(f)
                cand.related.append(f"drives {f.share_explained:.0%} of the extra calls to {f.where}")


def _explain_loaded_dependencies(candidates: list[Candidate]) -> None:
    """A dependency that slowed while the calls sent to it rose with a traffic surge is an effect of that
    load, not a cause of its own: the surge explains it, so the dependency is discounted."""
    if not any(c.kind == "traffic_surge" for c in candidates):
        return
    for cand in candidates:
        if cand.kind != "dependency_slowdown":
            continue
        calls = max(float(f.details.get("calls_ratio", 1.0)) for f in cand.findings)
        if calls >= 1.3:
            cand.discount = min(cand.discount, 0.5)
            cand.related.append(f"calls rose x{calls:.1f} with the traffic surge")


def _bound_dependency_onsets(candidates: list[Candidate], symptoms: list[Finding]) -> None:
    """Spans are sampled, so a dependency's own onset can be estimated late. When the calls sent to it did
    not rise, the services calling it can only have slowed down because of it: the earliest latency shift
    of a caller service (seen by any vantage point) bounds the dependency's onset."""
    for cand in candidates:
        if cand.kind != "dependency_slowdown":
            continue
        if max(float(f.details.get("calls_ratio", 1.0)) for f in cand.findings) >= 1.3:
            continue
        callers = {c.strip() for f in cand.findings for c in (f.where or "").split(",") if c.strip()}
        onsets = [s.onset for s in symptoms if s.kind == "latency_shift" and s.dimension == "service"
                  and s.subject in callers and s.onset is not None]
        if onsets and (cand.onset is None or min(onsets) < cand.onset):
            cand.chain_onset = min(onsets)
            cand.related.append(f"its callers slowed from {hhmm(min(onsets))}")


def _deploy_candidates(findings: list[Finding], context: AnalysisContext) -> list[Candidate]:
    out = []
    latest = context.incident.start + 2 * context.bucket  # a change after the incident began cannot start it
    for f in findings:
        if f.onset is not None and f.onset > latest:
            continue
        if f.kind == "change_effect" and f.details.get("effect") and f.details.get("change_kind") in ("deploy", "config", "flag", "rollback"):
            cand = Candidate("deploy", "change", f.subject, f.where)
            cand.findings.append(f)
            out.append(cand)
    return out


def _error_candidates(findings: list[Finding], symptoms: list[Finding], context: AnalysisContext) -> list[Candidate]:
    """Errors are a cause of their own only when they lead the latency symptoms and any traffic surge
    by a bucket or more: errors that rise with the latency or the load are one more symptom of it."""
    errors = [f for f in findings if f.kind in ("error_rate", "error_message")]
    latency = [f.onset for f in symptoms if f.kind == "latency_shift" and f.onset]
    latency += [f.onset for f in findings if f.kind == "traffic_spike" and f.onset and (f.share_explained or 0) >= 0.15]
    if not errors:
        return []
    first = min((f for f in errors if f.onset), key=lambda f: f.onset, default=None)  # type: ignore[arg-type, return-value]
    if first is None or (latency and _minutes(first.onset, min(latency)) < context.bucket_s / 60.0):  # type: ignore[arg-type]
        return []
    cand = Candidate("error_burst", first.dimension, first.subject, first.where, specificity=0.7)
    cand.findings.extend(f for f in errors if f.subject == first.subject)
    return [cand]


# --- scoring ---------------------------------------------------------------------------------------


def _score(cand: Candidate, symptoms: list[Finding], context: AnalysisContext) -> tuple[float, list[Finding]]:
    best = cand.best
    strength = best.confidence * _magnitude_factor(best.magnitude)
    onset = cand.onset
    bucket_min = context.bucket_s / 60.0
    symptom_onsets = [s.onset for s in symptoms if s.onset is not None]
    precedence = 1.0
    explained: list[Finding] = []
    if onset is not None and symptom_onsets:
        first_symptom = _symptoms_began(symptoms)
        lag = _minutes(first_symptom, onset) / bucket_min  # buckets after the first symptom
        precedence = 1.0 if lag <= 1.0 else math.exp(-(lag - 1.0) / 3.0)
        explained = [s for s in symptoms if s.onset is not None and _minutes(onset, s.onset) >= -2 * bucket_min]
    elif onset is None:
        precedence = 0.5
    share = max((f.share_explained for f in cand.findings if f.share_explained is not None), default=0.8)
    coverage = (len(explained) / len(symptoms)) if symptoms else 1.0
    corroboration = {1: 0.8, 2: 0.92}.get(len(cand.signals), 1.0)
    score = strength * precedence * corroboration * cand.specificity * (0.6 + 0.4 * max(share, coverage)) * cand.discount
    return max(0.0, min(1.0, score)), explained


def _symptoms_began(symptoms: list[Finding]) -> datetime:
    """When the symptoms began: the earliest onset among the strongest symptoms, so one noisy
    early onset of a minor symptom does not make every cause look late."""
    timed = [s for s in symptoms if s.onset is not None]
    strongest = sorted(timed, key=lambda s: -(s.confidence * _magnitude_factor(s.magnitude)))[:5]
    onsets = sorted(s.onset for s in strongest)  # type: ignore[misc]
    return onsets[len(onsets) // 2] if len(onsets) >= 3 else onsets[0]


def _summary(cand: Candidate, explained: list[Finding]) -> str:
    best = cand.shown
    when = hhmm(cand.onset)
    effect = ""
    lat = [s for s in explained if s.kind == "latency_shift" and s.onset]
    if lat and cand.onset:
        first = min(lat, key=lambda s: s.onset)  # type: ignore[arg-type, return-value]
        gap = _minutes(cand.onset, first.onset)  # type: ignore[arg-type]
        lead = f"{gap:.0f} min before" if gap >= 1 else "as"
        effect = f", {lead} p95 of {first.subject} rose {ratio(first.magnitude)}"
    if cand.kind == "traffic_surge":
        if cand.dimension == "clients":
            f = best
            top_share = 100 * float(f.details.get("top_share", 0))
            largest = "none above 1%" if top_share < 1 else f"the largest {top_share:.0f}%"
            return (f"Traffic to {cand.where} rose {ratio(f.magnitude)} at {when}, spread over "
                    f"{number(f.details.get('contributors'))} clients ({number(f.details.get('new_sources', 0))} new; "
                    f"{number(f.details.get('clients'))} of them make 80% of the extra load, {largest}){effect}.")
        where = ""
        endpoints = [r for r in cand.related if r.startswith("/")]
        if cand.dimension in SOURCE_DIMENSIONS and endpoints:
            where = f" on {', '.join(endpoints[:3])}"
        elif cand.dimension == "endpoint" and cand.related:
            where = f" (with {', '.join(cand.related[:3])})"
        method = best.details.get("method")
        label = f"{method} {cand.subject}" if cand.dimension == "endpoint" and method else cand.subject
        noun = "Traffic from" if cand.dimension in SOURCE_DIMENSIONS else "Traffic on"
        share = f"; {100 * (best.share_explained or 0):.0f}% of the extra load" if best.share_explained is not None else ""
        rise = (f"appeared at {when} (none before; {quantity(best.incident, best.metric)})" if best.details.get("new")
                else f"rose {ratio(best.magnitude)} at {when}")
        return f"{noun} {label}{where} {rise}{share}{effect}."
    if cand.kind == "resource_exhaustion":
        example = best.details.get("example")
        ex = f" (e.g. \"{example[:80]}\")" if example else ""
        return f"{cand.subject.replace('_', ' ').capitalize()} exhaustion on {cand.where} from {when}: evidence {'appeared' if not best.baseline else 'rose ' + ratio(best.magnitude)}{ex}{effect}."
    if cand.kind == "dependency_slowdown":
        ops = best.details.get("operations") or []
        on = f" ({', '.join(ops[:2])})" if ops else ""
        calls = float(best.details.get("calls_ratio", 1.0))
        load = "with no rise in calls" if calls < 1.3 else f"while calls to it rose {ratio(calls)}"
        own = min((f.onset for f in cand.findings if f.onset is not None), default=None)
        if cand.chain_onset is not None and own is not None and cand.chain_onset < own:
            when = f"{when} (when its callers slowed; its own spans show it from {hhmm(own)})"
        return f"Calls to {cand.subject}{on} slowed down at {when}: p95 {number(best.baseline)} -> {quantity(best.incident, 'p95_ms')} ({ratio(best.magnitude)}) {load}{effect}."
    if cand.kind == "deploy":
        d = best.details
        return (f"{d.get('change_kind', 'change').capitalize()} {d.get('subject') or ''} of {d.get('service')} at {when}: p95 "
                f"{number(d.get('p95_before_ms'))} -> {quantity(d.get('p95_after_ms'), 'p95_ms')}, "
                f"5xx {_pct(d.get('error_rate_before'))} -> {_pct(d.get('error_rate_after'))} right after it.")
    return f"Errors on {cand.subject} rose {ratio(best.magnitude)} at {when}{effect or ', with no latency symptom in the data'}."


def _evidence(f: Finding) -> Evidence:
    base = "none" if not f.baseline else quantity(f.baseline, f.metric)
    inc = "n/a" if f.incident is None else quantity(f.incident, f.metric)
    share = f", {100 * f.share_explained:.0f}% of the excess" if f.share_explained is not None and f.kind == "traffic_spike" else ""
    text = (f"{f.kind.replace('_', ' ')} {f.dimension} {f.subject} ({SIGNAL_NAMES.get(f.signal, f.signal)}"
            f"{', ' + str(f.details.get('vantage')) if f.details.get('vantage') else ''}): {f.metric} {base} -> {inc}"
            f" ({growth(f.baseline, f.magnitude)}){share}, onset {hhmm(f.onset)}")
    return Evidence(detector=f.detector, text=text, baseline=f.baseline, incident=f.incident, ratio=round(f.magnitude, 3))


def _explains(explained: list[Finding], limit: int = 8) -> tuple[str, ...]:
    """Labels of the symptoms a cause explains, each (metric, dimension, subject) once, from the most
    complete vantage point that saw it."""
    firsts: dict[tuple[str, str, str], Finding] = {}
    for s in sorted(explained, key=_completeness):
        firsts.setdefault((s.metric, s.dimension, s.subject), s)
    ordered = [s for s in explained if firsts.get((s.metric, s.dimension, s.subject)) is s]
    return tuple(_symptom_label(s) for s in ordered[:limit])


def _symptom_label(f: Finding) -> str:
    metric = {"p95_ms": "p95", "error_rate": "5xx share", "error_events_per_min": "error events"}.get(f.metric, f.metric)
    return f"{metric} of {f.dimension} {f.subject} {ratio(f.magnitude)} from {hhmm(f.onset)}"


# --- ruled out -------------------------------------------------------------------------------------


def _ruled_out_changes(findings: list[Finding], context: AnalysisContext, top: Hypothesis | None) -> list[RuledOut]:
    out = []
    cause = f", with {_cause_phrase(top)}" if top else ""
    for f in findings:
        if f.kind != "change_effect" or f.onset is None or f.onset >= context.incident.end:
            continue
        if f.details.get("change_kind") == "restart":
            continue  # restarts (OOM kills, crash loops) are effects, not tempting explanations
        d = f.details
        label = f"{d.get('change_kind')} {d.get('subject') or ''} of {d.get('service')} at {hhmm(f.onset)}".replace("  ", " ")
        figures = (f"p95 of {d.get('scope')} {quantity(d.get('p95_before_ms'), 'p95_ms')} in the {number(d.get('window_min'))} min before, "
                   f"{quantity(d.get('p95_after_ms'), 'p95_ms')} in the {number(d.get('after_min'))} min after; "
                   f"5xx {_pct(d.get('error_rate_before'))} -> {_pct(d.get('error_rate_after'))}")
        gap = d.get("minutes_before_incident", 0.0) or 0.0
        if top is not None and top.kind == "deploy" and top.subject == f.subject:
            continue
        if not d.get("effect"):
            if not d.get("enough_data"):
                continue
            if top is None:
                reason = f"{label} changed nothing measurable: {figures}."
            else:
                when = f"the symptoms began {gap:.0f} min later{cause}" if gap >= 1 else f"it came {-gap:.0f} min after the incident began and changed nothing"
                reason = f"{label} is not the cause: {figures}; {when}."
        elif gap < 0:
            reason = f"{label} came {-gap:.0f} min after the incident began, so it cannot have started it: {figures}."
        else:
            continue
        out.append(RuledOut(kind=str(d.get("change_kind")), subject=f"{d.get('service')} {d.get('subject') or ''}".strip(),
                            reason=reason, ts=f.onset,
                            evidence=(Evidence("changes", figures, d.get("p95_before_ms"), d.get("p95_after_ms"), f.magnitude),)))
    return out


def _cause_phrase(h: Hypothesis) -> str:
    """A hypothesis named in a sentence: `the traffic surge from 18.194.220.131`."""
    if h.kind == "traffic_surge":
        if h.dimension == "clients":
            return f"the surge of {h.subject}"
        return f"the traffic surge {'on' if h.dimension == 'endpoint' else 'from'} {h.subject}"
    if h.kind == "resource_exhaustion":
        return f"the {h.subject.replace('_', ' ')} exhaustion" + (f" on {h.where}" if h.where else "")
    if h.kind == "dependency_slowdown":
        return f"the slowdown of {h.subject}"
    return f"the {h.kind.replace('_', ' ')} of {h.subject}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ruled_out_network(dataset: Dataset, context: AnalysisContext, findings: list[Finding]) -> list[RuledOut]:
    """The network is ruled out when request time rose while the time outside the backend (request time
    minus upstream time, as a proxy logs them) stayed flat: over all proxied requests, or, when the
    incident touches only part of the traffic, over the endpoints whose latency shifted."""
    req = dataset.requests.filter(pl.col("upstream_ms").is_not_null() & pl.col("duration_ms").is_not_null())
    if req.height < 100:
        return []
    slowed = sorted({f.subject for f in findings if f.kind == "latency_shift" and f.dimension == "endpoint"})
    scopes = [("all proxied requests", req)]
    if slowed:
        label = f"the {len(slowed)} endpoint{'s' if len(slowed) > 1 else ''} that slowed ({', '.join(slowed[:3])}{', ...' if len(slowed) > 3 else ''})"
        scopes.append((label, req.filter(pl.col("endpoint").is_in(slowed))))

    def window(rows, w):
        rows = rows.filter((pl.col("ts") >= w.start) & (pl.col("ts") < w.end))
        if rows.height < 30:
            return None
        return rows.select(
            pl.col("duration_ms").quantile(0.95).alias("total"),
            pl.col("upstream_ms").quantile(0.95).alias("upstream"),
            (pl.col("duration_ms") - pl.col("upstream_ms")).quantile(0.95).alias("gap"),
        ).row(0)

    for label, rows in scopes:
        base, inc = window(rows, context.baseline), window(rows, context.incident)
        if base is None or inc is None:
            continue
        total_b, up_b, gap_b = base
        total_i, up_i, gap_i = inc
        if total_i < 1.2 * total_b or gap_i > max(2 * gap_b, gap_b + 50):
            continue
        figures = (f"{label}: p95 request time {total_b:,.0f} -> {total_i:,.0f} ms, p95 upstream (backend) time {up_b:,.0f} -> {up_i:,.0f} ms, "
                   f"p95 time outside the backend {gap_b:,.0f} -> {gap_i:,.0f} ms")
        return [RuledOut(kind="network", subject="network / client side",
                         reason=f"The network is not the cause: the time went to the backend ({figures}).",
                         evidence=(Evidence("latency", figures, round(gap_b, 1), round(gap_i, 1), round(gap_i / max(gap_b, 0.1), 2)),))]
    return []


def _ruled_out_hosts(dataset: Dataset, context: AnalysisContext, findings: list[Finding]) -> list[RuledOut]:
    """A host-local problem is ruled out when every host of each slowed service slowed alike (p95 up at
    least x1.2 on each), over all those services at once: one entry, the per-host figures as evidence."""
    services = {f.subject for f in findings if f.kind == "latency_shift" and f.dimension == "service"}
    host_shifts = {f.where for f in findings if f.kind == "latency_shift" and f.dimension == "host"}
    candidates = sorted(services - host_shifts)
    if not candidates:
        return []
    per = (
        dataset.requests.filter(pl.col("service").is_in(candidates) & pl.col("host").is_not_null() & pl.col("duration_ms").is_not_null())
        .with_columns(pl.when(pl.col("ts") >= context.incident.start).then(pl.lit("i")).otherwise(pl.lit("b")).alias("w"))
        .group_by("service", "host", "w").agg(pl.col("duration_ms").quantile(0.95).alias("p95"))
    )
    if per.height == 0:
        return []
    per = per.pivot(on="w", index=["service", "host"], values="p95").sort("service", "host")
    if "i" not in per.columns or "b" not in per.columns:
        return []
    alike: list[tuple[str, list[tuple[str, float, float]]]] = []
    for (service,), hosts in per.drop_nulls(["b", "i"]).group_by(["service"], maintain_order=True):
        rows = [(str(h), float(b), float(i)) for h, b, i in hosts.select("host", "b", "i").iter_rows()]
        if len(rows) >= 2 and min(i / b for _, b, i in rows if b > 0) >= 1.2:
            alike.append((str(service), rows))
    if not alike:
        return []
    summary = "; ".join(
        f"{service}: {len(rows)} hosts, p95 {ratio(min(i / b for _, b, i in rows))} to {ratio(max(i / b for _, b, i in rows))}"
        for service, rows in alike
    )
    figures = "; ".join(f"{h} p95 {b:.0f} -> {i:.0f} ms" for _, rows in alike for h, b, i in rows)
    ratios = [i / b for _, rows in alike for _, b, i in rows]
    subject = "a single host of " + ", ".join(service for service, _ in alike)
    return [RuledOut(kind="host", subject=subject,
                     reason=f"Not a host-local problem: every host of the services that slowed degraded alike ({summary}).",
                     evidence=(Evidence("latency", figures, None, None, round(sum(ratios) / len(ratios), 2)),))]


# --- report ----------------------------------------------------------------------------------------


def build_report(dataset: Dataset, context: AnalysisContext | None, findings: Iterable[Finding], command: str | None = None) -> Report:
    """Rank the causes the findings point to and assemble the report."""
    with times_for(context):
        return _build_report(dataset, context, list(findings), command)


def _build_report(dataset: Dataset, context: AnalysisContext | None, findings: list[Finding], command: str | None) -> Report:
    inputs = tuple(dataset.inputs)
    if context is None:
        return Report(SCHEMA_VERSION, __version__, inputs, None, False,
                      "No timed data: nothing to analyse.", findings=tuple(findings), command=command)
    symptoms = sorted([f for f in findings if f.kind in SYMPTOM_KINDS], key=lambda f: (f.onset or context.span.end, -f.magnitude))
    candidates = (
        _traffic_candidates(findings) + _resource_candidates(findings) + _dependency_candidates(findings)
        + _deploy_candidates(findings, context) + _error_candidates(findings, symptoms, context)
    )
    _link_callers(candidates, findings)
    _explain_loaded_dependencies(candidates)
    _bound_dependency_onsets(candidates, symptoms)
    scored = []
    for cand in candidates:
        score, explained = _score(cand, symptoms, context)
        scored.append((score, cand, explained))
    # The first anomaly of a causal chain outranks its effects: a candidate that starts half a bucket
    # or more after another comparably strong one (CPU saturation two minutes after a traffic surge) is
    # discounted as its likely effect. (Onsets are estimated to the second, so half a bucket is a lag.)
    raw = [(score, cand) for score, cand, _ in scored]
    for i, (score, cand, explained) in enumerate(scored):
        for other_score, other in raw:
            if other is cand or not (other.onset and cand.onset):
                continue
            if other_score >= 0.5 * score and _minutes(other.onset, cand.onset) >= 0.5 * context.bucket_s / 60.0:
                scored[i] = (score * 0.6, cand, [*explained])
                cand.discount = 0.6
                break
    scored.sort(key=lambda x: (-x[0], x[1].kind, x[1].subject))
    hypotheses = []
    for rank, (score, cand, explained) in enumerate(scored, start=1):
        hypotheses.append(
            Hypothesis(
                rank=rank, kind=cand.kind, dimension=cand.dimension, subject=cand.subject, where=cand.where,
                score=round(score, 3), onset=cand.onset, summary=_summary(cand, explained),
                explains=_explains(explained),
                evidence=tuple(_evidence(f) for f in sorted(cand.findings, key=lambda f: (_completeness(f), -f.confidence, -f.magnitude))[:6]),
                findings=tuple(cand.findings),
            )
        )
    incident = bool(hypotheses) and hypotheses[0].score >= INCIDENT_THRESHOLD
    top = hypotheses[0] if incident else None
    ruled_out = tuple(_ruled_out_changes(findings, context, top) + (_ruled_out_network(dataset, context, findings) + _ruled_out_hosts(dataset, context, findings) if incident else []))
    largest = tuple(sorted((f for f in findings if f.kind != "change_effect"), key=lambda f: (-f.confidence * _magnitude_factor(f.magnitude), f.subject))[:5])
    if top is not None:
        headline = top.summary
    else:
        worst = f" Largest deviation: {_evidence(largest[0]).text}." if largest else ""
        headline = f"No significant incident: no cause stands out above the reporting threshold.{worst}"
    timeline = _timeline(findings, hypotheses[:3] if incident else [], symptoms if incident else [], dataset)
    return Report(
        schema_version=SCHEMA_VERSION, tool_version=__version__, inputs=inputs, context=context,
        incident_detected=incident, headline=headline, hypotheses=tuple(hypotheses), ruled_out=ruled_out,
        findings=tuple(findings), timeline=timeline, largest_deviations=largest, command=command,
    )


def _timeline(findings: list[Finding], hypotheses: list[Hypothesis], symptoms: list[Finding], dataset: Dataset) -> tuple[TimelineEntry, ...]:
    entries = []
    for row in dataset.changes.sort("ts").iter_rows(named=True):
        entries.append(TimelineEntry(row["ts"], "change", f"{row['kind']} {row['service'] or ''} {row['subject'] or ''}".replace("  ", " ").strip(),
                                     f"{row['origin']}:{row['line']}" if row["origin"] else None))
    for h in hypotheses:
        if h.onset:
            entries.append(TimelineEntry(h.onset, "cause", f"#{h.rank} {h.kind.replace('_', ' ')}: {h.subject}", None))
    seen = set()
    for s in symptoms:
        key = (s.kind, s.dimension, s.subject)
        if s.onset and key not in seen and len(seen) < 8:
            seen.add(key)
            entries.append(TimelineEntry(s.onset, "symptom", _symptom_label(s), s.details.get("vantage")))
    order = {"change": 0, "cause": 1, "symptom": 2, "recovery": 3}
    return tuple(sorted(entries, key=lambda e: (e.ts, order[e.what], e.text)))
