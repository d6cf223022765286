"""`rca compare` on seeded synthetic traces: noise passes, a real p95 regression fails and names its
endpoint and span, too few samples say "not enough data", service rows are gated like endpoints, new
errors are named as causes, gates parse, and every output (terminal, JSON, Markdown, JUnit, GitHub)
carries it all."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from rca.cli import app
from rca.compare import compare_datasets, parse_gate
from rca.errors import UsageError
from rca.model import Dataset, conform
from rca.parsers.spantree import finish_spans
from rca.render.compare import (
    github_annotations,
    github_outputs,
    render_json,
    render_junit,
    render_markdown,
    render_terminal,
    to_dict,
)

ENDPOINTS = [f"/api/r{i}/{{id}}" for i in range(6)]
MEDIANS = [20.0, 35.0, 50.0, 80.0, 120.0, 200.0]
GATES = [parse_gate("p95>+20%"), parse_gate("error_rate>+1pp")]
SCHEMA = orjson.loads((Path(__file__).resolve().parents[2] / "rca" / "compare.schema.json").read_bytes())
HIKARI = "HikariPool-1 - Connection is not available, request timed out after 30000ms."
COLOR_SGR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[25];[0-9;]+)m")


@pytest.fixture(autouse=True)
def _no_github_environment(monkeypatch):
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)


def traces(seed: int, per_endpoint: int = 800, regression: tuple[int, float] | None = None,
           services: tuple[str, ...] = ("api",) * 6, failing: tuple[int, int] | None = None,
           background_errors: int = 0) -> Dataset:
    """Server span -> one database span per request, served by `services[endpoint]`. The database time
    of one endpoint can be multiplied so that the endpoint's total grows by `factor`; `failing`
    (endpoint, n) makes n of its requests fail with 503 after a database error, each logging HikariCP's
    pool timeout with its trace id; `background_errors` ERROR lines of an unrelated message appear on
    every run. Built as columns (no loop per span)."""
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
    failed = np.zeros(n, dtype=bool)
    if failing:
        rows = np.flatnonzero(endpoint == failing[0])[: failing[1]]
        failed[rows] = True
        status[rows] = 503
    index = np.arange(n)
    trace = [f"{seed:08x}{i:024x}" for i in index]
    routes = np.array(ENDPOINTS)[endpoint]
    service = np.array(services)[endpoint]
    common = {"trace_id": trace + trace, "service": np.concatenate([service, service]), "line": np.concatenate([index, index])}
    frame = pl.DataFrame({
        **common,
        "span_id": [f"{i:016x}" for i in index] + [f"{i + n:016x}" for i in index],
        "parent_span_id": [None] * n + [f"{i:016x}" for i in index],
        "name": [f"GET {r}" for r in routes] + [f"SELECT t{e}" for e in endpoint],
        "kind": ["server"] * n + ["client"] * n,
        "ts": np.concatenate([start_us, db_start]),
        "end": np.concatenate([start_us + ((app_ms + db_ms) * 1000).astype(np.int64), db_start + (db_ms * 1000).astype(np.int64)]),
        "status": np.concatenate([np.where(status >= 500, "error", "unset"), np.where(failed, "error", "unset")]),
        "http_route": list(routes) + [None] * n,
        "http_method": ["GET"] * n + [None] * n,
        "http_status": np.concatenate([status, np.zeros(n, dtype=int)]),
        "peer_service": [None] * n + ["postgres"] * n,
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("end").cast(pl.Datetime("us", "UTC")),
                    pl.when(pl.col("kind") == "server").then(pl.col("http_status")).otherwise(None).alias("http_status"))
    frames, _ = finish_spans(frame, "synthetic")
    logged = np.flatnonzero(failed)
    noise = rng.integers(0, n, background_errors)
    events = pl.DataFrame({
        "ts": pl.Series(np.concatenate([start_us[logged], start_us[noise]])).cast(pl.Datetime("us", "UTC")),
        "level": ["ERROR"] * (len(logged) + len(noise)),
        "service": list(service[logged]) + list(service[noise]),
        "message": [HIKARI] * len(logged) + [f"cache refresh failed for key k{int(k) % 97}" for k in noise],
        "trace_id": [trace[i] for i in logged] + [None] * len(noise),
        "signal": "app_log",
    })
    return Dataset(requests=frames["requests"].with_columns(signal=pl.lit("trace"), origin=pl.lit("synthetic")),
                   spans=frames["spans"].with_columns(signal=pl.lit("trace")), events=conform(events, "events"))


def endpoint_failures(result) -> set[str]:
    return {g.subject for g in result.gates if g.failed and g.scope == "endpoint"}


# --- the acceptance criteria ------------------------------------------------------------------------


def test_unchanged_candidate_passes_in_19_of_20_seeds():
    passed = sum(not compare_datasets(traces(seed), traces(seed + 1000), GATES).failed for seed in range(20))
    assert passed >= 19


def test_a_30_percent_regression_fails_every_time_and_names_endpoint_and_span():
    for seed in range(20):
        target = seed % len(ENDPOINTS)
        result = compare_datasets(traces(seed), traces(seed + 1000, regression=(target, 1.3)), GATES)
        assert result.failed, seed
        assert endpoint_failures(result) == {ENDPOINTS[target]}, (seed, endpoint_failures(result))
        for row in result.rows:
            if row.status == "regressed":  # the endpoint, and the service when its own p95 moved enough
                assert row.likely_causes[0].subject == f"api SELECT t{target}", (seed, row.subject)
                assert row.likely_causes[0].dependency == "postgres"
                assert row.likely_cause.startswith(f"api SELECT t{target} (calls postgres; self time per trace ")
                assert not [c for c in row.likely_causes if c.kind == "new_error"], "no errors were added"


def test_too_few_samples_is_not_judged():
    result = compare_datasets(traces(1, per_endpoint=10), traces(2, per_endpoint=10, regression=(0, 3.0)), GATES)
    assert not result.failed
    assert sorted(result.not_enough) == sorted(f"endpoint {e} (10 vs 10 samples)" for e in ENDPOINTS)
    assert {r.status for r in result.rows if r.scope == "endpoint"} == {"not enough data"}
    assert {(s.gate, s.not_judged) for s in result.summaries} == {("p95>+20%", 6), ("error_rate>+1pp", 6)}
    assert len(result.skipped) == 12 and all("not enough data" in g.observed for g in result.skipped)
    strict = compare_datasets(traces(1, per_endpoint=10), traces(2, per_endpoint=10), GATES, strict=True)
    assert strict.failed and strict.headline.startswith("FAIL (--strict): not enough data for 6")
    assert github_annotations(strict) == ["::error title=rca compare --strict%3A not enough data::"
                                          + "; ".join(strict.not_enough).replace("%", "%25")]
    assert github_annotations(result) == []


# --- service rows -----------------------------------------------------------------------------------

TWO_SERVICES = ("api",) * 3 + ("search",) * 3


def test_service_rows_are_gated_and_scoped_like_endpoints():
    gates = [parse_gate("service:search p95>+10%"), parse_gate("service:api p95>+10%"), parse_gate("endpoint:/api/r1/{id} p95>+10%")]
    result = compare_datasets(traces(3, services=TWO_SERVICES), traces(4, services=TWO_SERVICES, regression=(5, 1.5)), gates)
    services = {r.subject: r for r in result.rows if r.scope == "service"}
    assert set(services) == {"api", "search"} and services["search"].n_baseline == 2400
    assert services["search"].vantage == "trace (search)"
    assert {(g.gate, g.scope, g.subject, g.failed) for g in result.gates} == {
        ("service:search p95>+10%", "service", "search", True),
        ("service:api p95>+10%", "service", "api", False),
        ("endpoint:/api/r1/{id} p95>+10%", "endpoint", "/api/r1/{id}", False),
    }
    assert services["search"].status == "regressed" and services["api"].status == "pass"
    assert services["search"].likely_causes[0].subject == "search SELECT t5"
    unscoped = compare_datasets(traces(3, services=TWO_SERVICES), traces(4, services=TWO_SERVICES, regression=(5, 1.5)), GATES)
    assert {(g.scope, g.subject) for g in unscoped.gates if g.failed} == {("endpoint", ENDPOINTS[5]), ("service", "search")}
    assert 'name="p95&gt;+20% service:search"><failure' in render_junit(unscoped)
    assert "failed on service search" in "\n".join(github_annotations(unscoped))
    assert "### Services" in render_markdown(unscoped) and "| `search` |" in render_markdown(unscoped)
    # issue #18 item 9: a scoped gate matching nothing (a typo) is a usage error, never a silent pass
    with pytest.raises(UsageError, match=r"gate 'service:nope p95>\+10%' matches no service in the data \(services: api\)"):
        compare_datasets(traces(3), traces(4), [parse_gate("service:nope p95>+10%")])
    with pytest.raises(UsageError, match=r"matches no endpoint in the data; did you mean '/api/r1/\{id\}'"):
        compare_datasets(traces(3), traces(4), [parse_gate("endpoint:/api/r1/{ids} p95>+10%")])


def test_an_endpoint_absent_on_one_side_is_said_so():
    """Issue #18 item 9: an endpoint the candidate never served is 'absent in candidate', not 'not
    enough data'."""
    base = traces(3)
    cand = traces(4)
    gone = cand.spans.filter(pl.col("http_route") == ENDPOINTS[2])["trace_id"].implode()
    cand = Dataset(requests=cand.requests.filter(~pl.col("trace_id").is_in(gone)),
                   spans=cand.spans.filter(~pl.col("trace_id").is_in(gone)), events=cand.events)
    result = compare_datasets(base, cand, GATES)
    row = next(r for r in result.rows if r.scope == "endpoint" and r.subject == ENDPOINTS[2])
    assert row.status == "absent in candidate"
    assert f"endpoint {ENDPOINTS[2]} (800 vs 0 samples, absent in candidate)" in result.not_enough
    assert any(g.subject == ENDPOINTS[2] and g.observed.startswith("absent in candidate") for g in result.skipped)
    assert "_absent in candidate_" in render_markdown(result)


