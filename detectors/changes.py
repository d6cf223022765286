"""Changes: for each deploy, rollback, flag or config change, what moved right after it on what it touched.

For a change at time t on service S, requests of S (every vantage when S is unknown or not seen) are
compared in the 15 minutes before t and the 15 minutes after it (clipped to the data): p95 latency
(Mann-Whitney), 5xx share (two-proportion z) and request rate, over all of S and per route of S (a
release that slows one route of many barely moves the service's p95). When the requests say which
release served them (`requests.version`: a version field, a pod-template hash), the minutes after t in
which both releases served are also split by release: the new release's requests against the old
one's (a canary comparison: load, time of day and every other cause hit both sides alike, so it tells
a bad release from load). A change "had an effect" when, right after it, p95 rose 25% and 20 ms
(p < 1e-3, p < 1e-4 for a single route) or the 5xx share rose 2 points and doubled (z >= 4), what
moved was not already degraded in the 3 minutes before it, and, where the canary split holds enough
requests of both, the new release is the worse side. One `change_effect` finding per change, effect or not: the ranker needs the ones without effect to rule them out, with
these figures.

When the change touches a vantage whose rows are only a sample (`Dataset.request_aggregates` carries it),
before and after are read from the aggregates (`AggregatedRequests`: counts exact, p95 from the latency
histograms within 1%, Mann-Whitney U on their bins; routes are endpoints, as the histograms are kept per
endpoint), and the details' `basis` says so. The canary split needs each request's release and route,
which only rows carry: it runs on the sample, and its figures' `basis` says that.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import polars as pl

from rca.aggregates import aggregate_requests, merge_aggregates, sketch_quantiles
from rca.detectors import register
from rca.detectors.histograms import HISTOGRAM_BASIS, binned_mann_whitney_p
from rca.detectors.stats import (
    aggregated_vantages,
    carried_expr,
    confidence_from_p,
    mann_whitney_p,
    two_proportion_z,
)
from rca.findings import ChangeEffectDetails
from rca.model import AnalysisContext, Dataset, Finding, RequestAggregates, Window

WINDOW = timedelta(minutes=15)
MIN_N = 20
MAX_ROUTES = 25  # routes of the touched service compared one by one (the busiest)
CANARY_MIN_N = 8  # requests of each release for the canary split to clear a release (same minutes: few suffice)
CANARY_MIN_PER_MINUTE = 3  # requests of each release in a minute for that minute to enter the canary split


@dataclass(frozen=True)
class Comparison:
    """Two samples of requests (before/after a change, or old/new release in the same minutes)."""

    scope: str  # "all of checkout", "GET /api/cart/{id}"
    n_a: int
    n_b: int
    p95_a: float | None
    p95_b: float | None
    err_a: float | None
    err_b: float | None
    p_latency: float
    p_errors: float

    @property
    def enough(self) -> bool:
        return self.n_a >= MIN_N and self.n_b >= MIN_N

    def latency_hit(self, alpha: float) -> bool:
        a, b = self.p95_a, self.p95_b
        return bool(self.enough and a and b and b >= 1.25 * a and b - a >= 20 and self.p_latency < alpha)

    def error_hit(self, alpha: float) -> bool:
        a, b = self.err_a, self.err_b
        return bool(self.enough and a is not None and b is not None and b - a >= 0.02 and b >= 2 * max(a, 1e-4) and self.p_errors < alpha)

    @property
    def latency_ratio(self) -> float:
        return (self.p95_b / self.p95_a) if (self.p95_a and self.p95_b) else 1.0

    @property
    def error_ratio(self) -> float:
        if self.err_a is None or self.err_b is None:
            return 1.0
        return min((self.err_b + 0.005) / (self.err_a + 0.005), 100.0)


def _compare(scope: str, a: pl.DataFrame, b: pl.DataFrame) -> Comparison:
    da, db = a["duration_ms"].drop_nulls().to_numpy(), b["duration_ms"].drop_nulls().to_numpy()
    sa, sb = a["status"].drop_nulls(), b["status"].drop_nulls()
    ka, kb = int((sa >= 500).sum()), int((sb >= 500).sum())
    p_latency = mann_whitney_p(da, db) if min(da.size, db.size) >= CANARY_MIN_N else 1.0
    z = two_proportion_z(ka, len(sa), kb, len(sb)) if len(sa) and len(sb) else 0.0
    return Comparison(
        scope=scope, n_a=a.height, n_b=b.height,
        p95_a=float(np.quantile(da, 0.95)) if da.size else None, p95_b=float(np.quantile(db, 0.95)) if db.size else None,
        err_a=ka / len(sa) if len(sa) else None, err_b=kb / len(sb) if len(sb) else None,
        p_latency=p_latency, p_errors=float(0.5 * math.erfc(z / math.sqrt(2.0))),
    )


def _strength(c: Comparison, alpha: float) -> tuple[float, float, str]:
    """(confidence, magnitude, metric) of the strongest hit of a comparison, or zeros."""
    hits = []
    if c.latency_hit(alpha):
        hits.append((confidence_from_p(c.p_latency), c.latency_ratio, "p95_ms"))
    if c.error_hit(alpha):
        hits.append((confidence_from_p(c.p_errors), c.error_ratio, "error_rate"))
    return max(hits, key=lambda h: (_weight(h[0], h[1]), h[1]), default=(0.0, 1.0, "p95_ms"))


def _weight(confidence: float, magnitude: float) -> float:
    """How strong a hit is: confidence times a magnitude factor, as the ranker weighs findings."""
    return confidence * min(1.0, 0.25 + math.log10(max(magnitude, 1.0)))


def _strongest(a: pl.DataFrame, b: pl.DataFrame, whole: str) -> tuple[Comparison, float, float, str]:
    """The comparison of the whole scope, or of the one route that moved most (stricter threshold)."""
    routes = (
        pl.concat([a.select("method", "endpoint"), b.select("method", "endpoint")])
        .filter(pl.col("endpoint").is_not_null())
        .group_by("method", "endpoint").len()
        .filter(pl.col("len") >= 2 * MIN_N)
        .sort(["len", "endpoint", "method"], descending=[True, False, False], nulls_last=True)
        .head(MAX_ROUTES)
    )
    on = lambda method, endpoint: (pl.col("endpoint") == endpoint) & pl.col("method").eq_missing(method)  # noqa: E731
    return _most_moved(_compare(whole, a, b), routes.height, (
        _compare(f"{method} {endpoint}" if method else str(endpoint), a.filter(on(method, endpoint)), b.filter(on(method, endpoint)))
        for method, endpoint, _ in routes.iter_rows()
    ))


def _most_moved(whole: Comparison, n_routes: int, routes: Iterator[Comparison]) -> tuple[Comparison, float, float, str]:
    """The comparison of the whole scope, or, among two routes or more, of the one that moved most
    (stricter threshold), with its (confidence, magnitude, metric)."""
    best = whole
    conf, mag, metric = _strength(best, 1e-3)
    if n_routes < 2:
        return best, conf, mag, metric
    for c in routes:
        rc, rm, rmetric = _strength(c, 1e-4)
        if (_weight(rc, rm), rm) > (_weight(conf, mag), mag):  # the route that moved most (ties: the larger shift)
            best, conf, mag, metric = c, rc, rm, rmetric
    return best, conf, mag, metric


def _canary(touched: pl.DataFrame, subject: str | None, t, end) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Requests of the new release and of the others in the minutes after the change, when both served."""
    if subject is None or touched["version"].null_count() == touched.height:
        return None
    version = pl.col("version").str.replace(r"^v(\d)", "${1}")
    new_name = subject[1:] if subject[:1] == "v" and subject[1:2].isdigit() else subject
    during = touched.filter((pl.col("ts") >= t) & (pl.col("ts") < end) & pl.col("version").is_not_null())
    # only the minutes in which both releases served: a rollout spread over minutes of changing load must
    # not compare the old release's early minutes with the new one's later, busier ones
    is_new = version == new_name
    both = (
        during.group_by(pl.col("ts").dt.truncate("1m").alias("_minute"))
        .agg(is_new.sum().alias("_new"), (~is_new).sum().alias("_old"))
        .filter((pl.col("_new") >= CANARY_MIN_PER_MINUTE) & (pl.col("_old") >= CANARY_MIN_PER_MINUTE))["_minute"]
    )
    during = during.filter(pl.col("ts").dt.truncate("1m").is_in(both.implode()))
    new = during.filter(is_new)
    old = during.filter(~is_new)
    if new.height < MIN_N // 2 or old.height < MIN_N // 2:
        return None
    return old, new


