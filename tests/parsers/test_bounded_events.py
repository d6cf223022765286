"""Log events in bounded memory (parsers.bounded_events, wired in the plain-text parser): the counts equal
those of every event, every warning-or-worse is kept, the sample is the same however the input is cut,
the chunked parse equals the whole one, and the detectors find the same templates, errors and resources
as on every row: no template is "new" because its rare baseline lines were not sampled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rca.detectors.errors import detect_errors
from rca.detectors.resources import detect_resources
from rca.detectors.templates import detect_templates
from rca.messages import mask_expr
from rca.model import Dataset, conform
from rca.parsers import ParseOptions
from rca.parsers import lines as line_reader
from rca.parsers.bounded_events import BoundedEvents
from rca.parsers.loader import load_dataset
from rca.pipeline import AnalyzeOptions, context_for

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COMMON = ("request served in {n}ms", "cache hit for key user:{n}", "heartbeat from worker {n}", "queue depth {n}")
RARE = ("scheduled vacuum of table t{n} done", "certificate for host{n} renewed")  # 1-3 lines in the baseline, a burst later
NEW = "upstream payments-{n} refused connection"  # only in the incident


def _log(path: Path, seed: int) -> Path:
    """A plain-text app log of two hours (one line a second or so, varied per seed): common INFO lines,
    warnings and errors, rare templates seen a few times in the baseline and bursting in the last 20
    minutes with a new error template and GC pauses, stack traces after some errors."""
    rng = np.random.default_rng(seed)
    hosts = [f"api-{i}" for i in range(1, int(rng.integers(2, 5)))]
    incident = 100 * 60
    lines: list[str] = []
    t = 0.0
    rare_at = {r: sorted(rng.choice(60 * 60, size=int(rng.integers(1, 4)), replace=False).tolist()) for r in RARE}
    while t < 120 * 60:
        t += float(rng.exponential(0.8))
        stamp = (START + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        host = hosts[int(rng.integers(len(hosts)))]
        roll = rng.random()
        hot = t >= incident
        if hot and roll < 0.06:
            lines.append(f"{stamp} ERROR [{host}] pay.Client - {NEW.format(n=int(rng.integers(1, 4)))}")
            lines.append("\tat pay.Client.call(Client.java:42)")
        elif hot and roll < 0.1:
            lines.append(f"{stamp} INFO  [{host}] jobs.Cron - {RARE[int(rng.integers(2))].format(n=int(rng.integers(100)))}")
        elif roll < (0.08 if hot else 0.01):
            lines.append(f"{stamp} WARN  [{host}] jvm.Gc - GC pause (G1 Evacuation Pause) {int(rng.integers(200, 900))}ms")
        elif roll < 0.13:
            lines.append(f"{stamp} ERROR [{host}] db.Pool - query failed after {int(rng.integers(1, 99))}ms")
        else:
            lines.append(f"{stamp} INFO  [{host}] app.Http - {COMMON[int(rng.integers(len(COMMON)))].format(n=int(rng.integers(1000)))}")
        for rare in RARE:
            if rare_at[rare] and t >= rare_at[rare][0]:
                rare_at[rare].pop(0)
                lines.append(f"{stamp} INFO  [{host}] jobs.Cron - {rare.format(n=int(rng.integers(100)))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _load(path: Path, max_rows: int | None, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int = 1 << 14) -> Dataset:
    monkeypatch.setattr(line_reader, "CHUNK_BYTES", chunk_bytes)
    return load_dataset([str(path)], ParseOptions(max_event_rows=max_rows))


@pytest.mark.parametrize("seed", [1])
def test_chunked_parse_equals_the_whole_one_under_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int):
    path = _log(tmp_path / "app.log", seed)
    whole = load_dataset([str(path)], ParseOptions())
    chunked = _load(path, 10**9, monkeypatch, chunk_bytes=int(np.random.default_rng(seed).integers(4000, 20000)))
    assert chunked.event_aggregates is None
    assert_frame_equal(chunked.events, whole.events)
    assert chunked.inputs == whole.inputs
    assert chunked.events["message"].str.contains("\n").sum() > 0  # stack traces joined, some across chunk edges


@pytest.mark.parametrize("seed", [3])
def test_counts_are_exact_warnings_kept_and_sample_independent_of_chunking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int):
    path = _log(tmp_path / "app.log", seed)
    every = load_dataset([str(path)], ParseOptions()).events
    cap = every.height * 2 // 3
    small, big = (_load(path, cap, monkeypatch, chunk_bytes=size) for size in (9000, 40000))
    counted = small.event_aggregates
    assert counted is not None and counted.origins == (str(path),)
    # every event counted once, under its level, service, host and message shape
    key = ["service", "host", "level", "shape"]
    exact = every.with_columns(mask_expr(pl.col("message")).alias("shape")).group_by(key).len().rename({"len": "events"})
    got = counted.counts.group_by(key).agg(pl.col("events").sum())
    assert_frame_equal(got.sort(key, nulls_last=True), exact.sort(key, nulls_last=True), check_dtypes=False)
    assert (counted.counts["first_ts"].min(), counted.counts["last_ts"].max()) == (every["ts"].min(), every["ts"].max())
    # bounded, every warning or worse kept (fewer than a quarter of the cap here), the others a sample
    warned = every.filter(pl.col("level").is_in(["WARN", "ERROR", "FATAL"]))
    assert warned.height <= cap // 4 and small.events.height <= cap // 2
    assert warned.join(small.events, on="line", how="anti").height == 0
    assert small.inputs[0].rows["events"] == every.height
    # the same rows and counts however the input was cut
    assert_frame_equal(small.events, big.events)
    assert_frame_equal(counted.counts, big.event_aggregates.counts if big.event_aggregates else None)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_detectors_find_the_same_on_counts_as_on_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int):
    path = _log(tmp_path / "app.log", seed)
    every = load_dataset([str(path)], ParseOptions())
    bounded = _load(path, every.events.height // 8, monkeypatch)
    assert bounded.event_aggregates is not None
    context = context_for(every, AnalyzeOptions())
    assert context is not None and context_for(bounded, AnalyzeOptions()) == context

    def found(dataset: Dataset) -> list[tuple]:
        findings = detect_templates(dataset, context) + detect_errors(dataset, context) + detect_resources(dataset, context)
        return sorted((f.kind, f.subject, f.where, f.baseline, f.incident, f.magnitude, f.onset) for f in findings)

    full = found(every)
    assert found(bounded) == full
    new = {subject for kind, subject, *_ in full if kind in ("new_template", "error_message")}
    assert any("refused connection" in s for s in new)
    assert not any("vacuum" in s or "renewed" in s for s in new)  # seen in the baseline, however rarely


def test_rows_kept_depend_on_line_numbers_only():
    rows = conform(pl.DataFrame({
        "ts": [START + timedelta(seconds=i) for i in range(4000)],
        "level": ["ERROR" if i % 50 == 0 else "INFO" for i in range(4000)],
        "service": "api", "message": [f"event {i % 7} of batch {i}" for i in range(4000)],
        "origin": "x.log", "line": list(range(1, 4001)), "signal": "text_log",
    }), "events")
    kept = []
    for chunk in (37, 1000):
        reader = BoundedEvents(600)
        for start in range(0, rows.height, chunk):
            reader.add(rows[start : start + chunk])
        sample = reader.sample()
        assert sample is not None and sample.rows == 4000 and sample.priority_share == 1.0
        kept.append(reader.frame(rows.clear())["line"].to_list())
    assert kept[0] == kept[1] and len(kept[0]) <= 600
    assert set(range(1, 4001, 50)) <= set(kept[0])  # every error



def test_kept_events_are_held_as_codes_and_given_back_as_the_events_at_their_lines():
    """The sampled events' strings are held as codes, each distinct string once: `frame` gives back exactly the
    input's events at the lines kept (nulls, long messages), and a thinning lets go of the strings of dropped rows."""
    rows = conform(pl.DataFrame({
        "ts": [START + timedelta(seconds=i) for i in range(4000)],
        "level": ["ERROR" if i % 9 == 0 else "INFO" for i in range(4000)],
        "service": "api", "host": [None if i % 11 == 0 else f"host-{i % 4}" for i in range(4000)],
        "message": [f"a long message that is not inlined in its view, variant {i % 13}" for i in range(4000)],
        "origin": "x.log", "line": list(range(1, 4001)), "signal": "text_log",
    }), "events")
    reader = BoundedEvents(800)
    for start in range(0, rows.height, 300):
        reader.add(rows[start : start + 300])
    assert reader.levels["priority"] >= 1 and reader.levels["others"] >= 1  # both groups thinned
    kept = reader.frame(rows.clear())
    assert_frame_equal(kept, rows.filter(pl.col("line").is_in(kept["line"].implode())))
    for group in ("priority", "others"):
        held = pl.concat(getattr(reader, group))
        assert all(isinstance(held.schema[c], pl.Categorical) for c, dtype in rows.schema.items() if dtype == pl.String)
        group_kept = kept.filter(pl.col("line").is_in(held["line"].implode()))
        for column, categories in reader.codes[group].categories.items():
            assert set(categories.to_series().to_list()) <= set(group_kept.get_column(column).drop_nulls().to_list())