def test_a_service_seen_only_in_traces_gets_a_row_from_its_entry_spans():
    def batch(seed: int, factor: float) -> Dataset:
        rng = np.random.default_rng(seed)
        n = 300
        start = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1e6) + np.arange(n) * 1_000_000
        job = (rng.lognormal(np.log(40), 0.2, n) * factor * 1000).astype(np.int64)
        frame = pl.DataFrame({
            "trace_id": [f"{seed:08x}{i:024x}" for i in range(n)] * 2,
            "span_id": [f"{i:016x}" for i in range(n)] + [f"{i + n:016x}" for i in range(n)],
            "parent_span_id": [None] * n + [f"{i:016x}" for i in range(n)],
            "service": ["batch"] * n + ["warehouse"] * n,  # a job (internal root) calling a consumer
            "name": ["nightly export"] * n + ["load rows"] * n,
            "kind": ["internal"] * n + ["consumer"] * n,
            "ts": np.concatenate([start, start + 1000]), "end": np.concatenate([start + job + 2000, start + 1000 + job]),
            "status": ["unset"] * (2 * n), "line": list(range(2 * n)),
        }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("end").cast(pl.Datetime("us", "UTC")))
        frames, _ = finish_spans(frame, "batch")
        return Dataset(spans=frames["spans"].with_columns(signal=pl.lit("trace")))

    result = compare_datasets(batch(1, 1.0), batch(2, 1.5), [parse_gate("p95>+20%")])
    services = {r.subject: r for r in result.rows if r.scope == "service"}
    assert set(services) == {"batch", "warehouse"}
    assert services["batch"].vantage == "trace entry spans" and services["batch"].n_baseline == 300
    assert services["warehouse"].status == services["batch"].status == "regressed"
    assert services["batch"].likely_causes[0].subject == "warehouse load rows"


