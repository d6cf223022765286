"""Report assembly: scored candidates become ranked hypotheses; rule-outs, timeline and headline."""

from __future__ import annotations

from collections.abc import Iterable

from rca import __version__
from rca.figures import times_for
from rca.findings import vantage_of
from rca.model import (
    CONTEXT_FINDING_KINDS,
    AnalysisContext,
    Dataset,
    Finding,
    Hypothesis,
    Report,
    TimelineEntry,
)
from rca.ranking.candidate import Candidate, completeness
from rca.ranking.candidates import build_candidates
from rca.ranking.prose import evidence, explains, symptom_label
from rca.ranking.registry import Observations, kind_named
from rca.ranking.ruled_out import ruled_out_changes, ruled_out_hosts, ruled_out_network
from rca.ranking.scoring import discount_effects, score, strength
from rca.ranking.tuning import TUNING

SCHEMA_VERSION = 1
# Findings that are symptoms of an incident (what the responder sees), not causes.
SYMPTOM_KINDS = ("latency_shift", "error_rate")


def build_report(dataset: Dataset, context: AnalysisContext | None, findings: Iterable[Finding], command: str | None = None) -> Report:
    """Rank the causes the findings point to and assemble the report."""
    with times_for(context):
        return _build_report(dataset, context, list(findings), command)


def _summary(cand: Candidate, explained: list[Finding]) -> str:
    """The kind's sentence, ending with the cause the candidate is likely an effect of when a rule found one."""
    text = kind_named(cand.kind).summary(cand, explained)
    return f"{text.rstrip('.')}; {cand.effect_of}." if cand.effect_of else text


def _build_report(dataset: Dataset, context: AnalysisContext | None, findings: list[Finding], command: str | None) -> Report:
    t = TUNING
    inputs = tuple(dataset.inputs)
    if context is None:
        return Report(SCHEMA_VERSION, __version__, inputs, None, False,
                      "No timed data: nothing to analyse.", findings=tuple(findings), command=command)
    symptoms = sorted([f for f in findings if f.kind in SYMPTOM_KINDS], key=lambda f: (f.onset or context.span.end, -f.magnitude))
    candidates = build_candidates(Observations(findings, symptoms, context))
    scored = []
    for cand in candidates:
        value, explained = score(cand, symptoms, context)
        scored.append((value, cand, explained))
    discount_effects(scored, context)
    # a candidate whose score shows as 0.00 explains nothing: listing it as cause #2 would mislead
    scored = [item for item in scored if round(item[0], 2) > 0]
    scored.sort(key=lambda x: (-x[0], x[1].kind, x[1].subject))
    hypotheses = []
    rank_of = {id(cand): rank for rank, (_, cand, _) in enumerate(scored, start=1)}
    for rank, (value, cand, explained) in enumerate(scored, start=1):
        hypotheses.append(
            Hypothesis(
                rank=rank, kind=cand.kind, dimension=cand.dimension, subject=cand.subject, where=cand.where,
                score=round(value, 3), onset=cand.onset, summary=_summary(cand, explained),
                explains=explains([s for s in explained if not any(s is f for f in cand.findings)]),  # not the cause again
                evidence=tuple(evidence(f) for f in sorted(cand.findings, key=lambda f: (completeness(f), -f.confidence, -f.magnitude))
                               [: t.evidence_per_hypothesis]),
                findings=tuple(cand.findings), effect_of=rank_of.get(id(cand.cause)) if cand.cause is not None else None,
            )
        )
    incident = bool(hypotheses) and hypotheses[0].score >= t.incident_threshold
    top = hypotheses[0] if incident else None
    ruled_out = ruled_out_changes(findings, context, top)
    if incident:
        ruled_out += ruled_out_network(findings) + ruled_out_hosts(findings)
    largest = tuple(sorted((f for f in findings if f.kind not in CONTEXT_FINDING_KINDS), key=lambda f: (-strength(f), f.subject))
                    [: t.largest_deviations])
    if top is not None:
        headline = top.summary
    else:
        worst = f" Largest deviation: {evidence(largest[0]).text}." if largest else ""
        headline = f"No significant incident: no cause stands out above the reporting threshold.{worst}"
    timeline = _timeline(hypotheses[: t.timeline_causes] if incident else [], symptoms if incident else [], dataset)
    return Report(
        schema_version=SCHEMA_VERSION, tool_version=__version__, inputs=inputs, context=context,
        incident_detected=incident, headline=headline, hypotheses=tuple(hypotheses), ruled_out=tuple(ruled_out),
        findings=tuple(findings), timeline=timeline, largest_deviations=largest, command=command,
    )


def _timeline(hypotheses: list[Hypothesis], symptoms: list[Finding], dataset: Dataset) -> tuple[TimelineEntry, ...]:
    entries = []
    for row in dataset.changes.sort("ts").iter_rows(named=True):
        entries.append(TimelineEntry(row["ts"], "change", f"{row['kind']} {row['service'] or ''} {row['subject'] or ''}".replace("  ", " ").strip(),
                                     f"{row['origin']}:{row['line']}" if row["origin"] else None))
    for h in hypotheses:
        if h.onset:
            entries.append(TimelineEntry(h.onset, "cause", f"#{h.rank} {h.kind.replace('_', ' ')}: {h.subject}", None))
    seen: set[tuple[str, str, str]] = set()
    for s in symptoms:
        key = (s.kind, s.dimension, s.subject)
        if s.onset and key not in seen and len(seen) < TUNING.timeline_symptoms:
            seen.add(key)
            entries.append(TimelineEntry(s.onset, "symptom", symptom_label(s), vantage_of(s.details)))
    order = {"change": 0, "cause": 1, "symptom": 2, "recovery": 3}
    return tuple(sorted(entries, key=lambda e: (e.ts, order[e.what], e.text)))
