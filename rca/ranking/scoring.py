"""Scoring: a candidate's score in [0, 1] and the discount of likely effects.

score = strength x precedence x corroboration x specificity x (floor + (1 - floor) x share) x discount
- strength: its best finding's confidence times a magnitude factor (log10 of the ratio, capped at 1);
- precedence: 1 when it starts no later than a bucket after the symptoms began, decaying with each bucket
  it lags (the first anomaly of a causal chain outranks its effects);
- share: the share of the excess it explains, or the share of the symptoms it precedes, whichever is larger;
- corroboration: the number of independent signals (access log, app log, text log, traces, metrics);
- specificity and discount: set by the kinds (see `Candidate`).
Then a candidate that starts after a comparably strong one is discounted as its likely effect
(`discount_effects`). Every number is in `rca.ranking.tuning`.
"""

from __future__ import annotations

import math
from datetime import datetime

from rca.model import AnalysisContext, Finding
from rca.ranking.candidate import Candidate, minutes_between
from rca.ranking.tuning import TUNING


def magnitude_factor(ratio: float) -> float:
    """How much a ratio weighs: a floor for no growth, base + log10(ratio) above, capped at 1."""
    if not math.isfinite(ratio) or ratio <= 1:
        return TUNING.flat_magnitude_factor
    return min(1.0, TUNING.magnitude_factor_base + math.log10(ratio))


def strength(f: Finding) -> float:
    """A finding's confidence weighted by its magnitude."""
    return f.confidence * magnitude_factor(f.magnitude)


def symptoms_began(symptoms: list[Finding]) -> datetime:
    """When the symptoms began: the earliest onset among the strongest symptoms, so one noisy
    early onset of a minor symptom does not make every cause look late."""
    timed = [s for s in symptoms if s.onset is not None]
    strongest = sorted(timed, key=lambda s: -strength(s))[: TUNING.symptoms_dating_count]
    onsets = sorted(s.onset for s in strongest if s.onset is not None)
    return onsets[len(onsets) // 2] if len(onsets) >= 3 else onsets[0]


def score(cand: Candidate, symptoms: list[Finding], context: AnalysisContext) -> tuple[float, list[Finding]]:
    """The candidate's score in [0, 1] and the symptoms it explains (those starting after it)."""
    t = TUNING
    onset = cand.onset
    bucket_min = context.bucket_s / 60.0
    symptom_onsets = [s.onset for s in symptoms if s.onset is not None]
    precedence = 1.0
    explained: list[Finding] = []
    if onset is not None and symptom_onsets:
        lag = (minutes_between(symptoms_began(symptoms), onset) - cand.onset_tolerance_min) / bucket_min  # buckets after the symptoms began
        grace = t.precedence_grace_buckets
        precedence = 1.0 if lag <= grace else math.exp(-(lag - grace) / t.precedence_decay_buckets)
        explained = [s for s in symptoms if s.onset is not None
                     and minutes_between(onset, s.onset) >= -t.explains_before_buckets * bucket_min - cand.onset_tolerance_min]
    elif onset is None:
        precedence = t.unknown_onset_precedence
    share = max((f.share_explained for f in cand.findings if f.share_explained is not None), default=t.default_share)
    coverage = (len(explained) / len(symptoms)) if symptoms else 1.0
    corroboration = {1: t.corroboration_one_signal, 2: t.corroboration_two_signals}.get(len(cand.signals), 1.0)
    value = (strength(cand.best) * precedence * corroboration * cand.specificity
             * (t.share_floor + (1 - t.share_floor) * max(share, coverage)) * cand.discount)
    return max(0.0, min(1.0, value)), explained


def discount_effects(scored: list[tuple[float, Candidate, list[Finding]]], context: AnalysisContext) -> None:
    """The first anomaly of a causal chain outranks its effects: a candidate that starts half a bucket or
    more after another comparably strong one (CPU saturation two minutes after a traffic surge) is
    discounted as its likely effect. Changes `scored` in place."""
    t = TUNING
    raw = [(value, cand) for value, cand, _ in scored]
    lag_min = t.effect_min_lag_buckets * context.bucket_s / 60.0
    for i, (value, cand, explained) in enumerate(scored):
        for other_value, other in raw:
            if other is cand or not (other.onset and cand.onset):
                continue
            if other_value >= t.effect_rival_share * value and minutes_between(other.onset, cand.onset) - cand.onset_tolerance_min >= lag_min:
                scored[i] = (value * t.effect_discount, cand, [*explained])
                cand.discount = t.effect_discount
                break