# --- new errors as likely causes --------------------------------------------------------------------


def test_new_errors_are_named_beside_the_span():
    base = traces(5, background_errors=40)
    cand = traces(6, failing=(2, 120), background_errors=40)
    result = compare_datasets(base, cand, GATES)
    assert endpoint_failures(result) == {ENDPOINTS[2]}
    row = next(r for r in result.rows if r.scope == "endpoint" and r.subject == ENDPOINTS[2])
    new = {c.source: c for c in row.likely_causes if c.kind == "new_error"}
    assert set(new) == {"log", "span", "http"}
    assert new["log"].text == f"new error in api: `{HIKARI}` x120 (baseline 0)"
    assert new["log"].example == HIKARI and "<*>" in new["log"].subject  # the mined template
    assert new["span"].text == "new error: span `api SELECT t2` status error x120 (baseline 0)"
    assert new["http"].subject == "HTTP 503" and new["http"].candidate == 120
    assert not any("cache refresh" in c.text for c in row.likely_causes), "as frequent as in the baseline"
    assert "x120 (baseline 0)" in render_markdown(result) and "x120 (baseline 0)" in render_junit(result)


def test_a_few_stray_errors_are_not_called_new_and_noise_is_no_span_cause():
    result = compare_datasets(traces(7), traces(8, regression=(3, 1.5), failing=(3, 4)), GATES)
    row = next(r for r in result.rows if r.status == "regressed" and r.scope == "endpoint")
    assert row.subject == ENDPOINTS[3] and [c.kind for c in row.likely_causes] == ["self_time"], row.likely_causes
    errors_only = compare_datasets(traces(7), traces(8, failing=(3, 120)), GATES)
    row = next(r for r in errors_only.rows if r.status == "regressed" and r.scope == "endpoint")
    assert [c.kind for c in row.likely_causes] == ["new_error"] * 3, "latency did not move: no span is blamed"


