"""Format-independent span processing: integrity checks, self time, requests and changes from spans.

- Integrity: duplicate span ids (kept once), spans whose end precedes their start (duration unknown),
  orphans (a parent id absent from the trace), self-parented spans and traces without a root (parent
  cycles), and clock skew (a child outside its parent's interval). Each is counted and reported as a
  warning; none stops the run.
- Self time: a span's duration minus the union of its children's intervals clipped to the span,
  computed for all spans at once: children sorted by start within their parent, the union length is
  the sum of each child's end beyond the running maximum of the previous ends (`cum_max` over the
  parent), so overlapping (parallel) children are not subtracted twice.
- Server spans become `requests` rows (endpoint from `http.route`, else the normalized `url.path`;
  source from `client.address`, else the calling service); a change of `service.version` of a service
  becomes a `changes` row.
"""

from __future__ import annotations

import polars as pl

from parsers.endpoints import normalize_endpoint_expr
from rca.model import SPANS_SCHEMA, conform


def finish_spans(raw: pl.DataFrame, origin: str) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """Raw span columns (+ `end` timestamp) -> canonical spans, requests and changes, plus warnings."""
    warnings: list[str] = []
    if raw.height == 0:
        return {"spans": conform(raw, "spans")}, warnings  # type: ignore[dict-item]
    # a column that is null throughout (no span has a parent, no tag) arrives as the Null dtype
    raw = raw.with_columns(pl.col(c).cast(pl.String) for c, dtype in raw.schema.items() if dtype == pl.Null)
    optional = {**SPANS_SCHEMA, "user_agent": pl.String()}
    raw = raw.with_columns(pl.lit(None, dtype=optional[c]).alias(c) for c in optional if c not in raw.columns and c not in ("duration_ms", "self_ms"))
    spans = raw.with_row_index("_row")
    duplicates = spans.height - spans.unique(subset=["trace_id", "span_id", "kind"], keep="first").height
    if duplicates:
        spans = spans.unique(subset=["trace_id", "span_id", "kind"], keep="first", maintain_order=True)
        warnings.append(f"{duplicates} duplicate span id(s) kept once")
    bad_end = spans.filter(pl.col("end") < pl.col("ts")).height
    if bad_end:
        warnings.append(f"{bad_end} span(s) end before they start or have no end: duration unknown")
    spans = spans.with_columns(
        pl.when(pl.col("end") >= pl.col("ts")).then((pl.col("end") - pl.col("ts")).dt.total_microseconds() / 1000.0).otherwise(None).alias("duration_ms"),
        pl.when(pl.col("parent_span_id") == pl.col("span_id")).then(None).otherwise(pl.col("parent_span_id")).alias("parent_span_id"),
    )
    self_parented = raw.filter(pl.col("parent_span_id") == pl.col("span_id")).height
    if self_parented:
        warnings.append(f"{self_parented} span(s) name themselves as parent (cycle): treated as roots")
    parents = spans.select(
        "trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("ts").alias("_pts"), pl.col("end").alias("_pend"),
        pl.col("service").alias("_pservice"), pl.col("kind").alias("_pkind"),
    ).unique(subset=["trace_id", "parent_span_id"], keep="first")
    spans = spans.join(parents, on=["trace_id", "parent_span_id"], how="left")
    orphans = spans.filter(pl.col("parent_span_id").is_not_null() & pl.col("_pts").is_null()).height
    if orphans:
        warnings.append(f"{orphans} orphan span(s): parent not in the input")
    skew = spans.filter(pl.col("_pts").is_not_null() & ((pl.col("ts") < pl.col("_pts")) | (pl.col("end") > pl.col("_pend")))).height
    if skew:
        warnings.append(f"{skew} span(s) outside their parent's interval (clock skew): clipped for self time")
    rootless = spans.group_by("trace_id").agg(pl.col("parent_span_id").is_null().any().alias("has_root")).filter(~pl.col("has_root")).height
    if rootless:
        warnings.append(f"{rootless} trace(s) without a root span (missing root or a parent cycle)")

    # union of children intervals clipped to the parent, per parent
    children = (
        spans.filter(pl.col("_pts").is_not_null())
        .select(
            "trace_id", "parent_span_id",
            pl.max_horizontal("ts", "_pts").alias("s"), pl.min_horizontal("end", "_pend").alias("e"),
        )
        .filter(pl.col("e") > pl.col("s"))
        .sort("trace_id", "parent_span_id", "s")
        .with_columns(pl.col("e").cum_max().shift(1).over("trace_id", "parent_span_id").alias("_prev_end"))
        .with_columns(
            (pl.col("e") - pl.max_horizontal("s", pl.col("_prev_end").fill_null(pl.col("s")))).dt.total_microseconds().clip(lower_bound=0).alias("_covered_us")
        )
        .group_by("trace_id", "parent_span_id")
        .agg((pl.col("_covered_us").sum() / 1000.0).alias("_children_ms"))
        .rename({"parent_span_id": "span_id"})
    )
    spans = spans.join(children, on=["trace_id", "span_id"], how="left").with_columns(
        (pl.col("duration_ms") - pl.col("_children_ms").fill_null(0.0)).clip(lower_bound=0.0).alias("self_ms")
    ).sort("_row")

    servers = spans.filter(pl.col("kind") == "server")
    caller = pl.when((pl.col("_pkind") == "client") & (pl.col("_pservice") != pl.col("service"))).then(pl.col("_pservice"))
    requests = servers.with_columns(
        endpoint=pl.coalesce(pl.col("http_route"), normalize_endpoint_expr(pl.col("url_path"))),
        path=pl.col("url_path"),
        method=pl.col("http_method"),
        status=pl.col("http_status"),
        source=pl.coalesce(pl.col("client_address"), caller),
        user_agent=pl.col("user_agent") if "user_agent" in servers.columns else pl.lit(None, pl.String),
    )
    frames = {
        "spans": conform(spans, "spans"),
        "requests": conform(requests, "requests"),
        "changes": _version_changes(spans, origin),
    }
    return frames, warnings  # type: ignore[return-value]


def _version_changes(spans: pl.DataFrame, origin: str) -> pl.DataFrame:
    seen = (
        spans.filter(pl.col("service_version").is_not_null())
        .group_by("service", "service_version")
        .agg(pl.col("ts").min(), pl.col("line").min())
        .sort("service", "ts")
        .with_columns(pl.col("service_version").shift(1).over("service").alias("_prev"))
        .filter(pl.col("_prev").is_not_null())
    )
    changes = seen.with_columns(
        kind=pl.lit("deploy"),
        subject=pl.col("service_version"),
        description=pl.format("service.version of {} changed from {} to {} (first span seen)", pl.col("service"), pl.col("_prev"), pl.col("service_version")),
        origin=pl.lit(origin),
        signal=pl.lit("trace"),
    )
    return conform(changes, "changes")  # type: ignore[return-value]