def test_an_input_projected_past_the_cap_is_sampled_from_its_first_chunk_with_the_same_result():
    rows = conform(pl.DataFrame({
        "ts": [START + timedelta(seconds=i) for i in range(4000)],
        "level": ["WARN" if i % 40 == 0 else "INFO" for i in range(4000)],
        "service": "api", "host": [f"h{i % 3}" for i in range(4000)], "message": [f"event {i % 9} of batch {i}" for i in range(4000)],
        "origin": "x.log", "line": list(range(1, 4001)), "signal": "text_log",
    }), "events")
    results = []
    for projected in (False, True):
        reader = BoundedEvents(600)
        for start in range(0, rows.height, 400):
            reader.add(rows[start : start + 400], (start + 400) / rows.height if projected else None)
            # projected: never the whole first 600 rows held, only each group's sample (a quarter of the cap at most)
            assert not projected or (not reader.parts and sum(p.height for p in (*reader.priority, *reader.others)) <= 2 * 150)
            # the counts held while reading name their key by a number: no string columns per bucket
            assert all(dtype != pl.String for part in (*reader.counts, *reader.settled) for dtype in part.dtypes)
        sample = reader.sample()
        assert sample is not None
        results.append((reader.frame(rows.clear()), sample.aggregates.counts, sample.rows, sample.kept))
    assert_frame_equal(results[0][0], results[1][0])
    assert_frame_equal(results[0][1], results[1][1])
    assert results[0][2:] == results[1][2:] == (4000, results[0][0].height)
    counts = results[1][1]
    exact = rows.group_by("host", "message").len()
    assert counts["events"].sum() == 4000 and counts.group_by("host").agg(pl.col("events").sum()).sort("host")["events"].to_list() == \
        exact.group_by("host").agg(pl.col("len").sum()).sort("host")["len"].to_list()


