"""`rca compare` end to end on simulator files through the command: the parsers read the access log,
app logs and OTLP traces of a quiet baseline and of candidates on the same platform (another noise
seed), one of them with the regression knob turned; the JSON validates against its schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
from typer.testing import CliRunner

from rca.cli import app
from rca.simulate import generate

SEED, MINUTES = 4, 40
SCHEMA = orjson.loads((Path(__file__).resolve().parents[2] / "rca" / "compare.schema.json").read_bytes())
GATES = ["--fail-on", "p95>+20%", "--fail-on", "error_rate>+1pp"]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_github_environment(monkeypatch):
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("simulated")
    incidents = {
        "baseline": generate("quiet", seed=SEED, minutes=MINUTES),
        "unchanged": generate("quiet", seed=SEED, minutes=MINUTES, noise_seed=SEED + 1000),
        "regressed": generate("quiet", seed=SEED, minutes=MINUTES, noise_seed=SEED + 2000, latency_regression=1.3),
    }
    for name, incident in incidents.items():
        incident.write(root / name)
    return root, incidents["regressed"].truth["parameters"]


def _compare(root: Path, candidate: str, *extra: str):
    return runner.invoke(app, ["compare", "--baseline", str(root / "baseline" / "telemetry"),
                               "--candidate", str(root / candidate / "telemetry"), *GATES, *extra])


def test_an_unchanged_candidate_passes(runs):
    root, _ = runs
    result = _compare(root, "unchanged", "-f", "json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    assert data["verdict"] == "pass" and not [g for g in data["gates"] if g["failed"]]
    scopes = {r["scope"] for r in data["rows"]}
    assert scopes == {"endpoint", "service", "operation"}
    endpoints = [r for r in data["rows"] if r["scope"] == "endpoint"]
    assert len(endpoints) == 12 and all(r["enough_data"] for r in endpoints), "same platform: the routes line up"
    assert {r["vantage"] for r in endpoints} == {"access_log (access)"}
    services = {r["subject"]: r["vantage"] for r in data["rows"] if r["scope"] == "service"}
    assert services == {"access": "access_log (access)", "gateway": "trace (gateway)", "files": "app_log (files)",
                        "messages": "app_log (messages)", "users": "app_log (users)"}


def test_a_regressed_candidate_fails_and_names_endpoint_and_database_span(runs):
    root, truth = runs
    result = _compare(root, "regressed", "-f", "json")
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    failed = {(g["scope"], g["subject"]) for g in data["gates"] if g["failed"]}
    assert ("endpoint", truth["regression_endpoint"]) in failed
    assert {s for k, s in failed if k == "endpoint"} == {truth["regression_endpoint"]}
    row = next(r for r in data["rows"] if r["scope"] == "endpoint" and r["subject"] == truth["regression_endpoint"])
    cause = row["likely_causes"][0]
    assert cause["kind"] == "self_time" and cause["dependency"] == truth["regression_span"] == "postgres"
    assert cause["subject"].split(" ", 1)[1].startswith(("SELECT ", "INSERT "))
    terminal = _compare(root, "regressed")
    assert terminal.exit_code == 1
    assert terminal.stdout.startswith(f"rca compare: FAIL: p95>+20% failed on endpoint {truth['regression_endpoint']}")
    assert f"    - {cause['text']}" in terminal.stdout
