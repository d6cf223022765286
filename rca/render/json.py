"""`--format json`: the public contract (schema in rca/report.schema.json, `schema_version` 1).

Byte-identical for the same inputs: keys sorted, floats rounded, no wall clock. Extend it, never break
it: new fields are additive; removing or renaming one needs a new `schema_version`.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from rca.model import Evidence, Finding, Hypothesis, InputSummary, Report, RuledOut
from rca.render import iso


def _num(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, 4)
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "isoformat"):
        return iso(value)
    return _num(value)


def evidence_dict(e: Evidence) -> dict[str, Any]:
    return {"detector": e.detector, "text": e.text, "baseline": e.baseline, "incident": e.incident, "ratio": e.ratio}


def finding_dict(f: Finding, with_series: bool = True) -> dict[str, Any]:
    out = {
        "detector": f.detector, "kind": f.kind, "dimension": f.dimension, "subject": f.subject, "metric": f.metric,
        "onset": f.onset, "peak": f.peak, "baseline": f.baseline, "incident": f.incident, "magnitude": f.magnitude,
        "excess": f.excess, "share_explained": f.share_explained, "confidence": f.confidence, "signal": f.signal,
        "where": f.where, "details": f.details.to_dict(),
    }
    if with_series and f.series is not None:
        out["series"] = {"start": f.series.start, "bucket_s": f.series.bucket_s, "values": list(f.series.values), "label": f.series.label}
    return out


def hypothesis_dict(h: Hypothesis) -> dict[str, Any]:
    return {
        "rank": h.rank, "kind": h.kind, "dimension": h.dimension, "subject": h.subject, "where": h.where,
        "score": h.score, "onset": h.onset, "summary": h.summary, "explains": list(h.explains),
        "evidence": [evidence_dict(e) for e in h.evidence], "effect_of": h.effect_of,
    }


def ruled_out_dict(r: RuledOut) -> dict[str, Any]:
    return {"kind": r.kind, "subject": r.subject, "reason": r.reason, "ts": r.ts, "evidence": [evidence_dict(e) for e in r.evidence]}


def input_dict(s: InputSummary) -> dict[str, Any]:
    return {
        "path": s.path, "format": s.format, "lines": s.lines, "rows": s.total_rows, "rows_by_frame": dict(s.rows),
        "rejected": s.rejected,
        "rejected_examples": [{"line": r.line, "reason": r.reason, "text": r.text} for r in s.rejected_examples],
        "first_ts": s.first_ts, "last_ts": s.last_ts, "warnings": list(s.warnings),
        "top_endpoints": [[k, v] for k, v in s.top_endpoints], "top_sources": [[k, v] for k, v in s.top_sources],
    }


def report_dict(report: Report) -> dict[str, Any]:
    ctx = report.context
    window = None
    if ctx is not None:
        window = {
            "baseline": {"start": ctx.baseline.start, "end": ctx.baseline.end},
            "incident": {"start": ctx.incident.start, "end": ctx.incident.end},
            "span": {"start": ctx.span.start, "end": ctx.span.end},
            "bucket_s": ctx.bucket_s, "method": ctx.method,
            "gaps": [{"start": g.start, "end": g.end} for g in ctx.gaps],
        }
    return _clean({
        "schema_version": report.schema_version,
        "tool_version": report.tool_version,
        "incident_detected": report.incident_detected,
        "headline": report.headline,
        "inputs": [input_dict(s) for s in report.inputs],
        "window": window,
        "hypotheses": [hypothesis_dict(h) for h in report.hypotheses],
        "ruled_out": [ruled_out_dict(r) for r in report.ruled_out],
        "timeline": [{"ts": e.ts, "what": e.what, "text": e.text, "ref": e.ref} for e in report.timeline],
        "largest_deviations": [finding_dict(f, with_series=False) for f in report.largest_deviations],
        "findings": [finding_dict(f) for f in report.findings],
        "command": report.command,
    })


def render_json(report: Report) -> bytes:
    """The report as JSON bytes, with a trailing newline."""
    return orjson.dumps(report_dict(report), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
