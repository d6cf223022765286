"""Terminal report (rich): headline, ranked causes, timeline, sparklines, ruled-out paths, inputs.

Colour follows rich's console: none when NO_COLOR is set, when stdout is not a terminal, or with
`--color never`. Times are UTC (stated), durations in ms, ratios as x12.3.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rca.model import Finding, Report, Series
from rca.render import growth, hhmm, number, quantity, time_range, times_for

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(series: Series, width: int = 48) -> str:
    """Unicode sparkline of a series, resampled to at most `width` characters."""
    values = [v for v in series.values]
    if not values:
        return ""
    step = max(1, -(-len(values) // width))
    chunks = [[v for v in values[i : i + step] if v is not None] for i in range(0, len(values), step)]
    points = [max(c) if c else None for c in chunks]
    finite = [p for p in points if p is not None]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(" " if p is None else _BLOCKS[min(7, int((p - low) / span * 7.999))] for p in points)


def _short(f: Finding) -> str:
    base = "none" if not f.baseline else quantity(f.baseline, f.metric)
    inc = "-" if f.incident is None else quantity(f.incident, f.metric)
    share = f", {100 * f.share_explained:.0f}% of excess" if f.share_explained is not None and f.kind == "traffic_spike" else ""
    return f"{f.metric.split('_per_')[0]}: {base} -> {inc} ({growth(f.baseline, f.magnitude)}){share}; {f.signal.replace('_', ' ')}"


def _symptom_series(report: Report) -> Finding | None:
    symptoms = [f for f in report.findings if f.kind == "latency_shift" and f.series is not None]
    return max(symptoms, key=lambda f: (f.confidence, f.magnitude), default=None)


def render_terminal(report: Report, console: Console) -> None:
    """Draw the report on `console`."""
    with times_for(report.context):
        _render_terminal(report, console)


def _render_terminal(report: Report, console: Console) -> None:
    ctx = report.context
    style = "bold red" if report.incident_detected else "bold green"
    console.print(Text(report.headline, style=style))
    if ctx is not None:
        console.print(
            f"Incident window {time_range(ctx.incident.start, ctx.incident.end)}; baseline "
            f"{time_range(ctx.baseline.start, ctx.baseline.end)}; {ctx.bucket_s} s buckets; {ctx.method}.",
            style="dim", markup=False, highlight=False,
        )
    console.print()
    if report.incident_detected and report.hypotheses:
        table = Table(title="Likely causes, best first", title_justify="left", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("kind")
        table.add_column("subject", overflow="fold")
        table.add_column("onset (UTC)")
        table.add_column("score", justify="right")
        table.add_column("evidence", overflow="fold")
        for h in report.hypotheses[:8]:
            table.add_row(str(h.rank), h.kind, h.subject + (f" @ {h.where}" if h.where and h.kind == "resource_exhaustion" else ""),
                          hhmm(h.onset), f"{h.score:.2f}", _short(h.findings[0]) if h.findings else "")
        console.print(table)
        top = report.hypotheses[0]
        if top.explains:
            console.print("Explains: " + "; ".join(top.explains[:5]), markup=False, highlight=False)
        console.print()
        chart = Table(title="Signals (per bucket)", title_justify="left", show_header=False, box=None)
        chart.add_column("what")
        chart.add_column("series")
        chart.add_column("range", justify="right")
        cause = next((f for f in top.findings if f.series is not None), None)
        for label, finding in (("cause", cause), ("symptom", _symptom_series(report))):
            if finding is None or finding.series is None:
                continue
            vals = [v for v in finding.series.values if v is not None]
            rng = f"{number(min(vals))} .. {number(max(vals))}" if vals else ""
            chart.add_row(f"{label}: {finding.metric} {finding.subject}"[:60], sparkline(finding.series), rng)
        console.print(chart)
        console.print()
    elif report.largest_deviations:
        console.print("Largest deviations seen (none passes the reporting threshold):")
        for f in report.largest_deviations:
            console.print(f"  {f.kind} {f.dimension} {f.subject}: {f.metric} {number(f.baseline)} -> {number(f.incident)} ({growth(f.baseline, f.magnitude)})",
                          markup=False, highlight=False)
        console.print()
    if report.timeline:
        console.print(Text("Timeline (UTC)", style="bold"))
        for entry in report.timeline[:20]:
            ref = f"  [{entry.ref}]" if entry.ref else ""
            console.print(f"  {entry.ts.strftime('%Y-%m-%d %H:%M:%S')}  {entry.what:8} {entry.text}{ref}", markup=False, highlight=False)
        console.print()
    if report.ruled_out:
        console.print(Text("Ruled out", style="bold"))
        for r in report.ruled_out:
            console.print(f"  - {r.reason}", markup=False, highlight=False)
        console.print()
    inputs = Table(title="Inputs", title_justify="left")
    for col in ("path", "format", "rows", "rejected", "time range (UTC)", "top endpoints", "top sources"):
        inputs.add_column(col, overflow="fold")
    for s in report.inputs:
        span = "-"
        if s.first_ts and s.last_ts:  # the end's date only when it differs from the start's
            end = f"{s.last_ts:%H:%M}" if s.last_ts.date() == s.first_ts.date() else f"{s.last_ts:%Y-%m-%d %H:%M}"
            span = f"{s.first_ts:%Y-%m-%d %H:%M} .. {end}"
        rejected = str(s.rejected)
        if s.rejected_examples:
            rejected += " (line " + ", ".join(str(r.line) for r in s.rejected_examples[:3]) + f": {s.rejected_examples[0].reason})"
        if s.warnings:
            rejected += f" {s.warnings[0]}"
        inputs.add_row(
            s.path, s.format, f"{s.total_rows:,}", rejected, span,
            ", ".join(f"{k} ({v:,})" for k, v in s.top_endpoints[:3]),
            ", ".join(f"{k} ({v:,})" for k, v in s.top_sources[:3]),
        )
    console.print(inputs)
