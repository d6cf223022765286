"""Rule-outs: tempting explanations the data contradicts, each with the figures that contradict it.

- a change (deploy, config, flag, rollback) that changed nothing measurable, or came after the incident began;
- the network, when request time rose while the time outside the backend stayed flat;
- a host-local problem, when every host of each slowed service slowed alike.
"""

from __future__ import annotations

import polars as pl

from rca.figures import hhmm, number, quantity, ratio
from rca.findings import ChangeEffectDetails
from rca.model import AnalysisContext, Dataset, Evidence, Finding, Hypothesis, RuledOut, Window
from rca.ranking.prose import pct
from rca.ranking.registry import kind_named
from rca.ranking.tuning import TUNING


def ruled_out_changes(findings: list[Finding], context: AnalysisContext, top: Hypothesis | None) -> list[RuledOut]:
    """Changes the data clears: no measurable effect, or too late to have started the incident."""
    out = []
    cause = f", with {kind_named(top.kind).cause_phrase(top)}" if top else ""
    for f in findings:
        if f.kind != "change_effect" or f.onset is None or f.onset >= context.incident.end:
            continue
        d = f.details
        if not isinstance(d, ChangeEffectDetails) or d.change_kind == "restart":
            continue  # restarts (OOM kills, crash loops) are effects, not tempting explanations
        label = f"{d.change_kind} {d.subject or ''} of {d.service} at {hhmm(f.onset)}".replace("  ", " ")
        figures = (f"p95 of {d.scope} {quantity(d.p95_before_ms, 'p95_ms')} in the {number(d.window_min)} min before, "
                   f"{quantity(d.p95_after_ms, 'p95_ms')} in the {number(d.after_min)} min after; "
                   f"5xx {pct(d.error_rate_before)} -> {pct(d.error_rate_after)}")
        gap = d.minutes_before_incident or 0.0
        if top is not None and top.kind == "deploy" and top.subject == f.subject:
            continue
        if not d.effect:
            if not d.enough_data:
                continue
            if top is None:
                reason = f"{label} changed nothing measurable: {figures}."
            else:
                when = f"the symptoms began {gap:.0f} min later{cause}" if gap >= 1 else f"it came {-gap:.0f} min after the incident began and changed nothing"
                reason = f"{label} is not the cause: {figures}; {when}."
        elif gap < 0:
            reason = f"{label} came {-gap:.0f} min after the incident began, so it cannot have started it: {figures}."
        else:
            continue
        out.append(RuledOut(kind=str(d.change_kind), subject=f"{d.service} {d.subject or ''}".strip(),
                            reason=reason, ts=f.onset,
                            evidence=(Evidence("changes", figures, d.p95_before_ms, d.p95_after_ms, f.magnitude),)))
    return out