# --- gates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["p95>+20%", "p99>+50ms", "error_rate>+1pp", "count<-50%", "endpoint:/api/x p95>+10%",
                                  "service:users p95>+10%", "p50 > +5%"])
def test_gates_parse(text):
    gate = parse_gate(text)
    assert gate.text == text and gate.metric in text


@pytest.mark.parametrize(("text", "message"), [
    ("p95>20", "signed change with a unit"), ("p95>>20", "signed change with a unit"), ("p95>+20", "signed change"),
    ("latency>+1%", "unknown metric 'latency'"), ("error_rate>+1ms", "takes a change in pp"),
    ("error_rate>+1%", "percentage points"), ("", "give a metric"), ("foo:/x p95>+1%", "unknown scope 'foo:'"),
    ("service:users", "a scope needs a gate"),
])
def test_bad_gates_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_gate(text)


def test_a_p99_gate_is_judged_on_the_p99_interval():
    result = compare_datasets(traces(9), traces(10, regression=(4, 1.3)), [parse_gate("p99>+20ms")])
    assert endpoint_failures(result) == {ENDPOINTS[4]}
    row = next(r for r in result.rows if r.subject == ENDPOINTS[4] and r.scope == "endpoint")
    gate = next(g for g in result.gates if g.subject == ENDPOINTS[4] and g.scope == "endpoint")
    assert row.delta_ci["p99"][0] > 20 and "p99 delta 95% CI" in gate.observed


# --- outputs ----------------------------------------------------------------------------------------


def test_json_validates_is_byte_identical_and_keeps_the_first_contract():
    make = lambda: compare_datasets(traces(11), traces(12, regression=(1, 1.4), failing=(1, 60)), GATES)  # noqa: E731
    first, second = render_json(make()), render_json(make())
    assert first == second
    data = orjson.loads(first)
    jsonschema.validate(data, SCHEMA)
    assert data["schema_version"] == 1 and data["verdict"] == "fail"
    # the fields of the first release stay, with their meaning
    assert {"schema_version", "verdict", "gates", "not_enough_data", "rows"} <= set(data)
    assert {"gate", "subject", "observed", "failed"} <= set(data["gates"][0])
    old_row = {"scope", "subject", "n_baseline", "n_candidate", "enough_data", "error_rate_baseline", "error_rate_candidate",
               "error_z", "quantiles_baseline", "quantiles_candidate", "p95_delta_ci", "p_value", "likely_cause"}
    assert all(old_row <= set(row) for row in data["rows"])
    assert [r["scope"] for r in data["rows"]] == sorted((r["scope"] for r in data["rows"]), key=["endpoint", "service", "operation"].index)
    regressed = next(r for r in data["rows"] if r["subject"] == ENDPOINTS[1] and r["scope"] == "endpoint")
    assert regressed["likely_cause"].startswith("api SELECT t1 ") and regressed["p95_delta_ci"] == regressed["delta_ci"]["p95"]
    assert to_dict(make())["headline"].startswith("FAIL: ")


def test_terminal_table_verdict_first_gates_listed_not_enough_rows_marked():
    base, cand = traces(13), traces(14, regression=(2, 1.5))
    rare = traces(99, per_endpoint=10).requests.head(10).with_columns(endpoint=pl.lit("/api/rare"), trace_id=pl.lit(None, pl.String))
    few = Dataset(requests=pl.concat([cand.requests, rare]), spans=cand.spans, events=cand.events)
    result = compare_datasets(base, few, GATES)
    console = Console(file=StringIO(), width=160)  # a file: not a terminal, so no color
    render_terminal(result, console)
    text = console.file.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith("rca compare: FAIL: p95>+20% failed on endpoint /api/r2/{id}")
    assert "\x1b[" not in text
    assert re.search(r"p95>\+20%\s+7\s+endpoint /api/r2/\{id\}\s+1\s+FAIL", text)
    assert re.search(r"error_rate>\+1pp\s+7\s+-\s+1\s+pass", text)
    rare = next(line for line in lines if line.startswith("/api/rare"))
    assert "0/10" in rare and "absent in" in rare
    assert "REGRESSED" in next(line for line in lines if line.startswith("/api/r2/{id}"))
    assert lines.index(next(line for line in lines if line.startswith("Services"))) < lines.index("Likely causes")
    assert "    - api SELECT t2 (calls postgres; self time per trace" in text


