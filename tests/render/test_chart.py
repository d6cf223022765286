"""The chart (issue #18 item 11), checked on the laid-out figure and on the PNG it writes: the title whole
and clear of the legend, a sparse series drawn as points, a quiet run's chart saying so, time ticks as
`08:50` with the date once in the offset."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from rca.pipeline import analyze
from rca.render.chart import chart_figure, write_chart
from rca.simulate import generate


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A surge (dense series), a database slowdown seen in sampled spans (sparse), and a quiet run."""
    out = {}
    for name, scenario, formats in (("surge", "third-party-surge", ("access",)), ("sparse", "dependency-slowdown", ("access", "traces")),
                                    ("quiet", "quiet", ("access",))):
        path = tmp_path_factory.mktemp(name)
        generate(scenario, 5, minutes=60, scale=0.5, formats=formats).write(path)
        out[name] = analyze([str(path / "telemetry")])
    return out


def _boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return renderer, fig.get_window_extent(renderer)


@pytest.mark.parametrize("name", ["surge", "sparse", "quiet"])
def test_title_is_whole_inside_the_figure_and_the_legend_clear_of_it_and_of_the_plot(reports, name):
    fig = chart_figure(reports[name])
    try:
        renderer, page = _boxes(fig)
        title = fig._suptitle
        box = title.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, "title cut"
        assert title.get_text().replace("\n", " ") == reports[name].headline.split(" Largest deviation:")[0]
        for legend in fig.legends:
            legend_box = legend.get_window_extent(renderer)
            assert not legend_box.overlaps(box), "legend over the title"
            assert not legend_box.overlaps(fig.axes[0].get_window_extent(renderer)), "legend over the plot"
    finally:
        plt.close(fig)


def test_time_ticks_read_hours_with_the_date_once(reports):
    fig = chart_figure(reports["surge"])
    try:
        fig.canvas.draw()
        axis = fig.axes[0].xaxis
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        assert labels and all(len(label) == 5 and label[2] == ":" for label in labels), labels  # 08:50, not "12 08:00"
        assert axis.get_major_formatter().get_offset().endswith(" UTC")
    finally:
        plt.close(fig)


def test_a_sparse_series_is_drawn_as_points(reports):
    report = reports["sparse"]
    fig = chart_figure(report)
    try:
        lines = [line for ax in fig.axes for line in ax.get_lines()]
        points = [line for line in lines if line.get_marker() not in (None, "None", "") and line.get_linestyle() == "None"]
        assert points, "a series with empty buckets gets markers, not broken line fragments"
    finally:
        plt.close(fig)


def test_a_quiet_run_says_so_instead_of_an_empty_chart(reports, tmp_path):
    report = reports["quiet"]
    assert not report.incident_detected
    fig = chart_figure(report)
    try:
        drawn = [line for ax in fig.axes for line in ax.get_lines()]
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert drawn or any("No significant incident" in t for t in texts)
    finally:
        plt.close(fig)
    png = write_chart(report, tmp_path / "quiet.png")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_png_svg_and_pdf_are_written_and_svg_is_deterministic(reports, tmp_path):
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        assert write_chart(reports["surge"], tmp_path / f"c{suffix}").read_bytes().startswith(magic)
    again = write_chart(reports["surge"], tmp_path / "d.svg")
    assert again.read_bytes() == (tmp_path / "c.svg").read_bytes()


@pytest.mark.parametrize("name", ["surge", "quiet"])
def test_json_window_times_carry_no_spurious_microseconds(reports, name):
    """Item 11: the window's end was the last row plus a microsecond and the last quarter a fraction of
    the span (`23:50:44.250001Z`); now whole seconds, and times in the data keep their milliseconds."""
    import re

    import orjson

    from rca.render.json import render_json

    data = orjson.loads(render_json(reports[name]))
    window = data["window"]
    for key in ("baseline", "incident", "span"):
        for end in ("start", "end"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", window[key][end]), window[key][end]
    assert all(re.fullmatch(r"[^.]+(\.\d{3}|\.\d{6})?Z", i["last_ts"]) for i in data["inputs"])
