"""Format-independent span processing: integrity checks, self time, requests and changes from spans.

- Integrity: duplicate span ids (kept once), spans whose end precedes their start (duration unknown),
  orphans (a parent id absent from the trace), self-parented spans and traces without a root (parent
  cycles), and clock skew (a child outside its parent's interval). Each is counted and reported as a
  warning; none stops the run.
- Self time: a span's duration minus the union of its children's intervals clipped to the span,
  computed for all spans at once: parents are found by one join (children carry their parent's row
  number), children sorted by start within their parent, and the union length is the sum of each
  child's end beyond the running maximum of the previous ends (so overlapping, parallel children are
  not subtracted twice). The running maximum is one `cum_max` over the whole column on a key that
  restarts per parent (see `_children_ms`), not a window per parent.
- Server spans become `requests` rows (endpoint from `http.route`, else the normalized `url.path`;
  source from `client.address`, else the calling service); a change of `service.version` of a service
  becomes a `changes` row. A service whose spans carry no `service.version` at all is versioned by the
  pod-template hash in its pod names (`k8s.pod.name`, `api-7d4b9c8f6d-x2k9p`), as the log parsers do: a
  rollout is then a change, and its requests split by release (the canary comparison of
  `rca.detectors.changes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from rca.aggregates import aggregate_calls
from rca.model import CALL_AGGREGATES_SCHEMA, SPANS_SCHEMA, conform
from rca.parsers.distinct import per_distinct
from rca.parsers.endpoints import normalize_endpoints
from rca.parsers.versions import pod_template_hash


@dataclass
class InputSpans:
    """What the parts of one input's spans, each of whole traces, share when finished one by one
    (`finish_spans(part, origin, whole)`): the input's services none of whose spans carries
    `service.version` (`unversioned_services`), and, as parts are finished, their integrity counts and
    release sightings, which make the input's warnings and version changes."""

    unversioned: pl.Series
    counts: dict[str, int] = field(default_factory=dict)
    sightings: list[pl.DataFrame] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return span_warnings(self.counts)

    def changes(self, origin: str) -> pl.DataFrame:
        return version_changes(merge_sightings(self.sightings), origin)


def finish_spans(raw: pl.DataFrame, origin: str, whole: InputSpans | None = None) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """Raw span columns (+ `end` timestamp) -> canonical spans, requests and changes, plus warnings.

    With `whole`, `raw` is a part of an input holding whole traces: its integrity counts and release
    sightings go to `whole` (no changes frame nor warnings here), and a `_seq` column of `raw` stays on
    its spans and requests rows."""
    counts: dict[str, int] = {} if whole is None else whole.counts
    if raw.height == 0:
        return {"spans": _conform(raw, raw, "spans")}, []
    spans = _linked(raw, counts)
    # union of children intervals clipped to the parent, per parent row
    children = (
        spans.select("_prow", "_pts", pl.max_horizontal("ts", "_pts").alias("s"), pl.min_horizontal("end", "_pend").alias("e"))
        .filter(pl.col("_prow").is_not_null() & (pl.col("e") > pl.col("s")))
        .sort("_prow", "s")
    )
    covered = _children_ms(children)  # parents only: scattered by row number, 0 for a span without children
    children_ms = pl.Series("_children_ms", [0.0], dtype=pl.Float64).extend_constant(0.0, spans.height - 1).scatter(covered["_prow"], covered["_children_ms"])
    spans = spans.with_columns((pl.col("duration_ms") - children_ms).clip(lower_bound=0.0).alias("self_ms"))
    spans = spans.with_columns(_release(spans, None if whole is None else whole.unversioned).alias("_release"))
    frames = {"spans": _conform(spans, spans, "spans"), "requests": _requests(spans)}
    if whole is not None:
        whole.sightings.append(release_sightings(spans))
        return frames, []
    frames["changes"] = version_changes(release_sightings(spans), origin)
    return frames, span_warnings(counts)


