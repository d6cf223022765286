"""`error_burst`: errors that lead the latency symptoms, with no other cause before them.

Candidate: the subject of the earliest error finding, when it leads every latency symptom and any traffic
surge by `error_lead_buckets` or more; errors that rise with the latency or the load are one more
symptom of it.
"""

from __future__ import annotations

import re

from rca.figures import hhmm, number, ratio
from rca.findings import TemplateDetails
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate, minutes_between
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.tuning import TUNING

QUOTE_CHARS = 120  # an error line quoted in the headline, cut beyond this


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
        # the error lines themselves, so the sentence can quote them
        cand.findings.extend(f for f in errors if f.kind == "error_message" and f.subject != first.subject
                             and _quotable(f) and f.onset and f.onset >= first.onset)  # type: ignore[operator]
        return [cand]

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        effect = effect_clause(cand, explained) or ", with no latency symptom in the data"
        quote = _quote(cand)
        shown = cand.shown
        rise = f"rose {ratio(shown.magnitude)}" if shown.baseline else "appeared"  # a ratio to none is no figure
        return f"Errors on {cand.subject} {rise} at {hhmm(cand.onset)}{quote}{effect}."

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the error burst of {hypothesis.subject}"


def _quotable(f: Finding) -> bool:
    """A template with words of its own (not only wildcards and punctuation) and a line to show."""
    words = re.sub(r"<\*>|[^A-Za-z]+", " ", f.subject).split()
    return bool(words) and isinstance(f.details, TemplateDetails) and bool(f.details.example.strip())


def _quote(cand: Candidate) -> str:
    """`: 147 lines like "ERROR IN CONTACTING RM"`, from the commonest error template of the burst."""
    messages = [f for f in cand.findings if f.kind == "error_message" and isinstance(f.details, TemplateDetails)]
    if not messages:
        return ""
    top = max(messages, key=lambda f: (getattr(f.details, "events_after", 0), f.subject))
    details = top.details
    assert isinstance(details, TemplateDetails)
    line = " ".join(details.example.split())
    line = line if len(line) <= QUOTE_CHARS else line[: QUOTE_CHARS - 3].rstrip() + "..."
    new = " new" if details.events_before == 0 else ""
    return f': {number(details.events_after)}{new} lines like "{line}"'
