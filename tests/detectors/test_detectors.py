"""Detectors on small hand-built frames: the effect is found with the right subject and onset, and the
edge cases (one bucket of data, a source that exists only in the incident, gaps, a flat zero series)
neither crash nor invent findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from rca import detectors
from rca.detectors.stats import bucket_grid, onset_index, onset_time, robust_z
from rca.detectors.windows import choose_context, parse_duration_s, parse_time
from rca.errors import UsageError
from rca.model import Dataset, conform

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def requests_frame(rows: list[dict]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows), "requests")  # type: ignore[return-value]


def make_traffic(seed: int = 0, minutes: int = 60, surge_at: int | None = 40, surge_source: str = "198.51.100.4",
                 gap: tuple[int, int] | None = None, slow_from: int | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    clients = [f"81.3.{i}.{j}" for i in range(5) for j in range(1, 9)]
    for second in range(minutes * 60):
        minute = second // 60
        if gap and gap[0] <= minute < gap[1]:
            continue
        for _ in range(rng.poisson(2.0)):
            slow = slow_from is not None and minute >= slow_from
            rows.append({"ts": T0 + timedelta(seconds=second + float(rng.random())), "endpoint": str(rng.choice(["/a/{id}", "/b", "/c/{id}"])),
                         "method": "GET", "source": str(rng.choice(clients)), "status": 200,
                         "duration_ms": float(rng.lognormal(3.0, 0.3)) * (4.0 if slow else 1.0), "service": "web", "signal": "access_log",
                         "user_agent": "Mozilla/5.0 Firefox/121.0"})
        if surge_at is not None and minute >= surge_at:
            for _ in range(rng.poisson(6.0)):
                rows.append({"ts": T0 + timedelta(seconds=second + float(rng.random())), "endpoint": "/b", "method": "POST",
                             "source": surge_source, "status": 200, "duration_ms": float(rng.lognormal(3.0, 0.3)),
                             "service": "web", "signal": "access_log", "user_agent": "PartnerBot/1.0"})
    return requests_frame(rows)


def run(frame: pl.DataFrame, **windows) -> tuple[list, object]:
    data = Dataset(requests=frame)
    context = choose_context(data, **windows)
    return detectors.run_all(data, context), context


def test_a_source_seen_only_in_the_incident_is_found_with_its_share_and_onset():
    findings, context = run(make_traffic())
    sources = [f for f in findings if f.kind == "traffic_spike" and f.dimension == "source"]
    assert [f.subject for f in sources] == ["198.51.100.4"]
    top = sources[0]
    assert top.share_explained == pytest.approx(1.0, abs=0.05) and top.details.new is True
    assert abs((top.onset - (T0 + timedelta(minutes=40))).total_seconds()) <= 2 * context.bucket_s
    nets = [f.subject for f in findings if f.dimension == "source_net"]
    assert nets == ["198.51.100.0/24"]
    assert any(f.dimension == "user_agent" and f.subject == "PartnerBot" for f in findings)
    assert any(f.dimension == "endpoint" and f.subject == "/b" for f in findings)
    # every other client grew by nothing: none is reported
    assert all(not f.subject.startswith("81.3.") for f in findings)


def test_latency_shift_with_onset_and_confidence():
    findings, context = run(make_traffic(surge_at=None, slow_from=35))
    shifts = [f for f in findings if f.kind == "latency_shift" and f.dimension == "service"]
    assert len(shifts) == 1
    shift = shifts[0]
    assert shift.magnitude > 3 and shift.confidence > 0.9
    assert abs((shift.onset - (T0 + timedelta(minutes=35))).total_seconds()) <= 2 * context.bucket_s
    assert shift.details.p95_after_ms > shift.details.p95_before_ms


def test_quiet_data_gives_nothing():
    findings, _ = run(make_traffic(surge_at=None))
    assert [f for f in findings if f.kind != "change_effect"] == []


def test_gaps_in_the_series_do_not_fake_a_drop_or_spike():
    findings, _ = run(make_traffic(surge_at=None, gap=(20, 25)))
    assert [f for f in findings if f.kind in ("traffic_spike", "latency_shift")] == []


def test_a_shift_after_a_gap_is_found_with_its_onset():
    # five minutes without a single request in the baseline, then a partner from minute 40
    findings, context = run(make_traffic(gap=(20, 25)))
    sources = [f for f in findings if f.kind == "traffic_spike" and f.dimension == "source"]
    assert [f.subject for f in sources] == ["198.51.100.4"]
    assert abs((sources[0].onset - (T0 + timedelta(minutes=40))).total_seconds()) <= 2 * context.bucket_s
    # the vantage's own spike: the gap shows as empty buckets of its series, and does not move its onset
    total = next(f for f in findings if f.kind == "traffic_spike" and f.dimension == "service")
    per_minute = 60 // context.bucket_s
    assert all(v == 0 for v in total.series.values[21 * per_minute: 24 * per_minute])
    assert abs((total.onset - (T0 + timedelta(minutes=40))).total_seconds()) <= 2 * context.bucket_s


def test_one_bucket_of_data():
    # 8 seconds of traffic: a single 10 s bucket, nothing to compare it with
    # (five copies, so the vantage has the 50 rows the latency and error detectors need to run at all)
    frame = pl.concat([make_traffic(seed=k, minutes=1, surge_at=None) for k in range(5)])
    frame = frame.filter(pl.col("ts") < T0 + timedelta(seconds=8))
    assert frame.height >= 50
    findings, context = run(frame)
    assert context is not None and context.bucket_s == 10
    assert len(bucket_grid(context)) == 1
    assert [f for f in findings if f.kind != "change_effect"] == []
    one = np.array([5.0])
    assert onset_time(one, np.array([True]), np.array([False])) is None
    assert onset_time(one, np.array([False]), np.array([True])) is None


def test_flat_zero_series_has_no_onset():
    values = np.zeros(30)
    base = np.arange(30) < 15
    assert onset_index(values, base, ~base) is None
    assert onset_time(values, base, ~base) is None
    assert onset_time(np.full(30, 7.0), base, ~base) is None
    assert np.all(robust_z(values, values[base], floor=1.0) == 0)


def test_flat_latency_and_no_errors_give_no_finding():
    frame = make_traffic(surge_at=None).with_columns(pl.lit(40.0).alias("duration_ms"), pl.lit(200, pl.Int32).alias("status"))
    findings, _ = run(frame)
    assert [f for f in findings if f.kind in ("latency_shift", "error_rate")] == []


def test_nan_buckets_in_a_series_are_skipped_by_the_onset_fit():
    values = np.concatenate([np.full(40, 10.0), np.full(20, 40.0)])
    values[[5, 17, 38, 45]] = np.nan  # buckets without data
    base = np.arange(60) < 35
    tau = onset_time(values, base, ~base, noise="relative")
    assert tau is not None and abs(tau - 40) <= 0.5


def test_change_without_effect_is_reported_as_such():
    frame = make_traffic()
    changes = conform(pl.DataFrame({"ts": [T0 + timedelta(minutes=20)], "kind": ["deploy"], "service": ["web"],
                                    "subject": ["v2"], "signal": ["external"]}), "changes")
    data = Dataset(requests=frame, changes=changes)  # type: ignore[arg-type]
    context = choose_context(data)
    effects = [f for f in detectors.run_all(data, context) if f.kind == "change_effect"]
    assert len(effects) == 1 and effects[0].details.effect is False
    assert effects[0].details.minutes_before_incident >= 15


def test_change_that_hurts_is_reported_with_effect():
    frame = make_traffic(surge_at=None, slow_from=30)
    changes = conform(pl.DataFrame({"ts": [T0 + timedelta(minutes=30)], "kind": ["deploy"], "service": ["web"],
                                    "subject": ["v3"], "signal": ["external"]}), "changes")
    data = Dataset(requests=frame, changes=changes)  # type: ignore[arg-type]
    effects = [f for f in detectors.run_all(data, choose_context(data)) if f.kind == "change_effect"]
    assert effects[0].details.effect is True and effects[0].magnitude > 2


def test_windows_given_by_the_user():
    frame = make_traffic()
    _, context = run(frame, since="20m", bucket="30s")
    assert context.bucket_s == 30
    assert context.incident.start == context.span.end - timedelta(minutes=20)
    assert context.method == "given"


def test_a_baseline_overlapping_the_incident_is_a_usage_error():
    with pytest.raises(UsageError):
        run(make_traffic(minutes=30, surge_at=None), since="10m", baseline_until="5m")


@pytest.mark.parametrize("text", ["soon", "5 parsecs", ""])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_duration_s(text)


def test_times_relative_to_the_end_of_the_data():
    end = T0 + timedelta(hours=2)
    assert parse_time("30m", end) == end - timedelta(minutes=30)
    assert parse_time("2026-05-04 10:15", end) == datetime(2026, 5, 4, 10, 15, tzinfo=UTC)
    with pytest.raises(UsageError):
        parse_time("yesterday-ish", end)


def test_a_shift_that_lasts_a_hundred_thousand_buckets_gets_its_onset_in_bounded_memory():
    # Months of logs at a fine bucket: the fit must not build (onsets x widths x buckets) arrays.
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.poisson(5.0, 2_000), rng.poisson(40.0, 100_000)]).astype(float)
    base = np.arange(values.size) < 1_500
    tau = onset_time(values, base, ~base)
    assert tau is not None and abs(tau - 2_000) <= 1


def test_months_of_events_get_coarse_buckets_and_a_run_in_bounded_memory():
    rng = np.random.default_rng(3)
    seconds = np.sort(rng.uniform(0, 200 * 86400, 3_000))
    events = conform(pl.DataFrame({
        "ts": [T0 + timedelta(seconds=float(s)) for s in seconds],
        "level": ["ERROR" if i % 7 == 0 else "INFO" for i in range(seconds.size)],
        "message": [f"job {i % 13} finished" for i in range(seconds.size)],
        "service": "batch", "signal": "text_log",
    }), "events")
    data = Dataset(events=events)
    context = choose_context(data)
    assert context.bucket_s >= 86400
    assert len(bucket_grid(context)) <= 400
    detectors.run_all(data, context)  # months of data used to need 100+ GiB here


def _two_days_apart(surge: bool) -> pl.DataFrame:
    """Two 3-hour stretches of steady traffic four days apart (rotated logs with a hole between them);
    with `surge`, a partner triples the rate in the last hour."""
    rng = np.random.default_rng(11)
    rows = []
    for day in (0, 4):
        for minute in range(180):
            start = T0 + timedelta(days=day, minutes=minute)
            for _ in range(rng.poisson(30)):
                rows.append({"ts": start + timedelta(seconds=float(rng.uniform(0, 60))), "endpoint": "/api/items/{id}", "method": "GET",
                             "source": f"81.3.0.{rng.integers(1, 200)}", "status": 200, "duration_ms": float(rng.lognormal(3, 0.3)),
                             "service": "web", "signal": "access_log"})
            if surge and day == 4 and minute >= 120:
                for _ in range(rng.poisson(60)):
                    rows.append({"ts": start + timedelta(seconds=float(rng.uniform(0, 60))), "endpoint": "/api/export", "method": "POST",
                                 "source": "203.0.113.7", "status": 200, "duration_ms": float(rng.lognormal(3, 0.3)),
                                 "service": "web", "signal": "access_log"})
    return requests_frame(rows)


def test_days_without_any_data_are_a_gap_not_zero_traffic():
    data = Dataset(requests=_two_days_apart(surge=False))
    context = choose_context(data)
    assert len(context.gaps) == 1
    gap = context.gaps[0]
    assert T0 + timedelta(hours=3) <= gap.start <= T0 + timedelta(hours=4) and gap.end <= T0 + timedelta(days=4, minutes=60)
    assert context.observed_s(context.span) <= 6.5 * 3600
    findings = detectors.run_all(data, context)
    assert [f for f in findings if f.kind == "traffic_spike"] == []  # steady traffic, however long the hole


def test_a_surge_after_a_gap_is_measured_against_the_observed_baseline():
    data = Dataset(requests=_two_days_apart(surge=True))
    context = choose_context(data, bucket="5m")
    findings = detectors.run_all(data, context)
    partner = [f for f in findings if f.kind == "traffic_spike" and f.subject == "203.0.113.7"]
    assert partner and abs((partner[0].onset - (T0 + timedelta(days=4, minutes=120))).total_seconds()) <= 2 * 300
    total = next(f for f in findings if f.kind == "traffic_spike" and f.dimension == "service")
    assert 2.0 <= total.magnitude <= 4.5  # 30 -> 90 req/min: x3, not diluted by four empty days
