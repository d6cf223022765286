"""The registry of hypothesis kinds: each kind is one module in `rca/ranking/kinds/` that registers itself.

A kind subclasses `HypothesisKind`, sets its class attributes and implements `candidates`, `summary`
and `cause_phrase`; `adjust` is optional. `@register_kind` adds one instance to the registry; every public
module of `rca.ranking.kinds` is imported on first use, so adding a kind touches exactly one file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from rca.model import AnalysisContext, Finding, Hypothesis
from rca.ranking.candidate import Candidate


@dataclass(frozen=True)
class Observations:
    """What a kind builds its candidates from: all findings, the symptoms among them (latency shifts
    and error rates, earliest first) and the analysis windows."""

    findings: list[Finding]
    symptoms: list[Finding]
    context: AnalysisContext


class HypothesisKind(ABC):
    """One kind of root cause the ranker can propose.

    Class attributes:
    - `name`: the `kind` written in the report (`hypotheses[].kind`, the JSON schema's enum);
    - `finding_kinds`: the finding kinds that support it (a finding of these kinds names this cause when
      its subject is the true one: `rca.truth`);
    - `suggestions`: corrective measures shown under the top cause in the Markdown report;
    - `order`: candidates are built and adjusted in this order (lower first).
    """

    name: ClassVar[str]
    finding_kinds: ClassVar[tuple[str, ...]]
    suggestions: ClassVar[tuple[str, ...]]
    order: ClassVar[int] = 100

    @abstractmethod
    def candidates(self, seen: Observations) -> list[Candidate]:
        """Build this kind's candidates from the findings (never from scenario names)."""

    def adjust(self, candidates: list[Candidate], seen: Observations) -> None:
        """Cross-candidate rules, run once every kind has built its candidates and before scoring: a kind
        may change its own candidates (discount, specificity, chain onset, more findings) in the light of
        the others (a dependency slowdown explained by a traffic surge). Default: nothing."""
        return None

    @abstractmethod
    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        """One sentence on the candidate with its figures; `explained` are the symptoms it explains."""

    @abstractmethod
    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        """The hypothesis named in a sentence: `the traffic surge from 203.0.113.9`."""


K = TypeVar("K", bound=type[HypothesisKind])

_REGISTRY: dict[str, HypothesisKind] = {}


def register_kind(cls: K) -> K:
    """Class decorator: add one instance of a hypothesis kind to the registry under `cls.name`."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"hypothesis kind {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_all() -> None:
    from rca.plugins import import_submodules
    from rca.ranking import kinds

    import_submodules(kinds.__name__, kinds.__path__)


def all_kinds() -> list[HypothesisKind]:
    """Every registered hypothesis kind, in build order."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda k: (k.order, k.name))


def kind_named(name: str) -> HypothesisKind:
    """The registered kind called `name` (KeyError when there is none)."""
    _load_all()
    return _REGISTRY[name]


def kind_names() -> tuple[str, ...]:
    """The names of every registered kind, in build order."""
    return tuple(k.name for k in all_kinds())


def finding_to_hypothesis() -> dict[str, str]:
    """Which hypothesis kind each supporting finding kind points to."""
    return {fk: k.name for k in all_kinds() for fk in k.finding_kinds}
