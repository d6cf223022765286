"""Traffic: request-rate anomalies per endpoint, source, source network, user-agent family, host and service.

Rates are computed within one vantage point at a time (a `signal` and `service`: the proxy's access log,
an app's request log, a service's server spans), so one request seen three times is never counted
three times. For every dimension, each value's incident count is compared with what its baseline rate
predicts (Poisson z on the excess); the excess of each value is then set against the vantage's total
excess, in the manner of Adtributor's explanatory power: a partner /24 carrying 83% of the extra load
and a surge spread thin over 400 clients are told apart by the share of the top value and the number of
contributors (`details["clients"]`, `details["top_share"]`). Onsets come from each value's own
per-bucket series (`detectors.stats.onset_index`).

Reporting threshold: excess z >= 5, incident rate >= 1.5x baseline, and an excess of at least 20
requests and 2% of the vantage's incident volume.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors import register
from detectors.stats import (
    bucket_expr,
    confidence_from_z,
    dense_series,
    onset_index,
    poisson_excess_z,
    to_series,
    window_masks,
)
from rca.model import AnalysisContext, Dataset, Finding

MIN_Z = 5.0
MIN_RATIO = 1.5
TOP_PER_DIMENSION = 5


def ua_family_expr(ua: pl.Expr) -> pl.Expr:
    """User-agent string -> family: Chrome, Firefox, Safari, Edge, curl, python-requests, MyApp..."""
    return (
        pl.when(ua.is_null()).then(None)
        .when(ua.str.contains("Edg/")).then(pl.lit("Edge"))
        .when(ua.str.contains("Firefox/")).then(pl.lit("Firefox"))
        .when(ua.str.contains(r"Chrome/") & ua.str.contains("Mobile")).then(pl.lit("Chrome Mobile"))
        .when(ua.str.contains(r"Chrome/")).then(pl.lit("Chrome"))
        .when(ua.str.contains(r"(iPhone|iPad)")).then(pl.lit("Mobile Safari"))
        .when(ua.str.contains(r"Safari/")).then(pl.lit("Safari"))
        .when(ua.str.contains(r"(?i)bot|crawler|spider")).then(ua.str.extract(r"([A-Za-z][\w\-]*(?:bot|Bot|crawler|spider))", 1))
        .otherwise(ua.str.extract(r"^([A-Za-z][\w.\-]*)", 1))
    )


def source_net_expr(source: pl.Expr) -> pl.Expr:
    """IPv4 -> a.b.c.0/24, IPv6 -> first three hextets ::/48; names -> null."""
    v4 = source.str.extract(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", 1)
    v6 = source.str.extract(r"^([0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}):", 1)
    return pl.when(v4.is_not_null()).then(v4 + ".0/24").when(v6.is_not_null()).then(v6.str.to_lowercase() + "::/48").otherwise(None)


DIMENSIONS: dict[str, pl.Expr] = {
    "endpoint": pl.col("endpoint"),
    "source": pl.col("source"),
    "source_net": source_net_expr(pl.col("source")),
    "user_agent": ua_family_expr(pl.col("user_agent")),
    "host": pl.col("host"),
}


def vantages(requests: pl.DataFrame, min_rows: int = 50) -> list[tuple[str, str | None, pl.DataFrame]]:
    """(signal, service, rows) per vantage point with enough rows, busiest first."""
    counts = requests.group_by("signal", "service").len().filter(pl.col("len") >= min_rows).sort(["len", "signal", "service"], descending=[True, False, False], nulls_last=True)
    out = []
    for signal, service, _ in counts.iter_rows():
        rows = requests.filter((pl.col("signal") == signal) & pl.col("service").eq_missing(service))
        out.append((signal, service, rows))
    return out


def in_window(col: str, start, end) -> pl.Expr:
    return (pl.col(col) >= start) & (pl.col(col) < end)


@register("traffic", order=10)
def detect_traffic(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    """Rate spikes per dimension value within each vantage, plus one per vantage for its total."""
    findings: list[Finding] = []
    base_s = context.baseline.duration.total_seconds()
    inc_s = context.incident.duration.total_seconds()
    if base_s <= 0 or inc_s <= 0 or dataset.requests.height == 0:
        return findings
    scale = inc_s / base_s
    base_mask, inc_mask, grid = window_masks(context)
    for signal, service, rows in vantages(dataset.requests):
        rows = rows.with_columns(bucket_expr(context), **{f"_{d}": e for d, e in DIMENSIONS.items()})
        in_base = in_window("ts", context.baseline.start, context.baseline.end)
        in_inc = in_window("ts", context.incident.start, context.incident.end)
        n_base = rows.filter(in_base).height
        n_inc = rows.filter(in_inc).height
        total_expected = n_base * scale
        total_excess = n_inc - total_expected
        vantage = f"{signal}:{service}"
        total_z = poisson_excess_z(n_inc, total_expected)
        per_source = (
            rows.filter(pl.col("source").is_not_null())
            .group_by("source")
            .agg(in_base.sum().alias("b"), in_inc.sum().alias("i"))
            .with_columns((pl.col("i") - pl.col("b") * scale).alias("excess"))
        )
        contributors = per_source.filter(pl.col("excess") > 0).sort("excess", descending=True)
        positive = float(contributors["excess"].sum()) if contributors.height else 0.0
        top_share = float(contributors["excess"][0] / positive) if positive > 0 else 0.0
        new_sources = int(per_source.filter((pl.col("b") == 0) & (pl.col("i") > 0)).height)
        # contributors needed to explain 80% of the positive excess: 1 for a single partner, hundreds for a crowd
        if positive > 0:
            cum = (contributors["excess"].cum_sum() / positive).to_numpy()
            needed = int(np.searchsorted(cum, 0.8) + 1)
        else:
            needed = 0
        if total_z >= MIN_Z and n_inc >= MIN_RATIO * total_expected and total_excess >= 20:
            series = dense_series(rows.group_by("bucket").len().rename({"len": "n"}).with_columns(pl.lit(1).alias("k")), ["k"], "n", context)
            values = series.get((1,), np.zeros(len(grid)))
            onset = onset_index(values, base_mask, inc_mask)
            findings.append(
                Finding(
                    detector="traffic", kind="traffic_spike", dimension="service", subject=str(service), metric="requests_per_min",
                    onset=grid[onset] if onset is not None else context.incident.start,
                    baseline=round(n_base / base_s * 60, 2), incident=round(n_inc / inc_s * 60, 2),
                    magnitude=round(n_inc / max(total_expected, 0.5), 3), confidence=confidence_from_z(total_z),
                    signal=signal, where=str(service), excess=round(total_excess, 1), share_explained=1.0,
                    peak=grid[int(np.argmax(np.where(inc_mask, values, -1)))],
                    series=to_series(values, grid, context, f"requests per {context.bucket_s}s, {vantage}"),
                    details={"vantage": vantage, "clients": needed, "contributors": int(contributors.height),
                             "top_share": round(top_share, 3), "new_sources": new_sources, "z": round(total_z, 1)},
                )
            )
        if total_excess <= 0:
            continue
        for dim in DIMENSIONS:
            col = f"_{dim}"
            per = (
                rows.filter(pl.col(col).is_not_null())
                .group_by(col)
                .agg(in_base.sum().alias("b"), in_inc.sum().alias("i"), pl.col("method").mode().first().alias("method"))
                .with_columns((pl.col("b") * scale).alias("expected"))
                .with_columns((pl.col("i") - pl.col("expected")).alias("excess"))
                .filter(pl.col("excess") >= max(20.0, 0.02 * n_inc))
                .filter(pl.col("i") >= MIN_RATIO * pl.col("expected"))
                .sort(["excess", col], descending=[True, False])
            )
            if per.height == 0:
                continue
            if dim == "host" and per.select(pl.col(col).n_unique()).item() == rows.select(pl.col(col).n_unique()).item():
                # every host rose: that is the service's traffic, not a host's
                continue
            kept = []
            for subject, b, i, method, expected, excess in per.iter_rows():
                z = poisson_excess_z(i, expected)
                if z >= MIN_Z:
                    kept.append((subject, b, i, method, expected, excess, z))
                if len(kept) >= TOP_PER_DIMENSION:
                    break
            if not kept:
                continue
            subjects = [k[0] for k in kept]
            bucketed = rows.filter(pl.col(col).is_in(subjects)).group_by(col, "bucket").len()
            series = dense_series(bucketed, [col], "len", context)
            for subject, b, i, method, expected, excess, z in kept:
                values = series.get((subject,), np.zeros(len(grid)))
                onset = onset_index(values, base_mask, inc_mask)
                findings.append(
                    Finding(
                        detector="traffic", kind="traffic_spike", dimension=dim, subject=str(subject), metric="requests_per_min",
                        onset=grid[onset] if onset is not None else None,
                        baseline=round(b / base_s * 60, 3), incident=round(i / inc_s * 60, 3),
                        magnitude=round(i / max(expected, 0.5), 3), confidence=confidence_from_z(z), signal=signal,
                        where=str(service), excess=round(excess, 1),
                        share_explained=round(min(excess / total_excess, 1.0), 3),
                        peak=grid[int(np.argmax(np.where(inc_mask, values, -1)))],
                        series=to_series(values, grid, context, f"{dim} {subject}, {vantage}"),
                        details={"vantage": vantage, "method": method, "new": b == 0, "z": round(z, 1),
                                 # lift > 1: this value's share of the extra load exceeds its share of normal load
                                 "baseline_share": round(b / max(n_base, 1), 4),
                                 "lift": round(min(excess / total_excess, 1.0) / max(b / max(n_base, 1), 1e-3), 2),
                                 "baseline_requests": int(b), "incident_requests": int(i)},
                    )
                )
    return findings
