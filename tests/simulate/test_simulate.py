"""Simulator tests: shipped samples regenerate byte for byte, generation is deterministic per seed, every
file parses with the project's own parsers, and each scenario's injected effect is really in the data
(measured with polars on the parsed frames, never read back from the simulator's internals)."""

from __future__ import annotations

import gzip
import tempfile
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import orjson
import polars as pl
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from rca.errors import UsageError
from rca.model import FINDING_KINDS, Dataset
from rca.parsers import ParseOptions, all_parsers
from rca.parsers.loader import load_dataset
from rca.ranking import kind_names
from rca.simulate import ALL_FORMATS, FILE_NAMES, SCENARIOS, generate
from rca.simulate.regenerate import SAMPLE_SEED, SAMPLES_DIR

SEED = SAMPLE_SEED  # the shipped samples; third-party-surge is also checked on other seeds below
_TMP = Path(tempfile.mkdtemp(prefix="rca-sim-tests-"))


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@cache
def _incident(scenario: str, seed: int = SEED):
    return generate(scenario, seed=seed)


@cache
def _dataset(scenario: str, seed: int = SEED) -> Dataset:
    root = _TMP / f"{scenario}-{seed}"
    _incident(scenario, seed).write(root)
    return load_dataset([str(root / "telemetry")], ParseOptions())


def _access(ds: Dataset) -> pl.DataFrame:
    return ds.requests.filter(pl.col("signal") == "access_log")


def _windows(truth: dict) -> tuple[datetime, datetime, datetime, datetime]:
    """Before: the first 40% of the period; after: from onset + 10 minutes (the ramp is over) to the end."""
    start, end = _ts(truth["span"]["start"]), _ts(truth["span"]["end"])
    onset = _ts(truth["root_cause"]["onset"])
    return start, start + (onset - start) * 0.8, onset + timedelta(minutes=10), end


def _rate(frame: pl.DataFrame, lo: datetime, hi: datetime) -> float:
    """Rows per minute in [lo, hi)."""
    n = frame.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi)).height
    return n / ((hi - lo).total_seconds() / 60)


def _p50(frame: pl.DataFrame, lo: datetime, hi: datetime) -> float:
    return float(frame.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))["duration_ms"].median())


