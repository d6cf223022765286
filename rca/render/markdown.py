"""`--format markdown`: a postmortem-ready section (Summary, Impact, Timeline, Root cause, Ruled out,
Recovery, Suggested corrective measures, Chart, Appendix). Plain Markdown, UTC, stable order, no ANSI."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from rca.figures import before_after, change, finding_label
from rca.findings import basis_of
from rca.model import SKETCH_ALPHA, Finding, Report
from rca.ranking.registry import kind_named
from rca.render import hhmm, number, quantity, stamp, time_range, times_for
from rca.render.terminal import metric_label, series_unit


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(value: str) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def _impact_rows(report: Report) -> list[list[str]]:
    rows = []
    seen = set()
    for f in report.findings:
        if f.kind not in ("latency_shift", "error_rate", "traffic_spike") or f.dimension not in ("endpoint", "source", "source_net", "service"):
            continue
        key = (f.kind, f.dimension, f.subject)
        if key in seen:
            continue
        seen.add(key)
        rows.append([f.dimension, f.subject, metric_label(f.metric), quantity(f.baseline, f.metric) if f.baseline is not None else "-",
                     quantity(f.incident, f.metric) if f.incident is not None else "-", change(f.baseline, f.incident, f.magnitude), hhmm(f.onset)])
    rows.sort(key=lambda r: (r[2], r[0], r[1]))
    return rows[:20]


def _mermaid(finding: Finding) -> list[str]:
    series = finding.series
    if series is None:
        return []
    subject = finding.subject.replace('"', "'")  # a quote would end mermaid's string
    values = [0.0 if v is None else round(v, 2) for v in series.values]
    labels = [t.strftime("%H:%M") for t in series.timestamps()]
    step = max(1, len(values) // 30)
    values, labels = values[::step], labels[::step]
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{metric_label(finding.metric)} {subject} ({series_unit(finding).strip()})"',
        f'    y-axis "{series_unit(finding).strip()}"',
        "    x-axis [" + ", ".join(f'"{x}"' for x in labels) + "]",
        "    line [" + ", ".join(f"{v:g}" for v in values) + "]",
        "```",
    ]


def render_markdown(report: Report, chart_path: Path | None = None) -> str:
    """The report as Markdown text; `chart_path` is the chart's path relative to the Markdown file (the
    image link)."""
    with times_for(report.context):
        return _render_markdown(report, chart_path)


def _render_markdown(report: Report, chart_path: Path | None) -> str:
    ctx = report.context
    lines: list[str] = ["# Incident analysis", ""]
    lines += ["## Summary", ""]
    if ctx is not None:
        minutes = ctx.incident.duration.total_seconds() / 60
        lines.append(f"Incident window {time_range(ctx.incident.start, ctx.incident.end)} ({minutes:.0f} min), "
                     f"compared with the baseline {time_range(ctx.baseline.start, ctx.baseline.end)}.")
        lines.append("")
    lines.append(report.headline)
    if report.incident_detected and report.hypotheses:
        top = report.hypotheses[0]
        lines.append("")
        lines.append(f"Most likely cause: **{top.kind.replace('_', ' ')}: {top.subject}** (score {top.score:.2f}).")
    lines.append("")
    impact = _impact_rows(report)
    if impact:
        lines += ["## Impact", ""]
        lines += _table(["dimension", "subject", "metric", "baseline", "incident", "ratio", "onset"], impact)
        lines.append("")
    lines += ["## Timeline", ""]
    if report.timeline:
        lines += _table(["time (UTC)", "what", "event", "source"],
                        [[e.ts.strftime("%Y-%m-%d %H:%M:%S"), e.what, e.text, e.ref or ""] for e in report.timeline])
    else:
        lines.append("No changes or anomalies to place on a timeline.")
    lines.append("")
    lines += ["## Root cause", ""]
    if report.incident_detected:
        for h in report.hypotheses[:3]:
            lines.append(f"### {h.rank}. {h.kind.replace('_', ' ')}: {h.subject} (score {h.score:.2f}, onset {hhmm(h.onset)})")
            lines.append("")
            lines.append(h.summary)
            lines.append("")
            if h.explains:
                lines.append("Explains: " + "; ".join(h.explains) + ".")
                lines.append("")
            lines += _table(["detector", "evidence", "baseline", "incident", "ratio"],
                            [[e.detector, e.text, "-" if e.baseline is None else number(e.baseline),
                              "-" if e.incident is None else number(e.incident), change(e.baseline, e.incident, e.ratio)] for e in h.evidence])
            lines.append("")
    else:
        lines.append("No significant incident: no cause stands out above the reporting threshold.")
        lines.append("")
        if report.largest_deviations:
            lines.append("Largest deviations seen:")
            lines.append("")
            for f in report.largest_deviations:
                lines.append(f"- {finding_label(f.kind, f.dimension, f.subject)}: {metric_label(f.metric)} "
                             f"{before_after(f.baseline, f.incident, f.metric, f.magnitude)}")
            lines.append("")
    lines += ["## Ruled out (misleading paths)", ""]
    if report.ruled_out:
        lines += [f"- **{r.kind}: {r.subject}**: {r.reason}" for r in report.ruled_out]
    else:
        lines.append("Nothing to rule out: no change events or other tempting explanations in the window.")
    lines.append("")
    if report.incident_detected and report.hypotheses:
        top = report.hypotheses[0]
        lines += ["## Suggested corrective measures", "", "_Suggestions keyed to the cause kind, for the author to edit._", ""]
        lines += [f"- {s}" for s in kind_named(top.kind).suggestions]
        lines.append("")
        chart_finding = next((f for f in top.findings if f.series is not None), None)
        if chart_finding is not None or chart_path is not None:
            lines += ["## Chart", ""]
            if chart_path is not None:
                lines += [f"![Top cause and symptom]({quote(Path(chart_path).as_posix())})", ""]
            if chart_finding is not None:
                lines += _mermaid(chart_finding)
                lines.append("")
    lines += ["## Appendix", ""]
    lines += _table(["input", "format", "rows", "rejected", "first (UTC)", "last (UTC)"],
                    [[s.path, s.format, f"{s.total_rows:,}", str(s.rejected), stamp(s.first_ts), stamp(s.last_ts)] for s in report.inputs])
    lines.append("")
    notes = [f"- {s.path}: {warning}" for s in report.inputs for warning in s.warnings]  # e.g. what a store sampled
    if notes:
        lines += ["Notes on the inputs:", "", *notes, ""]
    if any(basis_of(f.details) for f in report.findings):
        lines += [f"Request aggregates: the vantages whose rows are a sample were read from exact per-bucket aggregates of every request "
                  f"(counts exact; latency quantiles from log-binned histograms, DDSketch's logarithmic mapping, each within "
                  f"{SKETCH_ALPHA:.0%} of the exact quantile; Mann-Whitney U on their bins). Figures that need each request's values "
                  "(a canary split, the time outside the backend) come from the sample; each finding's `basis` says which.", ""]
    if ctx is not None:
        lines.append(f"Method: {ctx.method}; {ctx.bucket_s} s buckets. rca {report.tool_version}.")
    if report.command:
        lines += ["", f"Reproduce: `{report.command}`"]
    lines.append("")
    return "\n".join(lines)