# One side of a comparison on aggregated requests: counts and histograms of the dimensions `service` and
# `endpoint`, each bucket with its `weight` (the share of its time inside the side's minutes; histogram
# counts already weighted).
Side = tuple[pl.DataFrame, pl.DataFrame]
COMPARED = ("service", "endpoint")  # the dimensions a comparison reads: the whole scope, and its routes


@dataclass(frozen=True)
class AggregatedRequests:
    """Every request of the vantages `Dataset.request_aggregates` carries (their rows are a sample) and the
    rows of the others, aggregated alike (`rca.aggregates`) at the aggregates' bucket width: what the
    comparisons read when a change touches a carried vantage. Counts exact; p95 from the latency
    histograms (within 1%); Mann-Whitney U on their bins."""

    aggregates: RequestAggregates
    span: Window

    def side(self, service: str | None, start: datetime, end: datetime) -> Side:
        """Counts and histograms of `service` (every service: None) in [start, end). A bucket cut by
        `start` or `end` enters with the share of its observed time inside (its requests taken as spread
        evenly over it), so a side covers the minutes the rows' comparison covers."""
        lo, hi = max(start, self.span.start), min(end, self.span.end)
        width = pl.duration(seconds=self.aggregates.bucket_s)
        b0 = pl.max_horizontal(pl.col("bucket"), pl.lit(self.span.start))
        b1 = pl.min_horizontal(pl.col("bucket") + width, pl.lit(self.span.end))
        inside = (pl.min_horizontal(b1, pl.lit(hi)) - pl.max_horizontal(b0, pl.lit(lo))).dt.total_microseconds().clip(0)
        weight = (inside / (b1 - b0).dt.total_microseconds().clip(1)).alias("weight")
        near = (pl.col("bucket") < hi) & (pl.col("bucket") + width > lo)
        if service is not None:
            near = near & (pl.col("service") == service)
        counts = self.aggregates.counts.filter(near).with_columns(weight).filter(pl.col("weight") > 0)
        sketches = self.aggregates.sketches.filter(near).with_columns(weight).filter(pl.col("weight") > 0)
        return counts, sketches.with_columns((pl.col("count") * pl.col("weight")).alias("count"))


