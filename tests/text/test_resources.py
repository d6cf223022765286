"""Resource classification, the metrics CSV parser, metric saturation, and the accuracy bar on simulated incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca.detectors.resources import classify_expr, detect_resources
from rca.model import AnalysisContext, Dataset, Window
from rca.parsers import ParseOptions, get_parser, sniff
from rca.parsers.sources import Source


def test_classifier_maps_messages_to_resources():
    messages = {
        "java.lang.OutOfMemoryError: Java heap space": "memory",
        "Out of memory: Killed process 4242 (java)": "memory",
        "GC pause (G1 Evacuation Pause) 812ms": "memory",
        "cache full, evicted 512 entries": "cache",
        "HikariPool-1 - Connection is not available, request timed out after 30000ms.": "connection_pool",
        "FATAL: sorry, too many clients already": "connection_pool",
        "write failed: No space left on device": "disk",
        "load average: 31.2 29.8 20.1": "cpu",
        "handled 120 requests in the last 10s": None,
    }
    got = pl.DataFrame({"m": list(messages)}).select(classify_expr(pl.col("m")).alias("r"))["r"].to_list()
    assert got == list(messages.values())


def test_metrics_csv_parser():
    text = (
        "ts,name,value,host,service\n"
        "2026-01-05T10:00:00Z,system.memory.utilization,0.42,web-1,api\n"
        "1767607260,system.memory.utilization,0.97,web-1,api\n"
        "not-a-time,system.memory.utilization,0.5,web-1,api\n"
        "2026-01-05T10:02:00Z,cache.evictions,oops,web-1,api\n"
    )
    source = Source(origin="m.csv", data=text.encode())
    parser, score = sniff(source.sample())
    assert parser is not None and parser.name == "metrics_csv" and score >= 0.9
    result = parser.parse(source, ParseOptions())
    metrics = result.frames["metrics"]
    assert metrics["ts"].to_list() == [
        datetime(2026, 1, 5, 10, tzinfo=UTC),
        datetime(2026, 1, 5, 10, 1, tzinfo=UTC),
    ]
    assert metrics["value"].to_list() == [0.42, 0.97] and metrics["line"].to_list() == [2, 3]
    assert set(metrics["host"]) == {"web-1"} and set(metrics["signal"]) == {"metric"}
    assert result.rejected == 2 and [r.line for r in result.rejected_examples] == [4, 5]


def test_metrics_csv_missing_column_is_one_clear_error():
    from rca.errors import InputError

    with pytest.raises(InputError) as info:
        get_parser("metrics_csv").parse(Source(origin="m.csv", data=b"ts,value\n1,2\n"), ParseOptions())
    assert "name" in info.value.reason and info.value.file == "m.csv"


def _metrics_context():
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    context = AnalysisContext(
        bucket_s=60,
        span=Window(start, start + timedelta(minutes=60)),
        baseline=Window(start, start + timedelta(minutes=40)),
        incident=Window(start + timedelta(minutes=40), start + timedelta(minutes=60)),
    )
    return start, context


def test_metric_saturation_near_limit_and_steady_metric():
    start, context = _metrics_context()
    rng = np.random.default_rng(3)
    minutes = np.arange(60)
    memory = np.where(minutes < 45, 0.55 + rng.normal(0, 0.02, 60), 0.96)
    cpu = 0.4 + rng.normal(0, 0.02, 60)
    frame = pl.DataFrame(
        {
            "ts": [start + timedelta(minutes=int(m)) for m in minutes] * 2,
            "name": ["system.memory.utilization"] * 60 + ["system.cpu.utilization"] * 60,
            "value": np.concatenate([memory, cpu]),
            "host": ["web-1"] * 120,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    from rca.model import conform

    findings = detect_resources(Dataset(metrics=conform(frame, "metrics")), context)
    assert [(f.subject, f.where) for f in findings] == [("memory", "web-1")]
    assert findings[0].onset == start + timedelta(minutes=45) and findings[0].details.near_limit


@pytest.mark.parametrize("scenario", ["memory-exhaustion", "cache-exhaustion"])
def test_true_resource_ranks_first_from_text_logs_alone(scenario, tmp_path):
    """20 seeds from the app's text log only, through the loader, detectors and ranker: the true
    resource must be the top hypothesis in at least 18."""
    from rca.pipeline import AnalyzeOptions, analyze_dataset, load
    from rca.simulate import generate
    from rca.truth import matches

    hits, misses = 0, []
    for seed in range(20):
        incident = generate(scenario, seed=seed, formats=("text",))
        paths = incident.write(tmp_path / str(seed))
        logs = [str(p) for p in paths if p.name.endswith(".log.gz")]
        assert len(logs) == 1
        options = AnalyzeOptions()
        dataset = load(logs, options)
        assert dataset.inputs[0].rejected == 0 and dataset.requests.height == 0 and dataset.spans.height == 0
        report = analyze_dataset(dataset, options)
        top = report.hypotheses[0] if report.hypotheses else None
        if top is not None and matches(top, incident.truth["root_cause"]):
            hits += 1
        else:
            misses.append((seed, top and (top.kind, top.subject)))
    assert hits >= 18, f"{scenario}: true resource first in {hits}/20; misses {misses}"
