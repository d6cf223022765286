"""Golden files of the terminal report at a narrow and a wide width, as rich's own tests do: a console of
fixed width, no terminal, no colour, so the text is the same on every machine. The incident is the one
of the JSON and Markdown goldens. Regenerate on purpose with `UPDATE_GOLDEN=1 python -m pytest
tests/render/test_terminal_golden.py`."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from rca.render.terminal import render_terminal

# the incident of the JSON and Markdown goldens, analysed once per module
from tests.render.test_report_golden import GOLDEN, report  # noqa: F401


def _terminal_text(report, width: int) -> str:  # noqa: F811 (the imported fixture)
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None, legacy_windows=False,
                      no_color=True, highlight=False, emoji=False)
    render_terminal(report, console)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 100, 140])
def test_terminal_golden(report, width):  # noqa: F811 (the imported fixture)
    """Issue #18 item 11 too: sparklines unbroken, timeline, ruled-out and Explains lines indented under
    their text, the kind column whole (nothing cut with an ellipsis), nothing past the width."""
    text = _terminal_text(report, width)
    assert all(len(line) <= width for line in text.splitlines())
    assert "…" not in text
    path = GOLDEN / f"report.terminal.{width}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs from the golden file (UPDATE_GOLDEN=1 to accept on purpose)"
