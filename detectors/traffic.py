"""Traffic: request-rate anomalies per endpoint, source, source network, user-agent family, host and service.

Rates are computed within one vantage point at a time (a `signal` and `service`: the proxy's access log,
an app's request log, a service's server spans), so one request seen three times is never counted
three times. For every dimension, each value's incident count is compared with what its baseline rate
predicts (Poisson z on the excess); the excess of each value is then set against the vantage's total
excess, in the manner of Adtributor's explanatory power: a partner /24 carrying 83% of the extra load
and a surge spread thin over 400 clients are told apart by the share of the top value and the number of
contributors (`details["clients"]`, `details["top_share"]`). Onsets come from each value's own
per-bucket series (`detectors.stats.onset_time`, counts as Poisson).

Reporting threshold: excess z >= 5, incident rate >= 1.5x baseline, and an excess of at least 20
requests and 2% of the vantage's incident volume.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.stats import (
    WINDOW_BASELINE,
    WINDOW_INCIDENT,
    aggregated_vantages,
    bucket_index_expr,
    confidence_from_z,
    exact_aggregates,
    onset_at,
    onset_time,
    poisson_excess_z,
    series_by_index,
    to_series,
    window_code_expr,
    window_masks,
)
from rca.findings import ServiceTrafficDetails, TrafficSpikeDetails
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


# dimension -> (raw column it is read from, derivation applied to that column's distinct values or None)
DIMENSIONS: dict[str, tuple[str, Callable[[pl.Expr], pl.Expr] | None]] = {
    "endpoint": ("endpoint", None),
    "source": ("source", None),
    "source_net": ("source", source_net_expr),
    "user_agent": ("user_agent", ua_family_expr),
    "host": ("host", None),
}
COLUMNS = ["ts", "endpoint", "source", "user_agent", "host", "method"]


def vantages(requests: pl.DataFrame, min_rows: int = 50, columns: list[str] | None = None) -> list[tuple[str, str | None, pl.DataFrame]]:
    """(signal, service, rows) per vantage point with enough rows, busiest first. `columns` narrows the
    rows to what the caller reads before they are split (copying 16 columns of 5M rows costs more than
    the statistics); a vantage that holds every row is handed over without a copy."""
    if requests.height == 0:
        return []
    first = requests.select(pl.col("signal").first(), pl.col("service").first()).row(0)
    single = requests.select(
        (pl.col("signal").eq_missing(first[0]) & pl.col("service").eq_missing(first[1])).all()
    ).item()
    if single:  # one vantage (one access log, say): two comparisons instead of a group-by on two strings
        counts = pl.DataFrame({"signal": [first[0]], "service": [first[1]], "len": [requests.height]},
                              schema={"signal": pl.String, "service": pl.String, "len": pl.UInt32})
        counts = counts.filter(pl.col("len") >= min_rows)
    else:
        counts = requests.lazy().group_by("signal", "service").len().collect().filter(pl.col("len") >= min_rows).sort(["len", "signal", "service"], descending=[True, False, False], nulls_last=True)
    if columns is not None:
        requests = requests.select(list(dict.fromkeys(["signal", "service", *columns])))
    out = []
    for signal, service, n in counts.iter_rows():
        if n == requests.height:
            rows = requests
        else:
            rows = requests.filter((pl.col("signal") == signal) & pl.col("service").eq_missing(service))
        out.append((signal, service, rows))
    return out


def in_window(col: str, start, end) -> pl.Expr:
    return (pl.col(col) >= start) & (pl.col(col) < end)


def _per_value(counts: pl.DataFrame, raw: str, derive: Callable[[pl.Expr], pl.Expr] | None) -> pl.DataFrame:
    """Per-raw-value counts (b, i) rolled up to the dimension's values: derived dimensions (a /24, a
    user-agent family) are computed on the distinct raw values only, never per row. `raws` lists the
    raw values behind each dimension value, to fetch their rows later."""
    counts = counts.filter(pl.col(raw).is_not_null())
    value = derive(pl.col(raw)) if derive is not None else pl.col(raw)
    return (
        counts.with_columns(value.alias("value"))
        .filter(pl.col("value").is_not_null())
        .group_by("value")
        .agg(pl.col("b").sum(), pl.col("i").sum(), pl.col(raw).alias("raws"))
    )


def _counts(rows: pl.DataFrame, column: str, in_base: pl.Expr, in_inc: pl.Expr, weight: pl.Expr | None) -> pl.DataFrame:
    """Baseline (b) and incident (i) requests per value of `column`. Lazy: an eager group-by of a frame of
    millions of rows holds a copy of its other columns too."""
    return rows.lazy().group_by(column).agg(_within(in_base, weight).alias("b"), _within(in_inc, weight).alias("i")).collect()


def _within(mask: pl.Expr, weight: pl.Expr | None) -> pl.Expr:
    """Requests where `mask` holds: rows (weight None) or aggregates' counts (weight `requests`)."""
    return mask.sum() if weight is None else weight.filter(mask).sum()


