"""Detectors read exact counts from `Dataset.request_aggregates` for the vantages it carries, whose rows
are then only a sample: the findings are those of every row."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.aggregates import aggregate_requests
from rca.detectors.errors import detect_errors
from rca.detectors.stats import exact_aggregates
from rca.detectors.traffic import detect_traffic
from rca.detectors.windows import choose_context
from rca.model import Dataset, Finding, Window, conform

START = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def _requests(seed: int) -> pl.DataFrame:
    """Two vantages over about three hours; in both, one endpoint (of a seed-dependent few) starts failing
    at a seed-dependent minute on one host, and extra requests (a seed-dependent share more) come from one
    client network with one user agent."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30_000, 50_000))
    minutes = float(rng.uniform(150, 200))
    offset = np.sort(rng.uniform(0, minutes * 60, n))
    onset = float(rng.uniform(121, 140)) * 60
    extra = np.sort(rng.uniform(onset, minutes * 60, int(n * float(rng.uniform(0.2, 0.4)) * (minutes * 60 - onset) / (minutes * 60))))
    surge = np.concatenate([np.zeros(n, dtype=bool), np.ones(len(extra), dtype=bool)])
    offset = np.concatenate([offset, extra])
    n = len(offset)
    endpoints = np.array([f"/api/r{k}" for k in range(int(rng.integers(3, 9)))])
    endpoint = rng.choice(endpoints, n)
    host = rng.choice(["h1", "h2", "h3"], n)
    failing = (offset > onset) & (endpoint == endpoints[0]) & (host == "h2") & (rng.random(n) < float(rng.uniform(0.2, 0.6)))
    status = np.where(failing, 503, rng.choice([200, 200, 200, 404, 500], n, p=[0.5, 0.3, 0.17, 0.02, 0.01]))
    signal = np.where(rng.random(n) < 0.7, "access_log", "app_log")
    return conform(pl.DataFrame({
        "ts": pl.Series([START + timedelta(seconds=float(s)) for s in offset], dtype=pl.Datetime("us", "UTC")),
        "service": np.where(signal == "access_log", "edge", "api"), "signal": signal, "endpoint": endpoint, "host": host,
        "status": status, "method": rng.choice(["GET", "POST"], n, p=[0.8, 0.2]), "duration_ms": rng.lognormal(3, 0.5, n),
        "source": np.where(surge, rng.choice([f"203.0.113.{k}" for k in range(1, 9)], n), rng.choice([f"10.1.{k % 40}.{k}" for k in range(200)], n)),
        "user_agent": np.where(surge, "python-requests/2.31", rng.choice(["Mozilla/5.0 Chrome/120.0", "curl/8.5.0"], n)),
    }), "requests").sort("ts")


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.signal, f.dimension, f.subject))


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_error_findings_from_aggregates_and_a_sample_equal_those_of_every_row(seed: int):
    rows = _requests(seed)
    full = Dataset(requests=rows)
    context = choose_context(full, since=(START + timedelta(minutes=120)).isoformat())  # on a bucket edge
    assert context is not None and context.bucket_s % 30 == 0
    access = rows.filter(pl.col("signal") == "access_log")
    sampled = pl.concat([access.sample(fraction=0.05, seed=seed), rows.filter(pl.col("signal") != "access_log")]).sort("ts")
    aggregated = Dataset(requests=sampled, request_aggregates=aggregate_requests(access, 30))
    expected = _sorted(detect_errors(full, context))
    assert any(f.dimension == "endpoint" and f.signal == "access_log" for f in expected)  # the data shows the failing endpoint
    assert _sorted(detect_errors(aggregated, context)) == expected
    # the sample alone is not enough: without the aggregates the counts are the sample's
    assert _sorted(detect_errors(Dataset(requests=sampled), context)) != expected


@pytest.mark.parametrize("seed", [21, 22])
def test_traffic_findings_from_aggregates_and_a_sample_equal_those_of_every_row(seed: int):
    rows = _requests(seed)
    context = choose_context(Dataset(requests=rows), since=(START + timedelta(minutes=120)).isoformat())
    assert context is not None
    access = rows.filter(pl.col("signal") == "access_log")
    sampled = pl.concat([access.sample(fraction=0.05, seed=seed), rows.filter(pl.col("signal") != "access_log")]).sort("ts")
    expected = _sorted(detect_traffic(Dataset(requests=rows), context))
    assert {f.dimension for f in expected if f.signal == "access_log"} >= {"source_net", "user_agent"}  # the surge shows
    assert _sorted(detect_traffic(Dataset(requests=sampled, request_aggregates=aggregate_requests(access, 30)), context)) == expected


@pytest.mark.parametrize("seed", [21, 23])
def test_the_incident_found_from_aggregates_and_a_sample_is_the_one_every_row_shows(seed: int):
    rows = _requests(seed).filter(pl.col("signal") == "access_log")
    sample = rows.sample(fraction=0.05, seed=seed)
    full = choose_context(Dataset(requests=rows))
    aggregated = choose_context(Dataset(requests=sample, request_aggregates=aggregate_requests(rows, 30)))
    alone = choose_context(Dataset(requests=sample))
    assert full is not None and aggregated is not None and alone is not None and full.method.startswith("auto: sustained")
    assert (aggregated.incident.start, aggregated.method) == (full.incident.start, full.method)
    assert alone.incident.start != full.incident.start  # the sample alone misplaces it


def test_aggregates_are_set_aside_when_a_window_edge_splits_their_buckets():
    rows = _requests(14)
    context = choose_context(Dataset(requests=rows), since=(START + timedelta(minutes=150)).isoformat())
    assert context is not None
    aggregates = aggregate_requests(rows, 30)
    assert exact_aggregates(aggregates, context) is aggregates
    odd = replace(context, incident=Window(context.incident.start + timedelta(seconds=7), context.incident.end))
    assert exact_aggregates(aggregates, odd) is None
    assert exact_aggregates(aggregate_requests(rows, 300), replace(context, bucket_s=60)) is None  # finer than them