def aggregated_requests(dataset: Dataset) -> AggregatedRequests | None:
    """The requests as `AggregatedRequests` when the aggregates carry a vantage, else None (rows are read)."""
    aggregates = dataset.request_aggregates
    carried = aggregated_vantages(aggregates)
    span = dataset.time_range()
    if aggregates is None or not carried or span is None:
        return None
    others = dataset.requests.filter(~carried_expr(carried))
    if others.height:
        aggregates = merge_aggregates([_compared(aggregates), _compared(aggregate_requests(others, aggregates.bucket_s))], aggregates.bucket_s)
    return AggregatedRequests(_compared(aggregates), Window(span[0], span[1]))


def _compared(aggregates: RequestAggregates) -> RequestAggregates:
    """Only what comparisons read: the dimensions COMPARED, latency as `duration_ms`."""
    on = pl.col("dimension").is_in(COMPARED)
    return replace(aggregates, counts=aggregates.counts.filter(on), sketches=aggregates.sketches.filter(on & (pl.col("metric") == "duration_ms")))


def _scoped(side: Side, endpoint: str | None) -> Side:
    counts, sketches = side
    on = pl.col("dimension") == "service" if endpoint is None else (pl.col("dimension") == "endpoint") & (pl.col("value") == endpoint)
    return counts.filter(on), sketches.filter(on)


