"""Resources: evidence of memory, CPU, cache, connection-pool and disk exhaustion in logs and metrics.

Log events are classified by resource with vectorized regexes over the message (OOM kills, GC pauses
and heap warnings -> memory; CPU usage, throttling, load average, saturated thread pools -> cpu;
evictions, misses, "cache full" -> cache; "pool exhausted", "connection is not available", "too many
connections" -> connection_pool; "no space left" -> disk). A keyword alone is weak evidence, so a
finding needs a burst: the resource's event rate per service in the incident against its baseline
rate (Poisson z >= 4, at least 3x and 5 events), with an onset from its per-bucket series, like any
other finding. `where` is the service (and the busiest host in `details`).

Metrics (the `metrics` frame, when an input has them) give a second route: a utilization metric
(name containing `utilization`, `usage_ratio` or a `%`/`1` unit) at 90% or more in the incident while
below it in the baseline, or a level shift of 4 robust z, becomes a finding for the resource its name
names. For a metric the family table (`metric_families`) knows, the z is measured with the yardsticks of
`service_metrics.shift_scale` (10% of the level, 2% of a limit, 5% of the busiest pod's level).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.metric_families import classify_metric
from rca.detectors.metric_series import SERIES, metric_series
from rca.detectors.service_metrics import shift_scale
from rca.detectors.stats import (
    bucket_expr,
    confidence_from_z,
    dense_series,
    onset_at,
    onset_time,
    per_minute,
    poisson_excess_z,
    to_series,
    weighted_events,
    weighted_mode,
    window_masks,
)
from rca.detectors.traffic import in_window
from rca.findings import HostResourceDetails, ResourceEventsDetails, ResourceMetricDetails
from rca.messages import RESOURCE_PATTERNS, classify_expr
from rca.model import AnalysisContext, Dataset, Finding

__all__ = ["RESOURCE_PATTERNS", "classify_expr", "detect_resources"]

METRIC_RESOURCES = {"memory": "memory", "mem": "memory", "heap": "memory", "cpu": "cpu", "cache": "cache",
                    "pool": "connection_pool", "connection": "connection_pool", "disk": "disk", "filesystem": "disk"}


@register("resources", order=50)
def detect_resources(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    return _from_events(dataset, context) + _from_metrics(dataset, context)


def _from_events(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    events = weighted_events(dataset)
    base_s = context.observed_s(context.baseline)
    inc_s = context.observed_s(context.incident)
    if events.height == 0 or base_s <= 0 or inc_s <= 0:
        return findings
    tagged = (
        events.filter(pl.col("message").is_not_null())
        .with_columns(classify_expr(pl.col("message")).alias("resource"), bucket_expr(context))
        .filter(pl.col("resource").is_not_null())
        .with_columns(pl.col("service").fill_null(pl.col("host")).fill_null("?"))
    )
    if tagged.height == 0:
        return findings
    in_base = in_window("ts", context.baseline.start, context.baseline.end)
    in_inc = in_window("ts", context.incident.start, context.incident.end)
    keys = ["resource", "service"]
    per = (
        tagged.group_by(keys)
        .agg(
            pl.col("n").filter(in_base).sum().alias("b"), pl.col("n").filter(in_inc).sum().alias("i"),
            pl.col("message").filter(in_inc).first().alias("example"),
            pl.col("n").filter(in_inc & pl.col("level").is_in(["ERROR", "FATAL"])).sum().alias("errors"),
        )
        .join(weighted_mode(tagged, keys, "signal", in_inc), on=keys, how="left", nulls_equal=True)
        .join(weighted_mode(tagged, keys, "host", in_inc), on=keys, how="left", nulls_equal=True)
        .select(*keys, "b", "i", "signal", "host", "example", "errors")
        .sort(keys)
    )
    local = _host_local(dataset, events, context, tagged, in_base, in_inc)
    findings.extend(local)
    local_hosts = {(f.subject, f.where) for f in local}
    for resource, service, b, i, signal, host, example, errors in per.iter_rows():
        if (resource, host) in local_hosts:
            continue
        finding = _burst(tagged, context, resource, "service", service, b, i, signal, ResourceEventsDetails,
                         {"error_events": int(errors), "host": host, "example": (example or "").split("\n")[0][:160]})
        if finding is not None:
            findings.append(finding)
    return findings


def _burst(tagged: pl.DataFrame, context: AnalysisContext, resource: str, by: str, where: str, b: int, i: int, signal: str | None,
           details: type[ResourceEventsDetails], figures: dict[str, Any]) -> Finding | None:
    """The events of `resource` at one service or host (`by` = `where`) as a finding when they burst:
    Poisson z >= 4 against the baseline rate, at least 3x it and 5 events; onset from their series;
    `details` made of the counts, the z and `figures`."""
    base_s, inc_s = context.observed_s(context.baseline), context.observed_s(context.incident)
    expected = b * inc_s / base_s
    z = poisson_excess_z(i, expected)
    if i < 5 or i < 3 * max(expected, 0.5) or z < 4:
        return None
    base_mask, inc_mask, grid = window_masks(context)
    sub = tagged.filter((pl.col("resource") == resource) & (pl.col(by) == where)).group_by("bucket").agg(pl.col("n").sum().alias("len")).with_columns(pl.lit(1).alias("k"))
    values = dense_series(sub, ["k"], "len", context).get((1,), np.zeros(len(grid)))
    onset = onset_at(grid, onset_time(values, base_mask, inc_mask), context.bucket_s)
    return Finding(
        detector="resources", kind="resource_saturation", dimension="resource", subject=resource,
        metric="events_per_min", onset=onset,
        baseline=per_minute(b, base_s), incident=per_minute(i, inc_s),
        magnitude=round(i / max(expected, 0.5), 3), confidence=confidence_from_z(z),
        signal=signal or "text_log", where=str(where), excess=float(i - expected),
        peak=grid[int(np.argmax(np.where(inc_mask, values, -1)))],
        series=to_series(values, grid, context, f"{resource} events, {where}"),
        details=details(events_before=int(b), events_after=int(i), z=round(z, 1), **figures),
    )


HOST_SHARE = 0.8  # share of a resource's incident events on one host that makes the problem host-local


def _host_local(dataset: Dataset, events: pl.DataFrame, context: AnalysisContext, tagged: pl.DataFrame, in_base: pl.Expr, in_inc: pl.Expr) -> list[Finding]:
    """Resource evidence concentrated on one host of several (GC pauses, heap warnings and the kernel's
    OOM killer of one machine, whatever service or syslog tag wrote them): one finding located at that
    host, so the cause names the machine and not only the service."""
    hosts = [events.select("host"), dataset.requests.select("host")]
    if dataset.request_aggregates is not None:  # the rows of the vantages they carry are a sample: a host may be missing from it
        hosts.append(dataset.request_aggregates.counts.filter(pl.col("dimension") == "host").select(pl.col("value").alias("host")))
    hosts_seen = pl.concat(hosts)["host"].drop_nulls().n_unique()
    if hosts_seen < 2:
        return []
    keys = ["resource", "host"]
    per = (
        tagged.filter(pl.col("host").is_not_null())
        .group_by(keys)
        .agg(pl.col("n").filter(in_base).sum().alias("b"), pl.col("n").filter(in_inc).sum().alias("i"),
             pl.col("service").filter(in_inc).unique().sort().alias("services"),
             pl.col("message").filter(in_inc).first().alias("example"),
             pl.col("n").filter(in_inc & pl.col("level").is_in(["ERROR", "FATAL"])).sum().alias("errors"))
        .join(weighted_mode(tagged.filter(pl.col("host").is_not_null()), keys, "signal", in_inc), on=keys, how="left", nulls_equal=True)
        .select(*keys, "b", "i", "signal", "services", "example", "errors")
        .with_columns((pl.col("i") / pl.col("i").sum().over("resource")).alias("share"))
        .filter(pl.col("share") >= HOST_SHARE)
        .sort("resource", "host")
    )
    out = []
    for resource, host, b, i, signal, services, example, errors, share in per.iter_rows():
        finding = _burst(tagged, context, resource, "host", host, b, i, signal, HostResourceDetails,
                         {"error_events": int(errors), "host": str(host), "example": (example or "").split("\n")[0][:160],
                          "host_share": round(float(share), 3), "hosts": int(hosts_seen), "services": tuple(str(v) for v in services if v)})
        if finding is not None:
            out.append(finding)
    return out


def _metric_resource(name: str) -> str | None:
    lowered = name.lower()
    for key, resource in METRIC_RESOURCES.items():
        if key in lowered:
            return resource
    return None


def _level_z(values: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Robust z against the baseline with a MAD scale floored at 1% of the level: gauges and ratios
    are not counts, so the Poisson floor of `stats.robust_z` would hide their shifts."""
    finite = baseline[np.isfinite(baseline)]
    center = float(np.median(finite))
    scale = max(float(np.median(np.abs(finite - center))) * 1.4826, 0.01 * abs(center), 1e-9)
    return (values - center) / scale


