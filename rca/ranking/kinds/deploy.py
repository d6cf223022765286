"""`deploy`: a change (deploy, config, flag, rollback) whose before/after comparison shows a degradation
right after it.

Candidates: one per `change_effect` finding with an effect, at most `deploy_max_lag_buckets` after the
incident began (a later change cannot have started it). Changes without an effect are ruled out
(`rca.ranking.ruled_out`).
"""

from __future__ import annotations

from rca.figures import hhmm, number, quantity
from rca.findings import ChangeEffectDetails
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate
from rca.ranking.prose import pct
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.tuning import TUNING

# Change kinds that can cause an incident; restarts are effects (OOM kills, crash loops).
CAUSING_CHANGES = ("deploy", "config", "flag", "rollback")


@register_kind
class Deploy(HypothesisKind):
    name = "deploy"
    finding_kinds = ("change_effect",)
    suggestions = (
        "Roll back or fix the release; gate future releases with `rca compare` against a baseline.",
        "Use canary releases with automatic rollback on latency and error regressions.",
    )
    order = 40

    def candidates(self, seen: Observations) -> list[Candidate]:
        out = []
        latest = seen.context.incident.start + TUNING.deploy_max_lag_buckets * seen.context.bucket
        for f in seen.findings:
            if f.onset is not None and f.onset > latest:
                continue
            if (f.kind == "change_effect" and isinstance(f.details, ChangeEffectDetails) and f.details.effect
                    and f.details.change_kind in CAUSING_CHANGES):
                cand = Candidate(self.name, "change", f.subject, f.where)
                cand.findings.append(f)
                out.append(cand)
        return out

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        d = cand.shown.details
        assert isinstance(d, ChangeEffectDetails)
        return (f"{d.change_kind.capitalize()} {d.subject or ''} of {d.service} at {hhmm(cand.onset)}: p95 "
                f"{number(d.p95_before_ms)} -> {quantity(d.p95_after_ms, 'p95_ms')}, "
                f"5xx {pct(d.error_rate_before)} -> {pct(d.error_rate_after)} right after it.")

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the deploy of {hypothesis.subject}"
