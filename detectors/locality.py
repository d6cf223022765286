"""Locality: where the extra time went, as evidence for or against tempting explanations.

- `network_split`: a proxy logs both its request time and its upstream (backend) time; their difference
  is the time outside the backend (client, network, proxy). When the request time rose while the time
  outside the backend stayed flat, the time went to the backend and the network is not the cause. Judged
  over all proxied requests, else over the endpoints whose request time shifted (the latency detector's
  rule: the endpoints it would report).
- `host_spread`: per service with two hosts or more, each host's p95 before and after the incident began;
  reported when every host slowed alike (a problem of one host would slow one).

On a vantage whose rows are only a sample (`Dataset.request_aggregates` carries it), a service's hosts'
p95 come from the aggregates' latency histograms (within 1%; its other rows binned alike); the network
split needs each request's two times, which only rows hold, so it reads the sample. The details'
`basis` says which.

Both are reported only when they hold, so the ranker rules the explanation out by reading findings.
Thresholds: at least 100 proxied requests and 30 per window; request time up x1.2 while the time outside
the backend rose by at most x2 or 50 ms; every host's p95 up x1.2.
"""

from __future__ import annotations

import polars as pl

from rca.aggregates import sketch_bin_expr, sketch_quantiles
from rca.detectors import latency, register
from rca.detectors.histograms import HISTOGRAM_BASIS
from rca.detectors.stats import aggregated_vantages, carried_expr, exact_aggregates, mann_whitney_p
from rca.findings import HostSpreadDetails, NetworkSplitDetails
from rca.model import AnalysisContext, Dataset, Finding, Window

MIN_REQUESTS = 100  # proxied requests in all
MIN_WINDOW_REQUESTS = 30  # proxied requests in each window
MIN_RISE = 1.2  # request time (or a host's p95) rose at least this much
OUTSIDE_RATIO = 2.0  # the time outside the backend "stayed flat": at most x2 ...
OUTSIDE_MS = 50.0  # ... or 50 ms more, whichever is larger


def _window_p95(rows: pl.DataFrame, window: Window) -> tuple[float, float, float] | None:
    """p95 of request time, upstream time and their difference in `window`, or None with too few rows."""
    rows = rows.filter((pl.col("ts") >= window.start) & (pl.col("ts") < window.end))
    if rows.height < MIN_WINDOW_REQUESTS:
        return None
    total, upstream, outside = rows.select(
        pl.col("duration_ms").quantile(0.95).alias("total"),
        pl.col("upstream_ms").quantile(0.95).alias("upstream"),
        (pl.col("duration_ms") - pl.col("upstream_ms")).quantile(0.95).alias("outside"),
    ).row(0)
    return float(total), float(upstream), float(outside)


def _slowed_endpoints(rows: pl.DataFrame, context: AnalysisContext) -> list[str]:
    """Endpoints whose request time shifted by the latency detector's rule (p95 up 30% and 20 ms,
    Mann-Whitney p < 1e-4, 20 requests a side), so noise on a quiet day names none."""
    in_base = (pl.col("ts") >= context.baseline.start) & (pl.col("ts") < context.baseline.end)
    in_inc = (pl.col("ts") >= context.incident.start) & (pl.col("ts") < context.incident.end)
    per = (
        rows.filter(pl.col("endpoint").is_not_null())
        .group_by("endpoint")
        .agg(
            in_base.sum().alias("nb"), in_inc.sum().alias("ni"),
            pl.col("duration_ms").filter(in_base).quantile(0.95).alias("b"),
            pl.col("duration_ms").filter(in_inc).quantile(0.95).alias("i"),
        )
        .filter((pl.col("nb") >= latency.MIN_N) & (pl.col("ni") >= latency.MIN_N) & (pl.col("i") >= latency.MIN_RATIO * pl.col("b"))
                & (pl.col("i") - pl.col("b") >= latency.MIN_DELTA_MS))
        .sort("endpoint")
    )
    slowed = []
    for endpoint in per["endpoint"].to_list():
        mine = rows.filter(pl.col("endpoint") == endpoint)
        before = mine.filter(in_base)["duration_ms"].to_numpy()
        after = mine.filter(in_inc)["duration_ms"].to_numpy()
        if mann_whitney_p(before, after) < latency.MAX_P:
            slowed.append(str(endpoint))
    return slowed


