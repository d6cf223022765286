"""Change effects (issue #15) on seeded random request frames, in both directions: a release that slows
one route of several, or whose new pods serve worse than the old ones in the same minutes, has an effect;
a release that lands while load slows every pod alike, or that moves nothing, has none and is ruled out
with its figures; a change that comes after the degradation began is not its cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca import detectors
from rca.detectors.windows import choose_context
from rca.model import Dataset, conform
from rca.pipeline import AnalyzeOptions, analyze_dataset

T0 = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def rollout(seed: int, *, new_factor: float = 1.0, load_factor: float = 1.0, route_factor: float = 1.0,
            change_at_min: float = 30, degrade_at_min: float | None = None) -> Dataset:
    """60 minutes of one service (4-6 routes, 4 pods) whose pods roll to release `v2` one by one from
    `change_at_min` over 4 minutes. `new_factor` slows every request v2 serves, `route_factor` only one
    route's, `load_factor` slows every request (both releases) from the change on, or from
    `degrade_at_min` when given."""
    rng = np.random.default_rng([seed, 15])
    seconds = 3600
    routes = [f"/api/{w}/{{id}}" for w in rng.choice(["a", "b", "c", "d", "e", "f"], int(rng.integers(4, 7)), replace=False)]
    weights = rng.dirichlet(np.full(len(routes), 3.0))
    medians = rng.uniform(20, 80, len(routes))
    counts = rng.poisson(float(rng.uniform(4, 8)), seconds)
    t = np.repeat(np.arange(seconds), counts) + rng.random(int(counts.sum()))
    route = rng.choice(len(routes), t.size, p=weights)
    pod = rng.integers(0, 4, t.size)
    change = change_at_min * 60
    swapped = t >= change + pod * 60.0
    duration = medians[route] * rng.lognormal(0, 0.35, t.size)
    duration[swapped] *= new_factor
    slow_route = int(np.argmin(weights))
    duration[swapped & (route == slow_route)] *= route_factor
    degrade = change if degrade_at_min is None else degrade_at_min * 60
    duration[t >= degrade] *= load_factor
    version = np.where(swapped, "2.0.0", "1.9.4")
    host = np.array([f"api-{'7d4b9c8f6d' if s else '5f6c7b8d9'}-p{p}" for s, p in zip(swapped, pod, strict=True)], dtype=object)
    ts = [T0 + timedelta(seconds=float(x)) for x in t]
    requests = conform(pl.DataFrame({
        "ts": ts, "duration_ms": duration, "service": "api", "host": host, "method": "GET",
        "endpoint": np.array(routes, dtype=object)[route], "status": np.full(t.size, 200), "version": version,
        "origin": "api.jsonl", "line": np.arange(1, t.size + 1), "signal": "app_log",
    }), "requests")
    changes = conform(pl.DataFrame({
        "ts": [T0 + timedelta(seconds=change)], "kind": ["deploy"], "service": ["api"], "subject": ["v2.0.0"],
        "description": ["version of api changed from 1.9.4 to 2.0.0"], "origin": ["api.jsonl"], "line": [1], "signal": ["app_log"],
    }), "changes")
    return Dataset(requests=requests, changes=changes)  # type: ignore[arg-type]


def effect_of(data: Dataset):
    context = choose_context(data)
    [finding] = [f for f in detectors.run_all(data, context, only={"changes"})]
    return finding


@pytest.mark.parametrize("seed", range(4))
def test_new_release_slower_than_old_in_the_same_minutes(seed):
    f = effect_of(rollout(seed, new_factor=2.5))
    assert f.details.effect and f.details.canary_effect
    canary = f.details.canary
    assert canary["p95_new_ms"] > 2 * canary["p95_old_ms"] and canary["n_old"] >= 20 and canary["n_new"] >= 20


@pytest.mark.parametrize("seed", range(4))
def test_release_that_slows_one_route_of_several(seed):
    f = effect_of(rollout(seed, route_factor=4.0))
    assert f.details.effect
    assert not f.details.moved.startswith("all of"), f.details.moved  # the route, not the whole service
    assert f.magnitude >= 2.5


@pytest.mark.parametrize("seed", range(4))
def test_load_that_slows_both_releases_alike_is_not_the_release(seed):
    """p95 rises right after the release on every pod, old and new: before/after alone would blame it."""
    f = effect_of(rollout(seed, load_factor=2.5))
    assert f.details.p95_after_ms > 1.5 * f.details.p95_before_ms  # the naive comparison moved
    assert f.details.canary is not None and f.details.canary_effect is False
    assert not f.details.effect


@pytest.mark.parametrize("seed", range(3))
def test_release_that_moved_nothing_is_ruled_out_with_figures(seed):
    data = rollout(seed)
    report = analyze_dataset(data, AnalyzeOptions())
    assert not any(h.kind == "deploy" for h in report.hypotheses)
    [ruled] = [r for r in report.ruled_out if r.kind == "deploy"]
    assert "v2.0.0" in ruled.subject and " -> " in ruled.reason and " ms" in ruled.reason


@pytest.mark.parametrize("seed", range(3))
def test_change_after_the_degradation_began_is_not_its_cause(seed):
    f = effect_of(rollout(seed, load_factor=3.0, change_at_min=32, degrade_at_min=30))
    assert not f.details.effect


@pytest.mark.parametrize("seed", range(3))
def test_release_cleared_by_the_canary_split_is_ruled_out_with_its_figures(seed):
    """Load slows both releases from the change on: the canary split decided, so the rule-out quotes it
    (the new release's p95 against the old one's in the same minutes), the before/after rise as context."""
    report = analyze_dataset(rollout(seed, load_factor=2.5), AnalyzeOptions())
    [ruled] = [r for r in report.ruled_out if r.kind == "deploy"]
    [f] = [f for f in report.findings if f.kind == "change_effect"]
    canary = f.details.canary
    assert "requests the new release served" in ruled.reason and "; before and after it, p95 of" in ruled.reason
    assert ruled.evidence[0].baseline == canary["p95_old_ms"] and ruled.evidence[0].incident == canary["p95_new_ms"]
    assert 0.7 < ruled.evidence[0].ratio < 1.4  # both releases alike: what cleared it
