"""`traffic_surge`: extra load from a source, an endpoint, or many clients at once.

Candidates: a source (IP, /24, user-agent family, API client) or endpoint whose share of the extra load
is well above its share of normal load (lift >= `surge_min_lift`, share >= `surge_min_share`); the IP,
its /24 and its user agent are merged when they describe the same caller; endpoint spikes are folded
into a dominant source, or into one endpoint candidate. When no source or endpoint carries most of the
extra load, the surge of a whole service spread over many clients (`broad_surge_min_clients`).
Adjustment: traces that show which caller drives a dependency's extra calls corroborate that caller.
"""

from __future__ import annotations

from rca.figures import hhmm, number, quantity, ratio
from rca.findings import ServiceTrafficDetails, TrafficSpikeDetails
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate, completeness, minutes_between
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.tuning import TUNING

# Dimensions that name who sends the requests.
SOURCE_DIMENSIONS = ("source", "source_net", "user_agent", "client")


def _top_share(cand: Candidate) -> float:
    return max(f.share_explained or 0 for f in cand.findings)


def _same_actor(a: Candidate, b: Candidate) -> bool:
    """Do two source candidates describe the same caller (their incident series overlap in time and size)?"""
    fa, fb = a.best, b.best
    if fa.onset and fb.onset and abs(minutes_between(fa.onset, fb.onset)) > TUNING.same_actor_max_gap_min:
        return False
    ea = sum(f.excess or 0 for f in a.findings if f.signal == fa.signal)
    eb = sum(f.excess or 0 for f in b.findings if f.signal == fa.signal) or (fb.excess or 0)
    return ea > 0 and eb > 0 and TUNING.same_actor_excess_low <= eb / ea <= TUNING.same_actor_excess_high


@register_kind
class TrafficSurge(HypothesisKind):
    name = "traffic_surge"
    finding_kinds = ("traffic_spike",)
    suggestions = (
        "Rate-limit or throttle the source that surged (per client / API key quotas).",
        "Add capacity or autoscaling for the endpoints it hit; queue expensive work asynchronously.",
        "Alert on per-source and per-endpoint request rates, not only on totals.",
    )
    order = 10

    def candidates(self, seen: Observations) -> list[Candidate]:
        t = TUNING
        spikes = [f for f in seen.findings if f.kind == "traffic_spike"]
        out: dict[tuple[str, str], Candidate] = {}
        for f in spikes:
            if f.dimension not in SOURCE_DIMENSIONS and f.dimension != "endpoint":
                continue
            lift = f.details.lift if isinstance(f.details, TrafficSpikeDetails) else 1.0
            share = f.share_explained or 0.0
            # proportional growth (every browser family, every endpoint a bit) is not a cause
            if lift < t.surge_min_lift or share < t.surge_min_share:
                continue
            key = ("source" if f.dimension in SOURCE_DIMENSIONS else "endpoint", f.subject)
            cand = out.setdefault(key, Candidate(self.name, f.dimension, f.subject, None))
            cand.findings.append(f)
            cand.specificity = max(cand.specificity, min(1.0, t.surge_specificity_base + share))
        # one source hypothesis per actor: the IP, its /24 and its user-agent family are the same caller
        sources = sorted((c for k, c in out.items() if k[0] == "source"), key=lambda c: -_top_share(c))
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
            if merged and _top_share(merged[0]) >= t.dominant_share:
                merged[0].related.extend([top.subject, *top.related])
                merged[0].findings.extend(top.findings)
            else:
                merged.append(top)
        # No source stands out and no endpoint carries most of the extra load: a broad surge over many clients.
        concentrated = any(_top_share(c) >= t.dominant_share for c in merged)
        if not concentrated:
            broad = [f for f in spikes if f.dimension == "service" and isinstance(f.details, ServiceTrafficDetails)
                     and f.details.clients >= t.broad_surge_min_clients]
            if broad:
                best = min(broad, key=lambda f: (completeness(f), -(f.excess or 0)))
                details = best.details
                assert isinstance(details, ServiceTrafficDetails)
                cand = Candidate(self.name, "clients", f"{number(details.contributors)} clients", best.where,
                                 specificity=t.broad_surge_specificity)
                cand.findings.extend(broad)
                merged.append(cand)
        return merged

    def adjust(self, candidates: list[Candidate], seen: Observations) -> None:
        """Traces that show which caller drives a dependency's extra load corroborate that caller's surge."""
        for f in seen.findings:
            if f.kind != "caller_share":
                continue
            for cand in candidates:
                if cand.kind == self.name and (cand.subject == f.subject or f"source {f.subject}" in cand.related):
                    cand.findings.append(f)
                    cand.related.append(f"drives {f.share_explained:.0%} of the extra calls to {f.where}")

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        best = cand.shown
        when = hhmm(cand.onset)
        effect = effect_clause(cand, explained)
        if cand.dimension == "clients":
            d = best.details
            assert isinstance(d, ServiceTrafficDetails)
            top_share = 100 * float(d.top_share)
            largest = "none above 1%" if top_share < 1 else f"the largest {top_share:.0f}%"
            return (f"Traffic to {cand.where} rose {ratio(best.magnitude)} at {when}, spread over "
                    f"{number(d.contributors)} clients ({number(d.new_sources)} new; "
                    f"{number(d.clients)} of them make 80% of the extra load, {largest}){effect}.")
        where = ""
        endpoints = [r for r in cand.related if r.startswith("/")]
        if cand.dimension in SOURCE_DIMENSIONS and endpoints:
            where = f" on {', '.join(endpoints[:3])}"
        elif cand.dimension == "endpoint" and cand.related:
            where = f" (with {', '.join(cand.related[:3])})"
        spike = best.details if isinstance(best.details, TrafficSpikeDetails) else None
        method = spike.method if spike else None
        label = f"{method} {cand.subject}" if cand.dimension == "endpoint" and method else cand.subject
        noun = "Traffic from" if cand.dimension in SOURCE_DIMENSIONS else "Traffic on"
        share = f"; {100 * (best.share_explained or 0):.0f}% of the extra load" if best.share_explained is not None else ""
        rise = (f"appeared at {when} (none before; {quantity(best.incident, best.metric)})" if spike and spike.new
                else f"rose {ratio(best.magnitude)} at {when}")
        return f"{noun} {label}{where} {rise}{share}{effect}."

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        if hypothesis.dimension == "clients":
            return f"the surge of {hypothesis.subject}"
        return f"the traffic surge {'on' if hypothesis.dimension == 'endpoint' else 'from'} {hypothesis.subject}"