def _total(weight: pl.Expr | None) -> pl.Expr:
    return pl.len() if weight is None else weight.sum()


# One vantage's requests per dimension: a frame with `_w`, `_bucket`, the dimension's raw column and
# `method` (every row, or aggregates' rows with their counts in `requests`), and the weight to count them by.
DimensionRows = Callable[[str], pl.DataFrame]


def _vantage_counts(dataset: Dataset, context: AnalysisContext) -> list[tuple[str, str | None, DimensionRows, pl.Expr | None]]:
    """(signal, service, rows per dimension, weight) per vantage observed in the baseline: from the rows,
    or from the exact aggregates for the vantages they carry (whose rows are only a sample)."""
    aggregates = exact_aggregates(dataset.request_aggregates, context)
    carried = aggregated_vantages(aggregates)
    # A signal with no row at all in the baseline (traces of the incident's last minutes beside half an hour
    # of metrics) was not observed there: its requests are not "new" traffic, they are new coverage.
    observed = set(dataset.requests.filter(in_window("ts", context.baseline.start, context.baseline.end))["signal"].unique().to_list())
    out: list[tuple[str, str | None, DimensionRows, pl.Expr | None]] = []
    for signal, service, rows in vantages(dataset.requests, columns=COLUMNS):
        if (signal, service) in carried:
            continue
        keyed = rows.select(window_code_expr(context), bucket_index_expr(context), *COLUMNS[1:])

        def every_row(_raw: str, keyed: pl.DataFrame = keyed) -> pl.DataFrame:
            return keyed

        out.append((signal, service, every_row, None))
    if aggregates is None:
        return [v for v in out if v[0] in observed]
    counts = aggregates.counts.select(window_code_expr(context, "bucket"), bucket_index_expr(context, "bucket"), "signal", "service", "dimension",
                                      "value", "method", "requests")
    observed |= set(counts.filter(pl.col("_w") == WINDOW_BASELINE)["signal"].unique().to_list())
    totals = (
        counts.filter(pl.col("dimension") == "service").group_by("signal", "service").agg(pl.col("requests").sum().alias("n"))
        .filter(pl.col("n") >= 50).sort(["n", "signal", "service"], descending=[True, False, False], nulls_last=True)
    )
    for signal, service, _ in totals.iter_rows():
        mine = counts.filter((pl.col("signal") == signal) & pl.col("service").eq_missing(service))

        def dimension_rows(raw: str, mine: pl.DataFrame = mine) -> pl.DataFrame:
            return mine.filter(pl.col("dimension") == raw).select("_w", "_bucket", pl.col("value").alias(raw), "method", "requests")

        out.append((signal, service, dimension_rows, pl.col("requests")))
    return [v for v in out if v[0] in observed]


