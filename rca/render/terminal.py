"""Terminal report (rich): headline, ranked causes, timeline, sparklines, ruled-out paths, inputs.

Colour follows rich's console: none when NO_COLOR is set, when stdout is not a terminal, or with
`--color never`. Times are UTC (stated), durations in ms, ratios as x12.3.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rca.figures import METRIC_UNITS, before_after, change, finding_label, metric_label
from rca.model import Finding, Hypothesis, Report, Series
from rca.render import hhmm, number, quantity, time_range, times_for

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


def series_unit(finding: Finding) -> str:
    """The unit of a finding's per-bucket series: a rate's series counts per bucket, not per minute."""
    if finding.metric.endswith("_per_min") and finding.series is not None:
        return f" {metric_label(finding.metric)} per {finding.series.bucket_s} s"
    return "%" if finding.metric == "error_rate" else METRIC_UNITS.get(finding.metric, "")


def _short(f: Finding) -> str:
    base = "none" if not f.baseline else quantity(f.baseline, f.metric)
    inc = "-" if f.incident is None else quantity(f.incident, f.metric)
    share = f", {100 * f.share_explained:.0f}% of excess" if f.share_explained is not None and f.kind == "traffic_spike" else ""
    return f"{metric_label(f.metric)}: {base} -> {inc} ({change(f.baseline, f.incident, f.magnitude)}){share}; {f.signal.replace('_', ' ')}"


def _symptom_series(report: Report) -> Finding | None:
    symptoms = [f for f in report.findings if f.kind == "latency_shift" and f.series is not None]
    return max(symptoms, key=lambda f: (f.confidence, f.magnitude), default=None)


def render_terminal(report: Report, console: Console) -> None:
    """Draw the report on `console`."""
    with times_for(report.context):
        _render_terminal(report, console)


def _hanging(console: Console, lead: str, text: str, style: str = "") -> None:
    """`lead` then `text`, wrapped lines indented under the text's start (never back to column 0)."""
    grid = Table.grid(padding=0)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold", ratio=1)
    grid.add_row(Text(lead, style=style), Text(text))
    console.print(grid)


def _signals(console: Console, report: Report, top: Hypothesis) -> None:
    """Each series on its own line, at the console's width: a label line, then the sparkline unwrapped."""
    console.print(Text("Signals (per bucket)", style="italic"))
    cause = next((f for f in top.findings if f.series is not None), None)
    width = max(16, console.width - 4)
    for label, finding in (("cause", cause), ("symptom", _symptom_series(report))):
        if finding is None or finding.series is None:
            continue
        scale = 100.0 if finding.metric == "error_rate" else 1.0  # a rate's series holds fractions
        vals = [scale * v for v in finding.series.values if v is not None]
        rng = f"{number(min(vals))} .. {number(max(vals))}{series_unit(finding)}" if vals else "no values"
        _hanging(console, f"  {label}: ", f"{metric_label(finding.metric)} {finding.subject} ({rng})")
        console.print(Text("    " + sparkline(finding.series, width), no_wrap=True, overflow="crop"), no_wrap=True, crop=True)


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
        table = Table(title="Likely causes, best first (times UTC)", title_justify="left", show_lines=False)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("kind", overflow="fold", max_width=12)
        table.add_column("subject", overflow="fold", max_width=24)
        table.add_column("onset", no_wrap=True)
        table.add_column("score", justify="right", no_wrap=True)
        table.add_column("evidence", overflow="fold")
        for h in report.hypotheses[:8]:
            table.add_row(str(h.rank), h.kind.replace("_", " "),
                          h.subject + (f" @ {h.where}" if h.where and h.kind == "resource_exhaustion" else ""),
                          hhmm(h.onset).removesuffix(" UTC"), f"{h.score:.2f}",
                          (_short(h.findings[0]) if h.findings else "") + (f"; likely an effect of #{h.effect_of}" if h.effect_of else ""))
        console.print(table)
        top = report.hypotheses[0]
        if top.explains:
            _hanging(console, "Explains: ", "; ".join(top.explains[:5]))
        console.print()
        _signals(console, report, top)
        console.print()
    elif report.largest_deviations:
        console.print("Largest deviations seen (none passes the reporting threshold):")
        for f in report.largest_deviations:
            _hanging(console, "  - ", f"{finding_label(f.kind, f.dimension, f.subject)}: {metric_label(f.metric)} "
                     f"{before_after(f.baseline, f.incident, f.metric, f.magnitude)}")
        console.print()
    if report.timeline:
        console.print(Text("Timeline (UTC)", style="bold"))
        for entry in report.timeline[:20]:
            ref = f"  [{entry.ref}]" if entry.ref else ""
            _hanging(console, f"  {entry.ts.strftime('%Y-%m-%d %H:%M:%S')}  {entry.what:8} ", entry.text + ref)
        console.print()
    if report.ruled_out:
        console.print(Text("Ruled out", style="bold"))
        for r in report.ruled_out:
            _hanging(console, "  - ", r.reason)
        console.print()
    console.print(Text("Inputs", style="bold"))
    for s in report.inputs:
        span = "no timed rows"
        if s.first_ts and s.last_ts:  # the end's date only when it differs from the start's
            end = f"{s.last_ts:%H:%M}" if s.last_ts.date() == s.first_ts.date() else f"{s.last_ts:%Y-%m-%d %H:%M}"
            span = f"{s.first_ts:%Y-%m-%d %H:%M} .. {end} UTC"
        rejected = f"{s.rejected:,} rejected"
        if s.rejected_examples:
            rejected += " (line " + ", ".join(str(r.line) for r in s.rejected_examples[:3]) + f": {s.rejected_examples[0].reason})"
        parts = [f"{s.format}, {s.total_rows:,} rows, {rejected}, {span}"]
        parts += [f"warning: {w}" for w in s.warnings[:1]]
        if s.top_endpoints:
            parts.append("top endpoints: " + ", ".join(f"{k} ({v:,})" for k, v in s.top_endpoints[:3]))
        if s.top_sources:
            parts.append("top sources: " + ", ".join(f"{k} ({v:,})" for k, v in s.top_sources[:3]))
        _hanging(console, "  ", s.path)
        _hanging(console, "      ", "; ".join(parts))
