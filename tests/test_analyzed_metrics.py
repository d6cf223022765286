"""The metrics frame analysis keeps: only `ANALYZED_METRIC_COLUMNS` (the others null), their strings as
Categorical codes, and the same findings as the frame with every column as text. Pods, shifts and row
order vary by seed."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from rca.detectors.resources import detect_resources
from rca.detectors.service_metrics import detect_metric_shifts
from rca.detectors.windows import history_incident_start, longest_history
from rca.model import (
    ANALYZED_METRIC_COLUMNS,
    METRICS_SCHEMA,
    AnalysisContext,
    Dataset,
    Window,
    analyzed_metrics,
)
from rca.parsers import ParseOptions
from rca.parsers.loader import load_dataset
from rca.pipeline import AnalyzeOptions, analyze_dataset
from tests.detectors.test_metric_series import T0, _shifted_metrics

UNITS = {"container_cpu_usage_ratio": "1", "container_memory_working_set_bytes": "By", "container_fs_usage_bytes": "By"}


def _every_column(seed: int) -> pl.DataFrame:
    """`_shifted_metrics` with each column analysis does not read filled, and units on most names."""
    points = _shifted_metrics(seed)[0]
    return points.with_columns(
        pl.col("name").replace_strict(UNITS, default=None, return_dtype=pl.String).alias("unit"),
        pl.lit("pods.csv").alias("origin"), pl.int_range(2, points.height + 2, dtype=pl.Int64).alias("line"), pl.lit("metric").alias("signal"),
    )


def _kept_as_analysis_keeps(metrics: pl.DataFrame) -> None:
    read = [c for c in METRICS_SCHEMA if metrics[c].null_count() < metrics.height]
    assert set(read) <= set(ANALYZED_METRIC_COLUMNS) and {"ts", "name", "value", "host"} <= set(read)
    assert all(metrics.schema[c] == pl.Categorical for c in ANALYZED_METRIC_COLUMNS if METRICS_SCHEMA[c] == pl.String)


@pytest.mark.parametrize("seed", range(3))
def test_metric_detectors_find_the_same_on_the_frame_analysis_keeps(seed):
    every = _every_column(seed)
    kept = analyzed_metrics(every, ANALYZED_METRIC_COLUMNS)
    _kept_as_analysis_keeps(kept)
    assert kept["unit"].null_count() < kept.height and kept["attributes"].null_count() < kept.height
    assert analyzed_metrics(kept, ANALYZED_METRIC_COLUMNS).equals(kept)
    context = AnalysisContext(bucket_s=60, span=Window(T0, T0 + timedelta(minutes=60)), baseline=Window(T0, T0 + timedelta(minutes=44)),
                              incident=Window(T0 + timedelta(minutes=45), T0 + timedelta(minutes=60)))

    def run(metrics: pl.DataFrame) -> tuple:
        dataset = Dataset(metrics=metrics)
        return (detect_metric_shifts(dataset, context), detect_resources(dataset, context), longest_history(dataset),
                history_incident_start(dataset, context))

    found = run(every)
    assert found[0] and found[1]
    assert run(kept) == found


@pytest.mark.parametrize("seed", range(2))
def test_analysis_of_a_metrics_csv_reads_the_kept_columns_and_finds_the_same(seed, tmp_path):
    path = tmp_path / "pods.csv"
    _every_column(seed).select("ts", "name", "value", "host", "service", "unit").write_csv(path)
    every = load_dataset([str(path)], ParseOptions())
    kept = load_dataset([str(path)], ParseOptions(metric_columns=ANALYZED_METRIC_COLUMNS))
    assert every.metrics.select(pl.col("origin", "line", "signal").null_count()).sum_horizontal().item() == 0
    assert every.metrics.schema == pl.Schema(METRICS_SCHEMA)  # what `rca ingest` writes: every column, as text
    _kept_as_analysis_keeps(kept.metrics)
    assert kept.metrics.height == every.metrics.height
    with_every, with_kept = analyze_dataset(every, AnalyzeOptions()), analyze_dataset(kept, AnalyzeOptions())
    assert with_kept.findings and with_kept.hypotheses
    assert (with_kept.findings, with_kept.hypotheses, with_kept.ruled_out, with_kept.context) == \
        (with_every.findings, with_every.hypotheses, with_every.ruled_out, with_every.context)


def test_metrics_of_every_format_kept_alike_so_they_concatenate(tmp_path):
    """A CSV (narrowed block by block) and OTLP metrics (narrowed once read) in one analysis: one frame of codes."""
    csv = tmp_path / "pods.csv"
    _every_column(0).select("ts", "name", "value", "host", "service").write_csv(csv)
    otlp = tmp_path / "metrics.json"
    otlp.write_text('{"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "db"}}]}, '
                    '"scopeMetrics": [{"metrics": [{"name": "system.memory.utilization", "unit": "1", "gauge": {"dataPoints": ['
                    '{"timeUnixNano": "1772359200000000000", "asDouble": 0.5, "attributes": [{"key": "state", "value": {"stringValue": "used"}}]}]}}]}]}]}\n')
    every = load_dataset([str(csv), str(otlp)], ParseOptions())
    kept = load_dataset([str(csv), str(otlp)], ParseOptions(metric_columns=ANALYZED_METRIC_COLUMNS))
    _kept_as_analysis_keeps(kept.metrics)
    columns = ["ts", "name", "value", "unit", "service", "host", "attributes"]
    assert kept.metrics.select(pl.col(columns).cast(pl.String)).equals(every.metrics.select(pl.col(columns).cast(pl.String)))
    assert kept.metrics.filter(pl.col("service") == "db")["attributes"].to_list() == every.metrics.filter(pl.col("service") == "db")["attributes"].to_list() != [None]
