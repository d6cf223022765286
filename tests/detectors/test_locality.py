"""Locality detectors on generated requests: where the extra time went (network or backend), and
whether every host of a service slowed alike. Shapes vary with the seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.detectors.locality import host_spread, network_split
from rca.findings import HostSpreadDetails, NetworkSplitDetails
from rca.model import AnalysisContext, Dataset, Window, conform

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CONTEXT = AnalysisContext(
    bucket_s=60, span=Window(START, START + timedelta(minutes=60)),
    baseline=Window(START, START + timedelta(minutes=30)), incident=Window(START + timedelta(minutes=30), START + timedelta(minutes=60)),
)


def requests(seed: int, backend_slowdown_ms: float, outside_slowdown_ms: float, hosts: dict[str, float]) -> Dataset:
    """An hour of proxied requests; in the second half the backend and/or the time outside it grow,
    and each host's time is multiplied by its factor."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3000, 6000))
    seconds = np.sort(rng.uniform(0, 3600, n))
    late = seconds >= 1800
    host_names = sorted(hosts)
    host = rng.choice(host_names, n)
    factor = np.where(late, np.array([hosts[h] for h in host]), 1.0)
    upstream = rng.lognormal(3.5, 0.4, n) * factor + np.where(late, backend_slowdown_ms, 0.0)
    outside = rng.lognormal(1.5, 0.5, n) + np.where(late, outside_slowdown_ms, 0.0)
    frame = pl.DataFrame({
        "ts": [START + timedelta(seconds=float(s)) for s in seconds],
        "duration_ms": upstream + outside, "upstream_ms": upstream,
        "service": "api", "host": host, "endpoint": rng.choice(["/a", "/b", "/c"], n), "signal": "access_log",
    })
    return Dataset(requests=conform(frame, "requests"))


@pytest.mark.parametrize("seed", range(4))
def test_time_spent_in_the_backend_clears_the_network(seed):
    [found] = network_split(requests(seed, backend_slowdown_ms=150, outside_slowdown_ms=0, hosts={"h1": 1.0}), CONTEXT)
    assert found.kind == "network_split" and found.subject == "all proxied requests"
    d = found.details
    assert isinstance(d, NetworkSplitDetails) and d.total_after_ms > 1.2 * d.total_before_ms
    assert d.outside_after_ms <= max(2 * d.outside_before_ms, d.outside_before_ms + 50)


@pytest.mark.parametrize("seed", range(4))
def test_time_spent_outside_the_backend_clears_nothing(seed):
    assert network_split(requests(seed, backend_slowdown_ms=0, outside_slowdown_ms=200, hosts={"h1": 1.0}), CONTEXT) == []


@pytest.mark.parametrize("seed", range(4))
def test_every_host_slowing_alike_is_a_host_spread(seed):
    [found] = host_spread(requests(seed, 0, 0, hosts={"h1": 2.0, "h2": 2.2, "h3": 1.9}), CONTEXT)
    assert (found.kind, found.subject) == ("host_spread", "api")
    assert isinstance(found.details, HostSpreadDetails) and [h for h, _, _ in found.details.hosts] == ["h1", "h2", "h3"]
    assert all(after > 1.2 * before for _, before, after in found.details.hosts)


@pytest.mark.parametrize("seed", range(4))
def test_one_slow_host_is_no_host_spread(seed):
    assert host_spread(requests(seed, 0, 0, hosts={"h1": 3.0, "h2": 1.0, "h3": 1.0}), CONTEXT) == []
