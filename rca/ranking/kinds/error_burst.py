"""`error_burst`: errors that lead the latency symptoms, with no other cause before them.

Candidate: the subject of the earliest error finding, when it leads every latency symptom and any traffic
surge by `error_lead_buckets` or more; errors that rise with the latency or the load are one more
symptom of it.
"""

from __future__ import annotations

from rca.figures import hhmm, ratio
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate, minutes_between
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.tuning import TUNING


@register_kind
class ErrorBurst(HypothesisKind):
    name = "error_burst"
    finding_kinds = ("error_rate", "error_message")
    suggestions = ("Find the first failing component in the error templates and traces; add alerting on its error rate.",)
    order = 50

    def candidates(self, seen: Observations) -> list[Candidate]:
        errors = [f for f in seen.findings if f.kind in self.finding_kinds]
        latency = [f.onset for f in seen.symptoms if f.kind == "latency_shift" and f.onset]
        latency += [f.onset for f in seen.findings if f.kind == "traffic_spike" and f.onset
                    and (f.share_explained or 0) >= TUNING.surge_min_share]
        if not errors:
            return []
        first = min((f for f in errors if f.onset), key=lambda f: f.onset, default=None)  # type: ignore[arg-type, return-value]
        lead_min = TUNING.error_lead_buckets * seen.context.bucket_s / 60.0
        if first is None or (latency and minutes_between(first.onset, min(latency)) < lead_min):  # type: ignore[arg-type]
            return []
        cand = Candidate(self.name, first.dimension, first.subject, first.where, specificity=TUNING.error_burst_specificity)
        cand.findings.extend(f for f in errors if f.subject == first.subject)
        return [cand]

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        effect = effect_clause(cand, explained) or ", with no latency symptom in the data"
        return f"Errors on {cand.subject} rose {ratio(cand.shown.magnitude)} at {hhmm(cand.onset)}{effect}."

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the error burst of {hypothesis.subject}"
