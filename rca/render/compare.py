"""Renderers of a `Comparison` (`rca compare`): terminal table, JSON, Markdown, JUnit XML and the GitHub
channels (annotations, job summary, step outputs). They lay out what `rca.compare` computed, nothing new.

The JSON is a contract (`rca/compare.schema.json`, `schema_version` 1): fields are only ever added.
Output is byte-identical for the same inputs (sorted keys, rounded floats, no wall clock).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rca.compare import SCHEMA_VERSION, Comparison, GateResult, Row

SECTIONS = (("endpoint", "Endpoints"), ("service", "Services"), ("operation", "Span operations (self time; explain, not gated)"))
STATUS_STYLE = {"regressed": "bold red", "pass": "green", "not enough data": "yellow", "absent in candidate": "yellow",
                "absent in baseline": "yellow", "not gated": "dim"}
UNJUDGED = ("not enough data", "absent in candidate", "absent in baseline")
SUMMARY_LIMIT = 1_000_000  # GitHub refuses job summaries above 1024k


# --- JSON -------------------------------------------------------------------------------------------


def _row_dict(r: Row) -> dict[str, Any]:
    out = asdict(r)
    out["p95_delta_ci"] = list(r.p95_delta_ci) if r.p95_delta_ci else None
    out["delta_ci"] = {k: list(v) for k, v in r.delta_ci.items()} or None
    out["likely_causes"] = [asdict(c) for c in r.likely_causes]
    return out


def to_dict(comparison: Comparison) -> dict[str, Any]:
    """The JSON object of a comparison (see rca/compare.schema.json)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": comparison.verdict,
        "headline": comparison.headline,
        "gates": [asdict(g) for g in comparison.gates],
        "skipped_gates": [asdict(g) for g in comparison.skipped],
        "gate_summary": [{**asdict(s), "failed_on": list(s.failed_on)} for s in comparison.summaries],
        "not_enough_data": list(comparison.not_enough),
        "min_samples": comparison.min_samples,
        "strict": comparison.strict,
        "notes": list(comparison.notes),
        "vantage": dict(comparison.vantage),
        "rows": [_row_dict(r) for r in comparison.rows],
    }


