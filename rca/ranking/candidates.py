"""Candidate building: every registered kind builds its candidates, then every kind adjusts them.

Cross-kind rules (a dependency slowdown explained by a traffic surge, a caller's surge corroborated by
traces) live in the `adjust` hook of the kind whose candidates they change, and run after all kinds have
built theirs, in kind order.
"""

from __future__ import annotations

from rca.ranking.candidate import Candidate
from rca.ranking.registry import Observations, all_kinds


def build_candidates(seen: Observations) -> list[Candidate]:
    """All candidates of every registered kind, adjusted against each other, in kind order."""
    kinds = all_kinds()
    candidates = [cand for kind in kinds for cand in kind.candidates(seen)]
    for kind in kinds:
        kind.adjust(candidates, seen)
    return candidates
