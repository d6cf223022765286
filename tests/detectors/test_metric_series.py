"""Metric series ids: one per distinct (name, host, service, attributes), nulls included; coarser keys
merged on the small table; batches of whole series in row order; and the metric detectors giving the
same findings in one batch or in many, on points in any row order. Names and shapes vary by seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import rca.detectors.metric_series as metric_series_module
from rca.detectors.metric_series import SERIES, SERIES_KEYS, metric_series
from rca.detectors.resources import detect_resources
from rca.detectors.service_metrics import detect_metric_shifts
from rca.detectors.windows import history_incident_start, longest_history
from rca.model import AnalysisContext, Dataset, Window, conform

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def _keyed_points(seed: int) -> pl.DataFrame:
    """Points whose key columns repeat in every combination, nulls among hosts, services and attributes."""
    rng = np.random.default_rng(seed)
    names = [f"m{rng.integers(100, 999)}_{k}" for k in range(3)]
    hosts = [f"pod-{k}" for k in range(int(rng.integers(2, 4)))] + [None]
    services = ["api", None]
    attributes = ['{"cpu":"0"}', None]
    n = int(rng.integers(300, 600))
    pick = rng.integers(0, 1 << 30, size=(4, n))
    frame = pl.DataFrame({
        "ts": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 3600, n)],
        "name": [names[i % len(names)] for i in pick[0]],
        "value": rng.normal(10, 2, n),
        "host": [hosts[i % len(hosts)] for i in pick[1]],
        "service": [services[i % len(services)] for i in pick[2]],
        "attributes": [attributes[i % len(attributes)] for i in pick[3]],
    }, schema_overrides={"ts": pl.Datetime("us", "UTC"), "host": pl.String, "service": pl.String, "attributes": pl.String})
    return conform(frame, "metrics")  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(3))
def test_one_id_per_distinct_key_tuple_nulls_included(seed):
    points = _keyed_points(seed)
    series = metric_series(points)
    tuples = list(points.select(SERIES_KEYS).iter_rows())
    ids = series.ids.to_list()
    id_of: dict[tuple, int] = {}
    for key, sid in zip(tuples, ids, strict=True):
        assert id_of.setdefault(key, sid) == sid  # the same tuple, the same id
    assert len(set(id_of.values())) == len(id_of) == series.keys.height  # different tuples, different ids
    assert sorted(id_of.values()) == list(range(series.keys.height))
    assert any(k[1] is None for k in id_of) and any(k[3] is None for k in id_of)
    for row in series.keys.iter_rows(named=True):  # the table of keys reads each id back to its tuple and count
        assert id_of[tuple(row[c] for c in SERIES_KEYS)] == row[SERIES]
        assert row["points"] == ids.count(row[SERIES])
    assert metric_series(points) is series  # computed once per frame


def test_regrouped_merges_the_series_whose_coarser_keys_are_equal():
    points = _keyed_points(7)
    where = metric_series(points).regrouped(name=pl.col("name"), where=pl.coalesce("service", "host", pl.lit("?")))
    expected = points.select("name", pl.coalesce("service", "host", pl.lit("?")).alias("where"))
    pairs = {(k, sid) for k, sid in zip(expected.iter_rows(), where.ids.to_list(), strict=True)}
    assert len(pairs) == len({k for k, _ in pairs}) == len({s for _, s in pairs}) == where.keys.height
    assert where.keys["points"].sum() == points.height


@pytest.mark.parametrize("max_points", [1, 37, 10_000])
def test_batches_hold_whole_series_in_row_order(max_points):
    points = _keyed_points(3).with_row_index("row")
    series = metric_series(points)
    batches = list(series.batches(points.select("row"), max_points=max_points))
    rows = pl.concat([b["row"] for b in batches])
    assert sorted(rows.to_list()) == list(range(points.height))  # every point once
    assert all(b["row"].is_sorted() for b in batches)  # in their order
    seen: set[int] = set()
    for batch in batches:
        ids = set(batch[SERIES].to_list())
        assert not ids & seen  # a series in one batch only
        seen |= ids
        assert len(ids) == 1 or max_points > 1
    assert len(batches) == 1 or max_points < points.height
    assert (pl.concat(batches).sort("row")[SERIES] == series.ids).all()


def _shifted_metrics(seed: int) -> tuple[pl.DataFrame, str]:
    """An hour of minute samples of a few pods (a counter, a utilisation, a gauge, one series with
    attributes), two pods' CPU, memory and traffic shifting from minute 45, the rows in random order."""
    rng = np.random.default_rng(seed)
    n, onset = 60, 45
    pods = [f"svc{k}-{rng.integers(100, 999)}" for k in range(int(rng.integers(3, 6)))]
    rows = []
    for p, pod in enumerate(pods):
        shift = (p < 2) * (np.arange(n) >= onset)
        counter = np.cumsum((1000.0 + 2000.0 * shift + rng.normal(0, 30, n)) * 60)
        for name, values, attrs in (
            ("container_cpu_usage_ratio", 0.3 + 0.6 * shift + rng.normal(0, 0.02, n), None),
            ("container_memory_working_set_bytes", 2e8 * (1 + 2 * shift) + rng.normal(0, 2e6, n), None),
            ("container_network_transmit_bytes_total", counter, None),
            ("container_fs_usage_bytes", 5e8 + rng.normal(0, 1e6, n), '{"device":"sda"}'),
        ):
            for i, v in enumerate(values):
                rows.append({"ts": T0 + timedelta(minutes=i, seconds=int(rng.integers(0, 5))), "name": name, "value": float(v),
                             "service": None if p == 1 else pod.split("-")[0], "host": pod, "attributes": attrs})
    order = rng.permutation(len(rows))
    frame = pl.DataFrame([rows[i] for i in order], schema_overrides={"ts": pl.Datetime("us", "UTC"), "attributes": pl.String})
    return conform(frame, "metrics"), pods[0]  # type: ignore[return-value]


@pytest.mark.parametrize("seed", range(3))
def test_metric_detectors_the_same_in_one_batch_or_many(seed, monkeypatch):
    context = AnalysisContext(bucket_s=60, span=Window(T0, T0 + timedelta(minutes=60)), baseline=Window(T0, T0 + timedelta(minutes=44)),
                              incident=Window(T0 + timedelta(minutes=45), T0 + timedelta(minutes=60)))

    def run() -> tuple:
        dataset = Dataset(metrics=_shifted_metrics(seed)[0])  # a new frame: its series are computed again
        return (detect_metric_shifts(dataset, context), detect_resources(dataset, context), longest_history(dataset),
                history_incident_start(dataset, context))

    whole = run()
    monkeypatch.setattr(metric_series_module, "BATCH_POINTS", 50)  # ~4 series a batch
    assert run() == whole
    shifts, resources, history, start = whole
    shifted = _shifted_metrics(seed)[1]
    assert {f.metric for f in shifts if f.where == shifted} >= {
        "container_cpu_usage_ratio", "container_memory_working_set_bytes", "container_network_transmit_bytes_total"}
    assert {f.subject for f in resources} >= {"cpu", "memory"}
    assert history is not None and history.sample_s == 60
    assert start == T0 + timedelta(minutes=45)
