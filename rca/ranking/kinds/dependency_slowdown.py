"""`dependency_slowdown`: a downstream service or operation whose own (self) time shifted (traces).

Candidates: one per dependency with a `self_time_shift`, plus its `fanout_growth` findings. A dependency
whose calls rose (`calls_rose`) is likely slowed by that load (lower specificity); one that itself waits
on another slowed dependency is slow because of it (users -> postgres), and the chain's onset moves to
the caller's. Adjustments: a loaded dependency is discounted when a traffic surge explains its load; a
dependency whose calls did not rise takes the onset of the first caller service that slowed (spans are
sampled, so its own onset is estimated late).
"""

from __future__ import annotations

from rca.figures import hhmm, number, quantity, ratio
from rca.findings import CallsDetails, OperationCallsDetails, SelfTimeDetails, calls_ratio_of
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.surge_effects import explain_by_surge, first_surge, surge_phrase
from rca.ranking.tuning import TUNING


def _loaded(details: SelfTimeDetails) -> bool:
    """Did the calls sent to the dependency rise (in total, or per request)?"""
    rose = TUNING.calls_rose
    return details.calls_ratio >= rose or details.calls_per_request_after >= rose * max(details.calls_per_request_before, 1e-9)


def _max_calls_ratio(cand: Candidate) -> float:
    return max(calls_ratio_of(f.details) for f in cand.findings)


@register_kind
class DependencySlowdown(HypothesisKind):
    name = "dependency_slowdown"
    finding_kinds = ("self_time_shift", "fanout_growth")
    suggestions = (
        "Add timeouts, circuit breakers and bulkheads around the slow dependency.",
        "Investigate the dependency's own load (queries, locks, CPU) at the onset time.",
    )
    order = 30

    def candidates(self, seen: Observations) -> list[Candidate]:
        """A dependency whose own time shifted. When the calls sent to it grew (more calls per request, or
        a caller sending more), the slowdown is likely an effect of that load: lower specificity."""
        out: dict[str, Candidate] = {}
        for f in seen.findings:
            if f.kind != "self_time_shift" or not isinstance(f.details, SelfTimeDetails):
                continue
            target = str(f.details.dependency or f.subject)
            cand = out.setdefault(target, Candidate(self.name, "operation", target, f.where))
            cand.findings.append(f)
            if _loaded(f.details):
                cand.specificity = TUNING.loaded_dependency_specificity
        # A dependency that itself calls another slowed dependency is slow because of it (users -> postgres).
        for name, cand in out.items():
            for other_name, other in out.items():
                callers = {c.strip() for c in (other.best.where or "").split(",")}
                if other_name != name and name in callers:
                    cand.specificity = min(cand.specificity, TUNING.waiting_dependency_specificity)
                    cand.related.append(f"waits on {other_name}")
                    # A caller cannot slow down from its dependency before the dependency does: when the
                    # caller's shift is seen first, the dependency's own onset is a late estimate (sparse
                    # spans), and the chain began with the caller's.
                    caller_onset = cand.best.onset
                    if caller_onset is not None and (other.onset is None or caller_onset < other.onset):
                        other.chain_onset = caller_onset
                        other.related.append(f"slows {name} from {hhmm(caller_onset)}")
        for f in seen.findings:
            if f.kind == "fanout_growth" and isinstance(f.details, CallsDetails) and f.details.dependency in out:
                out[f.details.dependency].findings.append(f)
        return list(out.values())

    def adjust(self, candidates: list[Candidate], seen: Observations) -> None:
        self._explain_by_surge(candidates)
        self._bound_onsets(candidates, seen.symptoms)
        explain_by_surge(candidates, self.name, seen)  # after the onsets: a bounded onset is the one to compare

    def _explain_by_surge(self, candidates: list[Candidate]) -> None:
        """A dependency that slowed while the calls sent to it rose with a traffic surge is an effect of that
        load, not a cause of its own: the surge explains it, so the dependency is discounted."""
        surge = first_surge(candidates)
        if surge is None:
            return
        for cand in candidates:
            if cand.kind != self.name:
                continue
            calls = _max_calls_ratio(cand)
            if calls >= TUNING.calls_rose:
                cand.discount = min(cand.discount, TUNING.explained_by_surge_discount)
                cand.related.append(f"calls rose x{calls:.1f} with the traffic surge")
                cand.cause = surge
                cand.effect_of = f"the calls it serves rose with {surge_phrase(surge)}: likely that surge's load"


    def _bound_onsets(self, candidates: list[Candidate], symptoms: list[Finding]) -> None:
        """Spans are sampled, so a dependency's own onset can be estimated late. When the calls sent to it
        did not rise, the services calling it can only have slowed down because of it: the earliest latency
        shift of a caller service (seen by any vantage point) bounds the dependency's onset."""
        for cand in candidates:
            if cand.kind != self.name or _max_calls_ratio(cand) >= TUNING.calls_rose:
                continue
            callers = {c.strip() for f in cand.findings for c in (f.where or "").split(",") if c.strip()}
            onsets = [s.onset for s in symptoms if s.kind == "latency_shift" and s.dimension == "service"
                      and s.subject in callers and s.onset is not None]
            if onsets and (cand.onset is None or min(onsets) < cand.onset):
                cand.chain_onset = min(onsets)
                cand.related.append(f"its callers slowed from {hhmm(min(onsets))}")

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        best = cand.shown
        when = hhmm(cand.onset)
        ops = best.details.operations if isinstance(best.details, OperationCallsDetails) else ()
        on = f" ({', '.join(ops[:2])})" if ops else ""
        calls = calls_ratio_of(best.details)
        load = "with no rise in calls" if calls < TUNING.calls_rose else f"while calls to it rose {ratio(calls)}"
        own = min((f.onset for f in cand.findings if f.onset is not None), default=None)
        if cand.chain_onset is not None and own is not None and cand.chain_onset < own:
            when = f"{when} (when its callers slowed; its own spans show it from {hhmm(own)})"
        return (f"Calls to {cand.subject}{on} slowed down at {when}: p95 {number(best.baseline)} -> "
                f"{quantity(best.incident, 'p95_ms')} ({ratio(best.magnitude)}) {load}{effect_clause(cand, explained)}.")

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the slowdown of {hypothesis.subject}"