def test_ingest_streams_a_text_log_to_parquet_with_the_records_of_the_whole_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`rca ingest` of a plain-text log writes its events a chunk at a time (never the whole input in memory):
    the same records as the whole parse, stack traces joined across chunk edges, the deploy it announces
    kept as a change, and the same counts in the input's summary."""
    from rca.parsers.loader import ingest_to_parquet

    path = _log(tmp_path / "app.log", 2)
    with path.open("a") as log:
        log.write("2026-03-02 11:30:00,000 INFO  [api-1] deploy.Agent - Deployed version v2.4.0 of checkout\n")
        log.write("2026-03-02 11:30:01,000 ERROR [api-1] pay.Client - upstream refused\n\tat pay.Client.call(Client.java:42)\n")
    whole = load_dataset([str(path)], ParseOptions())
    monkeypatch.setattr(line_reader, "CHUNK_BYTES", 1 << 14)
    out = tmp_path / "frames"
    summaries = ingest_to_parquet([str(path)], out)
    assert sorted(p.name for p in out.iterdir()) == ["changes.parquet", "events.0.parquet"]
    assert pl.scan_parquet(out / "events.0.parquet").select(pl.len()).collect().item() == whole.events.height
    back = load_dataset([str(out / "events.0.parquet"), str(out / "changes.parquet")], ParseOptions())
    assert_frame_equal(back.events, whole.events)
    assert back.events["message"].str.contains("\n").sum() > 1  # stack traces joined, some across chunk edges
    assert_frame_equal(back.changes.drop("origin"), whole.changes.drop("origin"))
    assert whole.changes.height >= 1
    (summary,), (reference,) = summaries, whole.inputs
    assert (summary.lines, summary.rows["events"], summary.rejected, summary.first_ts, summary.last_ts) == (
        reference.lines, reference.rows["events"], reference.rejected, reference.first_ts, reference.last_ts)
