"""The ranker: findings -> hypotheses (likely causes, best first) and ruled-out explanations.

How to add a hypothesis kind (one module plus its tests)
--------------------------------------------------------
1. Write `rca/ranking/kinds/<name>.py` with one class decorated `@register_kind`, subclassing
   `HypothesisKind` (rca/ranking/registry.py). It declares:
   - `name` (the `kind` in the report), `finding_kinds` (the finding kinds that support it, used by
     `rca.truth`), `suggestions` (corrective measures the Markdown report lists), `order` (build order);
   - `candidates(seen)`: build `Candidate`s from `seen.findings` / `seen.symptoms` / `seen.context`
     (an `Observations`); never from scenario or service names;
   - `adjust(candidates, seen)` (optional): cross-kind rules that change this kind's candidates once
     every kind has built its own (discount a slowdown that a surge explains, corroborate, move onsets);
   - `summary(cand, explained)`: its one-sentence summary; `cause_phrase(hypothesis)`: its name in a
     sentence ("the traffic surge from 203.0.113.9"). Shared phrasing lives in `prose`.
   Tuning numbers go into `tuning.Tuning` with a sentence on why.
2. Add its tests under tests/ranking/ (hand-made findings in, hypotheses out).
3. Regenerate the JSON schema's kind enum: `UPDATE_GOLDEN=1 python -m pytest tests/ranking/test_registry.py`
   (the test fails until the schema lists every registered kind).
Every public module of `rca/ranking/kinds/` is imported on first use of the registry.

The five jobs, one module each
------------------------------
- `candidates`: every kind builds its candidates, then every kind's `adjust` runs (`build_candidates`);
- `scoring`: a candidate's score in [0, 1] (strength x precedence x corroboration x specificity x
  share x discount) and the discount of likely effects (`discount_effects`);
- `prose`: shared phrasing (evidence lines, symptom labels, the "as p95 rose" clause);
- `ruled_out`: changes without effect, the network, a single host;
- `report`: ranked hypotheses, rule-outs, timeline, headline (`build_report`).
`candidate.Candidate` is the working record of one candidate (fields documented there); `tuning.TUNING`
holds every number.
"""

from __future__ import annotations

from rca.ranking.candidate import Candidate
from rca.ranking.registry import (
    HypothesisKind,
    Observations,
    all_kinds,
    kind_named,
    kind_names,
    register_kind,
)
from rca.ranking.report import SCHEMA_VERSION, build_report
from rca.ranking.tuning import TUNING, Tuning

__all__ = [
    "SCHEMA_VERSION",
    "TUNING",
    "Candidate",
    "HypothesisKind",
    "Observations",
    "Tuning",
    "all_kinds",
    "build_report",
    "kind_named",
    "kind_names",
    "register_kind",
]
