"""`resource_exhaustion`: a burst of memory, CPU, cache, pool or disk evidence (logs or metrics).

Candidates: one per resource named by `resource_saturation` findings, located where its largest excess is.
"""

from __future__ import annotations

from rca.figures import hhmm, ratio
from rca.findings import ResourceEventsDetails
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate
from rca.ranking.kinds.service_fault import discount_without_effect
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind


@register_kind
class ResourceExhaustion(HypothesisKind):
    name = "resource_exhaustion"
    finding_kinds = ("resource_saturation",)
    suggestions = (
        "Size the exhausted resource for peak load (memory limits, cache capacity, pool size) and alert at 80%.",
        "Add horizontal capacity so one node's exhaustion does not take the service down.",
        "Export the resource's utilization as a metric and alert on its trend.",
    )
    order = 20

    def candidates(self, seen: Observations) -> list[Candidate]:
        out: dict[str, Candidate] = {}
        for f in seen.findings:
            if f.kind != "resource_saturation":
                continue
            cand = out.setdefault(f.subject, Candidate(self.name, "resource", f.subject, f.where))
            cand.findings.append(f)
        for cand in out.values():
            cand.where = max(cand.findings, key=lambda f: f.excess or 0).where
        return list(out.values())

    def adjust(self, candidates: list[Candidate], seen: Observations) -> None:
        discount_without_effect(candidates, self.name, lambda cand: cand.where, seen)

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        best = cand.shown
        example = best.details.example if isinstance(best.details, ResourceEventsDetails) else None
        ex = f" (e.g. \"{example[:80]}\")" if example else ""
        rise = "appeared" if not best.baseline else "rose " + ratio(best.magnitude)
        return (f"{cand.subject.replace('_', ' ').capitalize()} exhaustion on {cand.where} from {hhmm(cand.onset)}: "
                f"evidence {rise}{ex}{effect_clause(cand, explained)}.")

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the {hypothesis.subject.replace('_', ' ')} exhaustion" + (f" on {hypothesis.where}" if hypothesis.where else "")