@register("network", order=70)
def network_split(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    """The time went to the backend: request time rose while the time outside the backend stayed flat."""
    rows = dataset.requests.filter(pl.col("upstream_ms").is_not_null() & pl.col("duration_ms").is_not_null())
    if rows.height < MIN_REQUESTS:
        return []
    scopes: list[tuple[str, tuple[str, ...], pl.DataFrame]] = [("all proxied requests", (), rows)]
    slowed = _slowed_endpoints(rows, context)
    if slowed:
        label = f"the {len(slowed)} endpoint{'s' if len(slowed) > 1 else ''} that slowed ({', '.join(slowed[:3])}{', ...' if len(slowed) > 3 else ''})"
        scopes.append((label, tuple(slowed), rows.filter(pl.col("endpoint").is_in(slowed))))
    signals = rows["signal"].drop_nulls()
    signal = str(signals.mode().sort()[0]) if len(signals) else "access_log"
    # the time outside the backend is each request's difference of two times: only rows hold it, and the
    # rows of a vantage the aggregates carry are a sample of its requests
    carried = aggregated_vantages(dataset.request_aggregates)
    sampled = int(rows.select(carried_expr(carried).sum()).item()) if carried else 0
    for label, endpoints, scoped in scopes:
        base, inc = _window_p95(scoped, context.baseline), _window_p95(scoped, context.incident)
        if base is None or inc is None:
            continue
        (total_b, up_b, out_b), (total_i, up_i, out_i) = base, inc
        if total_i < MIN_RISE * total_b or out_i > max(OUTSIDE_RATIO * out_b, out_b + OUTSIDE_MS):
            continue
        return [Finding(
            detector="network", kind="network_split", dimension="scope", subject=label, metric="p95_ms_outside_backend",
            onset=None, baseline=round(out_b, 1), incident=round(out_i, 1), magnitude=round(out_i / max(out_b, 0.1), 2),
            confidence=1.0, signal=signal,
            details=NetworkSplitDetails(total_before_ms=total_b, total_after_ms=total_i, upstream_before_ms=up_b,
                                        upstream_after_ms=up_i, outside_before_ms=out_b, outside_after_ms=out_i,
                                        endpoints=endpoints, basis=f"a sample of the requests ({sampled:,} of {rows.height:,} proxied "
                                        "requests analysed are a sample of their vantage's)" if sampled else None),
        )]
    return []


def _host_p95(dataset: Dataset, context: AnalysisContext) -> tuple[pl.DataFrame, set[str], dict[str, str]]:
    """p95 per (service, host, window: `b` before the incident began, `i` after), the services whose
    figures come from the aggregates' histograms (a vantage of theirs is carried: within SKETCH_ALPHA),
    and the signal with the most requests of each of those services."""
    before_after = lambda ts: pl.when(pl.col(ts) >= context.incident.start).then(pl.lit("i")).otherwise(pl.lit("b")).alias("w")  # noqa: E731
    rows = dataset.requests.filter(pl.col("service").is_not_null() & pl.col("host").is_not_null() & pl.col("duration_ms").is_not_null())
    aggregates = exact_aggregates(dataset.request_aggregates, context)
    carried = aggregated_vantages(aggregates)
    if aggregates is None or not carried:
        per = rows.with_columns(before_after("ts")).group_by("service", "host", "w").agg(pl.col("duration_ms").quantile(0.95).alias("p95"))
        return per, set(), {}
    rows = rows.filter(~carried_expr(carried))
    binned = {str(service) for _, service in carried if service is not None}
    exact = rows.filter(~pl.col("service").is_in(sorted(binned)))
    per_exact = exact.with_columns(before_after("ts")).group_by("service", "host", "w").agg(pl.col("duration_ms").quantile(0.95).alias("p95"))
    sketches = aggregates.sketches.filter(
        (pl.col("dimension") == "host") & (pl.col("metric") == "duration_ms") & pl.col("value").is_not_null() & pl.col("service").is_not_null()
    ).select("signal", "service", pl.col("value").alias("host"), before_after("bucket"), "bin", "count")
    others = (
        rows.filter(pl.col("service").is_in(sorted(binned)))
        .select("signal", "service", "host", before_after("ts"), sketch_bin_expr(pl.col("duration_ms")).alias("bin"), pl.lit(1, pl.Int64).alias("count"))
    )
    merged = pl.concat([sketches, others])
    per_binned = sketch_quantiles(merged, ["service", "host", "w"], {"p95": 0.95}).select("service", "host", "w", "p95")
    signals = (
        merged.group_by("service", "signal").agg(pl.col("count").sum())
        .sort(["service", "count", "signal"], descending=[False, True, False]).unique("service", keep="first")
    )
    return pl.concat([per_exact, per_binned]), binned, dict(signals.select("service", "signal").iter_rows())


@register("hosts", order=70)
def host_spread(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    """Services of two hosts or more whose every host slowed alike (p95 after the incident began against
    p95 before it)."""
    per, binned, signal_of = _host_p95(dataset, context)
    if per.height == 0:
        return []
    per = per.pivot(on="w", index=["service", "host"], values="p95").sort("service", "host")
    if "i" not in per.columns or "b" not in per.columns:
        return []
    findings = []
    for (service,), hosts in per.drop_nulls(["b", "i"]).group_by(["service"], maintain_order=True):
        rows = tuple((str(h), float(b), float(i)) for h, b, i in hosts.select("host", "b", "i").iter_rows())
        rises = [i / b for _, b, i in rows if b > 0]
        if len(rows) < 2 or not rises or min(rises) < MIN_RISE:
            continue
        signal = signal_of.get(str(service)) or str(dataset.requests.filter(pl.col("service") == service)["signal"].drop_nulls().mode().sort()[0])
        findings.append(Finding(
            detector="hosts", kind="host_spread", dimension="service", subject=str(service), metric="p95_ms",
            onset=None, baseline=None, incident=None, magnitude=round(min(rises), 3), confidence=1.0,
            signal=signal, where=str(service),
            details=HostSpreadDetails(hosts=rows, basis=HISTOGRAM_BASIS if str(service) in binned else None),
        ))
    return findings
