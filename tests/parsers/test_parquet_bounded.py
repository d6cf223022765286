"""Requests and events read back from `rca ingest`'s Parquet with the analysis bounds: a batch of rows at a
time into the bounded samplers, so past the bound their aggregates count every row (those of the log the
frames came from) and only a sample of the rows is held; under the bound, the frames of the whole read."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rca.parsers import ParseOptions, parquet
from rca.parsers.loader import load_dataset

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "dependency-slowdown" / "telemetry"


def _frames(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """The sample log `name` as a plain file, and its frame written as `rca ingest` writes it."""
    log = tmp_path / name.removesuffix(".gz")
    log.write_bytes(gzip.decompress((SAMPLES / name).read_bytes()))
    frame = "requests" if name.startswith("access") else "events"
    out = tmp_path / "ingested"
    out.mkdir(exist_ok=True)
    getattr(load_dataset([str(log)]), frame).write_parquet(out / f"{frame}.0.parquet")
    return log, out / f"{frame}.0.parquet"


def _read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, bound: str, batch: int) -> tuple[Path, Path, int]:
    """The log, its frame's Parquet (read `batch` rows at a time) and the rows of it; checks that under the
    bound `bound` (a ParseOptions field) the frame read back is the whole read's."""
    monkeypatch.setattr(parquet, "BATCH_ROWS", batch)
    log, frames = _frames(tmp_path, name)
    frame = "requests" if bound == "max_request_rows" else "events"
    whole = getattr(load_dataset([str(frames)]), frame)
    under = getattr(load_dataset([str(frames)], ParseOptions(**{bound: 10 * whole.height})), frame)
    assert_frame_equal(under, whole)
    return log, frames, whole.height


def test_requests_past_the_bound_are_counted_whole_and_sampled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log, frames, rows = _read_back(tmp_path, monkeypatch, "access.log.gz", "max_request_rows", 700)
    bound = ParseOptions(max_request_rows=rows // 8)
    from_log, from_frames = load_dataset([str(log)], bound), load_dataset([str(frames)], bound)
    assert from_frames.requests.height <= rows // 8 and from_frames.inputs[0].rows["requests"] == rows
    assert from_log.request_aggregates is not None and from_frames.request_aggregates is not None
    key = ["signal", "service", "bucket", "dimension", "value"]
    exact = ["requests", "errors", "client_errors", "with_status", "timed"]
    totals = [a.counts.filter(pl.col("dimension").is_in(["service", "host", "endpoint"])).group_by(key).agg(pl.col(exact).sum())
              for a in (from_log.request_aggregates, from_frames.request_aggregates)]
    assert_frame_equal(totals[1].sort(key, nulls_last=True), totals[0].sort(key, nulls_last=True))


def test_events_past_the_bound_are_counted_whole_and_sampled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _, frames, rows = _read_back(tmp_path, monkeypatch, "app.log.gz", "max_event_rows", 500)
    bounded = load_dataset([str(frames)], ParseOptions(max_event_rows=rows // 8))
    assert bounded.events.height < rows and bounded.inputs[0].rows["events"] == rows
    assert bounded.event_aggregates is not None and bounded.event_aggregates.counts["events"].sum() == rows


def test_a_corrupt_parquet_is_one_input_error(tmp_path: Path):
    path = tmp_path / "requests.0.parquet"
    pl.DataFrame({"ts": [1]}).write_parquet(path)
    path.write_bytes(path.read_bytes()[:-30] + b"PAR1")
    data = load_dataset([str(path), str(SAMPLES / "access.log.gz")], ParseOptions(max_request_rows=100))
    failed = next(s for s in data.inputs if s.path == str(path))
    assert failed.warnings and "Parquet" in failed.warnings[0]