def ruled_out_network(dataset: Dataset, context: AnalysisContext, findings: list[Finding]) -> list[RuledOut]:
    """The network is ruled out when request time rose while the time outside the backend (request time
    minus upstream time, as a proxy logs them) stayed flat: over all proxied requests, or, when the
    incident touches only part of the traffic, over the endpoints whose latency shifted."""
    t = TUNING
    req = dataset.requests.filter(pl.col("upstream_ms").is_not_null() & pl.col("duration_ms").is_not_null())
    if req.height < t.network_min_requests:
        return []
    slowed = sorted({f.subject for f in findings if f.kind == "latency_shift" and f.dimension == "endpoint"})
    scopes = [("all proxied requests", req)]
    if slowed:
        label = f"the {len(slowed)} endpoint{'s' if len(slowed) > 1 else ''} that slowed ({', '.join(slowed[:3])}{', ...' if len(slowed) > 3 else ''})"
        scopes.append((label, req.filter(pl.col("endpoint").is_in(slowed))))

    def window(rows: pl.DataFrame, w: Window) -> tuple[float, float, float] | None:
        rows = rows.filter((pl.col("ts") >= w.start) & (pl.col("ts") < w.end))
        if rows.height < t.network_min_window_requests:
            return None
        return rows.select(
            pl.col("duration_ms").quantile(0.95).alias("total"),
            pl.col("upstream_ms").quantile(0.95).alias("upstream"),
            (pl.col("duration_ms") - pl.col("upstream_ms")).quantile(0.95).alias("gap"),
        ).row(0)

    for label, rows in scopes:
        base, inc = window(rows, context.baseline), window(rows, context.incident)
        if base is None or inc is None:
            continue
        total_b, up_b, gap_b = base
        total_i, up_i, gap_i = inc
        if total_i < t.network_min_rise * total_b or gap_i > max(t.network_gap_ratio * gap_b, gap_b + t.network_gap_ms):
            continue
        figures = (f"{label}: p95 request time {total_b:,.0f} -> {total_i:,.0f} ms, p95 upstream (backend) time {up_b:,.0f} -> {up_i:,.0f} ms, "
                   f"p95 time outside the backend {gap_b:,.0f} -> {gap_i:,.0f} ms")
        return [RuledOut(kind="network", subject="network / client side",
                         reason=f"The network is not the cause: the time went to the backend ({figures}).",
                         evidence=(Evidence("latency", figures, round(gap_b, 1), round(gap_i, 1), round(gap_i / max(gap_b, 0.1), 2)),))]
    return []


def ruled_out_hosts(dataset: Dataset, context: AnalysisContext, findings: list[Finding]) -> list[RuledOut]:
    """A host-local problem is ruled out when every host of each slowed service slowed alike (p95 up at
    least `host_min_rise` on each), over all those services at once: one entry, the per-host figures as evidence."""
    services = {f.subject for f in findings if f.kind == "latency_shift" and f.dimension == "service"}
    host_shifts = {f.where for f in findings if f.kind == "latency_shift" and f.dimension == "host"}
    candidates = sorted(services - host_shifts)
    if not candidates:
        return []
    per = (
        dataset.requests.filter(pl.col("service").is_in(candidates) & pl.col("host").is_not_null() & pl.col("duration_ms").is_not_null())
        .with_columns(pl.when(pl.col("ts") >= context.incident.start).then(pl.lit("i")).otherwise(pl.lit("b")).alias("w"))
        .group_by("service", "host", "w").agg(pl.col("duration_ms").quantile(0.95).alias("p95"))
    )
    if per.height == 0:
        return []
    per = per.pivot(on="w", index=["service", "host"], values="p95").sort("service", "host")
    if "i" not in per.columns or "b" not in per.columns:
        return []
    alike: list[tuple[str, list[tuple[str, float, float]]]] = []
    for (service,), hosts in per.drop_nulls(["b", "i"]).group_by(["service"], maintain_order=True):
        rows = [(str(h), float(b), float(i)) for h, b, i in hosts.select("host", "b", "i").iter_rows()]
        if len(rows) >= 2 and min(i / b for _, b, i in rows if b > 0) >= TUNING.host_min_rise:
            alike.append((str(service), rows))
    if not alike:
        return []
    summary = "; ".join(
        f"{service}: {len(rows)} hosts, p95 {ratio(min(i / b for _, b, i in rows))} to {ratio(max(i / b for _, b, i in rows))}"
        for service, rows in alike
    )
    figures = "; ".join(f"{h} p95 {b:.0f} -> {i:.0f} ms" for _, rows in alike for h, b, i in rows)
    ratios = [i / b for _, rows in alike for _, b, i in rows]
    subject = "a single host of " + ", ".join(service for service, _ in alike)
    return [RuledOut(kind="host", subject=subject,
                     reason=f"Not a host-local problem: every host of the services that slowed degraded alike ({summary}).",
                     evidence=(Evidence("latency", figures, None, None, round(sum(ratios) / len(ratios), 2)),))]