def _conform(frame: pl.DataFrame, rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """`frame` conformed to the schema of `name`, with the `_seq` of `rows` (its rows) when they have one."""
    conformed: pl.DataFrame = conform(frame, name)  # type: ignore[assignment]
    return conformed.with_columns(rows.get_column("_seq")) if "_seq" in rows.columns else conformed


# The integrity warnings `_linked` counts, in the order they are given.
SPAN_WARNINGS = {
    "duplicates": "{} duplicate span id(s) kept once",
    "bad_end": "{} span(s) end before they start or have no end: duration unknown",
    "self_parented": "{} span(s) name themselves as parent (cycle): treated as roots",
    "orphans": "{} orphan span(s): parent not in the input",
    "skew": "{} span(s) outside their parent's interval (clock skew): clipped for self time",
    "rootless": "{} trace(s) without a root span (missing root or a parent cycle)",
}


def span_warnings(counts: dict[str, int]) -> list[str]:
    """The warnings of integrity counts (`_linked`'s, summed over parts of an input), in a fixed order."""
    return [text.format(counts[key]) for key, text in SPAN_WARNINGS.items() if counts.get(key)]


def span_requests(raw: pl.DataFrame, calls_s: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The requests rows `finish_spans` makes of raw spans, their release sightings (`release_sightings`) and
    their calls per dependency and bucket of `calls_s` seconds (`rca.aggregates.aggregate_calls`), without
    self time nor integrity warnings: what a big input needs of every span it does not keep."""
    if raw.height == 0:
        return conform(pl.DataFrame(), "requests"), _NO_SIGHTINGS.clear(), pl.DataFrame(schema=CALL_AGGREGATES_SCHEMA)  # type: ignore[return-value]
    spans = _linked(raw, {}, checks=False)
    spans = spans.with_columns(_release(spans).alias("_release"))
    return _requests(spans), release_sightings(spans), aggregate_calls(spans, calls_s)


def _linked(raw: pl.DataFrame, counts: dict[str, int], checks: bool = True) -> pl.DataFrame:
    """Raw spans with duplicates dropped, durations, and each span's parent row (`_prow`) with its start
    and end (`_pts`, `_pend`); adds to `counts` the duplicates and, with `checks`, the other integrity
    findings (`SPAN_WARNINGS`: orphans, skew, rootless traces)."""
    # a column that is null throughout (no span has a parent, no tag) arrives as the Null dtype
    raw = raw.with_columns(pl.col(c).cast(pl.String) for c, dtype in raw.schema.items() if dtype == pl.Null)
    optional = {**SPANS_SCHEMA, "user_agent": pl.String()}
    raw = raw.with_columns(pl.lit(None, dtype=optional[c]).alias(c) for c in optional if c not in raw.columns and c not in ("duration_ms", "self_ms"))
    # one hash pass per check; parents and children are matched by row number (an integer key). Spans
    # sharing a span id are rare (a Zipkin shared server half has its client's): the key with the kind
    # is hashed only when the id alone repeats.
    # equal ids hash equal, so distinct hashes prove distinct ids; only a repeat (or a collision) needs the strings
    span_key = raw.select(_id_key("span_id")).to_series()
    unique_ids = span_key.n_unique() == raw.height
    if not unique_ids:
        unique_ids = raw.select(pl.struct("trace_id", "span_id").is_first_distinct().all()).item()
    if not unique_ids:
        first = raw.select(pl.struct("trace_id", "span_id", "kind").is_first_distinct()).to_series()
        duplicates = raw.height - int(first.sum())
        if duplicates:
            raw = raw.filter(first)
            span_key = span_key.filter(first)
            _count(counts, "duplicates", duplicates)
    if checks:
        bad_end, self_parented = raw.select(
            (pl.col("end") < pl.col("ts")).sum().alias("bad_end"),
            (pl.col("parent_span_id") == pl.col("span_id")).sum().alias("self_parented"),
        ).row(0)
        _count(counts, "bad_end", bad_end)
        _count(counts, "self_parented", self_parented)
    # a peer known only from the URL called (url.full, http.url): its host
    raw = raw.with_columns(
        pl.when(pl.col("peer_service").str.contains("://", literal=True))
        .then(pl.col("peer_service").str.extract(r"^[A-Za-z][\w+.\-]*://(?:[^@/]*@)?(\[[^\]]+\]|[^:/?#]+)", 1))
        .otherwise(pl.col("peer_service")).alias("peer_service")
    )
    spans = raw.with_row_index("_row").with_columns(
        pl.when(pl.col("end") >= pl.col("ts")).then((pl.col("end") - pl.col("ts")).dt.total_microseconds() / 1000.0).otherwise(None).alias("duration_ms"),
        pl.when(pl.col("parent_span_id") == pl.col("span_id")).then(None).otherwise(pl.col("parent_span_id")).alias("parent_span_id"),
    )
    both = pl.col("trace_id").is_not_null() & pl.col("span_id").is_not_null()  # null ids never match
    parents = spans.select("trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("_row").alias("_prow"),
                           pl.when(both).then(span_key).alias("_key"))
    if not unique_ids:  # the first span of a shared id is the parent
        parents = parents.filter(pl.struct("trace_id", "parent_span_id").is_first_distinct())
    parent_row = _parent_rows(spans.select("trace_id", "parent_span_id"), parents)
    spans = spans.with_columns(
        parent_row,
        *(spans[c].gather(parent_row).alias(a) for c, a in (("ts", "_pts"), ("end", "_pend"))),
    )
    if not checks:
        return spans
    has_parent = pl.col("_prow").is_not_null()
    orphans, skew, rootless = spans.select(
        (pl.col("parent_span_id").is_not_null() & ~has_parent).sum(),
        (has_parent & ((pl.col("ts") < pl.col("_pts")) | (pl.col("end") > pl.col("_pend")))).sum(),
        pl.col("trace_id").n_unique() - pl.col("trace_id").filter(pl.col("parent_span_id").is_null()).n_unique(),
    ).row(0)
    _count(counts, "orphans", orphans)
    _count(counts, "skew", skew)
    _count(counts, "rootless", rootless)
    return spans


def _count(counts: dict[str, int], key: str, found: int) -> None:
    if found:
        counts[key] = counts.get(key, 0) + found


def _requests(spans: pl.DataFrame) -> pl.DataFrame:
    """The requests rows of the server spans of linked spans (`_linked`, with `_release`)."""
    servers = spans.filter(pl.col("kind") == "server")
    servers = servers.with_columns(  # the parent's service and kind, for server spans only
        *(spans[c].gather(servers["_prow"]).alias(a) for c, a in (("service", "_pservice"), ("kind", "_pkind"))))
    caller = pl.when((pl.col("_pkind") == "client") & (pl.col("_pservice") != pl.col("service"))).then(pl.col("_pservice"))
    requests = servers.with_columns(
        endpoint=_endpoints(servers.get_column("http_route"), servers.get_column("url_path")),
        path=pl.col("url_path"),
        method=pl.col("http_method"),
        status=pl.col("http_status"),
        source=pl.coalesce(pl.col("client_address"), caller),
        version=pl.col("_release"),
        user_agent=pl.col("user_agent") if "user_agent" in servers.columns else pl.lit(None, pl.String),
    )
    return _conform(requests, servers, "requests")


def _endpoints(routes: pl.Series, paths: pl.Series) -> pl.Series:
    """The span's route where it has one, else its path normalized once per distinct path: a coalesce
    would run the full rules (microseconds a span) on every span, routed or not."""
    if not (routes.is_null() & paths.is_not_null()).any():
        return routes.cast(pl.String).alias("endpoint")
    normalized = per_distinct(paths.cast(pl.String), normalize_endpoints)
    return pl.select(pl.coalesce(pl.lit(routes.cast(pl.String)), pl.lit(normalized))).to_series().alias("endpoint")


def _id_key(column: str) -> pl.Expr:
    """One 64-bit hash of `trace_id` and the span id in `column` (the same for equal ids in any column)."""
    return pl.struct(pl.col("trace_id"), pl.col(column).alias("id")).hash(7)


def _parent_rows(children: pl.DataFrame, parents: pl.DataFrame) -> pl.Series:
    """Per span (`trace_id`, `parent_span_id`), the row of its parent in `parents` (`_prow`, keyed by
    `_key`: `_id_key` of its own ids, null where one is null) or null.

    Matched on one 64-bit hash of the two ids rather than on the two strings (several times faster);
    a hash collision would add rows or pair a span with a stranger, so the result is checked against
    the ids themselves and the string join is done instead when anything does not hold."""
    both = pl.col("trace_id").is_not_null() & pl.col("parent_span_id").is_not_null()  # null ids never match
    keyed = children.with_columns(pl.when(both).then(_id_key("parent_span_id")).alias("_key"))
    by_key = parents.rename({"trace_id": "_ptrace", "parent_span_id": "_pid"})
    joined = keyed.join(by_key, on="_key", how="left", maintain_order="left")
    same_ids = ((pl.col("_ptrace") == pl.col("trace_id")) & (pl.col("_pid") == pl.col("parent_span_id"))).fill_null(False)
    if joined.height == children.height and joined.select((pl.col("_prow").is_null() | same_ids).all()).item():
        return joined["_prow"]
    return children.join(parents.drop("_key"), on=["trace_id", "parent_span_id"], how="left", maintain_order="left")["_prow"]


_KEY_LIMIT = 1 << 62  # parent number * bound + relative end must stay an Int64


def _children_ms(children: pl.DataFrame) -> pl.DataFrame:
    """Per parent row (`_prow`), the length of the union of its children's intervals (`s`, `e`, sorted
    by parent then start), in ms: the sum of each child's end beyond the running maximum of the earlier
    ends. The running maximum restarts per parent: with times relative to the parent's start, the key
    `parent number * B + end` grows from one parent to the next, so one `cum_max` over the whole column
    serves every parent (an `over` per parent costs ten times as much); `B` bounds the relative ends.
    """
    if children.height == 0:
        return pl.DataFrame(schema={"_prow": pl.UInt32, "_children_ms": pl.Float64})
    rel = children.with_columns(
        (pl.col("_prow") != pl.col("_prow").shift(1)).fill_null(True).cum_sum().cast(pl.Int64).alias("_g"),
        (pl.col("s") - pl.col("_pts")).dt.total_microseconds().alias("_rs"),
        (pl.col("e") - pl.col("_pts")).dt.total_microseconds().alias("_re"),
    )
    groups, longest = rel.select(pl.col("_g").max(), pl.col("_re").max()).row(0)
    bound = 1 << max(int(longest) + 1, 1).bit_length()
    if (groups + 1) * bound < _KEY_LIMIT:
        prev = (pl.col("_g") * bound + pl.col("_re")).cum_max().shift(1) - pl.col("_g") * bound  # < 0 at a parent's first child
    else:  # spans of millennia: the per-parent running maximum
        prev = pl.col("_re").cum_max().shift(1).over("_prow")
    covered = (pl.col("_re") - pl.max_horizontal("_rs", prev)).clip(lower_bound=0)
    return rel.with_columns(covered.alias("_covered_us")).group_by("_prow").agg((pl.col("_covered_us").sum() / 1000.0).alias("_children_ms"))


def versioned_services(spans: pl.DataFrame) -> pl.DataFrame:
    """Per service of `spans`, whether any of its spans carries `service.version` (`_any`); the rows of
    parts of an input merge with `unversioned_services`."""
    return spans.group_by("service").agg(pl.col("service_version").is_not_null().any().alias("_any"))


def unversioned_services(versioned: list[pl.DataFrame]) -> pl.Series:
    """The services none of whose spans carries `service.version`, of the `versioned_services` of an input's parts."""
    return pl.concat(versioned).group_by("service").agg(pl.col("_any").any()).filter(~pl.col("_any"))["service"]


def _release(spans: pl.DataFrame, unversioned: pl.Series | None = None) -> pl.Expr:
    """`service.version`, or for a service whose spans never carry one (in `unversioned`, when given: those
    of the whole input), the pod-template hash of its pod."""
    if unversioned is None:
        unversioned = unversioned_services([versioned_services(spans)])
    if unversioned.len() == 0:
        return pl.col("service_version")
    return pl.when(pl.col("service").is_in(unversioned.implode())).then(pod_template_hash(pl.col("host"))).otherwise(pl.col("service_version"))


# Where each release of a service was first seen: service, release, first start, first line, the host of
# the first span, and whether the release is a pod-template hash (no span of it carries service.version).
_NO_SIGHTINGS = pl.DataFrame(schema={"service": pl.String, "_release": pl.String, "ts": pl.Datetime("us", "UTC"), "line": pl.Int64,
                                     "host": pl.String, "_hash": pl.Boolean})


def release_sightings(spans: pl.DataFrame) -> pl.DataFrame:
    """Per (service, release) of spans with `_release`: where it was first seen. Sightings of parts of one
    input merge with `merge_sightings` into those of the whole."""
    return (
        spans.filter(pl.col("_release").is_not_null())
        .group_by("service", "_release")
        .agg(pl.col("ts").min(), pl.col("line").min(), pl.col("host").sort_by("ts").first(), pl.col("service_version").is_null().all().alias("_hash"))
        .select(list(_NO_SIGHTINGS.columns))
        .cast(_NO_SIGHTINGS.schema)  # type: ignore[arg-type]
    )


def merge_sightings(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The sightings of parts of one input (`release_sightings` of each) as those of the whole."""
    if not parts:
        return _NO_SIGHTINGS.clear()
    return (pl.concat(parts).group_by("service", "_release")
            .agg(pl.col("ts").min(), pl.col("line").min(), pl.col("host").sort_by("ts").first(), pl.col("_hash").all())
            .select(list(_NO_SIGHTINGS.columns)))


def version_changes(sightings: pl.DataFrame, origin: str) -> pl.DataFrame:
    """The `changes` rows of a service's releases following one another (`release_sightings`)."""
    seen = (
        sightings.sort("service", "ts")
        .with_columns(pl.col("_release").shift(1).over("service").alias("_prev"))
        .filter(pl.col("_prev").is_not_null())
    )
    changes = seen.with_columns(
        kind=pl.lit("deploy"),
        subject=pl.col("_release"),
        description=pl.when(pl.col("_hash"))
        .then(pl.format("pod-template hash of {} changed from {} to {} (first span seen on {})", pl.col("service"), pl.col("_prev"), pl.col("_release"), pl.col("host")))
        .otherwise(pl.format("service.version of {} changed from {} to {} (first span seen)", pl.col("service"), pl.col("_prev"), pl.col("_release"))),
        origin=pl.lit(origin),
        signal=pl.lit("trace"),
    )
    return conform(changes, "changes")  # type: ignore[return-value]
