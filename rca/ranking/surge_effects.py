"""Effects of a traffic surge's load: slowdowns that begin in step with it where the load did not go.

A surge loads what it calls, and those services and dependencies slow down with their own requests
(their own time rises while their requests rise by `TUNING.calls_rose`, or the calls sent to a dependency
do): the kinds already read those as the load's effects. Capacity is shared beyond the calls, though
(nodes, a database, a cache, the network), so a service or dependency whose own load did not rise can
slow down at the same moment too. Such a slowdown is the surge's effect, not a rival cause, when:
- a traffic surge began no later than it (onsets are estimates: up to `TUNING.explains_before_buckets`
  before it still counts as after);
- the load's own effects were observed (a slowdown explained by rising requests or calls): without them
  nothing shows that the surge loaded anything;
- it began in step with those effects: no earlier than the first of them and no later than the last (the
  loaded services' own time and latency, which rise over the minutes the load builds up), give or take
  `TUNING.explains_before_buckets` (a fault of its own starts when it starts, not when the load arrives);
- its evidence is the slowdown alone: a resource shift on its own pods, calls it stopped making or paths
  it stopped taking are evidence of its own and keep it a cause.
The candidate is then discounted by `TUNING.explained_by_surge_discount`, as a dependency loaded by the
surge is, and its summary names the surge as its likely cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rca.findings import MetricShiftDetails, SelfTimeDetails, ServiceTimeDetails
from rca.model import Finding
from rca.ranking.candidate import Candidate, minutes_between
from rca.ranking.registry import Observations
from rca.ranking.tuning import TUNING

SURGE_KIND = "traffic_surge"


@dataclass(frozen=True)
class SurgeLoad:
    """A traffic surge and the first slowdown its load explains."""

    surge: Candidate
    first: datetime  # onsets of the slowdowns its load explains: the first ...
    last: datetime  # ... and the last (the loaded services' own latency included)
    loaded: tuple[str, ...]  # what slowed under its own rising load (services, dependencies)

    @property
    def phrase(self) -> str:
        return surge_phrase(self.surge)


def surge_phrase(surge: Candidate) -> str:
    """A surge candidate in words: `the traffic surge from 203.0.113.9`."""
    if surge.dimension == "clients":
        return f"the surge of {surge.subject}"
    return f"the traffic surge {'on' if surge.dimension == 'endpoint' else 'from'} {surge.subject}"


def first_surge(candidates: list[Candidate]) -> Candidate | None:
    """The traffic surge that began first (None when there is none)."""
    surges = [c for c in candidates if c.kind == SURGE_KIND and c.onset is not None]
    return min(surges, key=lambda c: (c.onset, c.subject)) if surges else None


def _loaded_slowdown(f: Finding) -> str | None:
    """What slowed under its own rising load, when `f` is such a slowdown."""
    d = f.details
    if isinstance(d, ServiceTimeDetails) and d.requests_ratio >= TUNING.calls_rose:
        return d.service
    if isinstance(d, SelfTimeDetails) and (d.calls_ratio >= TUNING.calls_rose
                                           or d.calls_per_request_after >= TUNING.calls_rose * max(d.calls_per_request_before, 1e-9)):
        return str(d.dependency or f.subject)
    return None


def surge_load(candidates: list[Candidate], seen: Observations) -> SurgeLoad | None:
    """The earliest traffic surge with the slowdowns its load explains (None when either is missing)."""
    surge = first_surge(candidates)
    loaded = [(f.onset, name) for f in seen.findings if f.onset is not None and (name := _loaded_slowdown(f)) is not None]
    if surge is None or not loaded:
        return None
    names = {name for _, name in loaded}
    onsets = [onset for onset, _ in loaded] + [s.onset for s in seen.symptoms if s.kind == "latency_shift" and s.dimension == "service"
                                               and s.subject in names and s.onset is not None]
    return SurgeLoad(surge, min(onsets), max(onsets), tuple(sorted(names)))


def slowdown_only(f: Finding) -> bool:
    """Is `f` evidence of a slowdown and nothing else (own time, a dependency's self time, own latency)?"""
    d = f.details
    return (isinstance(d, ServiceTimeDetails | SelfTimeDetails)
            or (isinstance(d, MetricShiftDetails) and d.role == "symptom" and d.family == "latency"))


def explain_by_surge(candidates: list[Candidate], kind: str, seen: Observations) -> None:
    """Discount each candidate of `kind` that the surge's load explains (module docstring), and say so."""
    load = surge_load(candidates, seen)
    if load is None or load.surge.onset is None:
        return
    step_min = TUNING.explains_before_buckets * seen.context.bucket_s / 60.0
    for cand in candidates:
        if cand.kind != kind or cand.onset is None or cand.effect_of is not None:
            continue
        # evidence of its own (a resource, lost calls, cut paths) keeps it a cause; its own rising load is read by its kind
        if not all(slowdown_only(f) and _loaded_slowdown(f) is None for f in cand.findings):
            continue
        after_surge = minutes_between(load.surge.onset, cand.onset) >= -step_min
        in_step = minutes_between(load.first, cand.onset) >= -step_min and minutes_between(cand.onset, load.last) >= -step_min
        if after_surge and in_step:
            cand.discount = min(cand.discount, TUNING.explained_by_surge_discount)
            cand.cause = load.surge
            cand.effect_of = (f"slowed in step with {', '.join(load.loaded[:3])} under the load of {load.phrase}, "
                              "its own load unchanged: likely that surge's effect on shared capacity")
