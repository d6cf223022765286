"""`--chart PATH`: the top cause's series and the strongest symptom's, as SVG, PNG or PDF (matplotlib, Agg).

The headline is the title, wrapped on whole lines; the legend sits under the plot, never over the title or
the data. Counts per bucket are drawn as steps; a series with empty buckets as points joined only where
neighbours exist, so a sparse series reads as points, not fragments. A run without an incident draws its
largest deviation, or says there is nothing to draw. Time ticks read `08:45` with the date once (UTC).

Deterministic output: a fixed SVG hash salt and no date metadata, so the same report gives the same bytes.
"""

from __future__ import annotations

import textwrap
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from rca.model import Finding, Report
from rca.render.terminal import metric_label, series_unit

if TYPE_CHECKING:  # matplotlib is imported only when a chart is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STEP_METRICS = ("requests_per_min", "events_per_min", "error_events_per_min", "calls_per_min", "failing_traces")


def _series_to_draw(report: Report) -> tuple[Finding | None, Finding | None]:
    """The top cause's series and the strongest symptom's; without an incident, the largest deviation."""
    symptom = max((f for f in report.findings if f.kind == "latency_shift" and f.series is not None),
                  key=lambda f: (f.confidence, f.magnitude), default=None)
    if report.incident_detected and report.hypotheses:
        return next((f for f in report.hypotheses[0].findings if f.series is not None), None), symptom
    with_series = [f for f in report.largest_deviations if f.series is not None]
    deviation = next((f for f in report.findings if with_series and f.detector == with_series[0].detector
                      and f.subject == with_series[0].subject and f.series is not None), None)
    return deviation, None


def _draw(ax: Axes, finding: Finding, color: str, label: str) -> None:
    import matplotlib.dates as mdates
    import numpy as np

    assert finding.series is not None
    times = np.asarray(mdates.date2num(finding.series.timestamps()), dtype=np.float64)  # matplotlib's own date unit
    values = np.asarray([np.nan if v is None else v for v in finding.series.values], dtype=np.float64)
    finite = np.isfinite(values)
    if finding.metric in STEP_METRICS and finite.all():
        ax.step(times, values, where="post", color=color, label=label, linewidth=1.3)
    elif finite.all():
        ax.plot(times, values, color=color, label=label, linewidth=1.3)
    else:  # empty buckets: every value a point, a thin line only between observed neighbours
        ax.plot(times[finite], values[finite], color=color, linewidth=0.6, alpha=0.5)
        ax.plot(times[finite], values[finite], color=color, marker="o", markersize=2.5, linestyle="none", label=label)
    unit = series_unit(finding).strip().removeprefix(metric_label(finding.metric)).strip()
    ax.set_ylabel(f"{metric_label(finding.metric)} ({unit})" if unit else metric_label(finding.metric), color=color)
    ax.set_ylim(bottom=0)


def write_chart(report: Report, path: Path) -> Path:
    """Write the chart for `report` to `path` (.svg, .png or .pdf)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = chart_figure(report)
    metadata = {"Date": None} if path.suffix.lower() == ".svg" else {"CreationDate": None} if path.suffix.lower() == ".pdf" else {}
    fig.savefig(path, format=path.suffix.lstrip(".").lower() or "svg", metadata=metadata)
    plt.close(fig)
    return path


def chart_figure(report: Report) -> Figure:
    """The chart as a matplotlib figure (Agg), laid out, not saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "rca"
    fig, ax = plt.subplots(figsize=(10, 4.6), dpi=100)
    cause, symptom = _series_to_draw(report)
    axes = []
    if cause is not None:
        role = "cause" if report.incident_detected else "largest deviation"
        _draw(ax, cause, "tab:red", f"{role}: {metric_label(cause.metric)} {cause.subject}"[:80])
        axes.append(ax)
    if symptom is not None:
        other = ax.twinx() if axes else ax
        _draw(other, symptom, "tab:blue", f"symptom: p95 {symptom.subject}"[:80])
        axes.append(other)
    if report.context is not None:
        ctx = report.context
        ax.axvspan(float(mdates.date2num(ctx.incident.start)), float(mdates.date2num(ctx.incident.end)), color="0.93", zorder=0,
                   label="incident window" if report.incident_detected else "window compared")
        ax.set_xlim(float(mdates.date2num(ctx.span.start)), float(mdates.date2num(ctx.span.end)))
    if not axes:
        ax.text(0.5, 0.5, "No significant incident and no deviation to draw.", ha="center", va="center",
                transform=ax.transAxes, fontsize=11, color="0.3")
        ax.set_yticks([])
    title = report.headline if report.incident_detected else report.headline.split(" Largest deviation:")[0]
    fig.suptitle("\n".join(textwrap.wrap(title, 110)[:3]), fontsize=9, x=0.01, ha="left")
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ticks = mdates.ConciseDateFormatter(locator, tz=UTC)
    ticks.offset_formats = ["", "%Y", "%Y-%m", "%Y-%m-%d UTC", "%Y-%m-%d UTC", "%Y-%m-%d %H:%M UTC"]
    ax.xaxis.set_major_formatter(ticks)
    ax.set_xlabel("time (UTC)")
    handles = [h for a in axes or [ax] for h in a.get_legend_handles_labels()[0]]
    labels = [lbl for a in axes or [ax] for lbl in a.get_legend_handles_labels()[1]]
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07 if handles else 0, 1, 1))
    return fig
