"""Time windows: the bucket size, the baseline window and the incident window.

The bucket is chosen from the data's span so the series have roughly 60-180 buckets (10 s to 5 min for
an incident of hours, up to a day for months of logs), or given with `--bucket`. The incident window is
given with `--since/--until`, or found automatically:
for every bucket a small feature vector (request rate, p95 latency and 5xx share of the busiest
vantage, p95 and 5xx share of up to eight other busy services, count of warning-or-worse events) is
scored by robust z against the first third of the data,
and the incident starts at the first bucket from which the largest score stays above 4 for three
buckets in a row. This is a sustained-shift rule rather than an anomaly score per bucket (IsolationForest
was tried in design: it flags isolated spikes in quiet data and needs a contamination guess), so one
noisy minute does not open an incident. The baseline is everything before the incident, less a guard of
one bucket. When nothing shifts, the last quarter of the data is the incident window, so detectors
compare like with like and report nothing.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import polars as pl

from rca.aggregates import bucket_floor_expr, sketch_quantiles
from rca.detectors.metric_series import SERIES, metric_series
from rca.detectors.stats import aggregated_vantages, bucket_grid, gap_mask, robust_z, weighted_events
from rca.errors import UsageError
from rca.model import FRAMES, AnalysisContext, Dataset, RequestAggregates, Window

# Up to 5 min for an incident's hours; coarser for days or months of logs, so series stay short.
BUCKETS_S = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> float:
    """`30s`, `1m`, `2h`, `1d` -> seconds; UsageError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_time(text: str, data_end: datetime) -> datetime:
    """RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC), or a duration meaning that long before the data's end."""
    if _DURATION.match(text):
        return data_end - timedelta(seconds=parse_duration_s(text))
    value = text.strip().replace("Z", "+00:00")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"not a time: {text!r} (use RFC 3339, 'YYYY-MM-DD HH:MM', or e.g. 30m before the data's end)") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def choose_bucket_s(span_s: float) -> int:
    for bucket in BUCKETS_S:
        if span_s / bucket <= 180:
            return bucket
    return BUCKETS_S[-1]


FLOORS = {"n": 1.0, "p95": 1.0, "err": 0.005, "events": 1.0}  # smallest meaningful scale per feature


def _feature_matrix(dataset: Dataset, context: AnalysisContext) -> tuple[np.ndarray, list[float]]:
    grid = bucket_grid(context)
    index = {t: i for i, t in enumerate(grid)}
    features: list[np.ndarray] = []
    floors: list[float] = []
    trunc = f"{context.bucket_s}s"
    req = dataset.requests
    aggregates = dataset.request_aggregates if dataset.request_aggregates is not None and context.bucket_s % dataset.request_aggregates.bucket_s == 0 else None
    carried = aggregated_vantages(aggregates)
    if req.height or carried:
        per_vantage = _vantage_totals(req, aggregates)
        vantage = per_vantage.sort(["len", "signal", "service"], descending=[True, False, False], nulls_last=True).row(0)
        if aggregates is not None and (vantage[0], vantage[1]) in carried:
            per = _aggregated_features(aggregates, vantage[0], vantage[1], context.bucket_s)
        else:
            narrow = req.select("signal", "service", "ts", "duration_ms", "status")
            rows = narrow if vantage[2] == req.height else narrow.filter((pl.col("signal") == vantage[0]) & (pl.col("service").eq_missing(vantage[1])))
            per = (
                rows.group_by(pl.col("ts").dt.truncate(trunc).alias("bucket"))
                .agg(
                    pl.len().alias("n"),
                    pl.col("duration_ms").quantile(0.95).alias("p95"),
                    (pl.col("status") >= 500).mean().alias("err"),
                )
            )
        for col in ("n", "p95", "err"):
            values = np.zeros(len(grid))
            for t, v in per.select("bucket", col).iter_rows():
                if t in index and v is not None:
                    values[index[t]] = v
            features.append(values)
            floors.append(FLOORS[col])
        for values, col in _service_features(req, per_vantage, vantage, grid, context, aggregates):
            features.append(values)
            floors.append(FLOORS[col])
    ev = weighted_events(dataset)
    if ev.height:
        bad = ev.filter(pl.col("level").is_in(["WARN", "ERROR", "FATAL"]))
        per = bad.group_by(pl.col("ts").dt.truncate(trunc).alias("bucket")).agg(pl.col("n").sum())
        values = np.zeros(len(grid))
        for t, v in per.iter_rows():
            if t in index:
                values[index[t]] = v
        features.append(values)
        floors.append(FLOORS["events"])
    return (np.array(features) if features else np.zeros((0, len(grid)))), floors