def _shift_onset(z: np.ndarray, incident_mask: np.ndarray, threshold: float) -> int | None:
    """First bucket of the run of high z that holds the incident's peak."""
    inc = np.flatnonzero(incident_mask)
    if inc.size == 0:
        return None
    peak = int(inc[np.argmax(z[inc])])
    if z[peak] < threshold:
        return None
    i = peak
    while i - 1 >= 0 and z[i - 1] >= threshold:
        i -= 1
    return i


def _from_metrics(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    metrics = dataset.metrics
    if metrics.height == 0:
        return findings
    base_mask, inc_mask, grid = window_masks(context)
    per_where = metric_series(metrics).regrouped(name=pl.col("name"), where=pl.coalesce("service", "host", pl.lit("?")))
    per_bucket = per_where.with_keys(pl.concat([
        batch.filter(pl.col("value").is_not_null()).group_by(SERIES, bucket_expr(context)).agg(pl.col("value").mean())
        for batch in per_where.batches(metrics.select("ts", "value"))
    ]))
    series = dense_series(per_bucket, ["name", "where"], "value", context, fill=None)
    system_level: dict[str, float] = {}  # per metric, the busiest series' baseline level (shift_scale)
    for (name, _), values in series.items():
        base = values[base_mask]
        if np.isfinite(base).any():
            system_level[name] = max(system_level.get(name, 0.0), abs(float(np.nanmedian(base))))
    for (name, where), values in sorted(series.items()):
        resource = _metric_resource(name)
        if resource is None:
            continue
        base, inc = values[base_mask], values[inc_mask]
        if not np.isfinite(base).any() or not np.isfinite(inc).any():
            continue
        utilization = "utilization" in name or "ratio" in name
        base_level, inc_level = float(np.nanmedian(base)), float(np.nanmax(inc))
        filled = np.where(np.isfinite(values), values, base_level)
        known = classify_metric(name)
        if known is not None and known.role == "resource":
            # the same yardsticks as the per-service metric shifts: a pod going from 1.7 to 6 millicores
            # beside pods using hundreds, or 0.2% -> 0.6% of a limit, is no exhaustion whatever its z
            finite = base[np.isfinite(base)]
            z_all = (filled - base_level) / shift_scale(finite, float(np.median(finite)), known, system_level.get(name, 0.0))
        else:
            z_all = _level_z(filled, base)
        z = float(np.max(z_all[inc_mask]))
        near_limit = utilization and inc_level >= 0.9 and base_level < 0.9
        if not (near_limit or z >= 4.0):
            continue
        onset = _shift_onset(z_all, inc_mask, 3.0)
        findings.append(
            Finding(
                detector="resources", kind="resource_saturation", dimension="resource", subject=resource,
                metric=name, onset=grid[onset] if onset is not None else None, baseline=round(base_level, 4),
                incident=round(inc_level, 4), magnitude=round(inc_level / base_level, 3) if base_level else round(z, 2),
                confidence=confidence_from_z(max(z, 6.0 if near_limit else 0.0)), signal="metric", where=str(where),
                series=to_series(values, grid, context, f"{name}, {where}"),
                details=ResourceMetricDetails(metric=name, near_limit=near_limit, z=round(z, 1)),
            )
        )
    return findings
