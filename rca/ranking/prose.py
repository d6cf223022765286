"""Shared phrasing of the ranker: evidence lines, symptom labels and the "as p95 rose" clause.

Figures go through `rca.figures` (one way to write a count, a ratio or a duration); each kind writes
its own summary sentence with these helpers.
"""

from __future__ import annotations

from typing import Any

from rca.figures import before_after, finding_label, hhmm, metric_label, number, quantity, ratio
from rca.findings import vantage_of
from rca.model import Evidence, Finding
from rca.ranking.candidate import Candidate, completeness, minutes_between
from rca.ranking.tuning import TUNING

SIGNAL_NAMES = {"access_log": "access log", "app_log": "app log", "text_log": "text log", "syslog": "syslog",
                "trace": "traces", "otlp_log": "OTLP logs", "metric": "metrics", "external": "change markers"}


def effect_clause(cand: Candidate, explained: list[Finding]) -> str:
    """`, 2 min before p95 of checkout rose x3.1`: how the candidate leads the first latency symptom it
    explains (empty when it explains none)."""
    lat = [s for s in explained if s.kind == "latency_shift" and s.onset]
    if not (lat and cand.onset):
        return ""
    first = min(lat, key=lambda s: s.onset)  # type: ignore[arg-type, return-value]
    gap = minutes_between(cand.onset, first.onset)  # type: ignore[arg-type]
    lead = f"{gap:.0f} min before" if gap >= 1 else "as"
    return f", {lead} p95 of {symptom_subject(first)} rose {ratio(first.magnitude)}"


def evidence(f: Finding) -> Evidence:
    """One evidence line quoting a finding's figures."""
    share = f", {100 * f.share_explained:.0f}% of the excess" if f.share_explained is not None and f.kind == "traffic_spike" else ""
    vantage = vantage_of(f.details)
    text = (f"{finding_label(f.kind, f.dimension, f.subject)} ({SIGNAL_NAMES.get(f.signal, f.signal)}"
            f"{', ' + str(vantage) if vantage else ''}): {metric_label(f.metric)} "
            f"{before_after(f.baseline, f.incident, f.metric, f.magnitude)}{share}, onset {hhmm(f.onset)}")
    return Evidence(detector=f.detector, text=text, baseline=f.baseline, incident=f.incident, ratio=round(f.magnitude, 3))


def explains(explained: list[Finding], limit: int = TUNING.explains_per_hypothesis) -> tuple[str, ...]:
    """Labels of the symptoms a cause explains, each (metric, dimension, subject) once, from the most
    complete vantage point that saw it."""
    firsts: dict[tuple[str, str, str], Finding] = {}
    for s in sorted(explained, key=completeness):
        firsts.setdefault((s.metric, s.dimension, s.subject), s)
    ordered = [s for s in explained if firsts.get((s.metric, s.dimension, s.subject)) is s]
    return tuple(symptom_label(s) for s in ordered[:limit])


def symptom_label(f: Finding) -> str:
    """`p95 of endpoint /api/rooms x3.2 from 12:36`."""
    metric = {"p95_ms": "p95", "error_rate": "5xx share", "error_events_per_min": "error events"}.get(f.metric, f.metric.replace("_", " "))
    return f"{metric} of {symptom_subject(f, with_dimension=True)} {ratio(f.magnitude)} from {hhmm(f.onset)}"


def symptom_subject(f: Finding, with_dimension: bool = False) -> str:
    """What a symptom is measured on: `/api/rooms` (`endpoint /api/rooms`); an access log's rows carry its
    file's name as their service, so they read `all requests in the access log`, not a service."""
    if f.dimension == "service" and f.signal == "access_log":
        return "all requests in the access log"
    return f"{f.dimension} {f.subject}" if with_dimension else f.subject


def canary_clause(canary: dict[str, Any]) -> str:
    """A canary split's figures (`ChangeEffectDetails.canary`): `requests the new release served had p95 338 ms
    and 5xx 0.2%, against 106 ms and 0.1% on the old release (412 and 388 requests)`."""
    c = canary
    where = "" if str(c["scope"]).startswith("all of") else f" on {c['scope']}"
    return (f"requests the new release served{where} had p95 {quantity(c['p95_new_ms'], 'p95_ms')} and 5xx {pct(c['error_rate_new'])}, "
            f"against {quantity(c['p95_old_ms'], 'p95_ms')} and {pct(c['error_rate_old'])} on the old release "
            f"({number(c['n_new'])} and {number(c['n_old'])} requests)")


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal, `n/a` when unknown."""
    return "n/a" if value is None else f"{100 * value:.1f}%"