def render_json(comparison: Comparison) -> bytes:
    return orjson.dumps(to_dict(comparison), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


# --- cells shared by the terminal and Markdown ------------------------------------------------------


def _quantile(r: Row, name: str) -> str:
    b, c = r.quantiles_baseline.get(name), r.quantiles_candidate.get(name)
    if b is None or c is None:
        return "-" if b is None and c is None else f"{b if b is not None else '-'} -> {c if c is not None else '-'}"
    pct = r.change.get(f"{name}_pct")
    return f"{b:.1f} -> {c:.1f}" + (f" ({pct:+.1f}%)" if pct is not None else "")


def _errors(r: Row) -> str:
    if r.error_rate_baseline is None or r.error_rate_candidate is None:
        return "-"
    pp = r.change.get("error_rate_pp", 0.0)
    return f"{100 * r.error_rate_baseline:.2f}% -> {100 * r.error_rate_candidate:.2f}% ({pp:+.2f}pp)"


def _confidence(r: Row) -> str:
    if not r.enough_data:
        return r.status if r.status in UNJUDGED else "not enough data"
    ci = r.delta_ci.get("p95")
    return f"p={r.p_value:.2g}" + (f", p95 CI {ci[0]:+.1f}..{ci[1]:+.1f} ms" if ci else "")


def _counts(r: Row) -> str:
    return f"{r.n_baseline} / {r.n_candidate}"


def _ordered(comparison: Comparison, scope: str) -> list[Row]:
    rows = [r for r in comparison.rows if r.scope == scope]
    if scope == "operation":  # the operations that grew most first
        rows.sort(key=lambda r: (-r.change.get("p95_pct", float("-inf")), r.subject))
    return rows


# --- terminal ---------------------------------------------------------------------------------------


def render_terminal(comparison: Comparison, console: Console, max_operations: int = 15) -> None:
    """Verdict first, then the gates with pass/fail, then a table per scope and the likely causes of
    what regressed. Color only where the console has it (a terminal without NO_COLOR)."""
    console.print(Text(f"rca compare: {comparison.headline}", style="bold red" if comparison.failed else "bold green"))
    if comparison.vantage:
        console.print(Text(f"Endpoint figures from {comparison.vantage.get('endpoint', '-')}; at least "
                           f"{comparison.min_samples} samples a side to judge; p = Mann-Whitney, CI = bootstrap 95% "
                           "interval of the p95 change (ms).", style="dim"))
    console.print()
    if comparison.summaries:
        gates = Table(title="Gates", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for name in ("gate", "checked", "failed on", "not enough data", "result"):
            gates.add_column(name, overflow="fold")
        for s in comparison.summaries:
            result = {"fail": Text("FAIL", style="bold red"), "pass": Text("pass", style="green")}.get(
                s.status, Text(s.status, style="yellow"))
            gates.add_row(s.gate, str(s.checked), ", ".join(s.failed_on) or "-", str(s.not_judged), result)
        console.print(gates)
    else:
        console.print(Text("No gates given (--fail-on, rca.toml or [tool.rca.gates]): figures only.", style="yellow"))
    console.print()
    for scope, title in SECTIONS:
        rows = _ordered(comparison, scope)
        if not rows:
            continue
        shown = rows[:max_operations] if scope == "operation" else rows
        quantiles = _quantiles_that_fit(console.width)
        table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column(scope, overflow="fold", min_width=SUBJECT_MIN, ratio=1)
        table.add_column("n b/c", justify="right", no_wrap=True)
        for name in quantiles:
            table.add_column(f"{name} ms", justify="right", no_wrap=True)
        table.add_column("errors" if scope == "operation" else "5xx", justify="right", no_wrap=True)
        table.add_column("p, p95 CI", justify="right", no_wrap=True)
        table.add_column("status", min_width=STATUS_WIDTH, max_width=STATUS_WIDTH, overflow="fold")
        for r in shown:
            status = Text(r.status.upper() if r.status == "regressed" else r.status, style=STATUS_STYLE.get(r.status, ""))
            table.add_row(r.subject, f"{r.n_baseline}/{r.n_candidate}", *(_cell_quantile(r, q) for q in quantiles),
                          _cell_errors(r), _cell_confidence(r), status, style="dim" if r.status in UNJUDGED else None)
        console.print(table)
        if len(rows) > len(shown):
            console.print(Text(f"{len(rows) - len(shown)} more span operation(s) in --format json", style="dim"))
        if len(quantiles) < 3:
            left = " and ".join(q for q in ("p50", "p99") if q not in quantiles)
            console.print(Text(f"{left} in a wider terminal (COLUMNS=120) or --format markdown/json", style="dim"))
        console.print()
    regressed = [r for r in comparison.rows if r.likely_causes]
    if regressed:
        console.print(Text("Likely causes", style="bold"))
        for r in regressed:
            console.print(Text.assemble(("  " + r.scope + " ", "dim"), (r.subject, "bold"), ":"))
            for cause in r.likely_causes:
                console.print(Text(f"    - {cause.text}"))


SUBJECT_MIN = 12  # the subject column folds onto more lines below this width, it is never cut
STATUS_WIDTH = 9  # REGRESSED
# widths of the other columns: n b/c 9, a quantile "68.6 -> 103" 12, 5xx "0.38 -> 0.12%" 13, p and CI 12,
# two spaces between columns
_FIXED_WIDTH = SUBJECT_MIN + 9 + 12 + 13 + 12 + STATUS_WIDTH + 2 * 5


def _quantiles_that_fit(width: int) -> tuple[str, ...]:
    """p95 always (what gates judge most), then p99 and p50 as the terminal's width allows: at 80
    columns a row keeps every figure it shows whole instead of cutting all of them."""
    room = (width - _FIXED_WIDTH - 6) // 14
    return {0: ("p95",), 1: ("p95", "p99")}.get(room, ("p50", "p95", "p99")) if room >= 0 else ("p95",)


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}")


def _cell_quantile(r: Row, name: str) -> str:
    b, c = r.quantiles_baseline.get(name), r.quantiles_candidate.get(name)
    pct = r.change.get(f"{name}_pct")
    return f"{_ms(b)} -> {_ms(c)}" + (f"\n{pct:+.1f}%" if pct is not None else "")


def _cell_errors(r: Row) -> str:
    if r.error_rate_baseline is None or r.error_rate_candidate is None:
        return "-"
    return (f"{100 * r.error_rate_baseline:.2f} -> {100 * r.error_rate_candidate:.2f}%\n"
            f"{r.change.get('error_rate_pp', 0.0):+.2f}pp")


def _cell_confidence(r: Row) -> str:
    if not r.enough_data:
        return "-"
    ci = r.delta_ci.get("p95")
    return f"p={r.p_value:.2g}" + (f"\n{ci[0]:+.1f}..{ci[1]:+.1f}" if ci else "")


# --- Markdown ---------------------------------------------------------------------------------------

HEADER = ["subject", "n base / cand", "p50 ms", "p95 ms", "p99 ms", "5xx", "confidence", "status", "likely cause"]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(comparison: Comparison, max_operations: int = 30) -> str:
    """GitHub-flavoured Markdown: verdict, gates, not-enough-data list and one table per scope."""
    lines = [f"## rca compare: {'FAIL' if comparison.failed else 'pass'}", "", f"**{_md(comparison.headline)}**", ""]
    failed = [g for g in comparison.gates if g.failed]
    rows = {(r.scope, r.subject): r for r in comparison.rows}
    if failed:
        lines += ["Failed gates:", ""]
        for g in failed:
            cause = rows[(g.scope, g.subject)].likely_cause
            lines.append(f"- `{g.gate}` on {g.scope} **{_md(g.subject)}**: {_md(g.observed)}"
                         + (f"; likely cause: {_md(cause)}" if cause else ""))
        lines.append("")
    elif comparison.summaries:
        lines += [f"All {len(comparison.summaries)} gate(s) passed.", ""]
    if comparison.summaries:
        lines += ["| gate | checked | failed on | not enough data | result |", "|---|---|---|---|---|"]
        lines += [f"| `{_md(s.gate)}` | {s.checked} | {_md(', '.join(s.failed_on)) or '-'} | {s.not_judged} | "
                  f"{'**FAIL**' if s.status == 'fail' else s.status} |" for s in comparison.summaries]
        lines.append("")
    if comparison.not_enough:
        more = f" and {len(comparison.not_enough) - 20} more" if len(comparison.not_enough) > 20 else ""
        lines += [f"Not enough data to judge (fewer than {comparison.min_samples} samples a side): "
                  + "; ".join(comparison.not_enough[:20]) + more, ""]
    for note in comparison.notes:
        lines += [f"> {_md(note)}", ""]
    for scope, title in SECTIONS:
        section = _ordered(comparison, scope)
        if not section:
            continue
        shown = section[:max_operations] if scope == "operation" else section
        lines += [f"### {title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        for r in shown:
            status = f"**{r.status.upper()}**" if r.status == "regressed" else (f"_{r.status}_" if r.status in UNJUDGED else r.status)
            cells = [f"`{_md(r.subject)}`", _counts(r), _quantile(r, "p50"), _quantile(r, "p95"), _quantile(r, "p99"),
                     _errors(r), _confidence(r), status, "<br>".join(_md(c.text) for c in r.likely_causes)]
            lines.append("| " + " | ".join(cells) + " |")
        if len(section) > len(shown):
            lines.append(f"\n_{len(section) - len(shown)} more span operation(s) in `--format json`._")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --- JUnit ------------------------------------------------------------------------------------------


def _case_name(g: GateResult) -> str:
    return f"{g.gate} {g.subject}" if g.scope == "endpoint" else f"{g.gate} {g.scope}:{g.subject}"


def render_junit(comparison: Comparison) -> str:
    """One test case per gate and subject; a failure carries the figures and likely cause, too little
    data gives a skipped case."""
    from xml.sax.saxutils import escape, quoteattr

    rows = {(r.scope, r.subject): r for r in comparison.rows}
    cases = []
    for g in comparison.gates:
        body = ""
        if g.failed:
            cause = rows[(g.scope, g.subject)].likely_cause
            text = g.observed + (f"\nlikely cause: {cause}" if cause else "")
            body = f"<failure message={quoteattr(g.observed)}>{escape(text)}</failure>"
        cases.append(f'    <testcase classname="rca.compare" name={quoteattr(_case_name(g))}>{body}</testcase>')
    for g in comparison.skipped:
        cases.append(f'    <testcase classname="rca.compare" name={quoteattr(_case_name(g))}>'
                     f"<skipped message={quoteattr(g.observed)}/></testcase>")
    failures = sum(g.failed for g in comparison.gates)
    total = len(comparison.gates) + len(comparison.skipped)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="rca compare" tests="{total}" failures="{failures}" skipped="{len(comparison.skipped)}">\n'
            + "".join(case + "\n" for case in cases) + "</testsuite>\n")


# --- GitHub -----------------------------------------------------------------------------------------


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(comparison: Comparison, limit: int = 10) -> list[str]:
    """`::error title=...::message` lines for failed gates (at most 10, GitHub's per-step display limit)."""
    rows = {(r.scope, r.subject): r for r in comparison.rows}
    out = []
    for g in comparison.gates:
        if not g.failed:
            continue
        where = g.subject if g.scope == "endpoint" else f"{g.scope} {g.subject}"
        cause = rows[(g.scope, g.subject)].likely_cause
        message = g.observed + (f"; likely cause: {cause}" if cause else "")
        out.append(f"::error title={_prop(f'rca gate {g.gate} failed on {where}')}::{_data(message)}")
    if comparison.failed and not out:  # --strict with too little data
        out.append(f"::error title={_prop('rca compare --strict: not enough data')}::"
                   f"{_data('; '.join(comparison.not_enough[:20]))}")
    return out[:limit]


def github_outputs(comparison: Comparison) -> list[str]:
    """`key=value` lines for $GITHUB_OUTPUT: verdict, failed_gates and, on a failure, top_cause."""
    failed = [g for g in comparison.gates if g.failed]
    lines = [f"verdict={comparison.verdict}", f"failed_gates={len(failed)}"]
    if failed:
        row = next(r for r in comparison.rows if (r.scope, r.subject) == (failed[0].scope, failed[0].subject))
        top = row.likely_causes[0].text if row.likely_causes else f"{failed[0].scope} {failed[0].subject}"
        lines.append("top_cause=" + top.replace("\r", " ").replace("\n", " "))
    return lines


def append_step_summary(markdown: str, path: Path, limit: int = SUMMARY_LIMIT) -> None:
    """Append to $GITHUB_STEP_SUMMARY, truncated with a note to stay under GitHub's 1 MiB limit."""
    data = markdown.encode()
    text = markdown if len(data) <= limit else data[:limit].decode(errors="ignore") + "\n\n_(truncated)_\n"
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)
