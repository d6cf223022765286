"""Changes: for each deploy, rollback or config change, what moved right after it on what it touched.

For a change at time t on service S, requests of S (in each vantage that logs S; every vantage when S is
unknown or not seen) are compared in the 15 minutes before t and the 15 minutes after it (clipped to
the data): p95 latency (with a Mann-Whitney test), 5xx share and request rate. A change "had an effect"
when, right after it, p95 rose by 25% and 20 ms with p < 1e-3, or the 5xx share rose by 2 points and
doubled. One `change_effect` finding per change, effect or not: the ranker needs the ones without effect
to rule them out, with these figures.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import polars as pl

from rca.detectors import register
from rca.detectors.stats import confidence_from_p, mann_whitney_p
from rca.findings import ChangeEffectDetails
from rca.model import AnalysisContext, Dataset, Finding

WINDOW = timedelta(minutes=15)
MIN_N = 20


def _figures(rows: pl.DataFrame) -> tuple[int, float | None, float | None]:
    n = rows.height
    if n == 0:
        return 0, None, None
    durations = rows["duration_ms"].drop_nulls()
    p95 = float(cast(float, durations.quantile(0.95))) if len(durations) else None
    statuses = rows["status"].drop_nulls()
    err = float(cast(float, (statuses >= 500).mean())) if len(statuses) else None
    return n, p95, err


@register("changes", order=40)
def detect_change_effects(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    findings: list[Finding] = []
    changes = dataset.changes.filter(pl.col("ts").is_not_null()).sort("ts")
    requests = dataset.requests
    if changes.height == 0:
        return findings
    services_seen = set(requests["service"].drop_nulls().unique().to_list()) if requests.height else set()
    for row in changes.iter_rows(named=True):
        t = row["ts"]
        service = row["service"]
        touched = requests.filter(pl.col("service") == service) if service in services_seen else requests
        scope = service if service in services_seen else "all services"
        start = max(t - WINDOW, context.span.start)
        end = min(t + WINDOW, context.span.end)
        # A change well before the incident is judged on the time between it and the incident's start
        # ("flat for 12 minutes after it"), so the incident itself is not blamed on it.
        if context.incident.start - t > 3 * context.bucket:
            end = min(end, context.incident.start)
        before = touched.filter((pl.col("ts") >= start) & (pl.col("ts") < t))
        after = touched.filter((pl.col("ts") >= t) & (pl.col("ts") < end))
        nb, p95b, errb = _figures(before)
        na, p95a, erra = _figures(after)
        minutes_b = max((t - start).total_seconds() / 60, 1e-9)
        minutes_a = max((end - t).total_seconds() / 60, 1e-9)
        enough = nb >= MIN_N and na >= MIN_N
        p = mann_whitney_p(before["duration_ms"].drop_nulls().to_numpy(), after["duration_ms"].drop_nulls().to_numpy()) if enough else 1.0
        latency_hit = bool(enough and p95b and p95a and p95a >= 1.25 * p95b and p95a - p95b >= 20 and p < 1e-3)
        error_hit = bool(enough and errb is not None and erra is not None and erra - errb >= 0.02 and erra >= 2 * max(errb, 1e-4))
        effect = latency_hit or error_hit
        ratio = (p95a / p95b) if (p95a and p95b) else 1.0
        onset_gap = (context.incident.start - t).total_seconds() / 60
        findings.append(
            Finding(
                detector="changes", kind="change_effect", dimension="change",
                subject=f"{row['kind']} {service or '?'} {row['subject'] or ''}".strip(), metric="p95_ms",
                onset=t, baseline=None if p95b is None else round(p95b, 1), incident=None if p95a is None else round(p95a, 1),
                magnitude=round(ratio, 3), confidence=confidence_from_p(p) if effect else 0.0, signal=row["signal"] or "external",
                where=service,
                details=ChangeEffectDetails(
                    change_kind=row["kind"], service=service, subject=row["subject"], scope=scope,
                    description=row["description"], origin=row["origin"], line=row["line"],
                    effect=effect, enough_data=enough,
                    window_min=round(WINDOW.total_seconds() / 60),
                    after_min=round((end - t).total_seconds() / 60, 1),
                    p95_before_ms=None if p95b is None else round(p95b, 1), p95_after_ms=None if p95a is None else round(p95a, 1),
                    error_rate_before=None if errb is None else round(errb, 4), error_rate_after=None if erra is None else round(erra, 4),
                    rate_before_per_min=round(nb / minutes_b, 2), rate_after_per_min=round(na / minutes_a, 2),
                    p_value=float(f"{p:.3g}"), minutes_before_incident=round(onset_gap, 1),
                    in_incident=bool(context.incident.contains(t)),
                ),
            )
        )
    return findings
