"""Latency, change effects and locality read `Dataset.request_aggregates` for the vantages it carries,
whose rows are then only a sample: on generated incidents of varied shape, aggregates of every row plus a
5% sample give the findings every row gives (kind, subject, onset), their counts exactly and their
quantiles within the histograms' relative accuracy (SKETCH_ALPHA, 1%)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from rca.aggregates import aggregate_requests
from rca.detectors.changes import detect_change_effects
from rca.detectors.latency import MIN_RATIO, detect_latency
from rca.detectors.locality import host_spread
from rca.detectors.stats import ONSET_STEP, exact_aggregates
from rca.detectors.windows import choose_context
from rca.model import SKETCH_ALPHA, AnalysisContext, Dataset, Finding
from rca.parsers.loader import load_dataset
from rca.simulate import SCENARIOS, generate

SAMPLE = 0.05


Formats = tuple[str, ...] | None


@pytest.fixture(scope="module")
def incident(tmp_path_factory) -> Callable[[str, int, Formats], Dataset]:
    """Every row of a generated incident of 40 minutes (the scenario's default files, or `formats`),
    generated and read once per module."""
    cache: dict[tuple[str, int, Formats], Dataset] = {}

    def load(scenario: str, seed: int, formats: Formats = None) -> Dataset:
        if (scenario, seed, formats) not in cache:
            out = tmp_path_factory.mktemp(f"{scenario}-{seed}")
            paths = generate(scenario, seed=seed, minutes=40, **({"formats": formats} if formats else {})).write(out)
            cache[(scenario, seed, formats)] = load_dataset([str(p) for p in paths if p.name != "truth.json"])
        return cache[(scenario, seed, formats)]

    return load


def _sampled(full: Dataset, seed: int) -> Dataset:
    """Every vantage's rows replaced by a 5% sample, beside exact aggregates (5 s buckets) of all of them."""
    return replace(full, requests=full.requests.sample(fraction=SAMPLE, seed=seed).sort("ts"), request_aggregates=aggregate_requests(full.requests, 5))


def _incident(incident, scenario: str, seed: int) -> tuple[Dataset, Dataset, AnalysisContext]:
    """Every row of a generated incident (access log and traces), the same sampled, and its windows."""
    full = incident(scenario, seed, ("access", "traces"))
    context = choose_context(full)
    assert context is not None and context.method.startswith("auto: sustained")
    sampled = _sampled(full, seed)
    assert exact_aggregates(sampled.request_aggregates, context) is sampled.request_aggregates
    return full, sampled, context


def _key(f: Finding) -> tuple:
    return (f.kind, f.signal, f.where, f.dimension, f.subject)


def _same_onset(a: Finding, b: Finding, context: AnalysisContext) -> bool:
    """Onsets fitted to series within the histograms' accuracy: the same, or one step of the fit's grid apart."""
    if a.onset is None or b.onset is None:
        return a.onset is b.onset
    return abs((a.onset - b.onset).total_seconds()) <= ONSET_STEP * context.bucket_s + 1  # onsets are rounded to the second


def _close(a: float | None, b: float | None, rounding: float = 0.05) -> bool:
    """Quantiles within the histograms' accuracy (and the figures' rounding)."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= SKETCH_ALPHA * abs(b) + rounding


def _same_p(a: float, b: float) -> bool:
    """p-values of the same test on binned and on exact values: equal to a tenth of their decimal exponent."""
    la, lb = math.log10(max(a, 1e-300)), math.log10(max(b, 1e-300))
    return abs(la - lb) <= 0.1 * abs(lb) + 0.3


CASES = [("dependency-slowdown", 1), ("memory-exhaustion", 3), ("cache-exhaustion", 2)]


@pytest.mark.parametrize(("scenario", "seed"), CASES)
def test_latency_shifts_from_aggregates_and_a_sample_are_those_of_every_row(incident, scenario, seed):
    full, sampled, context = _incident(incident, scenario, seed)
    expected = sorted(detect_latency(full, context), key=_key)
    found = sorted(detect_latency(sampled, context), key=_key)
    assert expected, "the incident slows something"
    assert [_key(f) for f in found] == [_key(f) for f in expected]
    for f, e in zip(found, expected, strict=True):
        d, x = f.details, e.details
        assert _same_onset(f, e, context), (f.subject, f.onset, e.onset)
        assert (d.n_before, d.n_after, d.method) == (x.n_before, x.n_after, x.method)  # counts exact
        for name in ("p50_before_ms", "p50_after_ms", "p95_before_ms", "p95_after_ms", "p99_before_ms", "p99_after_ms"):
            assert _close(getattr(d, name), getattr(x, name)), (f.subject, name, getattr(d, name), getattr(x, name))
        assert _same_p(d.p_value, x.p_value) and abs(f.confidence - e.confidence) <= 0.02, (f.subject, d.p_value, x.p_value)
        assert d.basis and "histograms" in d.basis and x.basis is None
        assert f.series is not None and e.series is not None
        assert all(_close(a, b, 0.0001) for a, b in zip(f.series.values, e.series.values, strict=True))
    # the sample alone misses shifts every row shows
    assert [_key(f) for f in sorted(detect_latency(replace(sampled, request_aggregates=None), context), key=_key)] != [_key(f) for f in expected]


@pytest.mark.parametrize(("scenario", "seed"), [("dependency-slowdown", 1), ("dependency-slowdown", 4)])
def test_every_host_slowed_alike_from_aggregates_and_a_sample(incident, scenario, seed):
    full, sampled, context = _incident(incident, scenario, seed)
    expected = {f.subject: f for f in host_spread(full, context)}
    found = {f.subject: f for f in host_spread(sampled, context)}
    assert expected and found.keys() == expected.keys()
    for subject, f in found.items():
        e = expected[subject]
        assert f.signal == e.signal and [h for h, _, _ in f.details.hosts] == [h for h, _, _ in e.details.hosts]
        for (_, b, i), (_, xb, xi) in zip(f.details.hosts, e.details.hosts, strict=True):
            assert _close(b, xb, 0.0) and _close(i, xi, 0.0)


def _all_rows_sampled(incident, scenario: str, seed: int) -> tuple[Dataset, Dataset, AnalysisContext]:
    full = incident(scenario, seed)
    context = choose_context(full)
    assert context is not None and full.changes.height
    return full, _sampled(full, seed), context


@pytest.mark.parametrize(("scenario", "seed"), [("bad-release", 1), ("bad-release", 2), ("flag-flip", 3), ("cache-exhaustion", 5)])
def test_change_effects_from_aggregates_and_a_sample_are_those_of_every_row(incident, scenario, seed):
    """Before/after each change from the aggregates: the same verdict and what moved; the service's figures
    exact (counts, shares, rates) or within the histograms' accuracy (p95). The canary split needs each
    request's release and route, which only rows hold: it runs on the sample and says so."""
    full, sampled, context = _all_rows_sampled(incident, scenario, seed)
    expected = detect_change_effects(full, context)
    found = detect_change_effects(sampled, context)
    assert [f.subject for f in found] == [f.subject for f in expected]
    for f, e in zip(found, expected, strict=True):
        d, x = f.details, e.details
        assert (d.effect, d.enough_data) == (x.effect, x.enough_data) and (f.confidence > 0) == (e.confidence > 0), f.subject
        if not x.canary_effect:  # what moved before/after the change (the canary's verdict needs every row of both releases)
            assert (d.moved, f.metric) == (x.moved, e.metric), f.subject
        assert _close(d.p95_before_ms, x.p95_before_ms) and _close(d.p95_after_ms, x.p95_after_ms), (f.subject, d, x)
        # shares and rates: a 5 s bucket cut by a side's edge counts by its share of time, a few requests in 15 minutes
        for a, b in ((d.error_rate_before, x.error_rate_before), (d.error_rate_after, x.error_rate_after),
                     (d.rate_before_per_min, x.rate_before_per_min), (d.rate_after_per_min, x.rate_after_per_min)):
            assert a is not None and b is not None and abs(a - b) <= 0.01 * b + 1e-4, (f.subject, a, b)
        assert d.basis and "histograms" in d.basis and x.basis is None
        if d.canary is not None:
            assert "sample" in d.canary["basis"]
    assert any(f.details.effect for f in expected) or scenario == "cache-exhaustion"


TRACES = Path(__file__).parents[2] / "samples" / "cache-exhaustion" / "telemetry" / "traces.otlp.jsonl.gz"
DDL = Path(__file__).parents[1] / "parsers" / "otel_clickhouse_exporter.sql"


def _ratio_at_threshold(f: Finding) -> bool:
    """A p95 rise within the histograms' accuracy of the reporting threshold: reported from one and not
    the other by 1% of error."""
    ratio = f.details.p95_after_ms / max(f.details.p95_before_ms, 1e-6)
    return abs(ratio - MIN_RATIO) <= 2.5 * SKETCH_ALPHA * MIN_RATIO


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The exporter's tables (its DDL) holding the cache-exhaustion sample's traces, in chDB."""
    chdb_session = pytest.importorskip("chdb.session")
    from typer.testing import CliRunner

    from rca.cli import app

    path = tmp_path_factory.mktemp("store") / "data"
    body = "\n".join(line for line in DDL.read_text().splitlines() if not line.startswith("--"))
    sess = chdb_session.Session(str(path))
    try:
        for statement in body.replace("{db}", "otel").split(";\n"):
            if statement.strip():
                sess.query(statement)
    finally:
        sess.close()
    result = CliRunner().invoke(app, ["ingest", str(TRACES), "--out", f"chdb:{path}", "-q"])
    assert result.exit_code == 0, result.stderr
    return path


def test_a_sampled_clickhouse_store_gives_the_request_findings_of_the_files(store):
    """The store's rows sampled to a bound (whole traces by trace-id hash), its aggregates computed in
    ClickHouse: the same windows, and the latency shifts, host spreads and change effects the same spans
    give read from files."""
    path = store
    files = load_dataset([str(TRACES)])
    store = load_dataset([f"chdb:{path}?max_spans=2000"])
    assert store.request_aggregates is not None and store.spans.height < 0.5 * files.spans.height
    context = choose_context(files)
    assert context is not None and choose_context(store) == context  # the span from ClickHouse's first and last span
    assert exact_aggregates(store.request_aggregates, context) is not None
    expected = {_key(f): f for f in detect_latency(files, context)}
    found = {_key(f): f for f in detect_latency(store, context)}
    assert len(expected) >= 5
    assert all(_ratio_at_threshold(f) for k, f in {**expected, **found}.items() if (k in expected) != (k in found))
    for key in found.keys() & expected.keys():  # a p95 of a few spans a bucket: the onset's fit may move by a bucket or two
        assert abs((found[key].onset - expected[key].onset).total_seconds()) <= 3 * context.bucket_s, key
        assert _close(found[key].details.p95_after_ms, expected[key].details.p95_after_ms)
    assert {f.subject for f in host_spread(store, context)} == {f.subject for f in host_spread(files, context)}
    changes = [(f.subject, f.details.effect, f.details.moved) for f in detect_change_effects(files, context)]
    assert [(f.subject, f.details.effect, f.details.moved) for f in detect_change_effects(store, context)] == changes


@pytest.mark.parametrize(("scenario", "seed"), [("bad-release", 2), ("flag-flip", 3), ("host-leak", 1), ("client-flood", 2)])
def test_the_windows_chosen_from_aggregates_and_a_sample_are_those_of_every_row(incident, scenario, seed):
    """Every service's p95 and 5xx share per bucket, beside the busiest vantage's, from the aggregates: a
    release of one service of several opens the incident where every row opens it."""
    full = incident(scenario, seed)
    sample = full.requests.sample(fraction=SAMPLE, seed=seed).sort("ts")
    expected = choose_context(full)
    assert expected is not None and expected.method.startswith("auto: sustained")
    assert choose_context(replace(full, requests=sample, request_aggregates=aggregate_requests(full.requests, 5))) == expected
    assert choose_context(replace(full, requests=sample)) != expected  # the sample alone places it elsewhere


def test_the_report_says_which_figures_come_from_the_aggregates_and_their_accuracy(store):
    from typer.testing import CliRunner

    from rca.cli import app

    runner = CliRunner()
    markdown = runner.invoke(app, ["analyze", f"chdb:{store}?max_spans=2000", "--format", "markdown", "-q"])
    assert markdown.exit_code == 0, markdown.stderr
    appendix = markdown.stdout.split("## Appendix", 1)[1]
    assert f"each within {SKETCH_ALPHA:.0%} of the exact quantile" in appendix
    report = orjson.loads(runner.invoke(app, ["analyze", f"chdb:{store}?max_spans=2000", "--format", "json", "-q"]).stdout)
    latency = [f for f in report["findings"] if f["kind"] == "latency_shift"]
    assert latency and all("histograms" in f["details"]["basis"] for f in latency)
    whole = orjson.loads(runner.invoke(app, ["analyze", f"chdb:{store}", "--format", "json", "-q"]).stdout)
    assert all("basis" not in f["details"] for f in whole["findings"])  # every row read: nothing to say


@pytest.mark.parametrize(("scenario", "seed"), [("user-surge", 2), ("bad-release", 1)])
def test_the_ranked_causes_from_aggregates_and_a_sample_are_those_of_every_row(incident, scenario, seed):
    """The whole analysis (windows, every detector, the ranker) of aggregates and a 5% sample names the
    causes, in the same order, and rules out the explanations every row does."""
    from rca.pipeline import AnalyzeOptions, analyze_dataset

    full = incident(scenario, seed, ("access", "jsonl") if scenario in SCENARIOS else None)
    sample = full.requests.sample(fraction=SAMPLE, seed=seed).sort("ts")

    def causes(dataset: Dataset) -> tuple[list, list]:
        report = analyze_dataset(dataset, AnalyzeOptions())
        return [(h.kind, h.subject, h.where) for h in report.hypotheses[:3]], sorted((r.kind, r.subject) for r in report.ruled_out)

    expected = causes(full)
    assert expected[0], "the incident has a cause"
    assert causes(replace(full, requests=sample, request_aggregates=aggregate_requests(full.requests, 5))) == expected
    assert causes(replace(full, requests=sample))[0][:1] != expected[0][:1]  # the sample alone names another cause


def test_compare_reads_the_aggregates_of_both_sides(incident):
    """`rca compare` of two sampled inputs (a store's two time ranges): every endpoint's and service's
    requests and 5xx share exact, quantiles within 1%, and the same gates trip as on every row."""
    from rca.compare import compare_datasets, parse_gate

    baseline = incident("quiet", 4, None)
    paths = generate("quiet", seed=4, minutes=40, noise_seed=2004, latency_regression=1.3).write(Path(baseline.inputs[0].path).parents[1] / "regressed")
    candidate = load_dataset([str(p) for p in paths if p.name != "truth.json"])
    gates = [parse_gate(g) for g in ("p95>+20%", "error_rate>+1pp", "count<-50%")]
    expected = compare_datasets(baseline, candidate, gates)
    found = compare_datasets(_sampled(baseline, 4), _sampled(candidate, 5), gates)
    assert [g.subject for g in expected.gates if g.failed], "the regression trips a gate"
    assert [(g.subject, g.failed) for g in found.gates] == [(g.subject, g.failed) for g in expected.gates]
    rows = {(r.scope, r.subject): r for r in found.rows if r.scope in ("endpoint", "service")}
    for e in (r for r in expected.rows if r.scope in ("endpoint", "service")):
        f = rows[(e.scope, e.subject)]
        assert (f.n_baseline, f.n_candidate, f.error_rate_baseline, f.error_rate_candidate) == (e.n_baseline, e.n_candidate, e.error_rate_baseline, e.error_rate_candidate)
        for found_q, expected_q in ((f.quantiles_baseline, e.quantiles_baseline), (f.quantiles_candidate, e.quantiles_candidate)):
            assert found_q.keys() == expected_q.keys() and all(_close(found_q[q], expected_q[q], 0.01) for q in expected_q), (e.subject, f, e)
        assert f.vantage.endswith("from its aggregates")
    alone = compare_datasets(replace(baseline, requests=_sampled(baseline, 4).requests), replace(candidate, requests=_sampled(candidate, 5).requests), gates)
    assert [r.n_baseline for r in alone.rows] != [r.n_baseline for r in expected.rows]


def test_a_big_access_log_read_in_bounded_memory_gives_the_latency_shifts_of_every_row(tmp_path, monkeypatch):
    """The file path (`parsers.bounded`: aggregates of every line, a uniform sample of the rows): the
    latency shifts every row shows, onsets within half a bucket, p95 within 1%."""
    from rca.pipeline import analyze

    log = [str(p) for p in generate("dependency-slowdown", seed=1, minutes=40, formats=("access",)).write(tmp_path) if "access" in p.name]
    full = analyze(log)
    monkeypatch.setenv("RCA_MAX_REQUEST_ROWS", str(full.inputs[0].rows["requests"] // 8))
    bounded = analyze(log)
    assert any("uniform sample" in w for w in bounded.inputs[0].warnings) and bounded.context == full.context
    expected = sorted((f for f in full.findings if f.kind == "latency_shift"), key=_key)
    found = sorted((f for f in bounded.findings if f.kind == "latency_shift"), key=_key)
    assert expected and [_key(f) for f in found] == [_key(f) for f in expected]
    assert full.context is not None
    for f, e in zip(found, expected, strict=True):
        assert _same_onset(f, e, full.context) and _close(f.incident, e.incident) and f.details.n_after == e.details.n_after


def test_given_windows_and_bucket_move_onto_the_aggregates_edges_so_a_sample_is_never_counted_as_every_row(incident):
    """`--since 12:03:17` or `--bucket 45s` off a sampled input's 30 s aggregates would make the detectors
    count the 5% sample as if it were every request; the edges and the bucket move to the aggregates'
    instead, and the request counts the traffic detector reads are every row's."""
    from rca.detectors.traffic import detect_traffic
    from rca.findings import TrafficSpikeDetails

    full = incident("client-flood", 2, ("access",))
    first, _ = full.time_range()
    since = (first + timedelta(minutes=27, seconds=17)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sampled = replace(full, requests=full.requests.sample(fraction=SAMPLE, seed=2).sort("ts"),
                      request_aggregates=aggregate_requests(full.requests, 30))
    context = choose_context(sampled, bucket="45s", since=since)
    assert context is not None and context.bucket_s == 60
    given = first + timedelta(minutes=27, seconds=17)
    assert context.incident.start.timestamp() % 30 == 0 and abs((context.incident.start - given).total_seconds()) <= 15
    assert "aggregate buckets" in context.method and exact_aggregates(sampled.request_aggregates, context) is not None
    rows = choose_context(full, bucket="60s", since=context.incident.start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert rows is not None
    expected = {(f.subject, f.details.incident_requests) for f in detect_traffic(full, rows) if isinstance(f.details, TrafficSpikeDetails)}
    assert expected and {(f.subject, f.details.incident_requests) for f in detect_traffic(sampled, context) if isinstance(f.details, TrafficSpikeDetails)} == expected
