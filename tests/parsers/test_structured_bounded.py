"""JSON lines and logfmt finished batch by batch (parsers.fields.RowsFinisher, parsers.versions): the same
frames as the former whole-input step on varied generated records (hosts that name their version late,
services that log none, pod names, records without a time), however the input is cut; past the request
bound, exact aggregates of every request with versions resolved per host, and a uniform sample whose
rows are the full input's rows (versions included)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from rca.aggregates import aggregate_requests
from rca.model import AGGREGATE_KEY, empty_frame
from rca.parsers import ParseOptions, get_parser
from rca.parsers.bounded import SAMPLE_SEED
from rca.parsers.fields import _EVENTS_AND_VERSION, _KEPT, LINE, MappedRows, finish_rows, map_flat
from rca.parsers.sources import Source
from rca.parsers.versions import pod_template_hash, version_changes
from rca.pipeline import analyze
from rca.simulate import generate

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CONSONANTS = "bcdfghjklmnpqrstvwxz2456789"


def whole_input_finish(parts: list[MappedRows]) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The step as it was before it streamed (every row of the input at once): the reference."""
    requests = pl.concat([p.requests for p in parts]) if parts else empty_frame("requests")
    events = pl.concat([p.events for p in parts]) if parts else pl.DataFrame(schema=_EVENTS_AND_VERSION)
    no_ts = pl.concat([p.no_ts for p in parts]) if parts else pl.DataFrame(schema={"line": pl.Int64(), **_KEPT})
    kept = [f.select("line", *_KEPT) for f in (requests, events, no_ts)]
    logged = pl.concat(kept).filter(pl.col("host").is_not_null() & pl.col("version").is_not_null())
    if logged.height:
        first = logged.group_by("host").agg(pl.col("version").sort_by("line").first())
        by_host = pl.col("host").replace_strict(first["host"], first["version"], default=None, return_dtype=pl.String)
    else:
        by_host = pl.lit(None, pl.String)
    version = pl.coalesce(pl.col("version"), by_host)
    service = pl.col("service").fill_null("")
    versioned = pl.concat([f.select(service.alias("s"), version.alias("v")) for f in kept]).filter(pl.col("v").is_not_null())["s"].unique()
    version = pl.when(service.is_in(versioned.implode())).then(version).otherwise(pod_template_hash(pl.col("host"))).alias("version")
    requests, events = requests.with_columns(version), events.with_columns(version)
    changes = version_changes(pl.concat([f.select("ts", "line", "service", "host", "version", "origin", "signal") for f in (requests, events)]))
    return {"requests": requests, "events": events.drop("version"), "changes": changes}, no_ts


