"""Rule-outs: tempting explanations the data contradicts, each with the figures that contradict it.

- a change (deploy, config, flag, rollback) that changed nothing measurable, or came after the incident began;
- the network, when request time rose while the time outside the backend stayed flat (`network_split`);
- a host-local problem, when every host of each slowed service slowed alike (`host_spread`).
Rule-outs read findings only; the figures come from the detectors (detectors/locality.py).
"""

from __future__ import annotations

from typing import Any

from rca.figures import hhmm, number, quantity, ratio
from rca.findings import ChangeEffectDetails, HostSpreadDetails, NetworkSplitDetails
from rca.model import AnalysisContext, Evidence, Finding, Hypothesis, RuledOut
from rca.ranking.prose import canary_clause, pct
from rca.ranking.registry import kind_named


def ruled_out_changes(findings: list[Finding], context: AnalysisContext, top: Hypothesis | None) -> list[RuledOut]:
    """Changes the data clears: no measurable effect, or too late to have started the incident."""
    out = []
    cause = f", with {kind_named(top.kind).cause_phrase(top)}" if top else ""
    for f in findings:
        if f.kind != "change_effect" or f.onset is None or f.onset >= context.incident.end:
            continue
        d = f.details
        if not isinstance(d, ChangeEffectDetails) or d.change_kind == "restart":
            continue  # restarts (OOM kills, crash loops) are effects, not tempting explanations
        label = f"{d.change_kind} {d.subject or ''} of {d.service} at {hhmm(f.onset)}".replace("  ", " ")
        figures = (f"p95 of {d.scope} {quantity(d.p95_before_ms, 'p95_ms')} in the {number(d.window_min)} min before, "
                   f"{quantity(d.p95_after_ms, 'p95_ms')} in the {number(d.after_min)} min after; "
                   f"5xx {pct(d.error_rate_before)} -> {pct(d.error_rate_after)}")
        evidence = Evidence("changes", figures, d.p95_before_ms, d.p95_after_ms, f.magnitude)
        if d.canary is not None and d.canary_effect is False:
            # the canary split decided (the same minutes, so load and time of day hit both releases alike):
            # its figures first, the before/after ones as what a responder sees on a dashboard
            evidence = _canary_evidence(d.canary)
            figures = f"{evidence.text}; before and after it, {figures}"
        gap = d.minutes_before_incident or 0.0
        if top is not None and top.kind == "deploy" and top.subject == f.subject:
            continue
        if not d.effect:
            if not d.enough_data:
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
        out.append(RuledOut(kind=str(d.change_kind), subject=f"{d.service} {d.subject or ''}".strip(),
                            reason=reason, ts=f.onset,
                            evidence=(evidence,)))
    return out


def _canary_evidence(c: dict[str, Any]) -> Evidence:
    """The canary split's figures: the new release's requests against the old one's in the same minutes."""
    old, new = c["p95_old_ms"], c["p95_new_ms"]
    return Evidence("changes", f"in the same minutes after it, {canary_clause(c)}", old, new,
                    round(new / old, 3) if old and new is not None else 1.0)


def ruled_out_network(findings: list[Finding]) -> list[RuledOut]:
    """The network is ruled out when the network detector found that request time rose while the time
    outside the backend stayed flat (`network_split`)."""
    for f in findings:
        if f.kind != "network_split" or not isinstance(f.details, NetworkSplitDetails):
            continue
        d = f.details
        figures = (f"{f.subject}: p95 request time {d.total_before_ms:,.0f} -> {d.total_after_ms:,.0f} ms, "
                   f"p95 upstream (backend) time {d.upstream_before_ms:,.0f} -> {d.upstream_after_ms:,.0f} ms, "
                   f"p95 time outside the backend {d.outside_before_ms:,.0f} -> {d.outside_after_ms:,.0f} ms")
        ratio_outside = round(d.outside_after_ms / max(d.outside_before_ms, 0.1), 2)
        return [RuledOut(kind="network", subject="network / client side",
                         reason=f"The network is not the cause: the time went to the backend ({figures}).",
                         evidence=(Evidence("latency", figures, round(d.outside_before_ms, 1), round(d.outside_after_ms, 1), ratio_outside),))]
    return []


def ruled_out_hosts(findings: list[Finding]) -> list[RuledOut]:
    """A host-local problem is ruled out when every host of each slowed service slowed alike
    (`host_spread`), over all those services at once: one entry, the per-host figures as evidence. A
    service with a latency shift of one of its hosts is left out."""
    services = {f.subject for f in findings if f.kind == "latency_shift" and f.dimension == "service"}
    host_shifts = {f.where for f in findings if f.kind == "latency_shift" and f.dimension == "host"}
    slowed = services - host_shifts
    alike = sorted((f.subject, f.details.hosts) for f in findings
                   if f.kind == "host_spread" and f.subject in slowed and isinstance(f.details, HostSpreadDetails))
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