def _otlp_spans(incident) -> list[tuple[dict, dict]]:
    """(resource attributes, span) for every span in the OTLP/JSON lines file."""
    out = []
    for line in gzip.decompress(incident.files[FILE_NAMES["traces"]]).splitlines():
        doc = orjson.loads(line)
        for rs in doc["resourceSpans"]:
            resource = {a["key"]: next(iter(a["value"].values())) for a in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                out.extend((resource, span) for span in ss["spans"])
    return out


# --- samples and determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_shipped_sample_regenerates_byte_for_byte(scenario: str) -> None:
    incident = _incident(scenario, SAMPLE_SEED)
    shipped = sorted(
        p.relative_to(SAMPLES_DIR / scenario).as_posix()
        for p in (SAMPLES_DIR / scenario).rglob("*")
        if p.is_file()
    )
    assert shipped == sorted(incident.files), "samples/ is stale: run python -m rca.simulate.regenerate"
    for rel, data in incident.files.items():
        assert (SAMPLES_DIR / scenario / rel).read_bytes() == data, (
            f"{scenario}/{rel} differs from a fresh run"
        )
    assert sum(len(d) for d in incident.files.values()) < 5_000_000


def test_generation_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    a = generate("third-party-surge", seed=11, minutes=30)
    b = generate("third-party-surge", seed=11, minutes=30)
    c = generate("third-party-surge", seed=12, minutes=30)
    assert a.files == b.files
    assert a.files[FILE_NAMES["access"]] != c.files[FILE_NAMES["access"]]
    # Seeds randomize what a detector could key on: the source, the endpoints, the onset.
    truths = [generate("third-party-surge", seed=s, minutes=30, formats=()).truth for s in range(6)]
    assert len({t["parameters"]["source"] for t in truths}) >= 5
    assert len({tuple(t["parameters"]["endpoints"]) for t in truths}) >= 4
    assert len({t["root_cause"]["onset"][11:] for t in truths}) >= 5


def test_gzip_members_carry_no_timestamp() -> None:
    incident = generate("quiet", seed=1, minutes=20)
    for rel, data in incident.files.items():
        if rel.endswith(".gz"):
            assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\x00\x00\x00\x00", rel


# --- truth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_truth_is_well_formed(scenario: str) -> None:
    truth = _incident(scenario).truth
    start, end = _ts(truth["span"]["start"]), _ts(truth["span"]["end"])
    assert truth["scenario"] == scenario and truth["seed"] == SEED
    if scenario == "quiet":
        assert truth["incident"] is False and truth["root_cause"] is None and truth["decoys"] == []
        assert truth["changes"], "quiet has a harmless deploy"
        return
    root = truth["root_cause"]
    assert truth["incident"] is True
    assert root["kind"] in kind_names() and root["accept"] and root["subject"]
    onset = _ts(root["onset"])
    assert start + (end - start) * 0.4 < onset < start + (end - start) * 0.7
    assert all(s["kind"] in FINDING_KINDS for s in truth["symptoms"])
    deploys = [d for d in truth["decoys"] if d["kind"] == "deploy"]
    assert deploys, "every incident scenario carries a misleading deploy"
    for d in deploys:
        assert timedelta(minutes=5) <= onset - _ts(d["ts"]) <= timedelta(minutes=20)


# --- parsing with the project's parsers -----------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_file_parses_with_zero_rejected(scenario: str) -> None:
    ds = _dataset(scenario)
    by_name = {Path(s.path).name: s for s in ds.inputs}
    trace_parsers = [p for p in all_parsers() if "otlp" in p.name or "trace" in p.name]
    expected = ["access.log.gz", "app.jsonl.gz", "app.log.gz"] + (
        ["traces.otlp.jsonl.gz"] if trace_parsers else []
    )
    for name in expected:
        summary = by_name[name]
        assert summary.rejected == 0, (name, summary.rejected_examples)
        assert summary.total_rows > 0 and summary.format != "unreadable", (name, summary)
    access, jsonl = by_name["access.log.gz"], by_name["app.jsonl.gz"]
    assert access.rows["requests"] == jsonl.rows["requests"], "both vantage points see every request"
    # Deploys announced in the JSON log become change rows with the version the truth names.
    truth = _incident(scenario).truth
    versions = set(ds.changes["subject"].to_list())
    assert {c["subject"] for c in truth["changes"]} <= versions


def test_otlp_follows_the_json_encoding_rules_and_is_causal() -> None:
    incident = _incident("cache-exhaustion")
    first = orjson.loads(gzip.decompress(incident.files[FILE_NAMES["traces"]]).split(b"\n", 1)[0])
    assert set(first) == {"resourceSpans"}
    spans = _otlp_spans(incident)
    assert len(spans) > 1000
    by_id = {s["spanId"]: s for _, s in spans}
    for resource, span in spans:
        assert {"service.name", "service.version", "host.name", "deployment.environment.name"} <= set(
            resource
        )
        assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
        int(span["traceId"], 16), int(span["spanId"], 16)
        assert isinstance(span["kind"], int) and span["kind"] in (2, 3)
        assert isinstance(span["startTimeUnixNano"], str) and span["startTimeUnixNano"].isdigit()
        for attr in span["attributes"]:
            if "intValue" in attr["value"]:
                assert isinstance(attr["value"]["intValue"], str)
        parent = by_id.get(span.get("parentSpanId", ""))
        if span.get("parentSpanId"):
            assert parent is not None and parent["traceId"] == span["traceId"]
            # A child lies inside its parent: where the time went is visible.
            assert int(parent["startTimeUnixNano"]) <= int(span["startTimeUnixNano"])
            assert int(span["endTimeUnixNano"]) <= int(parent["endTimeUnixNano"]) + 1000
    # Every field name and enum is one the OTLP protobuf schema knows (strict parse, unknown fields fail).
    lines = gzip.decompress(incident.files[FILE_NAMES["traces"]]).splitlines()
    for line in lines[:: max(1, len(lines) // 60)]:
        request = json_format.Parse(line, ExportTraceServiceRequest())
        assert request.resource_spans[0].scope_spans[0].spans
    errors = [s for _, s in spans if s["status"].get("code") == 2]
    assert all(
        a["value"]["intValue"] >= "500"
        for s in errors
        for a in s["attributes"]
        if a["key"] == "http.response.status_code"
    )


# --- injected effects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [SEED, 8, 21])
def test_third_party_source_surges_at_least_5x_and_the_rollback_changes_nothing(seed: int) -> None:
    truth = _incident("third-party-surge", seed).truth
    access = _access(_dataset("third-party-surge", seed))
    b0, b1, a0, a1 = _windows(truth)
    source = access.filter(pl.col("source") == truth["parameters"]["source"])
    assert truth["parameters"]["source"] in truth["root_cause"]["accept"]
    assert _rate(source, a0, a1) >= 5 * _rate(source, b0, b1) > 0
    # The surge is on its one or two endpoints; other sources' traffic is steady.
    others = access.filter(pl.col("source") != truth["parameters"]["source"])
    assert 0.75 < _rate(others, a0, a1) / _rate(others, b0, b1) < 1.35
    assert set(source.filter(pl.col("ts") >= a0)["endpoint"].unique()) == set(
        truth["parameters"]["endpoints"]
    )
    # Rolled back after the onset, without effect: latency stays up on either side of the rollback.
    rollback = _ts(next(d["ts"] for d in truth["decoys"] if d["kind"] == "rollback"))
    assert rollback > _ts(truth["root_cause"]["onset"])
    before_rb = _p50(access, rollback - timedelta(minutes=4), rollback)
    after_rb = _p50(access, rollback, rollback + timedelta(minutes=4))
    assert after_rb > 0.7 * before_rb and after_rb > 1.3 * _p50(access, b0, b1)


def test_feature_surge_concentrates_on_hot_routes_and_load_comes_before_latency() -> None:
    truth = _incident("feature-surge").truth
    access = _access(_dataset("feature-surge"))
    b0, b1, a0, a1 = _windows(truth)
    hot = set(truth["root_cause"]["accept"])
    hot_rows, cold_rows = (
        access.filter(pl.col("endpoint").is_in(hot)),
        access.filter(~pl.col("endpoint").is_in(hot)),
    )
    assert _rate(hot_rows, a0, a1) >= 3 * _rate(hot_rows, b0, b1)
    assert _rate(cold_rows, a0, a1) < 1.35 * _rate(cold_rows, b0, b1)
    assert _p50(access, a0, a1) > 1.5 * _p50(access, b0, b1)
    # Causal order, per minute: the request rate doubles before the median latency of the untouched
    # endpoints (slowed only by the load) rises by half.
    load = access.group_by_dynamic("ts", every="1m").agg(n=pl.len())
    slow = cold_rows.group_by_dynamic("ts", every="1m").agg(p50=pl.col("duration_ms").median())
    first_load = load.filter(pl.col("n") > 2 * load.filter(pl.col("ts") < b1)["n"].median())["ts"].min()
    first_slow = slow.filter(pl.col("p50") > 1.5 * slow.filter(pl.col("ts") < b1)["p50"].median())["ts"].min()
    assert first_load is not None and first_slow is not None and first_load < first_slow
    # CPU saturation shows in the app's text log after the onset.
    cpu = _dataset("feature-surge").events.filter(pl.col("message").str.contains("CPU usage"))
    assert _rate(cpu, a0, a1) > 5 * max(_rate(cpu, b0, b1), 0.01)


def test_user_surge_comes_from_many_new_clients_not_the_decoys() -> None:
    truth = _incident("user-surge").truth
    access = _access(_dataset("user-surge"))
    b0, b1, a0, a1 = _windows(truth)

    def clients(lo: datetime, hi: datetime) -> int:
        return access.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))["source"].n_unique()

    span = a1 - a0
    assert clients(a0, a1) > 2 * clients(b1 - span, b1)
    assert _rate(access, a0, a1) > 2.5 * _rate(access, b0, b1)
    # No single client explains the surge.
    top = access.filter(pl.col("ts") >= a0).group_by("source").len()["len"].max()
    assert top < 0.05 * access.filter(pl.col("ts") >= a0).height
    # The decoy deploy: latency between the deploy and the onset is what it was before the deploy.
    deploy = _ts(next(d["ts"] for d in truth["decoys"] if d["kind"] == "deploy"))
    onset = _ts(truth["root_cause"]["onset"])
    assert 0.8 < _p50(access, deploy, onset) / _p50(access, b0, deploy) < 1.25
    assert any(d["kind"] == "network" for d in truth["decoys"])


def test_memory_exhaustion_logs_gc_oom_restarts_and_5xx_on_one_service() -> None:
    truth = _incident("memory-exhaustion").truth
    ds = _dataset("memory-exhaustion")
    b0, b1, a0, a1 = _windows(truth)
    service = truth["root_cause"]["where"]
    events = ds.events.filter(pl.col("service") == service)
    gc = events.filter(pl.col("message").str.contains("GC pause"))
    assert _rate(gc, a0, a1) > 5 * _rate(gc, b0, b1)
    assert (
        events.filter(pl.col("message").str.contains("OutOfMemoryError") & (pl.col("ts") >= a0)).height >= 1
    )
    assert events.filter(pl.col("message").str.contains("OutOfMemoryError") & (pl.col("ts") < b1)).height == 0
    app = ds.requests.filter((pl.col("signal") == "app_log") & (pl.col("service") == service))
    err = app.with_columns(e=pl.col("status") >= 500)

    def share(lo: datetime, hi: datetime) -> float:
        return float(err.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))["e"].mean())

    assert share(a0, a1) > 4 * share(b0, b1)
    assert _p50(app, a0, a1) > 1.5 * _p50(app, b0, b1)