def records(seed: int, n: int) -> pl.DataFrame:
    """A flat frame of `n` records from a few services: some log their version on every record, some on
    a few (a host's first may come late, after its first requests), some never (pods named by a
    Deployment, or not); versions roll out mid-way; a few records lack a time, a host or a service; times
    mostly rise with the line, a little out of order."""
    rng = np.random.default_rng(seed)
    services = [f"svc{i}" for i in range(int(rng.integers(1, 5)))]
    style = {s: rng.choice(["every", "some", "none"]) for s in services}
    pods = {s: bool(rng.random() < 0.6) for s in services}
    hosts = {
        s: [f"{s}-{''.join(rng.choice(list(CONSONANTS), 8 if g else 9))}-{''.join(rng.choice(list(CONSONANTS), 5))}" if pods[s] else f"{s}-{k}"
            for g in (0, 1) for k in range(int(rng.integers(1, 4)))]
        for s in services
    }
    rollout = int(rng.integers(n // 4, 3 * n // 4 + 1))
    rows = []
    for line in range(1, n + 1):
        service = services[int(rng.integers(len(services)))]
        generation = int(line >= rollout and rng.random() < 0.8)  # new pods and version after the rollout
        pool = [h for i, h in enumerate(hosts[service]) if (i >= len(hosts[service]) // 2) == bool(generation)] or hosts[service]
        host = None if rng.random() < 0.03 else pool[int(rng.integers(len(pool)))]
        logs = style[service] == "every" or (style[service] == "some" and rng.random() < 0.05)
        ts = START + timedelta(seconds=line * 0.5 + float(rng.normal(0, 2)))
        is_request = rng.random() < 0.8
        rows.append({
            LINE: line,
            "ts": None if rng.random() < 0.02 else ts.isoformat().replace("+00:00", "Z"),
            "service": None if rng.random() < 0.02 else service,
            "host": host,
            "version": f"1.{generation}.{int(rng.integers(0, 2)) if generation else 0}" if logs else None,
            "msg": "request completed" if is_request else rng.choice(["starting", "cache warm", "retrying upstream"]),
            "http.route": f"/api/{rng.choice(['a', 'b', 'c'])}" if is_request else None,
            "status": int(rng.choice([200, 200, 200, 404, 503])) if is_request else None,
            "duration_ms": float(rng.lognormal(3, 0.6)) if is_request else None,
            "client.address": f"10.0.{int(rng.integers(0, 4))}.{int(rng.integers(1, 50))}" if is_request else None,
        })
    return pl.DataFrame(rows, schema={LINE: pl.Int64, "ts": pl.String, "service": pl.String, "host": pl.String, "version": pl.String,
                                      "msg": pl.String, "http.route": pl.String, "status": pl.Int64, "duration_ms": pl.Float64,
                                      "client.address": pl.String})


def mapped(flat: pl.DataFrame, cuts: list[int]) -> list[MappedRows]:
    """`flat` mapped batch by batch, cut at `cuts`."""
    edges = [0, *sorted(c for c in cuts if 0 < c < flat.height), flat.height]
    return [map_flat(flat[a:b], "app.jsonl", "app_log") for a, b in itertools.pairwise(edges) if b > a]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n=st.integers(1, 400), cuts=st.lists(st.integers(1, 399), max_size=6))
def test_batch_by_batch_equals_the_whole_input(seed: int, n: int, cuts: list[int]):
    flat = records(seed, n)
    reference, no_ts = whole_input_finish(mapped(flat, []))
    finished = finish_rows(mapped(flat, cuts))
    for name in ("requests", "events", "changes"):
        assert_frame_equal(finished.frames[name], reference[name])
    assert finished.no_ts_count == no_ts.height
    assert finished.no_ts["line"].to_list() == no_ts["line"].head(5).to_list()
    assert finished.request_sample is None


def test_a_host_naming_its_version_late_counts_its_earlier_requests_under_it():
    """Aggregated before the host names its version (its start-up line comes after its requests), its
    requests still count under that version, in the sample rows and in the aggregates."""
    n = 600
    flat = pl.DataFrame({
        LINE: list(range(1, n + 1)),
        "ts": [(START + timedelta(seconds=i)).isoformat().replace("+00:00", "Z") for i in range(n)],
        "service": ["api"] * n,
        "host": ["api-1" if i % 2 else "api-2" for i in range(n - 1)] + ["api-2"],
        "version": [None] * (n - 1) + ["2.0.0"],  # api-2 names its version on the very last line
        "http.route": ["/x"] * (n - 1) + [None],
        "status": [200] * (n - 1) + [None],
        "msg": ["done"] * (n - 1) + ["starting 2.0.0"],
    })
    parts = mapped(flat, list(range(50, n, 50)))
    finished = finish_rows(parts, max_request_rows=100)
    assert finished.request_sample is not None
    counts = finished.request_sample.aggregates.counts.filter(pl.col("dimension") == "version")
    by_version = dict(counts.group_by("value").agg(pl.col("requests").sum()).iter_rows())
    assert by_version == {"2.0.0": n // 2, None: n // 2 - 1}  # api-1 never names one: its rows stay without
    rows = finished.frames["requests"]
    assert rows.filter(pl.col("host") == "api-2")["version"].unique().to_list() == ["2.0.0"]
    assert rows.filter(pl.col("host") == "api-1")["version"].null_count() == rows.filter(pl.col("host") == "api-1").height


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_past_the_bound_aggregates_are_exact_and_the_sample_is_the_inputs_rows(seed: int):
    flat = records(seed, 3_000)
    reference, _ = whole_input_finish(mapped(flat, []))
    rng = np.random.default_rng(seed)
    finished = finish_rows(mapped(flat, sorted(rng.integers(1, 3_000, 8).tolist())), max_request_rows=400)
    sample = finished.request_sample
    assert sample is not None
    everything = reference["requests"]
    assert sample.rows == everything.height
    # every row's counts, versions resolved per host as the whole input resolves them
    exact = aggregate_requests(everything, sample.aggregates.bucket_s).counts
    dims = pl.col("dimension").is_in(["service", "host", "version"])
    key = [*AGGREGATE_KEY, "method"]
    assert_frame_equal(sample.aggregates.counts.filter(dims).sort(key, nulls_last=True), exact.filter(dims).sort(key, nulls_last=True),
                       check_exact=False)
    # the sample: the rows of the lines the hash keeps, exactly the full input's rows (versions included)
    kept = finished.frames["requests"]
    level = round(-np.log2(sample.kept_share))
    expected = everything.filter(pl.col("line").hash(SAMPLE_SEED) % (1 << level) == 0)
    assert_frame_equal(kept, expected)
    assert 200 < kept.height <= 400
    assert_frame_equal(finished.frames["changes"], reference["changes"])  # changes found the same
    assert_frame_equal(finished.frames["events"], reference["events"])


def _jsonl(flat: pl.DataFrame) -> bytes:
    rows = flat.drop(LINE).select(pl.struct(pl.all()).struct.json_encode().alias("line"))["line"]
    return ("\n".join(rows.str.replace_all(r',"[^"]+":null', "").str.replace_all(r'\{"[^"]+":null,', "{").to_list()) + "\n").encode()


def _logfmt(flat: pl.DataFrame) -> bytes:
    pairs = [pl.when(pl.col(c).is_not_null()).then(pl.concat_str(pl.lit(f"{c}="), pl.col(c).cast(pl.String).str.replace_all(" ", "_")))
             for c in flat.columns if c != LINE]
    return ("\n".join(flat.select(pl.concat_str(pairs, separator=" ", ignore_nulls=True).alias("l"))["l"].to_list()) + "\n").encode()


@pytest.mark.parametrize(("name", "encode"), [("jsonl", _jsonl), ("logfmt", _logfmt)])
def test_parsers_take_the_bounded_path(name: str, encode, monkeypatch: pytest.MonkeyPatch):
    """A JSON-lines and a logfmt input over both bounds: every request and event counted, samples kept
    that are the whole input's rows at their lines, the same version changes as read whole."""
    monkeypatch.setattr("rca.parsers.lines.CHUNK_BYTES", 16 << 10)  # many chunks from a small input
    data = encode(records(7, 2_000))
    parser = get_parser(name)
    whole = parser.parse(Source(origin=f"app.{name}", data=data), ParseOptions())
    bounded = parser.parse(Source(origin=f"app.{name}", data=data), ParseOptions(max_request_rows=300, max_event_rows=100))
    assert whole.request_sample is None and bounded.request_sample is not None
    assert bounded.request_sample.rows == whole.frames["requests"].height
    assert bounded.frames["requests"].height <= 300
    assert (bounded.lines, bounded.rejected) == (whole.lines, whole.rejected)
    assert_frame_equal(bounded.frames["changes"], whole.frames["changes"])
    for frame in ("requests", "events"):
        kept = bounded.frames[frame]["line"]
        assert_frame_equal(bounded.frames[frame], whole.frames[frame].filter(pl.col("line").is_in(kept.implode())))
    assert whole.event_sample is None and bounded.event_sample is not None
    assert bounded.event_sample.rows == whole.frames["events"].height
    counts = bounded.event_sample.aggregates.counts
    exact = whole.frames["events"].group_by("service", "level").len().rename({"len": "events"})
    summed = counts.group_by("service", "level").agg(pl.col("events").sum())
    assert_frame_equal(summed.sort("service", "level", nulls_last=True), exact.sort("service", "level", nulls_last=True), check_dtypes=False)


def test_json_lines_analysed_bounded_name_the_same_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    paths = generate("third-party-surge", seed=21, formats=("jsonl",)).write(tmp_path)
    logs = [str(p) for p in paths if ".jsonl" in p.name]
    full = analyze(logs)
    rows = full.inputs[0].rows["requests"]
    monkeypatch.setenv("RCA_MAX_REQUEST_ROWS", str(rows // 5))
    bounded = analyze(logs)
    assert bounded.inputs[0].rows["requests"] == rows
    assert any("uniform sample" in w for w in bounded.inputs[0].warnings)
    top, top_bounded = full.hypotheses[0], bounded.hypotheses[0]
    assert (top_bounded.kind, top_bounded.dimension, top_bounded.where) == (top.kind, top.dimension, top.where)


@pytest.mark.parametrize(("name", "encode"), [("jsonl", _jsonl), ("logfmt", _logfmt)])
def test_ingest_streams_structured_logs_with_the_frames_of_the_whole_parse(name: str, encode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`rca ingest` of JSON lines and logfmt writes their requests and events a chunk at a time (never the
    whole input in memory). Read back: the events of the whole parse in its order (JSON lines' plain-text
    lines last, as there); its requests, those whose version waited for their host's (spilled to disk past
    the bound) after the others; the same changes (versions and a deploy announced in a message); the same
    line, row and rejected counts and time range."""
    from rca.parsers import versions
    from rca.parsers.loader import ingest_to_parquet, load_dataset

    monkeypatch.setattr("rca.parsers.lines.CHUNK_BYTES", 16 << 10)  # many chunks from a small input
    monkeypatch.setattr(versions, "WAITING_ROWS", 100)
    spilled: list[int] = []
    drain = versions.WaitingRows.drain
    monkeypatch.setattr(versions.WaitingRows, "drain", lambda self, finish: (spilled.append(len(self.spilled)), drain(self, finish))[1])
    lines = encode(records(20, 3_000)).splitlines(keepends=True)  # services logging their version on every record, on some, on none
    deploy = {"jsonl": b'{"ts":"2026-03-01T09:20:00Z","service":"svc0","msg":"Deployed version v9.9.9 of svc0"}\n',
              "logfmt": b'ts=2026-03-01T09:20:00Z service=svc0 msg="Deployed version v9.9.9 of svc0"\n'}[name]
    malformed = {"jsonl": [b'{"ts": "2026-03-01T09:10:00Z", "msg": broken\n', b"panic: runtime error: index out of range\n"],
                 "logfmt": [b"just some words\n"]}[name]
    for at, line in zip((700, 1500, 2200), (deploy, *malformed), strict=False):
        lines.insert(at, line)
    path = tmp_path / f"app.{name}"
    path.write_bytes(b"".join(lines))
    whole = load_dataset([str(path)], ParseOptions())
    out = tmp_path / "frames"
    (summary,) = ingest_to_parquet([str(path)], out)
    assert sorted(p.name for p in out.iterdir()) == ["changes.parquet", "events.0.parquet", "requests.0.parquet"]
    back = load_dataset([str(out)], ParseOptions())
    assert_frame_equal(back.events, whole.events)
    streamed_lines = pl.read_parquet(out / "requests.0.parquet")["line"]
    assert not streamed_lines.is_sorted() and spilled and spilled[0] > 1  # rows waited for their version, some on disk
    assert_frame_equal(back.requests.sort("line"), whole.requests)
    assert whole.requests["version"].null_count() < whole.requests.height  # versions resolved, pod hashes among them
    assert_frame_equal(back.changes, whole.changes)
    assert "v9.9.9" in whole.changes["subject"].to_list() and whole.changes.height > 1
    (reference,) = whole.inputs
    assert reference.rejected >= len(malformed) + 1  # and records without a time
    assert (summary.lines, summary.rejected, summary.rejected_examples, summary.first_ts, summary.last_ts) == (
        reference.lines, reference.rejected, reference.rejected_examples, reference.first_ts, reference.last_ts)
    assert {k: summary.rows[k] for k in ("requests", "events")} == {k: reference.rows[k] for k in ("requests", "events")}
    assert summary.warnings == reference.warnings


def test_frames_streamed_together_wait_for_each_other(monkeypatch):
    """`lazy_tee` over parts of many requests and a few events: sunk together, the engine asks for the events
    more often than their rows come, yet the requests read ahead of those written stay a few parts (without
    the wait, all but the last: every request row of the input held in memory). Each frame gets its rows once."""
    import rca.parsers
    from rca.parsers import HELD_PARTS, lazy_tee

    # on a loaded machine the engine may take nothing for the default patience and the frames stop waiting
    # (the guard against an engine that never reads them together): not what this test is about
    monkeypatch.setattr(rca.parsers, "TEE_PATIENCE_S", 120.0)
    produced = [0]

    def parts():
        for i in range(60):
            produced[0] = i
            yield {"requests": pl.DataFrame({"part": [i] * 20_000, "x": ["a" * 30] * 20_000}),
                   "events": pl.DataFrame({"part": [i] * (i % 10 == 0)}, schema={"part": pl.Int64})}

    behind: list[int] = []
    taken: dict[str, list[int]] = {"requests": [], "events": []}

    def take(name: str):
        def rows(batch: pl.DataFrame) -> None:
            if batch.height and name == "requests":
                behind.append(produced[0] - batch["part"][0])
            taken[name] += batch["part"].to_list()
        return rows

    streams = lazy_tee(parts, {"requests": {"part": pl.Int64(), "x": pl.String()}, "events": {"part": pl.Int64()}})
    pl.collect_all([streams[name].sink_batches(take(name), lazy=True) for name in ("requests", "events")])
    assert max(behind) <= HELD_PARTS + 2
    assert taken == {"requests": [i for i in range(60) for _ in range(20_000)], "events": list(range(0, 60, 10))}