@pytest.mark.parametrize("width", [80, 100, 140])
def test_terminal_table_is_whole_at_80_to_140_columns(width):
    """Issue #18 item 10: at 80-100 columns the subjects were cut to 4 characters and the figures to
    `20.3 -> 20…`. Every subject, figure and status is now whole; p50/p99 give way first, said so."""
    result = compare_datasets(traces(13), traces(14, regression=(2, 1.5)), GATES)
    console = Console(file=StringIO(), width=width)
    render_terminal(result, console)
    text = console.file.getvalue()
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    for endpoint in ENDPOINTS:
        assert any(line.startswith(endpoint + " ") for line in text.splitlines()), endpoint
    row = next(line for line in text.splitlines() if line.startswith("/api/r2/{id}"))
    assert "68.6 -> 103" in row and "REGRESSED" in row and "p=1e-206" in row
    assert ("p50 ms" in text) == (width >= 120)
    if width < 120:
        assert "in a wider terminal (COLUMNS=120)" in text


def test_outputs_junit_annotations_and_step_outputs_escape():
    result = compare_datasets(traces(3), traces(4, regression=(2, 1.5)), GATES)
    xml = render_junit(result)
    assert 'failures="1"' in xml and "<failure" in xml and "likely cause: api SELECT t2" in xml
    lines = github_annotations(result)
    assert len(lines) == 1 and lines[0].startswith("::error title=rca gate p95>+20%25 failed on /api/r2/{id}::")
    assert "%0A" not in lines[0] and "likely cause: api SELECT t2" in lines[0]
    assert github_outputs(result)[:2] == ["verdict=fail", "failed_gates=1"]
    assert github_outputs(result)[2].startswith("top_cause=api SELECT t2 (calls postgres;")


# --- the command ------------------------------------------------------------------------------------


def write_parquet(data: Dataset, path):
    path.mkdir(parents=True)
    data.requests.write_parquet(path / "requests.parquet")
    data.spans.write_parquet(path / "spans.parquet")
    return str(path)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    return {
        "base": write_parquet(traces(5), root / "base"),
        "same": write_parquet(traces(6), root / "same"),
        "worse": write_parquet(traces(7, regression=(1, 1.4)), root / "worse"),
    }


runner = CliRunner()


