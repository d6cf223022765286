"""Template masking and mining on known lines, grouping accuracy on a loghub sample, and the detectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rca.detectors.templates import add_templates, detect_templates, mask_expr, mine
from rca.model import AnalysisContext, Dataset, Window, conform


def templates_of(messages: list[str | None]) -> list[str | None]:
    return add_templates(pl.DataFrame({"message": messages}, schema={"message": pl.String}))[
        "template"
    ].to_list()


def test_masks_obvious_variables():
    masked = (
        pl.DataFrame(
            {
                "m": [
                    "Connection from 10.1.2.3:5432 closed after 1.5s",
                    "request 3f2a9c1e-0b7d-4c4e-9f00-1234567890ab done",
                    "wrote /var/data/part-00017.parquet (0x1f bytes)",
                    "first line 12\n\tat second 13",
                ]
            }
        )
        .select(mask_expr(pl.col("m")))["m"]
        .to_list()
    )
    assert masked == [
        "Connection from <*> closed after <*>s",
        "request <*> done",
        "wrote <*> (<*> bytes)",
        "first line <*>",
    ]


def test_known_lines_group_into_templates():
    got = templates_of(
        [
            "cache full, evicted 512 entries",
            "cache full, evicted 64 entries",
            "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
            "HikariPool-1 - Connection is not available, request timed out after 30001ms.",
            "user alice logged in",
            "user bob logged in",
            "disk full on /dev/sda1",
            None,
        ]
    )
    assert got[0] == got[1] == "cache full, evicted <*> entries"
    assert got[2] == got[3] == "HikariPool-<*> - Connection is not available, request timed out after <*>ms."
    assert got[4] == got[5] == "user <*> logged in"  # mined, not masked: names differ in one of four tokens
    assert got[6] not in got[:6] and got[7] is None


def test_different_messages_stay_apart():
    got = templates_of(
        ["GC pause 35ms", "cache miss for key 7", "pool exhausted", "connection reset by peer now"]
    )
    assert len(set(got)) == 4


def test_mine_keeps_lengths_apart_and_is_order_stable():
    mapping = mine(["a b c", "a x c", "a b c d"])
    assert mapping["a b c"] == mapping["a x c"] == "a <*> c"
    assert mapping["a b c d"] == "a b c d"


def test_grouping_accuracy_on_hdfs(corpus: Path):
    frame = pl.read_csv(corpus / "loghub" / "HDFS" / "HDFS_2k.log_structured.csv", infer_schema=False)
    ids = add_templates(frame.select(pl.col("Content").alias("message")))["template_id"]
    pairs = pl.DataFrame({"t": frame["EventId"], "p": ids}).with_row_index("i")
    truth = pairs.group_by("t").agg(pl.col("i").sort().alias("a"))
    pred = pairs.group_by("p").agg(pl.col("i").sort().alias("b"))
    ga = pairs.join(truth, on="t").join(pred, on="p").select((pl.col("a") == pl.col("b")).mean()).item()
    assert ga >= 0.99


def _context(start: datetime) -> AnalysisContext:
    return AnalysisContext(
        bucket_s=60,
        span=Window(start, start + timedelta(minutes=60)),
        baseline=Window(start, start + timedelta(minutes=40)),
        incident=Window(start + timedelta(minutes=40), start + timedelta(minutes=60)),
    )


def _events(rows: list[tuple[datetime, str, str]]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"ts": [r[0] for r in rows], "level": [r[1] for r in rows], "message": [r[2] for r in rows]},
        schema={"ts": pl.Datetime("us", "UTC"), "level": pl.String, "message": pl.String},
    ).with_columns(service=pl.lit("api"), signal=pl.lit("text_log"))
    return conform(frame, "events")


def test_detectors_find_new_bursting_and_error_templates():
    rng = np.random.default_rng(7)
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    rows = []
    for minute in range(60):
        t = start + timedelta(minutes=minute)
        for k in range(int(rng.poisson(5))):
            rows.append((t + timedelta(seconds=k), "INFO", f"handled {rng.integers(1, 99)} requests"))
        slow = 1 if minute < 40 else 12
        for k in range(slow):
            rows.append((t + timedelta(seconds=k), "WARN", f"slow query took {rng.integers(100, 900)}ms"))
        if minute >= 45:
            for k in range(3):
                rows.append(
                    (t + timedelta(seconds=k), "ERROR", f"pool exhausted after {rng.integers(1, 50)}ms")
                )
                rows.append(
                    (t + timedelta(seconds=k), "INFO", f"retry scheduled for job {rng.integers(1, 999)}")
                )
    findings = detect_templates(Dataset(events=_events(rows)), _context(start))
    by_kind = {(f.kind, f.subject) for f in findings}
    assert ("template_burst", "slow query took <*>ms") in by_kind
    assert ("error_message", "pool exhausted after <*>ms") in by_kind
    assert ("new_template", "retry scheduled for job <*>") in by_kind
    assert not any("handled" in f.subject for f in findings)  # steady template: no finding
    burst = next(f for f in findings if f.subject == "slow query took <*>ms")
    assert abs((burst.onset - (start + timedelta(minutes=40))).total_seconds()) <= 60 and burst.where == "api" and burst.magnitude > 5
    new = next(f for f in findings if f.kind == "new_template")
    # onsets are estimated instants (the start of the fitted ramp), not bucket starts: within a bucket here
    assert abs((new.onset - (start + timedelta(minutes=45))).total_seconds()) <= 60 and new.details.events_before == 0


def test_quiet_events_give_no_findings():
    rng = np.random.default_rng(1)
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    rows = [
        (start + timedelta(seconds=float(s)), "INFO", f"cache miss for key {k}")
        for s, k in zip(rng.uniform(0, 3600, 2000), rng.integers(0, 10_000, 2000), strict=True)
    ]
    assert detect_templates(Dataset(events=_events(rows)), _context(start)) == []


def _service_log(rng: np.random.Generator, start: datetime, first_s: float, last_s: float, origin: str, service: str) -> pl.DataFrame:
    """Ordinary lines of a few kinds, each at its own steady rate, from `first_s` to `last_s` after `start`."""
    rows = []
    for kind in rng.choice(["served", "cache hit", "fetched", "queued", "synced"], int(rng.integers(2, 5)), replace=False):
        n = int(rng.poisson(rng.uniform(0.3, 3.0) * (last_s - first_s) / 60))
        rows += [(start + timedelta(seconds=float(s)), "INFO", f"{kind} item {rng.integers(1, 9999)} in {rng.integers(1, 90)}ms")
                 for s in rng.uniform(first_s, last_s, n)]
    return _events(rows).with_columns(origin=pl.lit(origin), service=pl.lit(service))


@pytest.mark.parametrize("seed", range(8))  # seed 6: a log beginning 20 s before the incident (the conditional test's case)
def test_logs_are_compared_with_the_seconds_they_cover(seed):
    """The analysis windows come from the longest signal (metrics, 40 min of baseline); a log that holds only the
    minutes around the fault, or begins seconds before it, has no baseline of its own to call its lines new.
    A log that covers the baseline still shows a template that is new in it."""
    rng = np.random.default_rng([seed, 2])
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    late = float(rng.choice([40 * 60 + 10, 40 * 60 - rng.uniform(1, 20)]))  # after the incident began, or seconds before
    only_incident = _service_log(rng, start, late, 60 * 60 - 30, "pods.jsonl", f"svc{rng.integers(10, 99)}")
    whole = _service_log(rng, start, 5, 60 * 60 - 5, "app.log", "api")
    error = f"payment {rng.choice(['declined', 'refused'])}: upstream timeout"
    new_rows = [(start + timedelta(minutes=45, seconds=float(s)), "ERROR", f"{error} after {rng.integers(1, 999)}ms")
                for s in rng.uniform(0, 14 * 60, int(rng.integers(20, 60)))]
    new = _events(new_rows).with_columns(origin=pl.lit("app.log"), service=pl.lit("api"))
    events = conform(pl.concat([only_incident, whole, new]), "events")
    findings = detect_templates(Dataset(events=events), _context(start))
    assert [(f.kind, f.where) for f in findings] == [("error_message", "api")], [(f.kind, f.where, f.subject) for f in findings]
    assert findings[0].details.events_before == 0