def _aggregated_features(aggregates: RequestAggregates, signal: str, service: str | None, bucket_s: int) -> pl.DataFrame:
    """Requests, p95 (from the histograms: within SKETCH_ALPHA of the rows') and 5xx share per analysis
    bucket of one vantage the aggregates carry."""
    mine = (pl.col("signal") == signal) & pl.col("service").eq_missing(service) & (pl.col("dimension") == "service")
    bucket = bucket_floor_expr(bucket_s, "bucket").alias("bucket")
    counts = (
        aggregates.counts.filter(mine).group_by(bucket)
        .agg(pl.col("requests").sum().alias("n"), (pl.col("errors").sum() / pl.col("with_status").sum()).alias("err"))
        .with_columns(pl.col("err").fill_nan(None))
    )
    times = aggregates.sketches.filter(mine & (pl.col("metric") == "duration_ms")).with_columns(bucket)
    p95 = sketch_quantiles(times, ["bucket"], {"p95": 0.95}).select("bucket", "p95")
    return counts.join(p95, on="bucket", how="left")


SERVICE_VANTAGES = 8  # the busiest other (signal, service) pairs watched beside the busiest one
SERVICE_MIN_PER_BUCKET = 20.0  # requests per bucket, on average, for a service's p95 and 5xx share to mean something


def _vantage_totals(requests: pl.DataFrame, aggregates: RequestAggregates | None) -> pl.DataFrame:
    """Requests (`len`) per (signal, service): the rows', or the aggregates' for the vantages they carry
    (which count all their requests, not their sample of rows)."""
    per_vantage = requests.lazy().group_by("signal", "service").len().collect()  # lazy: eager group_by on every column costs a copy
    carried = aggregated_vantages(aggregates)
    if aggregates is None or not carried:
        return per_vantage
    kept = per_vantage.filter(pl.Series([(s, v) not in carried for s, v in per_vantage.select("signal", "service").iter_rows()], dtype=pl.Boolean))
    carried_totals = aggregates.counts.filter(pl.col("dimension") == "service").group_by("signal", "service").agg(pl.col("requests").sum().cast(pl.UInt32).alias("len"))
    return pl.concat([kept, carried_totals])


def _service_features(requests: pl.DataFrame, per_vantage: pl.DataFrame, busiest: tuple, grid: list[datetime], context: AnalysisContext,
                      aggregates: RequestAggregates | None = None) -> list[tuple[np.ndarray, str]]:
    """p95 and 5xx share per bucket of each other busy (signal, service) pair (`per_vantage`: their
    requests): one service of several that slows or fails (a release of one service, a flag of another)
    opens the incident where it starts, even when the busiest vantage is another service that does not
    move. Buckets a service left empty take its median (no requests is no evidence of a shift). A
    vantage the aggregates carry is read from them (`_aggregated_features`)."""
    n = len(grid)
    busy = (
        per_vantage
        .filter((pl.col("len") >= SERVICE_MIN_PER_BUCKET * n) & ~((pl.col("signal") == busiest[0]) & pl.col("service").eq_missing(busiest[1])))
        .sort(["len", "signal", "service"], descending=[True, False, False], nulls_last=True)
        .head(SERVICE_VANTAGES)
    )
    if busy.height == 0:
        return []
    index = {t: i for i, t in enumerate(grid)}
    carried = aggregated_vantages(aggregates)
    from_rows = busy.filter(pl.Series([(s, v) not in carried for s, v in busy.select("signal", "service").iter_rows()], dtype=pl.Boolean))
    per = (
        requests.join(from_rows.select("signal", "service"), on=["signal", "service"], how="semi", nulls_equal=True)
        .group_by("signal", "service", pl.col("ts").dt.truncate(f"{context.bucket_s}s").alias("bucket"))
        .agg(pl.col("duration_ms").quantile(0.95).alias("p95"), (pl.col("status") >= 500).mean().alias("err"))
    )
    if aggregates is not None and from_rows.height < busy.height:
        per = pl.concat([per, *(
            _aggregated_features(aggregates, signal, service, context.bucket_s)
            .select(pl.lit(signal, pl.String).alias("signal"), pl.lit(service, pl.String).alias("service"), "bucket", "p95", "err")
            for signal, service in busy.select("signal", "service").iter_rows() if (signal, service) in carried
        )])
    out = []
    for _, rows in per.sort("signal", "service", "bucket").group_by("signal", "service", maintain_order=True):
        for col in ("p95", "err"):
            values = np.full(n, np.nan)
            for t, v in rows.select("bucket", col).iter_rows():
                if t in index and v is not None:
                    values[index[t]] = v
            if np.isnan(values).all():
                continue
            out.append((np.where(np.isnan(values), np.nanmedian(values), values), col))
    return out


