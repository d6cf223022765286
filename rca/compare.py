"""`rca compare`: a candidate (post-deploy canary or load test) against a baseline, with gates for CI.

Per endpoint (requests of each side's edge vantage: the signal/service that saw most requests) and per
span operation (service + span name, on self time), it reports request count, 5xx share and p50/p95/p99
with the change and its confidence: a one-sided Mann-Whitney U test on the durations and a seeded
bootstrap interval on the p95 difference (resamples of at most 2,000 values a side). Fewer than
`min_samples` on either side gives "not enough data" instead of a verdict.

Gates (`p95>+20%`, `p99>+50ms`, `error_rate>+1pp`, `count<-50%`, optionally scoped `endpoint:/api/x p95>+20%`)
trip only on a change that exceeds the threshold AND is significant (the bootstrap interval excludes
zero for quantiles; a two-proportion z >= 3 for error rates), so noise passes. For each regressed
endpoint the likely cause is the span operation, inside traces of that endpoint, whose median self time
per trace grew most.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from detectors.stats import mann_whitney_p, two_proportion_z
from rca.errors import UsageError
from rca.model import Dataset

SCHEMA_VERSION = 1
_GATE = re.compile(r"^\s*(?:endpoint:(?P<scope>\S+)\s+)?(?P<metric>p50|p95|p99|error_rate|count)\s*(?P<op>[<>])\s*(?P<sign>[+-])(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|ms|pp)\s*$")
_UNITS = {"p50": ("%", "ms"), "p95": ("%", "ms"), "p99": ("%", "ms"), "error_rate": ("pp", "%"), "count": ("%",)}


@dataclass(frozen=True)
class Gate:
    """One threshold: metric, direction and size of change that fails the pipeline."""

    text: str
    metric: str
    op: str
    value: float  # signed
    unit: str
    scope: str | None = None


def parse_gate(text: str) -> Gate:
    """`p95>+20%`, `p99>+50ms`, `error_rate>+1pp`, `count<-50%`, optionally `endpoint:/x p95>+20%`."""
    m = _GATE.match(text)
    if not m or m.group("unit") not in _UNITS[m.group("metric")]:
        raise UsageError(f"bad gate {text!r}: use e.g. 'p95>+20%', 'p99>+50ms', 'error_rate>+1pp', 'endpoint:/api/x p95>+20%'")
    value = float(m.group("value")) * (1 if m.group("sign") == "+" else -1)
    return Gate(text=text.strip(), metric=m.group("metric"), op=m.group("op"), value=value, unit=m.group("unit"), scope=m.group("scope"))


def gates_from_config(directory: Path) -> list[str]:
    """Gates from `rca.toml` (`[gates] fail_on = [...]`) or `pyproject.toml` (`[tool.rca.gates] fail_on = [...]`)."""
    rca_toml = directory / "rca.toml"
    if rca_toml.exists():
        data = tomllib.loads(rca_toml.read_text())
        return list(data.get("gates", {}).get("fail_on", []))
    pyproject = directory / "pyproject.toml"
    if pyproject.exists():
        data = tomllib.loads(pyproject.read_text())
        return list(data.get("tool", {}).get("rca", {}).get("gates", {}).get("fail_on", []))
    return []


@dataclass(frozen=True)
class Row:
    scope: str  # "endpoint" | "operation"
    subject: str
    n_baseline: int
    n_candidate: int
    enough_data: bool
    error_rate_baseline: float | None
    error_rate_candidate: float | None
    error_z: float
    quantiles_baseline: dict[str, float]
    quantiles_candidate: dict[str, float]
    p95_delta_ci: tuple[float, float] | None  # bootstrap interval on candidate - baseline p95 (ms)
    p_value: float
    likely_cause: str | None = None


@dataclass(frozen=True)
class GateResult:
    gate: str
    subject: str
    observed: str
    failed: bool


@dataclass
class Comparison:
    rows: list[Row]
    gates: list[GateResult]
    not_enough: list[str]
    strict: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(g.failed for g in self.gates) or (self.strict and bool(self.not_enough))


def _edge(requests: pl.DataFrame) -> pl.DataFrame:
    if requests.height == 0:
        return requests
    signal, service = requests.group_by("signal", "service").len().sort(["len", "signal"], descending=[True, False]).row(0)[:2]
    return requests.filter((pl.col("signal") == signal) & pl.col("service").eq_missing(service))


def _bootstrap_p95_delta(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, rounds: int = 300, cap: int = 2000, level: float = 0.95) -> tuple[float, float]:
    a = a if a.size <= cap else rng.choice(a, cap, replace=False)
    b = b if b.size <= cap else rng.choice(b, cap, replace=False)
    qa = np.quantile(a[rng.integers(0, a.size, (rounds, a.size))], 0.95, axis=1)
    qb = np.quantile(b[rng.integers(0, b.size, (rounds, b.size))], 0.95, axis=1)
    delta = qb - qa
    tail = (1 - level) / 2
    return float(np.quantile(delta, tail)), float(np.quantile(delta, 1 - tail))


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {k: round(float(np.quantile(values, q)), 2) for k, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


def _row(scope, subject, b_dur, c_dur, b_err, c_err, min_samples, rng) -> Row:
    enough = b_dur.size >= min_samples and c_dur.size >= min_samples
    # gates judge endpoints: only they need the (costlier) bootstrap interval
    ci = _bootstrap_p95_delta(b_dur, c_dur, rng) if enough and scope == "endpoint" else None
    p = mann_whitney_p(b_dur, c_dur) if enough else 1.0
    nb, nc = b_err.size, c_err.size
    eb, ec = int(b_err.sum()), int(c_err.sum())
    return Row(
        scope=scope, subject=subject, n_baseline=int(b_dur.size), n_candidate=int(c_dur.size), enough_data=enough,
        error_rate_baseline=round(eb / nb, 5) if nb else None, error_rate_candidate=round(ec / nc, 5) if nc else None,
        error_z=round(two_proportion_z(eb, nb, ec, nc), 2) if nb and nc else 0.0,
        quantiles_baseline=_quantiles(b_dur), quantiles_candidate=_quantiles(c_dur),
        p95_delta_ci=None if ci is None else (round(ci[0], 2), round(ci[1], 2)), p_value=float(f"{p:.3g}"),
    )


def _likely_causes(base: Dataset, cand: Dataset, endpoint: str) -> str | None:
    """The span operation whose self time per trace of `endpoint` grew most."""
    def per_trace(data: Dataset) -> pl.DataFrame:
        spans = data.spans
        if spans.height == 0:
            return pl.DataFrame(schema={"op": pl.String, "self_per_trace": pl.Float64})
        roots = spans.filter((pl.col("kind") == "server") & (pl.col("http_route") == endpoint)).select("trace_id").unique()
        inside = spans.join(roots, on="trace_id", how="semi")
        traces = max(roots.height, 1)
        return inside.group_by(pl.concat_str([pl.col("service"), pl.lit(" "), pl.col("name")]).alias("op")).agg(
            (pl.col("self_ms").sum() / traces).alias("self_per_trace"))

    b, c = per_trace(base), per_trace(cand)
    if c.height == 0:
        return None
    joined = c.join(b, on="op", how="left", suffix="_b").with_columns(
        (pl.col("self_per_trace") - pl.col("self_per_trace_b").fill_null(0.0)).alias("grew")
    ).sort(["grew", "op"], descending=[True, False])
    op, after, before, grew = joined.select("op", "self_per_trace", "self_per_trace_b", "grew").row(0)
    if grew is None or grew <= 0:
        return None
    return f"{op} (self time per trace {before or 0:.1f} -> {after:.1f} ms)"


def compare_datasets(base: Dataset, cand: Dataset, gates: list[Gate], min_samples: int = 30, strict: bool = False, seed: int = 0) -> Comparison:
    """Compare candidate to baseline per endpoint and per span operation, and evaluate the gates."""
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    eb, ec = _edge(base.requests), _edge(cand.requests)
    endpoints = sorted(set(eb["endpoint"].drop_nulls().to_list()) | set(ec["endpoint"].drop_nulls().to_list()))
    for endpoint in endpoints:
        b = eb.filter(pl.col("endpoint") == endpoint)
        c = ec.filter(pl.col("endpoint") == endpoint)
        rows.append(_row("endpoint", endpoint, b["duration_ms"].drop_nulls().to_numpy(), c["duration_ms"].drop_nulls().to_numpy(),
                         (b["status"].drop_nulls() >= 500).to_numpy(), (c["status"].drop_nulls() >= 500).to_numpy(), min_samples, rng))
    op = pl.concat_str([pl.col("service"), pl.lit(" "), pl.col("name")]).alias("op")
    sb, sc = base.spans.with_columns(op), cand.spans.with_columns(op)
    for operation in sorted(set(sb["op"].drop_nulls().to_list()) & set(sc["op"].drop_nulls().to_list())):
        b = sb.filter(pl.col("op") == operation)
        c = sc.filter(pl.col("op") == operation)
        rows.append(_row("operation", operation, b["self_ms"].drop_nulls().to_numpy(), c["self_ms"].drop_nulls().to_numpy(),
                         (b["status"] == "error").to_numpy(), (c["status"] == "error").to_numpy(), min_samples, rng))
    results: list[GateResult] = []
    for gate in gates:
        for row in rows:
            if row.scope != "endpoint" or (gate.scope and gate.scope != row.subject) or not row.enough_data:
                continue
            results.append(_evaluate(gate, row))
    failed_endpoints = {r.subject for r in results if r.failed}
    rows = [
        Row(**{**row.__dict__, "likely_cause": _likely_causes(base, cand, row.subject)}) if row.subject in failed_endpoints and row.scope == "endpoint" else row
        for row in rows
    ]
    not_enough = [f"{r.scope} {r.subject} ({r.n_baseline} vs {r.n_candidate} samples)" for r in rows if not r.enough_data and r.scope == "endpoint"]
    return Comparison(rows=rows, gates=results, not_enough=not_enough, strict=strict)


def _evaluate(gate: Gate, row: Row) -> GateResult:
    if gate.metric == "error_rate":
        before, after = row.error_rate_baseline or 0.0, row.error_rate_candidate or 0.0
        change = (after - before) * 100.0
        significant = abs(row.error_z) >= 3.0
        observed = f"error rate {100 * before:.2f}% -> {100 * after:.2f}% ({change:+.2f}pp, z={row.error_z:.1f})"
    elif gate.metric == "count":
        change = (row.n_candidate - row.n_baseline) / max(row.n_baseline, 1) * 100.0
        significant = True
        observed = f"requests {row.n_baseline} -> {row.n_candidate} ({change:+.1f}%)"
    else:
        before, after = row.quantiles_baseline[gate.metric], row.quantiles_candidate[gate.metric]
        change = (after - before) if gate.unit == "ms" else (after - before) / max(before, 1e-9) * 100.0
        ci = row.p95_delta_ci or (0.0, 0.0)
        significant = (ci[0] > 0 if gate.value > 0 else ci[1] < 0) and row.p_value < 0.01 if gate.metric != "p50" else row.p_value < 0.01
        unit = "ms" if gate.unit == "ms" else "%"
        observed = f"{gate.metric} {before:.1f} -> {after:.1f} ms ({change:+.1f}{unit}; p95 delta 95% CI {ci[0]:+.1f}..{ci[1]:+.1f} ms, p={row.p_value:.2g})"
    exceeded = change > gate.value if gate.op == ">" else change < gate.value
    return GateResult(gate=gate.text, subject=row.subject, observed=observed, failed=bool(exceeded and significant))


# --- output ----------------------------------------------------------------------------------------


def to_dict(comparison: Comparison) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": "fail" if comparison.failed else "pass",
        "gates": [g.__dict__ for g in comparison.gates],
        "not_enough_data": comparison.not_enough,
        "rows": [
            {**{k: v for k, v in r.__dict__.items() if k != "p95_delta_ci"},
             "p95_delta_ci": list(r.p95_delta_ci) if r.p95_delta_ci else None}
            for r in comparison.rows
        ],
    }


def _fmt_row(r: Row) -> list[str]:
    qb, qc = r.quantiles_baseline, r.quantiles_candidate
    p95 = f"{qb.get('p95', float('nan')):.1f} -> {qc.get('p95', float('nan')):.1f}" if qb and qc else "-"
    change = f"{(qc['p95'] - qb['p95']) / max(qb['p95'], 1e-9) * 100:+.1f}%" if qb and qc else "-"
    err = (f"{100 * (r.error_rate_baseline or 0):.2f}% -> {100 * (r.error_rate_candidate or 0):.2f}%"
           if r.error_rate_baseline is not None and r.error_rate_candidate is not None else "-")
    verdict = "not enough data" if not r.enough_data else (f"p={r.p_value:.2g}")
    return [r.scope, r.subject, f"{r.n_baseline} / {r.n_candidate}", p95, change, err, verdict, r.likely_cause or ""]


HEADER = ["scope", "subject", "n base / cand", "p95 ms", "p95 change", "5xx", "confidence", "likely cause"]


def render_markdown(comparison: Comparison) -> str:
    lines = [f"## rca compare: {'FAIL' if comparison.failed else 'pass'}", ""]
    failed = [g for g in comparison.gates if g.failed]
    if failed:
        lines += ["Failed gates:", ""] + [f"- `{g.gate}` on **{g.subject}**: {g.observed}" for g in failed] + [""]
    elif comparison.gates:
        lines += [f"All {len({g.gate for g in comparison.gates})} gate(s) passed.", ""]
    if comparison.not_enough:
        lines += ["Not enough data to judge: " + "; ".join(comparison.not_enough[:20]), ""]
    rows = [r for r in comparison.rows if r.scope == "endpoint"] + [r for r in comparison.rows if r.scope == "operation"][:30]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _fmt_row(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_junit(comparison: Comparison) -> str:
    from xml.sax.saxutils import escape, quoteattr

    cases = []
    for g in comparison.gates:
        name = quoteattr(f"{g.gate} {g.subject}")
        body = f'<failure message={quoteattr(g.observed)}>{escape(g.observed)}</failure>' if g.failed else ""
        cases.append(f"    <testcase classname=\"rca.compare\" name={name}>{body}</testcase>")
    failures = sum(g.failed for g in comparison.gates)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="rca compare" tests="{len(comparison.gates)}" failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def github_annotations(comparison: Comparison) -> list[str]:
    """`::error title=...::message` lines for failed gates (at most 10, GitHub's per-step display limit)."""
    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    return [f"::error title={prop(f'rca gate {g.gate} failed on {g.subject}')}::{data(g.observed)}" for g in comparison.gates if g.failed][:10]


def append_step_summary(markdown: str, path: Path, limit: int = 1_000_000) -> None:
    """Append to $GITHUB_STEP_SUMMARY, truncated with a note to stay under GitHub's 1 MiB limit."""
    text = markdown if len(markdown.encode()) <= limit else markdown.encode()[:limit].decode(errors="ignore") + "\n\n_(truncated)_\n"
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)


__all__ = ["Comparison", "Gate", "compare_datasets", "gates_from_config", "math", "parse_gate"]
