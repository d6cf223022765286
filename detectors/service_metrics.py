"""Service metrics: per (service, pod, metric) the incident's shift in units of the baseline's own variation.

Method. Every series of the `metrics` frame whose name `metric_families.classify_metric` recognises is
read per service and pod (host) and attribute set; counters (by name, or a series that never
decreases) become rates per second first, a reset giving no rate. The baseline window, less an earlier
episode inside it (`quiet_baseline`: a previous fault's minutes, found as a run of samples far off in
units of the sample-to-sample noise), gives a robust centre (median) and spread (the larger of the MAD
and the IQR, both scaled to a standard deviation); the incident window gives the most extreme level
held for two samples in a row (`sustained_level`: not a median, which mixes in the samples from before
the fault when the onset is known only to a minute or two, and not a peak, which one spike makes). The shift is

    z = direction x (incident median - baseline median) / scale

where `scale` is the spread floored three ways, so that a flat baseline does not explode:
- `RELATIVE_FLOOR` of the level itself: a change of less than 10% of a level is not an anomaly, even
  when the baseline repeated one value to the last digit (quantised series, a latency histogram's
  bucket bound);
- for utilisation (a share of a limit), `UTILISATION_FLOOR` of the limit: 0.2% -> 0.6% of a core is a
  shift of 0.4 points and stays noise, 20% -> 95% is not, whatever the spreads;
- for absolute resource usage (millicores, bytes, calls per second: no limit known), `SYSTEM_FLOOR` of
  the busiest series of the same metric in the system: a pod going from 1.7 to 6 millicores beside
  pods using hundreds is no resource problem, however flat its own past.

A series whose z reaches `MIN_Z` (4: the same sustained-shift threshold as the incident finder; a
rare excursion under the baseline's own variation) becomes a `metric_shift` finding whose subject is
the service and whose `where` is the pod, with the family (resource or symptom) in its details, so
the ranker can gather a service's evidence. One finding per (service, pod, family, metric).

Plain robust statistics rather than a robust covariance (MinCovDet) of a pod's metrics: with a sample
a minute the baseline has about 30 points for up to 16 correlated metrics, below what a
16-dimensional covariance needs to be estimated stably (MinCovDet warns and its Mahalanobis distances
swing with the support fraction), and a joint distance would not say *which* resource moved, which is
what the report must name. Agreement across families is counted by the ranker instead.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.metric_families import MetricClass, classify_metric, looks_cumulative
from rca.detectors.metric_series import SERIES, metric_series
from rca.detectors.stats import MAD_TO_SIGMA, confidence_from_z
from rca.detectors.traffic import in_window
from rca.findings import MetricShiftDetails
from rca.model import AnalysisContext, Dataset, Finding

MIN_Z = 4.0
RELATIVE_FLOOR = 0.10
UTILISATION_FLOOR = 0.02
SYSTEM_FLOOR = 0.05
MIN_BASELINE_SAMPLES = 3


def _side(name: str) -> str:
    return "client" if "client" in name.lower() else "own"


@register("service_metrics", order=55)
def detect_metric_shifts(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    metrics = dataset.metrics
    if metrics.height == 0:
        return []
    # lazy: the streaming engine finds the few distinct pairs without encoding every point's strings; sorted, so the first unit a name is classified by is always the same
    names = metrics.lazy().select("name", "unit").unique().drop_nulls("name").collect().sort("name", "unit", nulls_last=True)
    classes: dict[str, MetricClass] = {}
    for name, unit in names.iter_rows():
        found = classify_metric(name, unit)
        if found is not None:
            classes.setdefault(name, found)
    if not classes:
        return []
    # one series per (service, falling back to the pod; pod; metric; attributes): ids, not strings, are grouped
    series = metric_series(metrics).regrouped(service=pl.coalesce("service", "host"), host=pl.col("host"), name=pl.col("name"),
                                              attributes=pl.col("attributes").fill_null(""))
    read = series.keys.filter(pl.col("name").is_in(list(classes)) & pl.col("service").is_not_null())
    joined = series.with_keys(pl.concat([
        _window_values(batch.filter(pl.col(SERIES).is_in(read[SERIES].implode()) & pl.col("value").is_finite() & pl.col("ts").is_not_null())
                       .sort(SERIES, "ts", maintain_order=True), read, classes, context)
        for batch in series.batches(metrics.select("ts", "value"))
    ]))
    if joined.height == 0:
        return []
    system_level = dict(joined.group_by("name").agg(pl.col("center").abs().max()).iter_rows())
    findings: list[Finding] = []
    # one row at a time, in key order: sorting `joined` would copy every value list, and iter_rows turns 512 rows into Python at once
    for index in joined.select(pl.arg_sort_by("service", "host", "name", "attributes")).to_series():
        row = joined.row(index, named=True)
        cls = classes[row["name"]]
        baseline = quiet_baseline(np.asarray(row["values"], dtype=float))
        center = float(np.median(baseline))
        scale = shift_scale(baseline, center, cls, float(system_level.get(row["name"]) or 0.0))
        order = np.argsort(np.asarray([t.timestamp() for t in row["inc_ts"]]))
        inc_values = np.asarray(row["inc_values"], dtype=float)[order]
        # throughput: a service that stops serving is as telling as one flooded
        direction = (1 if sustained_level(inc_values, 1) - center >= center - sustained_level(inc_values, -1) else -1) \
            if cls.family == "throughput" else cls.direction
        incident = sustained_level(inc_values, direction)
        z = direction * (incident - center) / scale
        if z < MIN_Z:
            continue
        inc_z = direction * (np.asarray(row["inc_values"], dtype=float) - center) / scale
        onset = _first_of_last_run(row["inc_ts"], inc_z)
        share = (incident - center) / cls.scale if cls.kind == "utilisation" else None
        magnitude = incident / center if center > 0 and incident > 0 and cls.direction > 0 else 1.0 + z / MIN_Z
        findings.append(Finding(
            detector="service_metrics", kind="metric_shift", dimension="service", subject=str(row["service"]),
            metric=str(row["name"]), onset=onset, baseline=round(center, 6), incident=round(incident, 6),
            magnitude=round(max(magnitude, 1.0 / magnitude if magnitude > 0 else 1.0), 3),
            confidence=confidence_from_z(z), signal="metric", where=row["host"],
            details=MetricShiftDetails(
                family=cls.family, role=cls.role, metric_kind=cls.kind, side=_side(row["name"]), pod=row["host"],
                z=round(z, 2), baseline_median=round(center, 6), baseline_scale=round(scale, 6),
                incident_level=round(incident, 6), limit_share_change=None if share is None else round(share, 4),
            ),
        ))
    return findings


def quiet_baseline(values: np.ndarray) -> np.ndarray:
    """The time-ordered baseline samples less an earlier episode: the runs of two or more samples lying
    `MIN_Z` or more from the median in units of the sample-to-sample noise (the MAD of successive
    differences over sqrt 2, which a level that moved for a few minutes hardly touches, unlike the MAD
    of the levels). An earlier fault inside the baseline then neither inflates its spread nor moves its
    centre. The episode may be at most half the baseline (more is its usual state), and a series of
    fewer than twice `MIN_BASELINE_SAMPLES` samples is kept whole."""
    if values.size < 2 * MIN_BASELINE_SAMPLES:
        return values
    center = float(np.median(values))
    step_sigma = float(np.median(np.abs(np.diff(values)))) * MAD_TO_SIGMA / np.sqrt(2.0)
    far = np.abs(values - center) >= MIN_Z * max(step_sigma, RELATIVE_FLOOR * abs(center), 1e-9)
    run = far & (np.r_[False, far[:-1]] | np.r_[far[1:], False])
    kept = values[~run]
    return kept if kept.size >= max(MIN_BASELINE_SAMPLES, (values.size + 1) // 2) else values


def shift_scale(baseline: np.ndarray, center: float, cls: MetricClass, system_level: float) -> float:
    """The baseline's MAD sigma, floored at `RELATIVE_FLOOR` of its level, and for utilisation at
    `UTILISATION_FLOOR` of the limit, for absolute resource usage and throughput at `SYSTEM_FLOOR` of
    `system_level` (the busiest series' level of the same metric)."""
    floors = [float(np.median(np.abs(baseline - center))) * MAD_TO_SIGMA, RELATIVE_FLOOR * abs(center), 1e-9]
    if cls.kind == "utilisation":
        floors.append(UTILISATION_FLOOR * cls.scale)
    elif cls.role == "resource" or cls.family == "throughput":
        floors.append(SYSTEM_FLOOR * system_level)
    return max(floors)


def sustained_level(values: np.ndarray, direction: int) -> float:
    """The most extreme level (highest for direction +1, lowest for -1) the time-ordered values hold for
    two samples in a row (the only sample when there is one). With a sample a minute and an onset known
    only to a minute or two, a median over the incident window mixes in samples from before the fault;
    a level held twice is not fooled by one spike either."""
    if values.size < 2:
        return float(values[0])
    pairs = np.minimum(values[1:], values[:-1]) if direction > 0 else np.maximum(values[1:], values[:-1])
    return float(pairs.max() if direction > 0 else pairs.min())


def _window_values(rows: pl.DataFrame, keys: pl.DataFrame, classes: dict[str, MetricClass], context: AnalysisContext) -> pl.DataFrame:
    """Per series of `rows` (`series`, `ts`, `value`, sorted by series and time; `keys` the series' keys) with
    enough baseline samples: the baseline's median (`center`), count and time-ordered values, the incident's
    count, times and values."""
    rows = _as_rates(rows, keys, classes)
    in_base = in_window("ts", context.baseline.start, context.baseline.end)
    in_inc = in_window("ts", context.incident.start, context.incident.end)
    base = rows.filter(in_base).group_by(SERIES).agg(
        pl.col("value").median().alias("center"),
        pl.len().alias("n_base"),
        pl.col("value").sort_by("ts").alias("values"),
    )
    inc = rows.filter(in_inc).group_by(SERIES).agg(pl.len().alias("n_inc"),
                                                   pl.col("ts").alias("inc_ts"), pl.col("value").alias("inc_values"))
    return base.join(inc, on=SERIES, how="inner").filter(pl.col("n_base") >= MIN_BASELINE_SAMPLES)


def _as_rates(rows: pl.DataFrame, keys: pl.DataFrame, classes: dict[str, MetricClass]) -> pl.DataFrame:
    """Counters (by name, or series that never decrease) -> per-second rates; a reset gives no rate.
    `rows` (`series`, `ts`, `value`) are sorted by series and time; `keys` are their series' keys."""
    by_name = {n for n, c in classes.items() if c.kind == "counter"}
    counters = set(keys.filter(pl.col("name").is_in(list(by_name)))[SERIES].to_list())
    ids, values = rows[SERIES].to_numpy(), rows["value"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if ids.size else np.zeros(0, dtype=np.int64)
    for start, end in zip(starts, np.r_[starts[1:], ids.size], strict=True):  # per series: its rows are one slice
        if int(ids[start]) not in counters and looks_cumulative(values[start:end]):
            counters.add(int(ids[start]))
    if not counters:
        return rows
    dt = pl.col("ts").diff().over(SERIES).dt.total_microseconds() / 1e6
    dv = pl.col("value").diff().over(SERIES)
    rate = pl.when((dt > 0) & (dv >= 0)).then(dv / dt).otherwise(None)
    is_counter = pl.col(SERIES).is_in(pl.Series(sorted(counters), dtype=pl.UInt32).implode())
    return rows.with_columns(pl.when(is_counter).then(rate).otherwise(pl.col("value")).alias("value")).filter(pl.col("value").is_not_null())


def _first_of_last_run(times: list[datetime], z: np.ndarray, threshold: float = MIN_Z / 2) -> datetime | None:
    """When the shift began: the first incident sample of the run of high z that holds its peak."""
    if not times:
        return None
    order = np.argsort(np.asarray([t.timestamp() for t in times]))
    zs = z[order]
    peak = int(np.argmax(zs))
    i = peak
    while i - 1 >= 0 and zs[i - 1] >= threshold:
        i -= 1
    return times[int(order[i])]
