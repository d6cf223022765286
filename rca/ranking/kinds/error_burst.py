"""`error_burst`: errors that lead the latency symptoms, with no other cause before them.

Candidate: the subject of the earliest error finding, when it leads every latency symptom and any traffic
surge by `error_lead_buckets` or more; errors that rise with the latency or the load are one more
symptom of it. Errors that a change or a host's resource exhaustion explains are discounted (`adjust`).
"""

from __future__ import annotations

import re

from rca.figures import hhmm, number, ratio
from rca.findings import ChangeEffectDetails, FindingDetails, TemplateDetails
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate, minutes_between
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind
from rca.ranking.tuning import TUNING

QUOTE_CHARS = 120  # an error line quoted in the headline, cut beyond this


def _raised_errors(details: FindingDetails) -> bool:
    """Did the change's strongest comparison show its 5xx share at least doubled, by 2 points or more?"""
    figures = details.moved_figures if isinstance(details, ChangeEffectDetails) else None
    if not figures or figures.get("error_rate_old") is None or figures.get("error_rate_new") is None:
        return False
    old, new = float(figures["error_rate_old"]), float(figures["error_rate_new"])
    return new - old >= 0.02 and new >= 2 * max(old, 1e-4)


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

    def adjust(self, candidates: list[Candidate], seen: Observations) -> None:
        """Errors that begin with a change that raised errors on the same service, or on a host whose own
        resource exhaustion began no later, are that cause's symptom: discounted, the cause named.
        (A change's time is exact, the errors' onset an estimate up to a bucket or two early.)"""
        t = TUNING
        window_min = t.deploy_max_lag_buckets * seen.context.bucket_s / 60.0
        # the change's own before-window shows no such errors, so an error onset estimated a few buckets
        # before it (sparse error events) is still its effect
        change_min = max(t.explained_error_change_buckets * seen.context.bucket_s / 60.0, t.explained_error_change_min)
        causes = [c for c in candidates if c.onset is not None and (
            (c.kind == "deploy" and any(_raised_errors(f.details) for f in c.findings))
            or (c.kind == "resource_exhaustion" and c.where is not None))]
        for cand in candidates:
            if cand.kind != self.name or cand.onset is None:
                continue
            places = {cand.subject, cand.where} | {f.where for f in cand.findings}
            for cause in causes:
                gap = minutes_between(cand.onset, cause.onset)  # type: ignore[arg-type]
                # a change's own comparison shows the errors it raised on what it touched; a host's
                # exhaustion explains the errors located at that host
                if (cause.kind == "deploy" and abs(gap) <= change_min) or (cause.where in places and gap <= window_min):
                    cand.discount = min(cand.discount, t.explained_error_discount)
                    cand.related.append(f"follows {cause.kind.replace('_', ' ')} {cause.subject}" + (f" on {cause.where}" if cause.where else ""))
                    break

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
