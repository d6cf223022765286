"""`rca compare`: noise passes, a real p95 regression fails and names its endpoint and span, too few
samples say "not enough data", gates parse, and the CI outputs are written."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from parsers.spantree import finish_spans
from rca.cli import app
from rca.compare import compare_datasets, github_annotations, parse_gate, render_junit
from rca.errors import UsageError
from rca.model import Dataset

ENDPOINTS = [f"/api/r{i}/{{id}}" for i in range(6)]
MEDIANS = [20.0, 35.0, 50.0, 80.0, 120.0, 200.0]
GATES = [parse_gate("p95>+20%"), parse_gate("error_rate>+1pp")]


def traces(seed: int, per_endpoint: int = 800, regression: tuple[int, float] | None = None) -> Dataset:
    """Gateway server span -> one database span per request; the database time of one endpoint can be
    multiplied so that the endpoint's total grows by `factor`. Built as columns (no loop per span)."""
    rng = np.random.default_rng(seed)
    n = per_endpoint * len(ENDPOINTS)
    endpoint = np.repeat(np.arange(len(ENDPOINTS)), per_endpoint)
    median = np.array(MEDIANS)[endpoint]
    app_ms = median * 0.4 * rng.lognormal(0, 0.25, n)
    db_ms = median * 0.6 * rng.lognormal(0, 0.25, n)
    if regression:
        hit = endpoint == regression[0]
        db_ms = np.where(hit, db_ms + (app_ms + db_ms) * (regression[1] - 1.0), db_ms)
    start_us = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1e6) + (rng.uniform(0, 1800, n) * 1e6).astype(np.int64)
    db_start = start_us + (app_ms / 2 * 1000).astype(np.int64)
    status = np.where(rng.random(n) < 0.002, 500, 200)
    index = np.arange(n)
    trace = [f"{seed:08x}{i:024x}" for i in index]
    routes = np.array(ENDPOINTS)[endpoint]
    common = {"trace_id": trace + trace, "service": ["api"] * (2 * n), "line": np.concatenate([index, index])}
    frame = pl.DataFrame({
        **common,
        "span_id": [f"{i:016x}" for i in index] + [f"{i + n:016x}" for i in index],
        "parent_span_id": [None] * n + [f"{i:016x}" for i in index],
        "name": [f"GET {r}" for r in routes] + [f"SELECT t{e}" for e in endpoint],
        "kind": ["server"] * n + ["client"] * n,
        "ts": np.concatenate([start_us, db_start]),
        "end": np.concatenate([start_us + ((app_ms + db_ms) * 1000).astype(np.int64), db_start + (db_ms * 1000).astype(np.int64)]),
        "status": np.concatenate([np.where(status >= 500, "error", "unset"), np.full(n, "unset")]),
        "http_route": list(routes) + [None] * n,
        "http_method": ["GET"] * n + [None] * n,
        "http_status": np.concatenate([status, np.zeros(n, dtype=int)]),
        "peer_service": [None] * n + ["postgres"] * n,
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("end").cast(pl.Datetime("us", "UTC")),
                    pl.when(pl.col("kind") == "server").then(pl.col("http_status")).otherwise(None).alias("http_status"))
    frames, _ = finish_spans(frame, "synthetic")
    return Dataset(requests=frames["requests"].with_columns(signal=pl.lit("trace"), origin=pl.lit("synthetic")),
                   spans=frames["spans"].with_columns(signal=pl.lit("trace")))


def test_unchanged_candidate_passes_in_19_of_20_seeds():
    passed = sum(not compare_datasets(traces(seed), traces(seed + 1000), GATES).failed for seed in range(20))
    assert passed >= 19


def test_a_30_percent_regression_fails_every_time_and_names_endpoint_and_span():
    for seed in range(20):
        target = seed % len(ENDPOINTS)
        result = compare_datasets(traces(seed), traces(seed + 1000, regression=(target, 1.3)), GATES)
        assert result.failed, seed
        failed = {g.subject for g in result.gates if g.failed}
        assert failed == {ENDPOINTS[target]}, (seed, failed)
        row = next(r for r in result.rows if r.scope == "endpoint" and r.subject == ENDPOINTS[target])
        assert row.likely_cause is not None and row.likely_cause.startswith(f"api SELECT t{target} "), row.likely_cause


def test_too_few_samples_is_not_judged():
    result = compare_datasets(traces(1, per_endpoint=10), traces(2, per_endpoint=10, regression=(0, 3.0)), GATES)
    assert not result.failed and len(result.not_enough) == len(ENDPOINTS)
    strict = compare_datasets(traces(1, per_endpoint=10), traces(2, per_endpoint=10), GATES, strict=True)
    assert strict.failed


@pytest.mark.parametrize("text", ["p95>+20%", "p99>+50ms", "error_rate>+1pp", "count<-50%", "endpoint:/api/x p95>+10%"])
def test_gates_parse(text):
    assert parse_gate(text).text == text


@pytest.mark.parametrize("text", ["p95>20", "latency>+1%", "error_rate>+1ms", ""])
def test_bad_gates_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_gate(text)


def test_outputs_junit_and_annotations_escape():
    result = compare_datasets(traces(3), traces(4, regression=(2, 1.5)), GATES)
    xml = render_junit(result)
    assert 'failures="1"' in xml and "<failure" in xml
    lines = github_annotations(result)
    assert len(lines) == 1 and lines[0].startswith("::error title=rca gate p95>+20%25 failed on /api/r2/{id}::")


def write_parquet(data: Dataset, path):
    path.mkdir(parents=True)
    data.requests.write_parquet(path / "requests.parquet")
    data.spans.write_parquet(path / "spans.parquet")
    return str(path)


def test_cli_exit_codes_and_ci_files(tmp_path, monkeypatch):
    base = write_parquet(traces(5), tmp_path / "base")
    same = write_parquet(traces(6), tmp_path / "same")
    worse = write_parquet(traces(7, regression=(1, 1.4)), tmp_path / "worse")
    runner = CliRunner()
    ok = runner.invoke(app, ["compare", "--baseline", base, "--candidate", same, "--fail-on", "p95>+20%", "-f", "json"])
    assert ok.exit_code == 0, ok.output
    assert orjson.loads(ok.stdout)["verdict"] == "pass"
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
    bad = runner.invoke(app, ["compare", "--fail-on", "p95>+20%", "--baseline", base, "--candidate", worse,
                              "--junit", str(tmp_path / "j.xml")], env=env)
    assert bad.exit_code == 1, bad.output
    assert "::error title=" in bad.stdout and "FAIL" in summary.read_text()
    assert outputs.read_text().strip() == "verdict=fail" and (tmp_path / "j.xml").exists()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rca.toml").write_text('[gates]\nfail_on = ["p95>+20%"]\n')
    from_config = runner.invoke(app, ["compare", "--baseline", base, "--candidate", worse])
    assert from_config.exit_code == 1
    usage = runner.invoke(app, ["compare", "--baseline", base])
    assert usage.exit_code == 2
    bad_gate = runner.invoke(app, ["compare", "--baseline", base, "--candidate", same, "--fail-on", "p95 up"])
    assert bad_gate.exit_code == 2