GAP_MIN_S = 3600  # no row at all for this long (and GAP_MIN_BUCKETS buckets): logging stopped, not traffic
GAP_MIN_BUCKETS = 6


def find_gaps(dataset: Dataset, context: AnalysisContext) -> tuple[Window, ...]:
    """Stretches of at least an hour (and six buckets) in which no frame has a single row.

    Rotated logs with a hole between them, or files of two different days, are not hours of zero
    traffic: counted as such, they would dilute the baseline's rates and fake a surge. Each gap runs
    from its first empty bucket to the next bucket with data."""
    grid = bucket_grid(context)
    trunc = f"{context.bucket_s}s"
    seen: set[datetime] = set()
    for name in FRAMES:  # lazy: the streaming engine finds the few distinct buckets without a copy of every timestamp
        seen.update(dataset.frame(name).lazy().select(pl.col("ts").drop_nulls().dt.truncate(trunc).unique()).collect()["ts"].to_list())
    if dataset.event_aggregates is not None:  # the events of sampled inputs: their rows are only a sample
        seen.update(dataset.event_aggregates.counts["first_ts"].dt.truncate(trunc).unique().to_list())
    observed = np.array([t in seen for t in grid])
    shortest = max(GAP_MIN_BUCKETS, -(-GAP_MIN_S // context.bucket_s))
    gaps: list[Window] = []
    i = 0
    while i < len(grid):
        if observed[i]:
            i += 1
            continue
        j = i
        while j < len(grid) and not observed[j]:
            j += 1
        if j - i >= shortest and i > 0 and j < len(grid):
            gaps.append(Window(grid[i], grid[j]))
        i = j
    return tuple(gaps)


def find_incident_start(dataset: Dataset, context: AnalysisContext) -> datetime | None:
    """The first bucket of a sustained shift in the run's key signals (gaps left out), or None."""
    matrix, floors = _feature_matrix(dataset, context)
    grid = bucket_grid(context)
    n = len(grid)
    if matrix.size == 0 or n < 9:
        return None
    gap = gap_mask(np.array([t.timestamp() for t in grid]), context)
    ref = np.zeros(n, dtype=bool)
    ref[: max(3, n // 3)] = True
    ref &= ~gap
    if ref.sum() < 3:
        return None
    scores = np.zeros(n)
    for row, floor in zip(matrix, floors, strict=True):
        z = robust_z(row, row[ref], floor)
        scores = np.maximum(scores, z)
    scores[gap] = 0.0
    # last bucket is partial: ignore it
    scores[-1] = 0.0
    run = 3
    for i in range(n // 3, n - run + 1):
        if all(scores[i + k] > 4.0 for k in range(run)):
            # walk back (at most 5 buckets) to where the rise began
            j = i
            while j - 1 >= max(n // 3, i - 5) and scores[j - 1] > 3.0:
                j -= 1
            return grid[j]
    return None


def choose_context(
    dataset: Dataset,
    bucket: str | None = None,
    since: str | None = None,
    until: str | None = None,
    baseline_since: str | None = None,
    baseline_until: str | None = None,
) -> AnalysisContext | None:
    """Bucket size and windows for this dataset; None when it has no timed rows."""
    span = dataset.time_range()
    if span is None:
        return None
    start, end = span
    end = _end_after(end)
    span_s = max((end - start).total_seconds(), 1.0)
    bucket_s = int(parse_duration_s(bucket)) if bucket else choose_bucket_s(span_s)
    if bucket_s <= 0:
        raise UsageError("--bucket must be positive")
    history = None if bucket else longest_history(dataset)
    if history is not None:
        bucket_s = max(bucket_s, history.sample_s)
    whole = Window(start, end)
    provisional = AnalysisContext(bucket_s=bucket_s, span=whole, baseline=whole, incident=whole)
    gaps = find_gaps(dataset, provisional)
    provisional = replace(provisional, gaps=gaps)
    method = "given"
    aggregates = dataset.request_aggregates
    if aggregates is not None and bucket_s % aggregates.bucket_s:
        # a sampled input's counts are exact only on multiples of its aggregates' width (stats.exact_aggregates)
        bucket_s = max(aggregates.bucket_s, round(bucket_s / aggregates.bucket_s) * aggregates.bucket_s)
        provisional = replace(provisional, bucket_s=bucket_s)
        method += f"; bucket {bucket_s} s, the nearest multiple of the sampled input's {aggregates.bucket_s} s aggregates"
    if since or until:
        inc_start = parse_time(since, end) if since else _last_quarter(provisional)
        inc_end = parse_time(until, end) if until else end
        if inc_end <= inc_start:
            raise UsageError("--until must be after --since")
        edged = _inside_on_edge(inc_start, whole, aggregates), _inside_on_edge(inc_end, whole, aggregates)
        if edged != (inc_start, inc_end) and edged[1] > edged[0]:
            inc_start, inc_end = edged
            method += (f"; edges moved to the sampled input's {aggregates.bucket_s if aggregates else 0} s aggregate buckets, "
                       "where its counts are exact")
    else:
        found = find_incident_start(dataset, provisional) if history is None else history_incident_start(dataset, provisional)
        if history is not None and found is not None:
            inc_start, method = found, "auto: sustained shift of the metrics (the signal with the longest history)"
        elif history is not None and history.short_start is not None:
            inc_start, method = history.short_start, "auto: no sustained metric shift; the incident is where the short signals begin"
        elif found is not None:
            inc_start, method = found, "auto: sustained shift in rate, latency, errors or warnings"
        else:
            inc_start, method = _on_aggregate_edge(_last_quarter(provisional), dataset.request_aggregates), "auto: no sustained shift; last quarter compared with the rest"
        inc_end = end
    if gaps:
        longest = max(g.duration for g in gaps)
        method += f"; {len(gaps)} gap(s) without data left out (the longest {longest.total_seconds() / 3600:,.1f} h)"
    guard = timedelta(seconds=bucket_s)
    base_start = _inside_on_edge(parse_time(baseline_since, end), whole, aggregates) if baseline_since else start
    base_end = _inside_on_edge(parse_time(baseline_until, end), whole, aggregates) if baseline_until else max(inc_start - guard, start + guard)
    if base_end <= base_start:
        raise UsageError("the baseline window is empty: give --baseline-since/--baseline-until before the incident")
    if baseline_until and base_end > inc_start:
        raise UsageError("the baseline must end before the incident window starts (--baseline-until <= --since)")
    return AnalysisContext(
        bucket_s=bucket_s,
        span=whole,
        baseline=Window(base_start, base_end),
        incident=Window(inc_start, inc_end),
        method=method,
        gaps=gaps,
    )


def _on_aggregate_edge(t: datetime, aggregates: RequestAggregates | None) -> datetime:
    """`t` moved to the nearest bucket edge of the request aggregates (when there are any), so that their
    counts per window are exact (`stats.exact_aggregates`) and their vantages are read from them."""
    if aggregates is None:
        return t
    step = timedelta(seconds=aggregates.bucket_s)
    below = t - (t - datetime(1970, 1, 1, tzinfo=t.tzinfo)) % step
    return below + step if (t - below) * 2 >= step else below


def _inside_on_edge(t: datetime, span: Window, aggregates: RequestAggregates | None) -> datetime:
    """A given window edge inside the data moved to the nearest aggregates bucket edge (`_on_aggregate_edge`);
    edges at or beyond the data's ends stay, as `stats.exact_aggregates` only checks those inside."""
    if aggregates is None or not span.start < t < span.end:
        return t
    return _on_aggregate_edge(t, aggregates)


def _end_after(last: datetime) -> datetime:
    """The end of a half-open window holding `last`: the next whole second (reports and JSON then read
    `09:30:03Z`, never `09:30:02.152001Z`)."""
    return last.replace(microsecond=0) + timedelta(seconds=1)


def _whole_second(ts: datetime) -> datetime:
    return ts.replace(microsecond=0) + timedelta(seconds=1 if ts.microsecond >= 500_000 else 0)


def _last_quarter(context: AnalysisContext) -> datetime:
    """Where the last quarter of the observed time (gaps left out) begins."""
    span = context.span
    if not context.gaps:
        return _whole_second(span.start + span.duration * 0.75)
    remaining = context.observed_s(span) * 0.25
    t = span.end
    for gap in sorted(context.gaps, key=lambda g: g.start, reverse=True):
        stretch = (t - gap.end).total_seconds()
        if stretch >= remaining:
            return _whole_second(t - timedelta(seconds=remaining))
        remaining -= stretch
        t = gap.start
    return _whole_second(t - timedelta(seconds=remaining))


def too_little_data(context: AnalysisContext) -> str | None:
    """Why these windows cannot be compared (an incident or a baseline shorter than a bucket, or a
    baseline ending after the incident starts: a few seconds of data), or None when they can."""
    bucket = context.bucket
    base, inc = context.baseline, context.incident
    if inc.duration >= bucket and base.duration >= bucket and base.end <= inc.start:
        return None
    span_s = context.span.duration.total_seconds()
    length = f"{span_s:,.0f} s" if span_s < 120 else f"{span_s / 60:,.0f} min"
    return (f"Too little data: the inputs span {length}, too short for a baseline and an incident window of at "
            f"least one {context.bucket_s} s bucket each. Give more data, or set --since/--until and --bucket.")


# --- metrics carrying the history --------------------------------------------------------------------

HISTORY_RATIO = 3.0  # metrics span at least 3x every other signal: they, not the short signals, hold the baseline
SHIFT_Z = 4.0  # a sample this many robust sigmas off its series' baseline is shifted (as find_incident_start)
SHIFT_RELATIVE_FLOOR = 0.10  # ... with the sigma floored at 10% of the level (flat, quantised series)
HISTORY_MIN_SCORE = 3.0  # sustained shifts beyond chance, in standard errors (Poisson), to call a start


@dataclass(frozen=True)
class History:
    """The metrics hold the data's history; the other signals (if any) cover a short stretch at its end."""

    sample_s: int  # the metrics' sampling interval, rounded up to a bucket size
    short_start: datetime | None  # where the short signals begin (None when there are none)


def _span_s(ts: pl.Series) -> float:
    """Seconds from the first to the last of non-empty timestamps."""
    return (cast(datetime, ts.max()) - cast(datetime, ts.min())).total_seconds()


def longest_history(dataset: Dataset) -> History | None:
    """When the metrics cover at least `HISTORY_RATIO` times the span of every other signal (30 minutes of
    metrics beside a few minutes of traces, or metrics alone), the windows come from the metrics: their
    sampling interval is the smallest bucket (a minute's samples cut into 15 s buckets would leave most
    buckets empty) and their sustained shift starts the incident. None otherwise."""
    metrics = dataset.metrics
    if metrics.height == 0:
        return None
    ts = metrics["ts"].drop_nulls()
    if ts.len() < 2:
        return None
    metric_span = _span_s(ts)
    others = [dataset.frame(n)["ts"].drop_nulls() for n in FRAMES if n not in ("metrics", "changes")]
    others = [o for o in others if o.len()]
    short_start = min(cast(datetime, o.min()) for o in others) if others else None
    longest_other = max((_span_s(o) for o in others), default=0.0)
    if metric_span <= 0 or metric_span < HISTORY_RATIO * longest_other:
        return None
    steps = pl.concat([
        batch.filter(pl.col("ts").is_not_null()).group_by(SERIES).agg(pl.col("ts").sort().diff().dt.total_seconds().median().alias("step"))
        for batch in metric_series(metrics).batches(metrics.select("ts"))
    ])["step"].drop_nulls()
    step = float(cast(float, steps.median())) if steps.len() else 0.0
    sample_s = next((b for b in BUCKETS_S if b >= step), BUCKETS_S[-1]) if step > 0 else BUCKETS_S[0]
    return History(sample_s=sample_s, short_start=short_start)


def history_incident_start(dataset: Dataset, context: AnalysisContext) -> datetime | None:
    """The bucket from which the most metric series stay shifted to the end of the data, beyond chance.

    Every series (metric, pod, attributes) is averaged per bucket. For each candidate start k (from the
    first third on), each series' samples from k on are scored as robust z against its samples before k
    (median, MAD floored at 10% of the level); a series is shifted from k when all of them lie beyond
    `SHIFT_Z` on the same side. Under no change that happens by chance with probability about p^m (p:
    the share of baseline samples beyond `SHIFT_Z`, m: samples from k on), so the count of shifted
    series is compared with its chance expectation in Poisson standard errors; the best k wins when that
    reaches `HISTORY_MIN_SCORE`. A data dump is taken while the incident lasts, so "to the end of the
    data" is what sustained means here."""
    trunc = f"{context.bucket_s}s"
    metrics = dataset.metrics
    grid = bucket_grid(context)
    index = {t: i for i, t in enumerate(grid)}
    n = len(grid)
    if n < 6 or metrics.height == 0:
        return None
    per = pl.concat([
        batch.filter(pl.col("ts").is_not_null() & pl.col("value").is_finite())
        .group_by(SERIES, pl.col("ts").dt.truncate(trunc).alias("bucket")).agg(pl.col("value").mean())
        for batch in metric_series(metrics).batches(metrics.select("ts", "value"))
    ])
    if per.height == 0:
        return None
    keys = per.select(pl.col(SERIES).rank("dense").alias("k") - 1)["k"].to_numpy()  # the series with a finite value
    cols = np.array([index.get(t, -1) for t in per["bucket"].to_list()])
    matrix = np.full((int(keys.max()) + 1, n), np.nan)
    ok = cols >= 0
    matrix[keys[ok], cols[ok]] = per["value"].to_numpy()[ok]
    best: tuple[float, int] | None = None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of series with holes
        for k in range(max(3, n // 3), n):
            before, after = matrix[:, :k], matrix[:, k:]
            center = np.nanmedian(before, axis=1, keepdims=True)
            mad = np.nanmedian(np.abs(before - center), axis=1, keepdims=True) * 1.4826
            scale = np.maximum(mad, SHIFT_RELATIVE_FLOOR * np.abs(center) + 1e-9)
            z_before, z_after = (before - center) / scale, (after - center) / scale
            seen = np.isfinite(z_after).any(axis=1) & np.isfinite(center[:, 0])
            up = (np.where(np.isfinite(z_after), z_after, np.inf) >= SHIFT_Z).all(axis=1) & seen
            down = (np.where(np.isfinite(z_after), z_after, -np.inf) <= -SHIFT_Z).all(axis=1) & seen
            p_up = max(float(np.nanmean(z_before >= SHIFT_Z)), 1e-3)
            p_down = max(float(np.nanmean(z_before <= -SHIFT_Z)), 1e-3)
            m = n - k
            expected = int(seen.sum()) * (p_up**m + p_down**m)
            score = (int(up.sum()) + int(down.sum()) - expected) / math.sqrt(expected + 1.0)
            if best is None or score > best[0]:
                best = (score, k)
    if best is None or best[0] < HISTORY_MIN_SCORE:
        return None
    return grid[best[1]]
