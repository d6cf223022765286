"""Service calls in traces: the time a caller waits on a callee beyond the callee's own server time.

For every call from one service to another (a span whose child is a server span of a different
service; the caller's side may be a client span or, as many instrumentations write it, an internal
one), the **wait** is the caller span's duration minus the callee's server span: the network both
ways, the callee's queue before its handler starts, the caller's own scheduling. A network delay on a
pod, or a pod starved of CPU, lengthens the waits of the calls that touch it while the work measured
inside the callee stays the same, so waits locate such faults where self times cannot.

Per edge (caller service -> callee service, callee pod) the incident's median wait is compared with
- the same edge's baseline waits when the baseline holds `MIN_CALLS` of them (z in units of the
  baseline's MAD, and a Mann-Whitney test at p < 1e-4);
- else the edge's own earlier calls: the split of its time-ordered waits where the later ones rose most
  (`_change_point`, at least `MIN_CALLS_BEFORE` calls before it and `MIN_CALLS_AFTER` calls over
  `MIN_AFTER_S` after it, the same z and test); traces that begin a minute before the fault hold their
  own baseline, just not in the window the metrics set, and a delay injected late in them slows only a
  few calls of a rarely called edge. An edge with `MIN_CALLS` calls before the incident window and no
  such split did not change;
- otherwise the other edges of the incident (traces often start just before or after the fault, with
  no baseline of their own): the median and MAD over the edges' median waits. A fault touches few
  edges, so the median edge is a healthy reference.
Each service's **own time** is read the same way (`detect_own_times`): per (service, pod), the self
time of its server spans (their duration less the calls they make) against its own baseline, or, when
the traces begin after the baseline window, its own earlier requests (never against other services:
their work differs). Self time leaves out what the
service waits for, so a slowdown that propagates up a chain of callers shifts only the deepest one's.
The finding carries the ratio of its request rates (after / before), so the ranker can tell a service
slowed by more load from one slowed by itself.

The scale is floored at `RELATIVE_FLOOR` of the reference and `ABS_FLOOR_MS` (waits of a few
milliseconds jitter by about that much with scheduling alone). An edge whose z reaches `MIN_Z` becomes a
`call_wait_shift` finding; which end of the slow edges is at fault is the ranker's call (the service
that the slow edges have in common).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.stats import MAD_TO_SIGMA, confidence_from_z, mann_whitney_p, trace_sample_basis
from rca.detectors.traffic import in_window
from rca.findings import CallWaitDetails, ServiceTimeDetails
from rca.model import AnalysisContext, Dataset, Finding

MIN_CALLS = 20
# Calls after a change point: a delay injected in the last minute of the traces slows only a few calls of
# a rarely called edge. Five calls all above twenty earlier ones give a Mann-Whitney p of 1/C(25, 5) =
# 2e-5, below MAX_P; fewer could never pass the test however slow they are.
MIN_CALLS_AFTER = 5
# ... and the calls after it span at least this long: a busy edge's last second of slow calls (a pause,
# a burst, the export cut mid-flight) is no sustained change, while a delay on a pod lasts minutes.
MIN_AFTER_S = 10.0
# Calls before a change point: traces that begin a minute before the fault hold a dozen calls of a rarely
# called edge before it; ten calls give a median and MAD worth comparing against (the scale is floored
# anyway), and the Mann-Whitney test keeps a split on so few calls honest.
MIN_CALLS_BEFORE = 10
MAX_P = 1e-4
MIN_Z = 4.0
RELATIVE_FLOOR = 0.10
ABS_FLOOR_MS = 1.0


def call_edges(spans: pl.DataFrame) -> pl.DataFrame:
    """One row per cross-service call: ts, caller, callee, callee_pod, wait_ms, server_ms."""
    parents = spans.select("trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("service").alias("caller"),
                           pl.col("duration_ms").alias("caller_ms"))
    servers = spans.filter((pl.col("kind") == "server") & pl.col("parent_span_id").is_not_null() & pl.col("duration_ms").is_not_null())
    return (
        servers.select("trace_id", "parent_span_id", "ts", pl.col("service").alias("callee"), pl.col("host").alias("callee_pod"),
                       pl.col("duration_ms").alias("server_ms"))
        .join(parents, on=["trace_id", "parent_span_id"], how="inner")
        .filter(pl.col("caller").is_not_null() & pl.col("callee").is_not_null() & (pl.col("caller") != pl.col("callee")))
        .with_columns((pl.col("caller_ms") - pl.col("server_ms")).clip(lower_bound=0.0).alias("wait_ms"))
        .select("ts", "caller", "callee", "callee_pod", "wait_ms", "server_ms")
    )


@register("service_calls", order=62)
def detect_call_waits(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    spans = dataset.spans
    if spans.height == 0:
        return []
    edges = call_edges(spans)
    if edges.height == 0:
        return []
    key = ["caller", "callee", "callee_pod"]
    inc = edges.filter(in_window("ts", context.incident.start, context.incident.end))
    if inc.height == 0:
        return []
    base = edges.filter(in_window("ts", context.baseline.start, context.baseline.end))
    per_inc = inc.group_by(key).agg(pl.col("wait_ms").median().alias("wait"), pl.col("server_ms").median().alias("server"),
                                    pl.len().alias("n"), pl.col("wait_ms").alias("waits"), pl.col("ts").min().alias("first"))
    per_base = base.group_by(key).agg(pl.col("wait_ms").alias("base_waits"), pl.len().alias("n_base"))
    per = per_inc.join(per_base, on=key, how="left").with_columns(pl.col("n_base").fill_null(0))
    fan_out = dict(per.group_by("caller").agg(pl.struct("callee", "callee_pod").n_unique()).iter_rows())
    fan_in = dict(per.group_by("callee").agg(pl.col("caller").n_unique()).iter_rows())
    medians = per["wait"].to_numpy()
    cross_ref = float(np.median(medians))
    cross_scale = max(float(np.median(np.abs(medians - cross_ref))) * MAD_TO_SIGMA, RELATIVE_FLOOR * cross_ref, ABS_FLOOR_MS)
    upto = edges.filter(pl.col("ts") < context.incident.end).sort("ts")
    findings: list[Finding] = []
    for row in per.sort(key, nulls_last=True).iter_rows(named=True):
        wait, onset = float(row["wait"]), row["first"]
        if row["n_base"] >= MIN_CALLS and row["n"] >= MIN_CALLS:
            before, after = np.asarray(row["base_waits"], dtype=float), np.asarray(row["waits"], dtype=float)
            ref = float(np.median(before))
            z = (wait - ref) / _scale(before, ref)
            if z < MIN_Z or mann_whitney_p(before, after) >= MAX_P:
                continue
            reference = "own baseline"
        else:
            calls = upto.filter((pl.col("caller") == row["caller"]) & (pl.col("callee") == row["callee"])
                                & pl.col("callee_pod").eq_missing(row["callee_pod"]))
            waits = calls["wait_ms"].to_numpy()
            seconds = (calls["ts"].dt.epoch("us").to_numpy() / 1e6) if calls.height else np.zeros(0)
            split = _change_point(waits, seconds)
            if split is not None:
                ref, wait, onset, reference = float(np.median(waits[:split])), float(np.median(waits[split:])), calls["ts"][split], "own earlier calls"
                z = (wait - ref) / _scale(waits[:split], ref)
            elif int((calls["ts"] < context.incident.start).sum()) >= MIN_CALLS:
                continue  # its own earlier calls show no change: no comparison with other edges can overrule that
            else:
                ref, reference = cross_ref, "other calls"
                z = (wait - ref) / cross_scale
                if z < MIN_Z:
                    continue
        caller, callee, pod = row["caller"], row["callee"], row["callee_pod"]
        findings.append(Finding(
            detector="service_calls", kind="call_wait_shift", dimension="edge", subject=f"{caller} -> {callee}",
            metric="wait_ms", onset=onset, baseline=round(ref, 3), incident=round(wait, 3),
            magnitude=round(wait / max(ref, 1e-3), 3), confidence=confidence_from_z(z), signal="trace", where=pod or callee,
            details=CallWaitDetails(
                caller=str(caller), callee=str(callee), callee_pod=pod, reference=reference, reference_ms=round(ref, 3),
                wait_ms=round(wait, 3), callee_server_ms=round(float(row["server"]), 3), z=round(z, 2), calls=int(row["n"]),
                caller_fan_out=int(fan_out.get(caller, 0)), callee_fan_in=int(fan_in.get(callee, 0)), basis=trace_sample_basis(dataset),
            ),
        ))
    return findings


@register("service_times", order=63)
def detect_own_times(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    """Per (service, pod), a shift of the own time of its server spans: `service_time_shift` findings."""
    spans = dataset.spans
    if spans.height == 0:
        return []
    servers = (spans.filter((pl.col("kind") == "server") & pl.col("self_ms").is_not_null() & pl.col("service").is_not_null()
                            & (pl.col("ts") < context.incident.end))
               .select("ts", "service", "host", "self_ms").sort("ts"))
    # the traces hold a baseline of their own, or begin after it (then each pod's earlier requests are it)
    short = servers.filter(in_window("ts", context.baseline.start, context.baseline.end)).height == 0
    findings: list[Finding] = []
    for (service, pod), rows in sorted(servers.group_by("service", "host"), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        base = rows.filter(in_window("ts", context.baseline.start, context.baseline.end))["self_ms"].to_numpy()
        inc = rows.filter(in_window("ts", context.incident.start, context.incident.end))
        if inc.height == 0:
            continue
        if base.size >= MIN_CALLS and inc.height >= MIN_CALLS:
            after = inc["self_ms"].to_numpy()
            ref, level, onset, reference = float(np.median(base)), float(np.median(after)), inc["ts"][0], "own baseline"
            z = (level - ref) / _scale(base, ref)
            if z < MIN_Z or mann_whitney_p(base, after) >= MAX_P:
                continue
            base_ts = rows.filter(in_window("ts", context.baseline.start, context.baseline.end))["ts"]
            load = _rate(inc["ts"]) / max(_rate(base_ts), 1e-9)
        elif short:
            values = rows["self_ms"].to_numpy()
            split = _change_point(values, rows["ts"].dt.epoch("us").to_numpy() / 1e6)
            if split is None:
                continue
            ref, level, onset, reference = float(np.median(values[:split])), float(np.median(values[split:])), rows["ts"][split], "own earlier calls"
            z = (level - ref) / _scale(values[:split], ref)
            load = _rate(rows["ts"][split:]) / max(_rate(rows["ts"][:split]), 1e-9)
        else:
            continue  # too few of its requests in a baseline the traces cover: no comparison
        findings.append(Finding(
            detector="service_calls", kind="service_time_shift", dimension="service", subject=str(service), metric="self_ms",
            onset=onset, baseline=round(ref, 3), incident=round(level, 3), magnitude=round(level / max(ref, 1e-3), 3),
            confidence=confidence_from_z(z), signal="trace", where=pod or str(service),
            details=ServiceTimeDetails(service=str(service), pod=pod, reference=reference, reference_ms=round(ref, 3),
                                       self_ms=round(level, 3), z=round(z, 2), requests=int(inc.height), requests_ratio=round(load, 3),
                                       basis=trace_sample_basis(dataset)),
        ))
    return findings


def _rate(ts: pl.Series) -> float:
    """Requests per second over the span of their timestamps (0 with fewer than two)."""
    if ts.len() < 2:
        return 0.0
    span = (ts.max() - ts.min()).total_seconds()  # type: ignore[operator,union-attr]
    return (ts.len() - 1) / span if span > 0 else 0.0


def _scale(values: np.ndarray, center: float) -> float:
    """MAD-based sigma floored at `RELATIVE_FLOOR` of the centre and `ABS_FLOOR_MS`."""
    return max(float(np.median(np.abs(values - center))) * MAD_TO_SIGMA, RELATIVE_FLOOR * center, ABS_FLOOR_MS)


CHANGE_POINT_CANDIDATES = 50  # splits tried per edge (evenly spaced in call order): enough for a minute's resolution


def _change_point(waits: np.ndarray, seconds: np.ndarray) -> int | None:
    """The split of an edge's time-ordered waits where the later ones rose most over the earlier ones, in
    units of the earlier ones' spread, among the splits that pass the shift test (z >= `MIN_Z` and a
    Mann-Whitney p < `MAX_P`), with `MIN_CALLS_BEFORE` calls before it and `MIN_CALLS_AFTER` after spanning `MIN_AFTER_S`; None when
    no split does. Used when the traces hold no baseline of their own in the baseline window (they start
    a minute before the fault): the change is then found inside them, however late it comes."""
    n = waits.size
    if n < MIN_CALLS_BEFORE + MIN_CALLS_AFTER:
        return None
    step = max(1, (n - MIN_CALLS_BEFORE - MIN_CALLS_AFTER) // CHANGE_POINT_CANDIDATES)
    scored: list[tuple[float, int]] = []
    for i in range(MIN_CALLS_BEFORE, n - MIN_CALLS_AFTER + 1, step):
        if seconds[-1] - seconds[i] < MIN_AFTER_S:
            break
        before = waits[:i]
        center = float(np.median(before))
        z = (float(np.median(waits[i:])) - center) / _scale(before, center)
        if z >= MIN_Z:
            scored.append((z, i))
    for _, i in sorted(scored, reverse=True):
        if mann_whitney_p(waits[:i], waits[i:]) < MAX_P:
            return i
    return None