def _weighted_totals(counts: pl.DataFrame) -> tuple[int, int, int]:
    """Requests, 5xx errors and requests with a status of a side (each bucket's counts times its weight)."""
    totals = counts.select((pl.col(c) * pl.col("weight")).sum().round(0).cast(pl.Int64) for c in ("requests", "errors", "with_status")).row(0)
    return int(totals[0] or 0), int(totals[1] or 0), int(totals[2] or 0)


def _compare_aggregated(scope: str, a: Side, b: Side, endpoint: str | None = None) -> Comparison:
    """`_compare` of two sides of aggregated requests: all of them, or one endpoint's."""
    (ca, sa), (cb, sb) = _scoped(a, endpoint), _scoped(b, endpoint)
    figures = []
    for counts, sketches in ((ca, sa), (cb, sb)):
        n, errors, with_status = _weighted_totals(counts)
        p95 = sketch_quantiles(sketches, [], {"p95": 0.95})["p95"] if sketches.height else None
        figures.append((n, errors, with_status, float(p95[0]) if p95 is not None and p95.len() else None, float(sketches["count"].sum())))
    (na, ka, wa, pa, ta), (nb, kb, wb, pb, tb) = figures
    p_latency = binned_mann_whitney_p(sa, sb, max_n=3000) if min(ta, tb) >= CANARY_MIN_N else 1.0
    z = two_proportion_z(ka, wa, kb, wb) if wa and wb else 0.0
    return Comparison(
        scope=scope, n_a=na, n_b=nb, p95_a=pa, p95_b=pb,
        err_a=ka / wa if wa else None, err_b=kb / wb if wb else None,
        p_latency=p_latency, p_errors=float(0.5 * math.erfc(z / math.sqrt(2.0))),
    )


def _strongest_aggregated(a: Side, b: Side, whole: str) -> tuple[Comparison, float, float, str]:
    """`_strongest` on aggregated requests: routes are endpoints (the histograms are per endpoint), named
    with their usual method."""
    routes = (
        pl.concat([a[0], b[0]]).filter((pl.col("dimension") == "endpoint") & pl.col("value").is_not_null())
        .group_by("value", "method").agg((pl.col("requests") * pl.col("weight")).sum())
        .sort(["value", "requests", "method"], descending=[False, True, False], nulls_last=True)
        .group_by("value", maintain_order=True).agg(pl.col("method").first(), pl.col("requests").sum())
        .filter(pl.col("requests") >= 2 * MIN_N)
        .sort(["requests", "value", "method"], descending=[True, False, False], nulls_last=True)
        .head(MAX_ROUTES)
    )
    return _most_moved(_compare_aggregated(whole, a, b), routes.height, (
        _compare_aggregated(f"{method} {endpoint}" if method else str(endpoint), a, b, endpoint) for endpoint, method, _ in routes.iter_rows()
    ))


def _already_degraded_aggregated(lead_in: Side, moved: Comparison, metric: str) -> bool:
    """`_already_degraded` on the aggregated requests of the minutes just before the change."""
    method, _, endpoint = moved.scope.partition(" ")
    counts, sketches = _scoped(lead_in, None if moved.scope.startswith("all of") else (endpoint or method))
    n, errors, with_status = _weighted_totals(counts)
    if n < MIN_N // 2:
        return False
    if metric == "error_rate":
        last, low, high = errors / max(with_status, 1), moved.err_a or 0.0, moved.err_b or 0.0
    else:
        if sketches.height == 0 or moved.p95_a is None or moved.p95_b is None:
            return False
        last, low, high = float(sketch_quantiles(sketches, [], {"p95": 0.95})["p95"][0]), moved.p95_a, moved.p95_b
    return last - low > 0.5 * (high - low)


LEAD_IN = timedelta(minutes=3)