def test_cache_exhaustion_evicts_and_sends_message_reads_to_the_database() -> None:
    truth = _incident("cache-exhaustion").truth
    ds = _dataset("cache-exhaustion")
    b0, b1, a0, a1 = _windows(truth)
    evictions = ds.events.filter(pl.col("message").str.contains("evicted"))
    assert _rate(evictions, a0, a1) > 10 * _rate(evictions, b0, b1)
    reads = ds.requests.filter(
        (pl.col("signal") == "app_log") & (pl.col("service") == "messages") & (pl.col("method") == "GET")
    )
    assert _p50(reads, a0, a1) > 1.5 * _p50(reads, b0, b1)
    assert 0.8 < _rate(_access(ds), a0, a1) / _rate(_access(ds), b0, b1) < 1.25, "no traffic change"
    # In the traces, reads that reach the database (cache misses) multiply.
    onset_ns = int(_ts(truth["root_cause"]["onset"]).timestamp() * 1e9)
    db = [
        s
        for r, s in _otlp_spans(_incident("cache-exhaustion"))
        if r["service.name"] == "messages" and s["name"].startswith("SELECT")
    ]
    after = sum(int(s["startTimeUnixNano"]) > onset_ns + 600e9 for s in db)
    before = sum(int(s["startTimeUnixNano"]) < onset_ns - 600e9 for s in db)
    assert after > 4 * before


