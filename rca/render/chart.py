"""`--chart PATH`: the top cause's series and the strongest symptom's, as SVG or PNG (matplotlib, Agg).

Deterministic output: a fixed SVG hash salt and no date metadata, so the same report gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from rca.model import Report


def write_chart(report: Report, path: Path) -> Path:
    """Write the chart for `report` to `path` (.svg or .png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    matplotlib.rcParams["svg.hashsalt"] = "rca"
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    plotted = False
    cause = None
    if report.hypotheses:
        cause = next((f for f in report.hypotheses[0].findings if f.series is not None), None)
    symptom = max((f for f in report.findings if f.kind == "latency_shift" and f.series is not None),
                  key=lambda f: (f.confidence, f.magnitude), default=None)
    if cause is not None and cause.series is not None:
        # matplotlib takes datetimes through its unit converters; its stubs only say float
        ax.plot(cause.series.timestamps(), [float("nan") if v is None else v for v in cause.series.values],  # type: ignore[arg-type]
                color="tab:red", label=f"cause: {cause.metric} {cause.subject}"[:70])
        ax.set_ylabel(cause.metric)
        plotted = True
    if symptom is not None and symptom.series is not None:
        ax2 = ax.twinx() if plotted else ax
        ax2.plot(symptom.series.timestamps(), [float("nan") if v is None else v for v in symptom.series.values],  # type: ignore[arg-type]
                 color="tab:blue", label=f"symptom: p95 ms {symptom.subject}"[:70])
        ax2.set_ylabel("p95 ms")
        plotted = True
    if report.context is not None:
        ax.axvspan(report.context.incident.start, report.context.incident.end, color="0.92", zorder=0)  # type: ignore[arg-type]
    ax.set_title(report.headline[:100], fontsize=9)
    ax.set_xlabel("time (UTC)")
    if plotted:
        fig.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    metadata = {"Date": None} if path.suffix.lower() == ".svg" else {}
    fig.savefig(path, format=path.suffix.lstrip(".").lower() or "svg", metadata=metadata)
    plt.close(fig)
    return path
