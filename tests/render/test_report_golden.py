"""Golden files for the JSON and Markdown reports, and the JSON Schema check.

The incident is written here, seeded, independent of the simulator: an hour of access log in which a
partner address starts calling one endpoint at 12:35 and latency follows, and an app log announcing a
deploy at 12:25 that changes nothing. Regenerate on purpose with `UPDATE_GOLDEN=1 python -m pytest
tests/render/test_report_golden.py`.
"""

from __future__ import annotations

import os
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import orjson
import pytest

from rca.pipeline import analyze
from rca.render.json import render_json
from rca.render.markdown import render_markdown

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SCHEMA = Path(__file__).resolve().parent.parent.parent / "rca" / "report.schema.json"
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ROUTES = ["/api/messages/{}", "/api/users/{}", "/api/rooms", "/api/files/{}"]


def write_incident(directory: Path) -> None:
    rng = random.Random(7)
    clients = [f"81.2.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(40)]
    access, app = [], []
    for second in range(3600):
        t = START + timedelta(seconds=second)
        surge = second >= 35 * 60
        n = 2 + (rng.random() < 0.5)
        calls = [(rng.choice(clients), rng.choice(ROUTES), "Mozilla/5.0 Firefox/120.0") for _ in range(n)]
        if surge:
            calls += [("203.0.113.9", ROUTES[0], "AcmeSync/2.1") for _ in range(6)]
        load = 1.0 + (0.0 if not surge else min(1.0, (second - 35 * 60) / 120) * 4.0)
        for ip, route, ua in calls:
            ms = rng.lognormvariate(3.5, 0.3) * load
            status = 503 if rng.random() < 0.002 * load else 200
            stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000")
            path = route.format(rng.randint(1, 9999))
            access.append(f'{ip} - - [{stamp}] "GET {path} HTTP/1.1" {status} 512 "-" "{ua}" {ms / 1000:.3f} {ms / 1000 - 0.001:.3f}')
        if second % 60 == 0:
            version = "2.3.1" if second >= 25 * 60 else "2.3.0"
            app.append(orjson.dumps({"ts": t.isoformat(), "level": "info", "service": "access", "service.version": version,
                                     "msg": "heartbeat"}).decode())
        if second == 25 * 60:
            app.append(orjson.dumps({"ts": t.isoformat(), "level": "info", "service": "access", "msg": "deployed access v2.3.1"}).decode())
    (directory / "access.log").write_text("\n".join(access) + "\n")
    (directory / "app.jsonl").write_text("\n".join(app) + "\n")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden")
    write_incident(directory)
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return analyze(["access.log", "app.jsonl"])
    finally:
        os.chdir(cwd)


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept on purpose)"


def test_report_finds_the_partner_and_rules_out_the_deploy(report):
    assert report.incident_detected
    top = report.hypotheses[0]
    assert (top.kind, top.subject) == ("traffic_surge", "203.0.113.9")
    assert abs((top.onset - (START + timedelta(minutes=35))).total_seconds()) <= 120
    assert any(r.kind == "deploy" and "v2.3.1" in r.subject for r in report.ruled_out)


def test_json_golden_and_schema(report):
    text = render_json(report).decode()
    jsonschema.validate(orjson.loads(text), orjson.loads(SCHEMA.read_bytes()))
    _check("report.json", text)


def test_markdown_golden(report):
    _check("report.md", render_markdown(report))


def test_markdown_renders_as_github_would(report, tmp_path):
    """Item 11 / done-when: the Markdown pastes cleanly: a CommonMark renderer with GitHub's tables makes
    every table a table with as many cells per row as its header, no pipe or backtick left raw in a
    cell, and the image link relative to the Markdown file."""
    from markdown_it import MarkdownIt

    text = render_markdown(report, chart_path=Path("../img/chart.png"))
    html = MarkdownIt("commonmark").enable("table").render(text)
    tables = html.count("<table>")
    assert tables == text.count("\n|---") + text.count("\n| ---")
    for table in html.split("<table>")[1:]:
        body = table.split("</table>")[0]
        header = len(re.findall(r"<th[ >]", body.split("</thead>")[0]))
        for row in body.split("<tbody>")[-1].split("<tr>")[1:]:
            assert len(re.findall(r"<td[ >]", row)) == header, row
    assert '<img src="../img/chart.png" alt="Top cause and symptom"' in html
    assert "```" not in html and "\x1b" not in html


def test_json_is_deterministic(report):
    assert render_json(report) == render_json(report)
