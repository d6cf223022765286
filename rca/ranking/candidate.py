"""A candidate cause while it is being ranked: the findings that support it and the adjustments made to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rca.model import Finding

# Vantage points by how completely they count requests: quoted figures come from the first one present.
SIGNAL_COMPLETENESS = {"access_log": 0, "app_log": 1, "otlp_log": 2, "text_log": 2, "syslog": 2, "trace": 3, "metric": 4}


def completeness(f: Finding) -> int:
    """Rank of a finding's vantage point: 0 counts every request (access log), higher counts fewer."""
    return SIGNAL_COMPLETENESS.get(f.signal, 5)


def minutes_between(a: datetime, b: datetime) -> float:
    """Minutes from `a` to `b` (negative when `b` is earlier)."""
    return (b - a).total_seconds() / 60.0


@dataclass
class Candidate:
    """A possible root cause of one hypothesis kind, built by that kind from findings.

    `kind` is the registered kind's name; `dimension` and `subject` name the culprit as the report will
    (`source` `203.0.113.9`, `operation` `postgres`); `where` locates it (a service or host) when the
    subject does not. `findings` are its evidence (the best one is quoted). A kind may fold other
    subjects in (`related`, shown as context), lower `specificity` (how precisely it names a culprit,
    in [0, 1]) or `discount` (how much of it is explained by another candidate, in [0, 1]) and set
    `chain_onset`, an earlier onset proven by the callers it slows. Scoring multiplies both in.
    """

    kind: str
    dimension: str
    subject: str
    where: str | None
    findings: list[Finding] = field(default_factory=list)
    related: list[str] = field(default_factory=list)  # other subjects folded in, and context phrases
    discount: float = 1.0
    specificity: float = 1.0
    chain_onset: datetime | None = None  # earliest onset of the callers this dependency slows down
    # Minutes by which symptoms' estimated onsets may precede this candidate's and still be its effects: a
    # change's time is exact while onsets fitted on buckets come a few buckets early (the change's own
    # comparison has shown the symptoms were not there before it).
    onset_tolerance_min: float = 0.0
    # The candidate this one is likely an effect of (`cause`), and why, in a clause its summary ends with
    # (`effect_of`); set by rules that explain one candidate by another, such as `surge_effects`.
    cause: Candidate | None = None
    effect_of: str | None = None

    @property
    def onset(self) -> datetime | None:
        onsets = [f.onset for f in self.findings if f.onset is not None]
        if self.chain_onset is not None:
            onsets.append(self.chain_onset)
        return min(onsets) if onsets else None

    @property
    def best(self) -> Finding:
        """Its strongest finding (scored)."""
        return max(self.findings, key=lambda f: (f.confidence, f.magnitude))

    @property
    def shown(self) -> Finding:
        """The finding its figures are quoted from: one naming the candidate's own subject when any does
        (a sentence about GET /api/threads/{id} never quotes the rise and share of /api/threads folded
        into it), the strongest seen by the most complete vantage point (an access log counts every
        request, sampled traces only some)."""
        own = [f for f in self.findings if f.subject == self.subject] or self.findings
        top = min(completeness(f) for f in own)
        return max((f for f in own if completeness(f) == top), key=lambda f: (f.confidence, f.magnitude))

    @property
    def signals(self) -> set[str]:
        return {f.signal for f in self.findings}