def test_dependency_slowdown_is_in_database_spans_without_traffic_change() -> None:
    incident = _incident("dependency-slowdown")
    truth = incident.truth
    access = _access(_dataset("dependency-slowdown"))
    b0, b1, a0, a1 = _windows(truth)
    assert 0.8 < _rate(access, a0, a1) / _rate(access, b0, b1) < 1.25
    assert "postgres" in truth["root_cause"]["accept"]
    lo, hi = (int(t.timestamp() * 1e9) for t in (b1, a0))
    db = pl.DataFrame(
        [
            (
                int(s["startTimeUnixNano"]),
                (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6,
                s["name"],
            )
            for r, s in _otlp_spans(incident)
            if any(
                a["key"] == "peer.service" and a["value"]["stringValue"] == "postgres"
                for a in s["attributes"]
            )
        ],
        schema=["start", "ms", "name"],
        orient="row",
    )
    assert set(db["name"].unique()) <= set(truth["root_cause"]["accept"])
    assert (
        db.filter(pl.col("start") > hi)["ms"].median() > 2.5 * db.filter(pl.col("start") < lo)["ms"].median()
    )


def test_quiet_has_no_incident_in_the_data() -> None:
    ds = _dataset("quiet")
    access = _access(ds)
    start = access["ts"].min()
    half = start + (access["ts"].max() - start) / 2
    end = access["ts"].max()
    assert 0.8 < _rate(access, half, end) / _rate(access, start, half) < 1.25
    assert 0.85 < _p50(access, half, end) / _p50(access, start, half) < 1.15
    per_endpoint = (
        access.with_columns(late=pl.col("ts") >= half)
        .group_by("endpoint")
        .agg(ratio=(pl.col("late").sum() + 5) / ((~pl.col("late")).sum() + 5))
    )
    assert per_endpoint["ratio"].is_between(0.6, 1.6).all()
    errors = access.filter(pl.col("status") >= 500).height
    assert 0 < errors < 0.01 * access.height, "ordinary noise: a few 5xx, no burst"


# --- knobs -----------------------------------------------------------------------------------------


def test_latency_regression_knob_slows_one_endpoint_by_the_factor() -> None:
    plain = generate("quiet", seed=3, minutes=40)
    slow = generate("quiet", seed=3, minutes=40, latency_regression=1.3)
    route = slow.truth["parameters"]["regression_endpoint"]
    assert (
        slow.truth["parameters"]["regression_factor"] == 1.3 and slow.truth["parameters"]["regression_span"]
    )

    def medians(incident) -> pl.DataFrame:
        root = Path(f"/tmp/rca-sim-tests-regression-{id(incident)}")
        incident.write(root)
        ds = load_dataset([str(root / "telemetry" / "app.jsonl.gz")], ParseOptions())
        return ds.requests.group_by("endpoint").agg(p50=pl.col("duration_ms").median())

    joined = (
        medians(plain)
        .join(medians(slow), on="endpoint", suffix="_slow")
        .with_columns(r=pl.col("p50_slow") / pl.col("p50"))
    )
    ratio = dict(zip(joined["endpoint"], joined["r"], strict=True))
    assert 1.2 < ratio[route] < 1.4
    assert all(r == 1.0 for e, r in ratio.items() if e != route), "only the chosen endpoint changes"


def test_noise_seed_keeps_the_platform_and_redraws_only_the_noise() -> None:
    def frames(incident) -> Dataset:
        root = _TMP / f"noise-{incident.seed}-{incident.truth.get('noise_seed')}"
        incident.write(root)
        return load_dataset([str(root / "telemetry")], ParseOptions())

    kwargs = {"minutes": 30, "formats": ("access", "traces")}
    plain, other_noise = (
        generate("quiet", seed=5, **kwargs),
        generate("quiet", seed=5, noise_seed=6, **kwargs),
    )
    assert generate("quiet", seed=5, noise_seed=5, **kwargs).files == plain.files, (
        "noise_seed == seed is the default"
    )
    assert other_noise.truth["noise_seed"] == 6 and "noise_seed" not in plain.truth
    a, b, c = frames(plain), frames(other_noise), frames(generate("quiet", seed=6, **kwargs))
    access = [_access(d) for d in (a, b, c)]
    routes = [set(f["endpoint"].unique()) for f in access]
    assert routes[0] == routes[1] and len(routes[0]) == 12, "same platform: same routes"
    assert routes[0] != routes[2], "seed 6 on its own platform renames routes (why noise_seed exists)"
    assert set(a.spans["host"].unique()) == set(b.spans["host"].unique())
    ips = [set(f["source"].unique()) for f in access[:2]]
    assert len(ips[1] - ips[0]) <= 0.1 * len(ips[1]), "the same client population"
    assert plain.files[FILE_NAMES["access"]] != other_noise.files[FILE_NAMES["access"]]
    assert not set(a.spans["trace_id"]) & set(b.spans["trace_id"]), "fresh trace ids"
    stats = [
        f.group_by("endpoint").agg(p50=pl.col("duration_ms").median(), mean=pl.col("duration_ms").mean())
        for f in access[:2]
    ]
    joined = stats[0].join(stats[1], on="endpoint", suffix="_b")
    assert (joined["p50_b"] / joined["p50"]).is_between(0.85, 1.15).all(), "same latency model"
    assert (joined["mean_b"] != joined["mean"]).all(), "other draws"


def test_formats_knob_and_bad_options() -> None:
    incident = generate("quiet", seed=2, minutes=20, formats=("access", "traces"))
    assert set(incident.files) == {FILE_NAMES["access"], FILE_NAMES["traces"], "truth.json"}
    assert set(ALL_FORMATS) == set(FILE_NAMES)
    for bad in (
        {"scenario": "nope"},
        {"scenario": "quiet", "minutes": 5},
        {"scenario": "quiet", "scale": 0.0},
        {"scenario": "quiet", "formats": ("csv",)},
        {"scenario": "quiet", "latency_regression": 0.0},
        {"scenario": "quiet", "regression_endpoint": "/api/search"},
        {"scenario": "quiet", "latency_regression": 1.3, "regression_endpoint": "/api/nope"},
    ):
        with pytest.raises(UsageError):
            generate(**bad)


def test_minutes_and_scale_change_period_and_volume() -> None:
    small = generate("third-party-surge", seed=4, minutes=30, formats=("access",))
    big = generate("third-party-surge", seed=4, minutes=30, scale=2.0, formats=("access",))
    long = generate("third-party-surge", seed=4, minutes=60, formats=("access",))
    count = {
        k: gzip.decompress(v.files[FILE_NAMES["access"]]).count(b"\n")
        for k, v in (("s", small), ("b", big), ("l", long))
    }
    assert 1.7 < count["b"] / count["s"] < 2.3
    assert 1.6 < count["l"] / count["s"] < 2.4
    assert _ts(long.truth["span"]["end"]) - _ts(long.truth["span"]["start"]) == timedelta(minutes=60)
    for scenario in SCENARIOS:  # the shortest period still holds every change inside the data
        truth = generate(scenario, seed=9, minutes=20, formats=()).truth
        start, end = _ts(truth["span"]["start"]), _ts(truth["span"]["end"])
        assert all(start < _ts(c["ts"]) < end for c in truth["changes"]), scenario
        if truth["root_cause"]:
            assert start < _ts(truth["root_cause"]["onset"]) < end
