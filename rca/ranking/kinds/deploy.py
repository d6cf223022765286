"""`deploy`: a change (deploy, config, flag, rollback) whose before/after comparison shows a degradation
right after it, on its service or on one of its routes, or whose new release served worse than the old
one in the same minutes (the canary split, `rca.detectors.changes`); its summary quotes the strongest.

Candidates: one per `change_effect` finding with an effect, at most `deploy_max_lag_buckets` (or
`deploy_max_lag_min`) after the symptoms began (a later change cannot have started them). Changes without an effect are ruled out
(`rca.ranking.ruled_out`).
"""

from __future__ import annotations

from datetime import timedelta

from rca.figures import hhmm, number, quantity
from rca.findings import ChangeEffectDetails
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate
from rca.ranking.prose import canary_clause, pct
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.scoring import symptoms_began
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
        # A change after the symptoms began cannot have started them. When they began is dated by the
        # symptoms themselves (the incident window may open earlier, on a drift in load), an estimate often
        # a bucket or two early; the detector has checked that what the change moved was not degraded
        # just before it.
        began = symptoms_began(seen.symptoms) if any(s.onset for s in seen.symptoms) else seen.context.incident.start
        latest = max(began, seen.context.incident.start) + max(TUNING.deploy_max_lag_buckets * seen.context.bucket,
                                                                timedelta(minutes=TUNING.deploy_max_lag_min))
        tolerance = max(TUNING.explained_error_change_buckets * seen.context.bucket_s / 60.0, TUNING.explained_error_change_min)
        for f in seen.findings:
            if f.onset is not None and f.onset > latest:
                continue
            if (f.kind == "change_effect" and isinstance(f.details, ChangeEffectDetails) and f.details.effect
                    and f.details.change_kind in CAUSING_CHANGES):
                cand = Candidate(self.name, "change", f.subject, f.where, onset_tolerance_min=tolerance)
                cand.findings.append(f)
                out.append(cand)
        return out

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        d = cand.shown.details
        assert isinstance(d, ChangeEffectDetails)
        head = f"{d.change_kind.capitalize()} {d.subject or ''} of {d.service or 'an unnamed service'} at {hhmm(cand.onset)}"
        if d.canary_effect and d.canary:
            return f"{head}: in the same minutes, {canary_clause(d.canary)}."
        m = d.moved_figures
        if m is not None and not str(m["scope"]).startswith("all of"):
            return (f"{head}: {m['scope']} p95 {number(m['p95_old_ms'])} -> {quantity(m['p95_new_ms'], 'p95_ms')}, "
                    f"5xx {pct(m['error_rate_old'])} -> {pct(m['error_rate_new'])} right after it "
                    f"(all of {d.scope}: p95 {number(d.p95_before_ms)} -> {quantity(d.p95_after_ms, 'p95_ms')}).")
        return (f"{head}: p95 {number(d.p95_before_ms)} -> {quantity(d.p95_after_ms, 'p95_ms')}, "
                f"5xx {pct(d.error_rate_before)} -> {pct(d.error_rate_after)} right after it.")

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        kind, _, rest = hypothesis.subject.partition(" ")
        noun = {"flag": "flag change", "config": "configuration change", "rollback": "rollback"}.get(kind, "deploy")
        return f"the {noun} {rest}" if rest else f"the {noun}"