def _in_scope(rows: pl.DataFrame, scope: str) -> pl.DataFrame:
    """The rows a comparison's scope names: all of them, or one route (`GET /api/x/{id}`)."""
    if scope.startswith("all of"):
        return rows
    method, _, endpoint = scope.partition(" ")
    return rows.filter((pl.col("endpoint") == endpoint) & (pl.col("method") == method)) if endpoint else rows.filter(pl.col("endpoint") == method)


def _already_degraded(before: pl.DataFrame, moved: Comparison, metric: str, t) -> bool:
    """Was what moved already degraded in the minutes just before the change (nearer its level after
    the change than before)? Then the change did not start it: it came after the incident began."""
    rows = _in_scope(before.filter(pl.col("ts") >= t - LEAD_IN), moved.scope)
    if rows.height < MIN_N // 2:
        return False
    if metric == "error_rate":
        last = float(cast(float, (rows["status"].drop_nulls() >= 500).mean() or 0.0))
        low, high = moved.err_a or 0.0, moved.err_b or 0.0
    else:
        durations = rows["duration_ms"].drop_nulls()
        if durations.len() == 0 or moved.p95_a is None or moved.p95_b is None:
            return False
        last, low, high = float(cast(float, durations.quantile(0.95))), moved.p95_a, moved.p95_b
    return last - low > 0.5 * (high - low)


def _alike(c: Comparison) -> bool:
    """Old and new release served alike in the same minutes: a few requests each, the new one's p95 not
    25% above the old one's with Mann-Whitney p < 0.05, and its 5xx share not doubled."""
    slower = c.latency_ratio >= 1.25 and c.p_latency < 0.05
    return (min(c.n_a, c.n_b) >= CANARY_MIN_N and not slower
            and (c.err_a is None or c.err_b is None or c.err_b < max(2 * c.err_a, c.err_a + 0.01)))


def _figures(c: Comparison) -> dict[str, object]:
    r = lambda v, k=1: None if v is None else round(v, k)  # noqa: E731
    return {"scope": c.scope, "n_old": c.n_a, "n_new": c.n_b, "p95_old_ms": r(c.p95_a), "p95_new_ms": r(c.p95_b),
            "error_rate_old": r(c.err_a, 4), "error_rate_new": r(c.err_b, 4), "p_latency": float(f"{c.p_latency:.3g}"),
            "p_errors": float(f"{c.p_errors:.3g}")}