@register("traffic", order=10)
def detect_traffic(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    """Rate spikes per dimension value within each vantage, plus one per vantage for its total."""
    findings: list[Finding] = []
    base_s = context.observed_s(context.baseline)
    inc_s = context.observed_s(context.incident)
    if base_s <= 0 or inc_s <= 0 or dataset.requests.height == 0:
        return findings
    scale = inc_s / base_s
    base_mask, inc_mask, grid = window_masks(context)
    n_buckets = len(grid)
    in_base = pl.col("_w") == WINDOW_BASELINE
    in_inc = pl.col("_w") == WINDOW_INCIDENT
    for signal, service, rows_of, weight in _vantage_counts(dataset, context):
        rows = rows_of("service")
        n_base, n_inc = rows.select(_within(in_base, weight).alias("b"), _within(in_inc, weight).alias("i")).row(0)
        total_expected = n_base * scale
        total_excess = n_inc - total_expected
        vantage = f"{signal}:{service}"
        total_z = poisson_excess_z(n_inc, total_expected)
        by_raw: dict[str, pl.DataFrame] = {}
        by_raw["source"] = _counts(rows_of("source"), "source", in_base, in_inc, weight)
        per_source = by_raw["source"].filter(pl.col("source").is_not_null()).with_columns((pl.col("i") - pl.col("b") * scale).alias("excess"))
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
            per_bucket = rows.lazy().group_by("_bucket").agg(_total(weight).alias("len")).collect()
            values = series_by_index(per_bucket, None, "len", n_buckets).get(None, np.zeros(n_buckets))
            onset = onset_at(grid, onset_time(values, base_mask, inc_mask), context.bucket_s)
            findings.append(
                Finding(
                    detector="traffic", kind="traffic_spike", dimension="service", subject=str(service), metric="requests_per_min",
                    onset=onset or context.incident.start,
                    baseline=round(n_base / base_s * 60, 2), incident=round(n_inc / inc_s * 60, 2),
                    magnitude=round(n_inc / max(total_expected, 0.5), 3), confidence=confidence_from_z(total_z),
                    signal=signal, where=str(service), excess=round(total_excess, 1), share_explained=1.0,
                    peak=grid[int(np.argmax(np.where(inc_mask, values, -1)))],
                    series=to_series(values, grid, context, f"requests per {context.bucket_s}s, {vantage}"),
                    details=ServiceTrafficDetails(vantage=vantage, clients=needed, contributors=int(contributors.height),
                                                  top_share=round(top_share, 3), new_sources=new_sources, z=round(total_z, 1)),
                )
            )
        if total_excess <= 0:
            continue
        for dim, (raw, derive) in DIMENSIONS.items():
            if raw not in by_raw:
                by_raw[raw] = _counts(rows_of(raw), raw, in_base, in_inc, weight)
            per = (
                _per_value(by_raw[raw], raw, derive)
                .with_columns((pl.col("b") * scale).alias("expected"))
                .with_columns((pl.col("i") - pl.col("expected")).alias("excess"))
                .filter(pl.col("excess") >= max(20.0, 0.02 * n_inc))
                .filter(pl.col("i") >= MIN_RATIO * pl.col("expected"))
                .sort(["excess", "value"], descending=[True, False])
            )
            if per.height == 0:
                continue
            if dim == "host" and per.height == by_raw[raw].height:
                # every host rose: that is the service's traffic, not a host's
                continue
            kept = []
            for subject, b, i, raws, expected, excess in per.iter_rows():
                z = poisson_excess_z(i, expected)
                if z >= MIN_Z:
                    kept.append((subject, b, i, raws, expected, excess, z))
                if len(kept) >= TOP_PER_DIMENSION:
                    break
            if not kept:
                continue
            # One pass over the kept subjects' rows: their per-bucket counts and their usual method.
            lookup = pl.DataFrame({raw: [r for k in kept for r in k[3]], "value": [k[0] for k in kept for _ in k[3]]},
                                  schema={raw: pl.String, "value": pl.String})
            bucketed = (
                rows_of(raw).filter(pl.col(raw).is_in(lookup[raw].implode()))
                .group_by(raw, "_bucket", "method").agg(_total(weight).alias("len"))
                .join(lookup, on=raw)
            )
            series = series_by_index(bucketed.group_by("value", "_bucket").agg(pl.col("len").sum()), "value", "len", n_buckets)
            methods = (
                bucketed.filter(pl.col("method").is_not_null()).group_by("value", "method").agg(pl.col("len").sum())
                .sort(["value", "len", "method"], descending=[False, True, False]).unique("value", keep="first")
            )
            method_of = dict(methods.select("value", "method").iter_rows())
            for subject, b, i, _, expected, excess, z in kept:
                values = series.get(subject, np.zeros(n_buckets))
                onset = onset_at(grid, onset_time(values, base_mask, inc_mask), context.bucket_s)
                findings.append(
                    Finding(
                        detector="traffic", kind="traffic_spike", dimension=dim, subject=str(subject), metric="requests_per_min",
                        onset=onset,
                        baseline=round(b / base_s * 60, 3), incident=round(i / inc_s * 60, 3),
                        magnitude=round(i / max(expected, 0.5), 3), confidence=confidence_from_z(z), signal=signal,
                        where=str(service), excess=round(excess, 1),
                        share_explained=round(min(excess / total_excess, 1.0), 3),
                        peak=grid[int(np.argmax(np.where(inc_mask, values, -1)))],
                        series=to_series(values, grid, context, f"{dim} {subject}, {vantage}"),
                        details=TrafficSpikeDetails(
                            vantage=vantage, method=method_of.get(subject), new=b == 0, z=round(z, 1),
                            # lift > 1: this value's share of the extra load exceeds its share of normal load
                            baseline_share=round(b / max(n_base, 1), 4),
                            lift=round(min(excess / total_excess, 1.0) / max(b / max(n_base, 1), 1e-3), 2),
                            baseline_requests=int(b), incident_requests=int(i),
                        ),
                    )
                )
    return findings
