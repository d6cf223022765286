"""Request shapes: a service whose requests take a path they never took before, or stop taking one.

An exception or a wrong value inside a service changes the path its code takes: the calls after the
failing point vanish (an exception short-circuits the handler) or other calls appear (an error path).
The spans carry that path even when they carry no status: a request's **shape** is the set of distinct
operations its own spans started (its internal and client spans down to the next server span, of the
same service). Per service and server operation, the requests in time order hold each shape `K` times
out of `N`. Under no change the order is exchangeable, so for a shape
- first seen at position `f` (0-based) with all `K` of its requests from there on: P = C(N - f, K) / C(N, K)
  (**appeared**: a path it did not take before);
- last seen at position `l` with all `K` of its requests up to there: P = C(l + 1, K) / C(N, K)
  (**vanished**: a path it stopped taking).
These are exact under the null and need no baseline window: traces often cover a minute around the
fault, and the change point is the shape's own first or last request. The tests of one operation are
one family, corrected by Bonferroni over the testable ones only (Tarone: a shape whose smallest
possible p, 1 / C(N, K), cannot reach the bar is no test, so rare shapes cost nothing); a shape
changes when its corrected p is below `MAX_P` with `MIN_BEYOND` requests beyond the change point.

Each finding says whether the change cut calls out of the path (**shorter**: the new path is a strict
part of one taken before, or a strict part of the vanished one grew more common): the signature of code
that stops part-way, where a path that gains calls is rather a fallback (a cache that stopped serving
sends every read to the database). It also says where an appeared path **stopped**: the service its requests called last (the
callee of their latest-starting own span), or none when they stopped inside the service's own code.
Whether the service or that callee is at fault is the ranker's call (the deepest service whose own
path changed, or a callee at which several changed paths stop).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import cast

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.stats import confidence_from_p, trace_sample_basis
from rca.findings import ShapeShiftDetails
from rca.model import AnalysisContext, Dataset, Finding

MIN_REQUESTS = 10  # requests of an operation: fewer hold no order worth testing
MIN_BEYOND = 3  # requests after the change point: a shift seen in one or two requests is no path change
MAX_P = 1e-3  # per operation, after the correction for the shapes tested
MAX_DEPTH = 64  # nesting of a service's own spans under one server span (a cycle in bad data stops here)


def request_roots(spans: pl.DataFrame) -> pl.DataFrame:
    """trace_id, span_id -> root: the server span of the same service that each span serves (itself for a
    server span; null for spans under no server span of their own service)."""
    nodes = spans.select("trace_id", "span_id", "parent_span_id", "service",
                         pl.when(pl.col("kind") == "server").then(pl.col("span_id")).alias("root"))
    for _ in range(MAX_DEPTH):
        parents = nodes.select("trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("service").alias("_ps"),
                               pl.col("root").alias("_pr"))
        step = nodes.join(parents, on=["trace_id", "parent_span_id"], how="left").with_columns(
            pl.coalesce("root", pl.when(pl.col("_ps") == pl.col("service")).then(pl.col("_pr"))).alias("root")
        ).drop("_ps", "_pr")
        done = step["root"].null_count() == nodes["root"].null_count()
        nodes = step
        if done:
            break
    return nodes.select("trace_id", "span_id", "root")


def request_shapes(spans: pl.DataFrame) -> pl.DataFrame:
    """One row per server span: service, operation, ts, host, shape (its own spans' distinct operation names,
    sorted, `|`-joined; empty when it started none), callees (services its spans called, sorted) and
    stop (the service its latest-starting own span called; null when that span called no other service)."""
    spans = spans.filter(pl.col("span_id").is_not_null() & pl.col("service").is_not_null())
    roots = request_roots(spans)
    callee_of = (spans.filter((pl.col("kind") == "server") & pl.col("parent_span_id").is_not_null())
                 .select("trace_id", pl.col("parent_span_id").alias("span_id"), pl.col("service").alias("callee"))
                 .unique(["trace_id", "span_id"], keep="first"))
    own = (spans.filter(pl.col("kind") != "server").select("trace_id", "span_id", "service", "name", "ts")
           .join(roots, on=["trace_id", "span_id"], how="inner").filter(pl.col("root").is_not_null())
           .join(callee_of, on=["trace_id", "span_id"], how="left")
           .with_columns(pl.when(pl.col("callee") != pl.col("service")).then(pl.col("callee")).alias("callee")))
    per_request = own.group_by("trace_id", "root").agg(
        pl.col("name").drop_nulls().unique().sort().str.join("|").alias("shape"),
        pl.col("callee").drop_nulls().unique().sort().alias("callees"),
        pl.col("callee").sort_by("ts").last().alias("stop"),
    )
    servers = spans.filter(pl.col("kind") == "server").select(
        "trace_id", "span_id", "service", pl.col("name").alias("operation"), "ts", "host")
    return (servers.join(per_request, left_on=["trace_id", "span_id"], right_on=["trace_id", "root"], how="left")
            .with_columns(pl.col("shape").fill_null(""), pl.col("callees").fill_null(pl.lit([], dtype=pl.List(pl.String))))
            .filter(pl.col("ts").is_not_null() & pl.col("operation").is_not_null())
            .sort("service", "operation", "ts"))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _tarone_factor(min_ps: list[float], alpha: float) -> int:
    """The Bonferroni factor over the testable tests only: the least m with at most m tests whose
    smallest attainable p reaches alpha / m (Tarone 1990)."""
    ordered = np.sort(np.asarray(min_ps))
    for m in range(1, len(ordered) + 1):
        if int(np.searchsorted(ordered, alpha / m, side="right")) <= m:
            return m
    return max(len(ordered), 1)


@register("request_shapes", order=64)
def detect_shape_shifts(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    spans = dataset.spans
    if spans.height == 0 or "kind" not in spans.columns:
        return []
    shapes = request_shapes(spans)
    findings: list[Finding] = []
    for (service, operation), rows in shapes.group_by("service", "operation", maintain_order=True):
        if rows.height < MIN_REQUESTS:
            continue
        findings.extend(_operation_shifts(str(service), str(operation), rows))
    basis = trace_sample_basis(dataset)
    if basis is not None:  # the requests' order is that of the sampled traces' requests
        findings = [replace(f, details=replace(cast(ShapeShiftDetails, f.details), basis=basis)) for f in findings]
    return findings


def _operation_shifts(service: str, operation: str, rows: pl.DataFrame) -> list[Finding]:
    n = rows.height
    shape_col = rows["shape"].to_list()
    ts = rows["ts"].to_list()
    positions: dict[str, list[int]] = {}
    for i, shape in enumerate(shape_col):
        positions.setdefault(shape, []).append(i)
    tests = []  # (p, smallest attainable p, direction, shape, change point index)
    for shape, pos in positions.items():
        k, first, last = len(pos), pos[0], pos[-1]
        floor = math.exp(-_log_choose(n, k))
        if k >= MIN_BEYOND and first > 0:
            tests.append((math.exp(_log_choose(n - first, k) - _log_choose(n, k)), floor, "appeared", shape, first))
        if n - last - 1 >= MIN_BEYOND:
            tests.append((math.exp(_log_choose(last + 1, k) - _log_choose(n, k)), floor, "vanished", shape, last + 1))
    if not tests:
        return []
    factor = _tarone_factor([t[1] for t in tests], MAX_P)
    out = []
    for p, _floor, direction, shape, split in tests:
        p_adj = min(1.0, p * factor)
        if p_adj >= MAX_P:
            continue
        missing = _calls_cut(positions, direction, shape, split, n)
        out.append(_finding(service, operation, rows, positions[shape], direction, shape, split, p_adj, ts, missing))
    return out


def _calls_cut(positions: dict[str, list[int]], direction: str, shape: str, split: int, n: int) -> tuple[str, ...] | None:
    """The calls the change cut out of the path, or None when it cut none: an appeared path that is a strict
    part of one taken before the change point (the most common such), or a vanished one whose strict part
    grew more common after it (the one that grew most)."""
    calls = set(shape.split("|")) - {""}
    best: tuple[float, str] | None = None
    for other, pos in positions.items():
        other_calls = set(other.split("|")) - {""}
        before = sum(1 for i in pos if i < split)
        if direction == "appeared" and calls < other_calls and before:
            weight = float(before)
        elif direction == "vanished" and other_calls < calls and (len(pos) - before) / max(n - split, 1) > before / max(split, 1):
            weight = (len(pos) - before) / max(n - split, 1) - before / max(split, 1)
        else:
            continue
        if best is None or (weight, other) > best:
            best = (weight, other)
    if best is None:
        return None
    other_calls = set(best[1].split("|")) - {""}
    return tuple(sorted(other_calls - calls if direction == "appeared" else calls - other_calls))


def _finding(service: str, operation: str, rows: pl.DataFrame, pos: list[int], direction: str, shape: str, split: int,
             p: float, ts: list, missing: tuple[str, ...] | None) -> Finding:
    n, k = rows.height, len(pos)
    before = sum(1 for i in pos if i < split) / max(split, 1)
    after = sum(1 for i in pos if i >= split) / max(n - split, 1)
    floor_before, floor_after = 0.5 / max(split, 1), 0.5 / max(n - split, 1)  # half a request: a share never seen
    magnitude = after / max(before, floor_before) if direction == "appeared" else before / max(after, floor_after)
    mine = rows[pos]
    stops = Counter(s for s in mine["stop"].to_list() if s) if direction == "appeared" else Counter()
    stop = ""
    if stops:
        callee, count = stops.most_common(1)[0]
        stop = str(callee) if 2 * count > k else ""  # the callee most of its requests stopped at, if one did
    callees = sorted({str(c) for cs in mine["callees"].to_list() for c in (cs or [])})
    hosts = Counter(h for h in mine["host"].to_list() if h)
    return Finding(
        detector="request_shapes", kind="shape_shift", dimension="operation", subject=service, metric="share_of_requests",
        onset=ts[split], baseline=round(before, 4), incident=round(after, 4), magnitude=round(magnitude, 3),
        confidence=confidence_from_p(p), signal="trace", where=hosts.most_common(1)[0][0] if hosts else None,
        details=ShapeShiftDetails(
            service=service, operation=operation, direction=direction, calls=tuple(shape.split("|")) if shape else (),
            callees=tuple(callees), stop=stop, shorter=missing is not None, missing=missing or (), requests_with_shape=k,
            requests=n, p=float(p),
        ),
    )