def test_cli_exit_codes_and_ci_files(frames, tmp_path, monkeypatch):
    base, same, worse = frames["base"], frames["same"], frames["worse"]
    ok = runner.invoke(app, ["compare", "--baseline", base, "--candidate", same, "--fail-on", "p95>+20%", "-f", "json"])
    assert ok.exit_code == 0, ok.output
    assert orjson.loads(ok.stdout)["verdict"] == "pass"
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)}
    bad = runner.invoke(app, ["compare", "--fail-on", "p95>+20%", "--baseline", base, "--candidate", worse,
                              "--junit", str(tmp_path / "j.xml"), "-f", "json"], env=env)
    assert bad.exit_code == 1, bad.output
    assert orjson.loads(bad.stdout)["verdict"] == "fail", "annotations never spoil the JSON on stdout"
    assert bad.stderr.count("::error title=rca gate p95>+20%25 failed on /api/r1/{id}::") == 1
    assert "## rca compare: FAIL" in summary.read_text() and "### Services" in summary.read_text()
    assert outputs.read_text().splitlines()[:2] == ["verdict=fail", "failed_gates=1"]
    assert 'failures="1"' in (tmp_path / "j.xml").read_text()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rca.toml").write_text('[gates]\nfail_on = ["p95>+20%"]\n')
    assert runner.invoke(app, ["compare", "--baseline", base, "--candidate", worse]).exit_code == 1
    assert runner.invoke(app, ["compare", "--baseline", base, "--candidate", worse, "--fail-on", "p95>+90%"]).exit_code == 0
    (tmp_path / "rca.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.rca.gates]\nfail_on = ["endpoint:/api/r1/{id} p95>+20%"]\n')
    assert runner.invoke(app, ["compare", "--baseline", base, "--candidate", worse]).exit_code == 1
    md = runner.invoke(app, ["compare", "--baseline=" + base, "--candidate=" + same, "-f", "markdown", "-o", str(tmp_path / "r.md")])
    assert md.exit_code == 0 and md.stdout == "" and (tmp_path / "r.md").read_text().startswith("## rca compare: pass")


def test_cli_terminal_streams_and_color(frames):
    args = ["compare", "--baseline", frames["base"], "--candidate", frames["worse"], "--fail-on", "p95>+20%", "--min-samples", "900"]
    plain = runner.invoke(app, args, env={"COLUMNS": "160"})  # the headline on one line whatever the runner's width
    assert plain.exit_code == 0, plain.output  # 800 a side < 900: only the service judged, no --strict
    assert plain.stdout.startswith("rca compare: pass: 1 gate(s) held on 1 check(s); not enough data for 6 subject(s)")
    assert "\x1b[" not in plain.stdout and "not enough" in plain.stdout
    assert "rca: not enough data: endpoint /api/r0/{id} (800 vs 800 samples)" in plain.stderr
    assert "rca: not enough data" not in plain.stdout
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1
    colored = runner.invoke(app, [*args, "--color", "always"], env={"NO_COLOR": None})
    assert COLOR_SGR.search(colored.stdout)
    no_color = runner.invoke(app, [*args, "--color", "always"], env={"NO_COLOR": "1"})
    assert not COLOR_SGR.search(no_color.stdout), "NO_COLOR: no color (bold and dim may stay)"
    assert re.sub(r"\x1b\[[0-9;]*m", "", no_color.stdout).startswith("rca compare: pass")


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("rca: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_every_bad_input_is_one_line_and_exit_2(frames, tmp_path, monkeypatch):
    base = frames["base"]
    (tmp_path / "empty.log").write_text("")
    (tmp_path / "garbage.txt").write_text("no format at all here\n")
    (tmp_path / "logs.jsonl").write_text('{"ts":"2026-06-01T00:00:00Z","level":"error","msg":"boom"}\n')
    cases = {
        "missing file": (["--baseline", base, "--candidate", str(tmp_path / "nope.log")], "candidate: nothing readable"),
        "unreadable baseline": (["--baseline", str(tmp_path / "garbage.txt"), "--candidate", base], "baseline: nothing readable"),
        "empty candidate": (["--baseline", base, "--candidate", str(tmp_path / "empty.log")], "empty file"),
        "no requests": (["--baseline", base, "--candidate", str(tmp_path / "logs.jsonl")], "candidate: no requests or spans"),
        "bad gate": (["--baseline", base, "--candidate", base, "--fail-on", "p95>>20"], "bad gate 'p95>>20'"),
        "unknown metric": (["--baseline", base, "--candidate", base, "--fail-on", "latency>+5%"], "unknown metric 'latency'"),
        "no candidate": (["--baseline", base], "no candidate inputs"),
        "stray input": ([base, "--baseline", base], "give inputs after --baseline or --candidate"),
        "unknown option": (["--baseline", base, "--candidate", base, "--frobnicate"], "unknown option '--frobnicate'"),
        "stdin twice": (["--baseline", "-", "--candidate", "-"], "only one side"),
        "junit nowhere": (["--baseline", base, "--candidate", base, "--junit", str(tmp_path / "no" / "j.xml")], "cannot write JUnit XML"),
    }
    for name, (args, expected) in cases.items():
        line = _one_error_line(runner.invoke(app, ["compare", *args]))
        assert expected in line, (name, line)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rca.toml").write_text("[gates\nfail_on = 3\n")
    assert "rca.toml: cannot read gates" in _one_error_line(runner.invoke(app, ["compare", "--baseline", base, "--candidate", base]))
    (tmp_path / "rca.toml").write_text("[gates]\nfail_on = 3\n")
    assert "fail_on must be a list" in _one_error_line(runner.invoke(app, ["compare", "--baseline", base, "--candidate", base]))
    (tmp_path / "rca.toml").unlink()

    def crash(*args, **kwargs):
        raise ValueError("synthetic failure")

    monkeypatch.setattr("rca.compare.compare_datasets", crash)
    line = _one_error_line(runner.invoke(app, ["compare", "--baseline", base, "--candidate", base]))
    assert line == "rca: error: unexpected ValueError: synthetic failure (run with --debug for a traceback)"
    debug = runner.invoke(app, ["--debug", "compare", "--baseline", base, "--candidate", base])
    assert isinstance(debug.exception, ValueError)