@register("changes", order=40)
def detect_change_effects(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    changes = dataset.changes.filter(pl.col("ts").is_not_null()).sort("ts")
    requests = dataset.requests
    if changes.height == 0:
        return findings
    services_seen = set(requests["service"].drop_nulls().unique().to_list()) if requests.height else set()
    aggregated = aggregated_requests(dataset)
    carried_services = {v for _, v in aggregated_vantages(dataset.request_aggregates)} if aggregated is not None else set()
    services_seen |= {v for v in carried_services if v is not None}
    for row in changes.iter_rows(named=True):
        t = row["ts"]
        service = row["service"]
        touched = requests.filter(pl.col("service") == service) if service in services_seen else requests
        sampled = aggregated is not None and (service not in services_seen or service in carried_services)
        scope = service if service in services_seen else "all services"
        start = max(t - WINDOW, context.span.start)
        end = min(t + WINDOW, context.span.end)
        # A change well before the incident is judged on the time between it and the incident's start
        # ("flat for 12 minutes after it"), so the incident itself is not blamed on it.
        if context.incident.start - t > max(3 * context.bucket, LEAD_IN):
            end = min(end, context.incident.start)
        minutes_b = max((t - start).total_seconds() / 60, 1e-9)
        minutes_a = max((end - t).total_seconds() / 60, 1e-9)
        if aggregated is not None and sampled:
            of = service if service in services_seen else None
            side_b, side_a = aggregated.side(of, start, t), aggregated.side(of, t, end)
            whole = _compare_aggregated(f"all of {scope}", side_b, side_a)
            moved, confidence, magnitude, metric = _strongest_aggregated(side_b, side_a, f"all of {scope}")
            effect = confidence > 0 and not _already_degraded_aggregated(aggregated.side(of, t - LEAD_IN, t), moved, metric)
            basis = f"{HISTOGRAM_BASIS}, Mann-Whitney U on the histograms' bins; a bucket the change cuts counts by its share of time on each side"
        else:
            before = touched.filter((pl.col("ts") >= start) & (pl.col("ts") < t))
            after = touched.filter((pl.col("ts") >= t) & (pl.col("ts") < end))
            whole = _compare(f"all of {scope}", before, after)
            moved, confidence, magnitude, metric = _strongest(before, after, f"all of {scope}")
            effect = confidence > 0 and not _already_degraded(before, moved, metric, t)
            basis = None
        canary_figures: dict[str, object] | None = None
        canary_effect: bool | None = None
        # the same minutes compared: immune to whatever else happens then, so not cut at the incident's start
        split = _canary(touched, row["subject"], t, min(t + WINDOW, context.span.end)) if row["kind"] in ("deploy", "rollback") else None
        if split is not None:
            canary, c_conf, c_mag, c_metric = _strongest(split[0], split[1], f"all of {scope}")
            canary_figures, canary_effect = _figures(canary), c_conf > 0
            if sampled:  # the releases are told apart by rows only: the vantage's sample of them
                canary_figures["basis"] = f"a sample of the requests ({split[0].height + split[1].height:,} of the minutes both releases served)"
            if c_conf > 0:
                # the new release is worse than the old one in the same minutes: the strongest evidence
                moved, confidence, magnitude, metric, effect = canary, max(c_conf, confidence), max(c_mag, magnitude), c_metric, True
            else:
                # both releases alike in the same minutes on what moved: not the release. A route with too
                # few requests of one release in those minutes is no evidence either way (the whole service
                # looks alike when one route of several slowed), so the before/after verdict stands.
                on_moved = _compare(moved.scope, _in_scope(split[0], moved.scope), _in_scope(split[1], moved.scope))
                if effect and _alike(on_moved):
                    effect = False
                    # the comparison that cleared it is the one to quote (on the same rows, so the same basis)
                    canary_figures = {**_figures(on_moved), **{k: v for k, v in canary_figures.items() if k == "basis"}}
        onset_gap = (context.incident.start - t).total_seconds() / 60
        r = lambda v, k=1: None if v is None else round(v, k)  # noqa: E731
        findings.append(
            Finding(
                detector="changes", kind="change_effect", dimension="change",
                subject=f"{row['kind']} {service or '?'} {row['subject'] or ''}".strip(), metric=metric if effect else "p95_ms",
                onset=t, baseline=r(moved.p95_a if metric == "p95_ms" or not effect else moved.err_a, 4 if metric == "error_rate" and effect else 1),
                incident=r(moved.p95_b if metric == "p95_ms" or not effect else moved.err_b, 4 if metric == "error_rate" and effect else 1),
                magnitude=round(magnitude if effect else whole.latency_ratio, 3), confidence=confidence if effect else 0.0,
                signal=row["signal"] or "external", where=service,
                details=ChangeEffectDetails(
                    change_kind=row["kind"], service=service, subject=row["subject"], scope=scope,
                    description=row["description"], origin=row["origin"], line=row["line"],
                    effect=effect, enough_data=whole.enough,
                    window_min=round(WINDOW.total_seconds() / 60),
                    after_min=round((end - t).total_seconds() / 60, 1),
                    p95_before_ms=r(whole.p95_a), p95_after_ms=r(whole.p95_b),
                    error_rate_before=r(whole.err_a, 4), error_rate_after=r(whole.err_b, 4),
                    rate_before_per_min=round(whole.n_a / minutes_b, 2), rate_after_per_min=round(whole.n_b / minutes_a, 2),
                    p_value=float(f"{whole.p_latency:.3g}"), minutes_before_incident=round(onset_gap, 1),
                    in_incident=bool(context.incident.contains(t)),
                    moved=moved.scope if effect else None, moved_figures=_figures(moved) if effect else None,
                    canary=canary_figures, canary_effect=canary_effect, basis=basis,
                ),
            )
        )
    return findings
