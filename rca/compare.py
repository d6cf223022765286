"""`rca compare`: a candidate (post-deploy canary or load test) against a baseline, with gates for CI.

Rows, each with request count, error share and p50/p95/p99 and their change:
- per endpoint, from the vantage point that saw most requests on both sides (the same signal and
  service on each side, e.g. the access log), so one request is never counted twice;
- per service, from the requests each service served (again one signal per service), and for a
  service seen only in traces, from its entry spans (roots, or spans called from another service);
- per span operation (service + span name) on self time: these explain regressions, gates skip them.

A vantage whose rows are a sample (`Dataset.request_aggregates` carries it: a ClickHouse store's time
range beyond its sample bound) is read from the aggregates: requests and 5xx shares exact, quantiles from
the latency histograms (within 1%), the test and the bootstrap on their bins; its rows say so in `vantage`.

Confidence: a one-sided Mann-Whitney U test on the durations and seeded bootstrap intervals on the
p50/p95/p99 differences (resamples of at most 2,000 values a side) for the gated rows; a pooled
two-proportion z for error shares. Fewer than `min_samples` on either side gives "not enough data"
instead of a verdict.

Gates (`p95>+20%`, `p99>+50ms`, `error_rate>+1pp`, `count<-50%`, optionally scoped
`endpoint:/api/x p95>+20%` or `service:users p95>+10%`) apply to endpoint and service rows and trip
only on a change beyond the threshold that is also significant (the bootstrap interval of that quantile
excludes zero and, for a rise, p < 0.01; z >= 3 for error shares), so noise passes. Count gates are
judged whenever the baseline has enough samples (a candidate that lost an endpoint has none).

Likely causes of each regressed row: the span operation, inside the row's traces, whose self time per
trace grew most; and errors new in the candidate or much more frequent than the baseline predicts at
the candidate's volume: ERROR/FATAL log templates (mined by `detectors.templates.add_templates`) of the
row's services or traces, failing spans at the origin of their trace's errors, and 5xx status codes.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from rca.aggregates import bin_value_expr, sketch_bin_expr
from rca.detectors.histograms import mann_whitney_binned
from rca.detectors.stats import (
    aggregated_vantages,
    carried_expr,
    mann_whitney_p,
    poisson_excess_z,
    two_proportion_z,
)
from rca.errors import InputError, UsageError
from rca.model import Dataset, RequestAggregates

SCHEMA_VERSION = 1
METRICS = ("p50", "p95", "p99", "error_rate", "count")
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
UNITS = {"p50": ("%", "ms"), "p95": ("%", "ms"), "p99": ("%", "ms"), "error_rate": ("pp",), "count": ("%",)}
GATED = ("endpoint", "service")  # row scopes the gates judge; operation rows only explain
SIGNIFICANT_P = 0.01
ERROR_Z = 3.0
ERROR_LEVELS = ("ERROR", "FATAL")
NEW_ERROR_MIN = 5  # a new error needs at least this many occurrences in the candidate,
NEW_ERROR_RATIO = 3.0  # this many times what the baseline predicts at the candidate's volume,
NEW_ERROR_Z = 4.0  # and this Poisson excess z
NEW_ERRORS_PER_SOURCE = {"log": 2, "span": 1, "http": 1}
EDGE_ORDER = ("access_log", "trace", "app_log", "otlp_log", "text_log", "syslog")  # vantage preference on equal counts
SELF_TIME_MIN_MS = 1.0  # a span is named for self time per trace grown by at least this much
SELF_TIME_MIN_SHARE = 0.1  # and by this share of what it was
EXAMPLES = "e.g. 'p95>+20%', 'p99>+50ms', 'error_rate>+1pp', 'count<-50%', 'endpoint:/api/x p95>+10%', 'service:users p95>+10%'"


# --- gates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """One threshold: metric, direction and size of change that fails the pipeline, optionally scoped."""

    text: str
    metric: str
    op: str  # ">" or "<"
    value: float  # signed
    unit: str  # "%", "ms" or "pp"
    scope: str | None = None  # the endpoint or service the gate is limited to
    scope_kind: str | None = None  # "endpoint" | "service" when scoped

    def applies_to(self, row: Row) -> bool:
        """Whether this gate judges `row` (gated scopes only; a scoped gate only its own subject)."""
        if row.scope not in GATED:
            return False
        return self.scope_kind is None or (row.scope == self.scope_kind and row.subject == self.scope)


_SCOPED = re.compile(r"^(?P<kind>[A-Za-z_]+):(?P<subject>\S+)\s+(?P<body>\S.*)$")
_METRIC = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>.*)$")
_CHANGE = re.compile(r"^\s*(?P<op>[<>])\s*(?P<sign>[+-])(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|ms|pp)\s*$")


def parse_gate(text: str) -> Gate:
    """`p95>+20%`, `p99>+50ms`, `error_rate>+1pp`, `count<-50%`, optionally `endpoint:/x ` or `service:x `."""
    body, kind, scope = text.strip(), None, None
    scoped = _SCOPED.match(body)
    if scoped:
        kind, scope, body = scoped["kind"], scoped["subject"], scoped["body"]
        if kind not in GATED:
            raise UsageError(f"bad gate {text!r}: unknown scope {kind + ':'!r}; use endpoint:ROUTE or service:NAME")
    if re.fullmatch(r"(endpoint|service):\S+", body):
        raise UsageError(f"bad gate {text!r}: a scope needs a gate after it, e.g. '{body} p95>+10%'")
    named = _METRIC.match(body)
    if not named:
        raise UsageError(f"bad gate {text!r}: give a metric and a change, {EXAMPLES}")
    metric = named["metric"]
    if metric not in METRICS:
        raise UsageError(f"bad gate {text!r}: unknown metric {metric!r}; use p50, p95, p99, error_rate or count")
    change = _CHANGE.match(named["rest"])
    if not change:
        raise UsageError(f"bad gate {text!r}: write {metric}, then > or <, then a signed change with a unit ({EXAMPLES})")
    if change["unit"] not in UNITS[metric]:
        points = " (percentage points)" if metric == "error_rate" else ""
        raise UsageError(f"bad gate {text!r}: {metric} takes a change in {' or '.join(UNITS[metric])}{points}")
    value = float(change["value"]) * (1 if change["sign"] == "+" else -1)
    return Gate(text=text.strip(), metric=metric, op=change["op"], value=value, unit=change["unit"], scope=scope, scope_kind=kind)


def gates_from_config(directory: Path) -> list[str]:
    """Gates from `rca.toml` (`[gates] fail_on = [...]`) or else `pyproject.toml` (`[tool.rca.gates]`)."""
    for name, keys in (("rca.toml", ("gates",)), ("pyproject.toml", ("tool", "rca", "gates"))):
        path = directory / name
        if not path.is_file():
            continue
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise UsageError(f"{path}: cannot read gates: {exc}") from None
        for key in keys:
            table = table.get(key, {}) if isinstance(table, dict) else {}
        fail_on = table.get("fail_on", []) if isinstance(table, dict) else []
        if not isinstance(fail_on, list) or not all(isinstance(g, str) for g in fail_on):
            raise UsageError(f"{path}: [{'.'.join(keys)}] fail_on must be a list of strings like {EXAMPLES[5:]}")
        if name == "rca.toml" or fail_on:
            return list(fail_on)
    return []


def check_comparable(data: Dataset, side: str) -> None:
    """Raise InputError when one side holds nothing to compare (no requests and no spans)."""
    if data.requests.height == 0 and data.spans.height == 0:
        other = sum(s.total_rows for s in data.inputs)
        raise InputError(
            f"{side}: no requests or spans to compare" + (f" ({other:,} other rows read)" if other else ""),
            hint="compare reads access logs, request logs and traces",
        )


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """A likely cause of a regression: a span whose self time grew, or an error new in the candidate."""

    kind: str  # "self_time" | "new_error"
    source: str  # "span" (self time or error status), "log" (error template), "http" (status code)
    subject: str  # operation "service name", error template, or "HTTP 503"
    baseline: float  # self time per trace (ms) or occurrences in the baseline
    candidate: float
    text: str
    expected: float | None = None  # new errors: baseline occurrences scaled to the candidate's volume
    where: str | None = None  # the service that logged the error
    example: str | None = None  # one message of the template, as logged
    dependency: str | None = None  # the peer service a span operation calls (postgres, redis, ...)


@dataclass(frozen=True)
class Row:
    """One subject's figures on both sides, their change and its confidence."""

    scope: str  # "endpoint" | "service" | "operation"
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
    likely_cause: str | None = None  # the texts of likely_causes, joined
    vantage: str = ""  # where the figures come from: "access_log access", "trace entry spans", ...
    change: dict[str, float] = field(default_factory=dict)  # p50_ms, p50_pct, ..., error_rate_pp, count_pct
    delta_ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # per quantile, ms
    status: str = "not gated"  # "regressed" | "pass" | "not enough data" | "absent in candidate" | "absent in baseline" | "not gated"
    likely_causes: tuple[Cause, ...] = ()


@dataclass(frozen=True)
class GateResult:
    """One gate judged on one row."""

    gate: str
    subject: str
    observed: str
    failed: bool
    scope: str = "endpoint"
    change: float | None = None  # in the gate's unit
    significant: bool = False


@dataclass(frozen=True)
class GateSummary:
    """One gate over all the rows it applies to."""

    gate: str
    checked: int
    failed_on: tuple[str, ...]  # "endpoint /api/x", "service users"
    not_judged: int  # rows it applies to that had not enough data
    status: str  # "pass" | "fail" | "not judged"


@dataclass(frozen=True)
class Comparison:
    """Everything one `rca compare` run concluded; renderers draw it and compute nothing new."""

    rows: tuple[Row, ...]
    gates: tuple[GateResult, ...]
    not_enough: tuple[str, ...]
    strict: bool = False
    notes: tuple[str, ...] = ()
    skipped: tuple[GateResult, ...] = ()  # gate x row pairs not judged for lack of data
    summaries: tuple[GateSummary, ...] = ()
    vantage: dict[str, str] = field(default_factory=dict)  # "endpoint" -> "access_log access"
    min_samples: int = 30

    @property
    def failed(self) -> bool:
        return any(g.failed for g in self.gates) or (self.strict and bool(self.not_enough))

    @property
    def verdict(self) -> str:
        return "fail" if self.failed else "pass"

    @property
    def headline(self) -> str:
        """The verdict in one line."""
        failed = [g for g in self.gates if g.failed]
        lacking = f"; not enough data for {len(self.not_enough)} subject(s)" if self.not_enough else ""
        if failed:
            first = failed[0]
            more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
            return f"FAIL: {first.gate} failed on {first.scope} {first.subject}{more}: {first.observed}{lacking}"
        if self.failed:
            return f"FAIL (--strict): not enough data for {len(self.not_enough)} subject(s) (need {self.min_samples} a side)"
        if not self.summaries:
            return f"pass: no gates given (--fail-on, rca.toml or [tool.rca.gates]); figures only{lacking}"
        if not self.gates:
            return f"pass: nothing could be judged{lacking or ''}"
        return f"pass: {len(self.summaries)} gate(s) held on {len(self.gates)} check(s){lacking}"


# --- statistics -------------------------------------------------------------------------------------


def _bootstrap_deltas(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, rounds: int = 300,
                      cap: int = 2000, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of candidate - baseline p50/p95/p99 (ms)."""
    a = a if a.size <= cap else rng.choice(a, cap, replace=False)
    b = b if b.size <= cap else rng.choice(b, cap, replace=False)
    probs = list(QUANTILES.values())
    qa = np.quantile(a[rng.integers(0, a.size, (rounds, a.size))], probs, axis=1)
    qb = np.quantile(b[rng.integers(0, b.size, (rounds, b.size))], probs, axis=1)
    tail = (1 - level) / 2
    out = {}
    for i, name in enumerate(QUANTILES):
        delta = qb[i] - qa[i]
        out[name] = (round(float(np.quantile(delta, tail)), 2), round(float(np.quantile(delta, 1 - tail)), 2))
    return out


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {k: round(float(np.quantile(values, q)), 2) for k, q in QUANTILES.items()}


def _changes(qb: dict[str, float], qc: dict[str, float], eb: float | None, ec: float | None, nb: int, nc: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in QUANTILES:
        if name in qb and name in qc:
            out[f"{name}_ms"] = round(qc[name] - qb[name], 2)
            out[f"{name}_pct"] = round((qc[name] - qb[name]) / max(qb[name], 1e-9) * 100.0, 2)
    if eb is not None and ec is not None:
        out["error_rate_pp"] = round((ec - eb) * 100.0, 3)
    if nb:
        out["count_pct"] = round((nc - nb) / nb * 100.0, 2)
    return out


def _row(scope: str, subject: str, b_dur: np.ndarray, c_dur: np.ndarray, b_err: np.ndarray, c_err: np.ndarray,
         min_samples: int, rng: np.random.Generator, vantage: str) -> Row:
    enough = b_dur.size >= min_samples and c_dur.size >= min_samples
    # only gated rows need the (costlier) bootstrap intervals
    cis = _bootstrap_deltas(b_dur, c_dur, rng) if enough and scope in GATED else {}
    p = mann_whitney_p(b_dur, c_dur) if enough else 1.0
    nb, nc = b_err.size, c_err.size
    kb, kc = int(b_err.sum()), int(c_err.sum())
    eb = round(kb / nb, 5) if nb else None
    ec = round(kc / nc, 5) if nc else None
    qb, qc = _quantiles(b_dur), _quantiles(c_dur)
    return Row(
        scope=scope, subject=subject, n_baseline=int(b_dur.size), n_candidate=int(c_dur.size), enough_data=enough,
        error_rate_baseline=eb, error_rate_candidate=ec,
        error_z=round(two_proportion_z(kb, nb, kc, nc), 2) if nb and nc else 0.0,
        quantiles_baseline=qb, quantiles_candidate=qc, p95_delta_ci=cis.get("p95"), p_value=float(f"{p:.3g}"),
        vantage=vantage, change=_changes(qb, qc, eb, ec, int(b_dur.size), int(c_dur.size)), delta_ci=cis,
        status="not enough data" if not enough else "not gated",
    )


# --- where the rows come from -----------------------------------------------------------------------

_EMPTY_REQUESTS = pl.DataFrame(schema={"duration_ms": pl.Float64, "status": pl.Int32})


def _choose_vantages(base: pl.DataFrame, cand: pl.DataFrame, subject: str, keys: list[str]) -> dict[str, tuple[tuple, tuple]]:
    """Per subject (endpoint or service), the vantage (values of `keys`, e.g. signal and service) that
    saw most of its requests over both sides, preferring one present on both; else each side's own.
    `base` and `cand`: requests (`len`) per subject and vantage (`_request_counts`)."""
    where = [subject, *keys]
    counts = (
        base.rename({"len": "b"}).join(cand.rename({"len": "c"}), on=where, how="full", coalesce=True, nulls_equal=True)
        .filter(pl.col(subject).is_not_null())
        .with_columns(pl.col("b").fill_null(0), pl.col("c").fill_null(0))
        .with_columns(both=(pl.col("b") > 0) & (pl.col("c") > 0), total=pl.col("b") + pl.col("c"))
    )
    # on a tie the outermost vantage wins: what the proxy logged includes everything behind it
    rank = pl.col("signal").replace_strict(EDGE_ORDER, list(range(len(EDGE_ORDER))), default=len(EDGE_ORDER), return_dtype=pl.Int32)
    counts = counts.with_columns(_rank=rank)
    order = [subject, "both", "total", "_rank", *keys]
    counts = counts.sort(order, descending=[False, True, True, False, *([False] * len(keys))], nulls_last=True)
    chosen: dict[str, tuple[tuple, tuple]] = {}
    for name, group in counts.group_by(subject, maintain_order=True):
        best = group.row(0, named=True)
        if best["both"]:
            pair = tuple(best[k] for k in keys)
            chosen[name[0]] = (pair, pair)
            continue

        def own(column: str, group: pl.DataFrame = group) -> tuple:
            side = group.filter(pl.col(column) > 0).sort([column, "_rank", *keys], descending=[True, False, *([False] * len(keys))],
                                                         nulls_last=True)
            return tuple(side.row(0, named=True)[k] for k in keys) if side.height else ()

        chosen[name[0]] = (own("b"), own("c"))
    return chosen


def _parts(frame: pl.DataFrame, where: list[str]) -> dict[tuple, pl.DataFrame]:
    return frame.partition_by(where, as_dict=True) if frame.height else {}


def _request_counts(rows: pl.DataFrame, aggregates: RequestAggregates | None, scope: str, keys: list[str]) -> pl.DataFrame:
    """Requests (`len`) per subject of `scope` and vantage (`keys`): from the rows, or from the aggregates for
    the vantages they carry (whose rows are a sample)."""
    where = [scope, *keys]
    carried = aggregated_vantages(aggregates)
    if aggregates is None or not carried:
        return rows.group_by(where).len()
    from_rows = rows.filter(~carried_expr(carried)).group_by(where).len()
    from_aggregates = (
        aggregates.counts.filter(pl.col("dimension") == scope)
        .group_by(pl.col("value").alias(scope), *keys).agg(pl.col("requests").sum().cast(pl.UInt32).alias("len"))
    )
    return pl.concat([from_rows.select(*where, "len"), from_aggregates.select(*where, "len")], how="vertical_relaxed")


@dataclass(frozen=True)
class _Histogram:
    """One subject's requests seen from one vantage, as the aggregates keep them: the latency histogram
    (each bin's value, ascending, and its requests), and the requests with a status and their 5xx."""

    values: np.ndarray
    counts: np.ndarray
    with_status: int
    errors: int

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def _histogram(aggregates: RequestAggregates | None, scope: str, subject: str, vantage: tuple[str, str | None] | None,
               rows: pl.DataFrame) -> _Histogram:
    """One side of a subject: from the aggregates when they carry its vantage (signal, service), else its
    rows binned alike."""
    if aggregates is not None and vantage is not None and vantage in aggregated_vantages(aggregates):
        mine = (pl.col("dimension") == scope) & (pl.col("value") == subject) & (pl.col("signal") == vantage[0])
        if scope == "endpoint":
            mine = mine & pl.col("service").eq_missing(vantage[1])
        counts = aggregates.counts.filter(mine).select(pl.col("with_status").sum(), pl.col("errors").sum()).row(0)
        bins = aggregates.sketches.filter(mine & (pl.col("metric") == "duration_ms")).group_by("bin").agg(pl.col("count").sum())
        with_status, errors = int(counts[0] or 0), int(counts[1] or 0)
    else:
        bins = rows.filter(pl.col("duration_ms").is_not_null()).group_by(sketch_bin_expr(pl.col("duration_ms")).alias("bin")).len("count")
        statuses = rows["status"].drop_nulls()
        with_status, errors = statuses.len(), int((statuses >= 500).sum())
    bins = bins.sort("bin").with_columns(bin_value_expr(pl.col("bin")).alias("value"))
    return _Histogram(bins["value"].to_numpy(), bins["count"].to_numpy().astype(np.int64), with_status, errors)


def _aligned(a: _Histogram, b: _Histogram) -> tuple[np.ndarray, np.ndarray]:
    """The two histograms' counts over the union of their bins (values ascending)."""
    values = np.union1d(a.values, b.values)
    out = []
    for h in (a, b):
        counts = np.zeros(values.size, dtype=np.float64)
        counts[np.searchsorted(values, h.values)] = h.counts
        out.append(counts)
    return out[0], out[1]


def _histogram_quantiles(h: _Histogram) -> dict[str, float]:
    """p50/p95/p99 of a histogram interpolated between the order statistics around q * (n - 1), as
    `np.quantile` does on the rows: each order statistic is its bin's value, within 1% of the request's."""
    if h.n == 0:
        return {}
    cum = np.cumsum(h.counts)
    out = {}
    for name, q in QUANTILES.items():
        rank = q * (h.n - 1)
        low, high = (float(h.values[int(np.searchsorted(cum, r, side="right"))]) for r in (math.floor(rank), math.ceil(rank)))
        out[name] = round(low + (rank - math.floor(rank)) * (high - low), 2)
    return out


def _bootstrap_histograms(a: _Histogram, b: _Histogram, rng: np.random.Generator, rounds: int = 300, cap: int = 2000,
                          level: float = 0.95) -> dict[str, tuple[float, float]]:
    """`_bootstrap_deltas` on histograms: each round draws min(n, cap) requests of each side from its bins
    (multinomial), as the rows' bootstrap resamples a subsample of at most `cap` values."""
    per_side = []
    for h in (a, b):
        m = min(h.n, cap)
        cum = np.cumsum(rng.multinomial(m, h.counts / h.n, size=rounds), axis=1)
        per_side.append(np.array([h.values[(cum > math.floor(q * (m - 1) + 0.5)).argmax(axis=1)] for q in QUANTILES.values()]))
    tail = (1 - level) / 2
    out = {}
    for i, name in enumerate(QUANTILES):
        delta = per_side[1][i] - per_side[0][i]
        out[name] = (round(float(np.quantile(delta, tail)), 2), round(float(np.quantile(delta, 1 - tail)), 2))
    return out


def _histogram_row(scope: str, subject: str, hb: _Histogram, hc: _Histogram, min_samples: int, rng: np.random.Generator, vantage: str) -> Row:
    """`_row` of a subject whose requests (on either side) the aggregates carry: counts exact, quantiles
    from the latency histograms (within 1%), Mann-Whitney U and the bootstrap on their bins."""
    enough = hb.n >= min_samples and hc.n >= min_samples
    cis = _bootstrap_histograms(hb, hc, rng) if enough and scope in GATED else {}
    p = mann_whitney_binned(*_aligned(hb, hc), max_n=3000) if enough else 1.0
    eb = round(hb.errors / hb.with_status, 5) if hb.with_status else None
    ec = round(hc.errors / hc.with_status, 5) if hc.with_status else None
    qb, qc = _histogram_quantiles(hb), _histogram_quantiles(hc)
    return Row(
        scope=scope, subject=subject, n_baseline=hb.n, n_candidate=hc.n, enough_data=enough,
        error_rate_baseline=eb, error_rate_candidate=ec,
        error_z=round(two_proportion_z(hb.errors, hb.with_status, hc.errors, hc.with_status), 2) if hb.with_status and hc.with_status else 0.0,
        quantiles_baseline=qb, quantiles_candidate=qc, p95_delta_ci=cis.get("p95"), p_value=float(f"{p:.3g}"),
        vantage=f"{vantage}, from its aggregates", change=_changes(qb, qc, eb, ec, hb.n, hc.n), delta_ci=cis,
        status="not enough data" if not enough else "not gated",
    )


def _sided_rows(scope: str, base: Dataset, cand: Dataset, keys: list[str], min_samples: int, rng: np.random.Generator,
                notes: list[str]) -> tuple[list[Row], dict[tuple[str, str], _Sides], set[str]]:
    """Rows of one scope from the requests frames, each subject from its own vantage point; a vantage the
    request aggregates carry (its rows a sample) from them (`_histogram_row`)."""
    rb, rc = base.requests, cand.requests
    chosen = _choose_vantages(_request_counts(rb, base.request_aggregates, scope, keys), _request_counts(rc, cand.request_aggregates, scope, keys), scope, keys)
    carried = aggregated_vantages(base.request_aggregates) | aggregated_vantages(cand.request_aggregates)
    where = [scope, *keys]
    parts_b, parts_c = _parts(rb, where), _parts(rc, where)
    rows, sides, names, differ = [], {}, set(), []
    for subject in sorted(chosen):
        pair_b, pair_c = chosen[subject]
        b = parts_b.get((subject, *pair_b), _EMPTY_REQUESTS) if pair_b else _EMPTY_REQUESTS
        c = parts_c.get((subject, *pair_c), _EMPTY_REQUESTS) if pair_c else _EMPTY_REQUESTS
        signal, service = (*(pair_b or pair_c), None, None)[:2]
        name = _vantage_name(signal, service, scope=scope, subject=subject)
        if pair_b and pair_c and pair_b != pair_c:
            signal, service = (*pair_c, None, None)[:2]
            other = _vantage_name(signal, service, scope=scope, subject=subject)
            differ.append(f"{subject}: {name} vs {other}")
            name = f"{name} vs {other}"
        names.add(name)
        vantages = [(str(pair[0]), subject if scope == "service" else pair[1]) if pair else None for pair in (pair_b, pair_c)]
        if any(v in carried for v in vantages):
            hb = _histogram(base.request_aggregates, scope, subject, vantages[0], b)
            hc = _histogram(cand.request_aggregates, scope, subject, vantages[1], c)
            rows.append(_histogram_row(scope, subject, hb, hc, min_samples, rng, name))
        else:
            rows.append(_row(scope, subject, *_pair(b, c), min_samples, rng, name))
        sides[(scope, subject)] = _Sides(b, c, "status")
    if differ:
        notes.append(f"{len(differ)} {scope}(s) seen from different sources on each side, so their figures compare "
                     f"different vantage points (e.g. {differ[0]})")
    return rows, sides, names


def _vantage_name(signal: str | None, service: str | None, scope: str = "endpoint", subject: str = "") -> str:
    """`access_log (access)`, `trace (gateway)`; a service row names only its signal's service (itself)."""
    if scope == "service":
        service = subject
    return f"{signal or 'unknown signal'} ({service})" if service else str(signal or "unknown signal")


def _durations(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame["duration_ms"].drop_nulls().to_numpy(), (frame["status"].drop_nulls() >= 500).to_numpy()


def _by(frame: pl.DataFrame, key: str) -> dict[str, pl.DataFrame]:
    if frame.height == 0:
        return {}
    return {k[0]: v for k, v in frame.filter(pl.col(key).is_not_null()).partition_by(key, as_dict=True).items()}


def _entry_spans(spans: pl.DataFrame) -> pl.DataFrame:
    """Spans that start a service's work: roots, and spans whose parent belongs to another service."""
    parents = spans.select("trace_id", pl.col("span_id").alias("parent_span_id"), pl.col("service").alias("_parent_service")).unique(
        subset=["trace_id", "parent_span_id"], keep="first")
    joined = spans.join(parents, on=["trace_id", "parent_span_id"], how="left")
    return joined.filter(pl.col("parent_span_id").is_null() | ~pl.col("_parent_service").eq_missing(pl.col("service")))


@dataclass(frozen=True)
class _Sides:
    """The rows behind one gated subject, kept to look for new 5xx codes when it regresses."""

    baseline: pl.DataFrame
    candidate: pl.DataFrame
    status_column: str


def _request_rows(base: Dataset, cand: Dataset, min_samples: int, rng: np.random.Generator, notes: list[str],
                  vantage: dict[str, str]) -> tuple[list[Row], dict[tuple[str, str], _Sides]]:
    rows, sides, names = _sided_rows("endpoint", base, cand, ["signal", "service"], min_samples, rng, notes)
    if names:
        vantage["endpoint"] = next(iter(names)) if len(names) == 1 else "per endpoint: " + ", ".join(sorted(names)[:5])
    service_rows, service_sides, _ = _sided_rows("service", base, cand, ["signal"], min_samples, rng, notes)
    rows += service_rows
    sides.update(service_sides)
    services = {r.subject for r in service_rows}
    # services seen only in traces (no server spans, so no requests): their entry spans
    span_services = set(base.spans["service"].drop_nulls().unique()) | set(cand.spans["service"].drop_nulls().unique())
    only_spans = sorted(span_services - services)
    if only_spans:
        entry_b, entry_c = _entry_spans(base.spans), _entry_spans(cand.spans)
        for service in only_spans:
            b = entry_b.filter(pl.col("service") == service)
            c = entry_c.filter(pl.col("service") == service)
            rows.append(_row("service", service, b["duration_ms"].drop_nulls().to_numpy(), c["duration_ms"].drop_nulls().to_numpy(),
                             (b["status"] == "error").to_numpy(), (c["status"] == "error").to_numpy(), min_samples, rng,
                             "trace entry spans"))
            sides[("service", service)] = _Sides(b, c, "http_status")
    return rows, sides


def _pair(b: pl.DataFrame, c: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    b_dur, b_err = _durations(b)
    c_dur, c_err = _durations(c)
    return b_dur, c_dur, b_err, c_err


def _operation_rows(base: Dataset, cand: Dataset, min_samples: int, rng: np.random.Generator) -> list[Row]:
    op = pl.concat_str([pl.col("service"), pl.lit(" "), pl.col("name")]).alias("op")
    by_b, by_c = _by(base.spans.with_columns(op), "op"), _by(cand.spans.with_columns(op), "op")
    rows = []
    for operation in sorted(set(by_b) & set(by_c)):
        b, c = by_b[operation], by_c[operation]
        rows.append(_row("operation", operation, b["self_ms"].drop_nulls().to_numpy(), c["self_ms"].drop_nulls().to_numpy(),
                         (b["status"] == "error").to_numpy(), (c["status"] == "error").to_numpy(), min_samples, rng,
                         "trace self time"))
    return rows


# --- likely causes ----------------------------------------------------------------------------------

_OP = pl.concat_str([pl.col("service"), pl.lit(" "), pl.col("name")])


def _traces_of(data: Dataset, row: Row) -> pl.Series:
    """Trace ids of the row's requests: server spans of the endpoint, or any span of the service."""
    spans, requests = data.spans, data.requests
    if row.scope == "endpoint":
        ids = spans.filter((pl.col("kind") == "server") & (pl.col("http_route") == row.subject))["trace_id"]
        linked = requests.filter(pl.col("endpoint") == row.subject)["trace_id"]
    else:
        ids = spans.filter(pl.col("service") == row.subject)["trace_id"]
        linked = requests.filter(pl.col("service") == row.subject)["trace_id"]
    return pl.concat([ids, linked]).drop_nulls().unique().sort()


def _services_of(data: Dataset, row: Row) -> set[str]:
    if row.scope == "service":
        return {row.subject}
    served = data.requests.filter(pl.col("endpoint") == row.subject)["service"].drop_nulls().unique().to_list()
    spans = data.spans.filter((pl.col("kind") == "server") & (pl.col("http_route") == row.subject))
    return set(served) | set(spans["service"].drop_nulls().unique().to_list())


def _self_time_cause(base: Dataset, cand: Dataset, traces_b: pl.Series, traces_c: pl.Series) -> Cause | None:
    """The span operation whose self time per trace grew most."""
    def per_trace(data: Dataset, ids: pl.Series) -> pl.DataFrame:
        inside = data.spans.filter(pl.col("trace_id").is_in(ids.implode()))
        return inside.group_by(_OP.alias("op")).agg(
            (pl.col("self_ms").sum() / max(ids.len(), 1)).alias("after"),
            peer=pl.col("peer_service").drop_nulls().mode().sort().first(),
        )

    c = per_trace(cand, traces_c)
    if c.height == 0:
        return None
    b = per_trace(base, traces_b).rename({"after": "before"}).drop("peer")
    joined = c.join(b, on="op", how="left").with_columns(pl.col("before").fill_null(0.0)).with_columns(
        grew=pl.col("after") - pl.col("before")).sort(["grew", "op"], descending=[True, False])
    op, after, before, grew, peer = joined.select("op", "after", "before", "grew", "peer").row(0)
    if grew is None or grew < max(SELF_TIME_MIN_MS, SELF_TIME_MIN_SHARE * before):
        return None  # nothing grew beyond noise (an error-only regression)
    calls = f"calls {peer}; " if peer else ""
    return Cause(kind="self_time", source="span", subject=op, baseline=round(before, 2), candidate=round(after, 2),
                 dependency=peer, text=f"{op} ({calls}self time per trace {before:.1f} -> {after:.1f} ms)")


def _is_new(candidate: int, expected: float) -> tuple[bool, float]:
    z = poisson_excess_z(candidate, expected)
    new = candidate >= NEW_ERROR_MIN and candidate >= NEW_ERROR_RATIO * max(expected, 0.5) and z >= NEW_ERROR_Z
    return new, z


def _new_counts(counts: pl.DataFrame, scale: float) -> list[tuple[float, dict]]:
    """(z, row) for the keys of `counts` (columns b, c) whose candidate count is new or much higher."""
    found = []
    for rec in counts.iter_rows(named=True):
        expected = rec["b"] * scale
        new, z = _is_new(rec["c"], expected)
        if new:
            found.append((z, {**rec, "expected": round(expected, 2)}))
    return sorted(found, key=lambda item: (-item[0], str(item[1]["key"])))


def _log_errors(base: Dataset, cand: Dataset, services: set[str], traces_b: pl.Series, traces_c: pl.Series, scale: float) -> list[tuple[float, Cause]]:
    from rca.detectors.templates import add_templates

    def errors(data: Dataset, ids: pl.Series, side: str) -> pl.DataFrame:
        events = data.events.filter(pl.col("level").is_in(ERROR_LEVELS) & pl.col("message").is_not_null() & (pl.col("message") != ""))
        linked = pl.col("service").is_in(sorted(services)) | pl.col("trace_id").is_in(ids.implode())
        return events.filter(linked).select("service", "message", side=pl.lit(side))

    frame = pl.concat([errors(base, traces_b, "b"), errors(cand, traces_c, "c")])
    if frame.filter(pl.col("side") == "c").height < NEW_ERROR_MIN:
        return []
    tagged = add_templates(frame).with_columns(first=pl.col("message").str.split("\n").list.first().str.strip_chars())
    counts = tagged.group_by("template_id").agg(
        key=pl.col("template").first(),
        b=(pl.col("side") == "b").sum(),
        c=(pl.col("side") == "c").sum(),
        example=pl.col("first").filter(pl.col("side") == "c").mode().sort().first(),
        where=pl.col("service").filter(pl.col("side") == "c").drop_nulls().mode().sort().first(),
    )
    out = []
    for z, rec in _new_counts(counts, scale):
        where = f" in {rec['where']}" if rec["where"] else ""
        example = _clip(rec["example"] or rec["key"])
        out.append((z, Cause(kind="new_error", source="log", subject=rec["key"], baseline=rec["b"], candidate=rec["c"],
                             expected=rec["expected"], where=rec["where"], example=rec["example"],
                             text=f"new error{where}: `{example}` x{rec['c']} (baseline {rec['b']})")))
    return out


def _span_errors(base: Dataset, cand: Dataset, traces_b: pl.Series, traces_c: pl.Series, scale: float) -> list[tuple[float, Cause]]:
    def origins(data: Dataset, ids: pl.Series, side: str) -> pl.DataFrame:
        failing = data.spans.filter(pl.col("trace_id").is_in(ids.implode()) & (pl.col("status") == "error"))
        parents = failing.select("trace_id", pl.col("parent_span_id").alias("span_id")).drop_nulls()
        # the deepest failing spans: no failing child of their own
        return failing.join(parents, on=["trace_id", "span_id"], how="anti").select(key=_OP, side=pl.lit(side))

    frame = pl.concat([origins(base, traces_b, "b"), origins(cand, traces_c, "c")])
    counts = frame.group_by("key").agg(b=(pl.col("side") == "b").sum(), c=(pl.col("side") == "c").sum())
    return [(z, Cause(kind="new_error", source="span", subject=rec["key"], baseline=rec["b"], candidate=rec["c"],
                      expected=rec["expected"], text=f"new error: span `{rec['key']}` status error x{rec['c']} (baseline {rec['b']})"))
            for z, rec in _new_counts(counts, scale)]


def _http_errors(sides: _Sides | None, scale: float) -> list[tuple[float, Cause]]:
    if sides is None:
        return []
    column = sides.status_column
    frame = pl.concat([
        sides.baseline.select(key=pl.col(column).cast(pl.Int64), side=pl.lit("b")),
        sides.candidate.select(key=pl.col(column).cast(pl.Int64), side=pl.lit("c")),
    ]).filter(pl.col("key") >= 500)
    counts = frame.group_by("key").agg(b=(pl.col("side") == "b").sum(), c=(pl.col("side") == "c").sum())
    return [(z, Cause(kind="new_error", source="http", subject=f"HTTP {rec['key']}", baseline=rec["b"], candidate=rec["c"],
                      expected=rec["expected"], text=f"new error: HTTP {rec['key']} x{rec['c']} (baseline {rec['b']})"))
            for z, rec in _new_counts(counts, scale)]


def _clip(text: str, limit: int = 120) -> str:
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def likely_causes(base: Dataset, cand: Dataset, row: Row, sides: _Sides | None = None) -> tuple[Cause, ...]:
    """Why `row` regressed: the span whose self time per trace grew most, then errors new in the candidate."""
    traces_b, traces_c = _traces_of(base, row), _traces_of(cand, row)
    causes: list[Cause] = []
    self_time = _self_time_cause(base, cand, traces_b, traces_c)
    if self_time is not None:
        causes.append(self_time)
    scale = row.n_candidate / row.n_baseline if row.n_baseline else 1.0
    services = _services_of(base, row) | _services_of(cand, row)
    found = {
        "log": _log_errors(base, cand, services, traces_b, traces_c, scale),
        "span": _span_errors(base, cand, traces_b, traces_c, scale),
        "http": _http_errors(sides, scale),
    }
    for source, limit in NEW_ERRORS_PER_SOURCE.items():
        causes.extend(cause for _, cause in found[source][:limit])
    return tuple(causes)


# --- the comparison ---------------------------------------------------------------------------------


def _evaluate(gate: Gate, row: Row) -> GateResult:
    if gate.metric == "error_rate":
        before, after = row.error_rate_baseline or 0.0, row.error_rate_candidate or 0.0
        change = (after - before) * 100.0
        significant = row.error_z >= ERROR_Z if gate.op == ">" else row.error_z <= -ERROR_Z
        observed = f"error rate {100 * before:.2f}% -> {100 * after:.2f}% ({change:+.2f}pp, z={row.error_z:.1f})"
    elif gate.metric == "count":
        change = (row.n_candidate - row.n_baseline) / max(row.n_baseline, 1) * 100.0
        significant = True
        observed = f"requests {row.n_baseline} -> {row.n_candidate} ({change:+.1f}%)"
    else:
        before, after = row.quantiles_baseline[gate.metric], row.quantiles_candidate[gate.metric]
        change = (after - before) if gate.unit == "ms" else (after - before) / max(before, 1e-9) * 100.0
        lo, hi = row.delta_ci.get(gate.metric, (0.0, 0.0))
        significant = (lo > 0 and row.p_value < SIGNIFICANT_P) if gate.op == ">" else hi < 0
        observed = (f"{gate.metric} {before:.1f} -> {after:.1f} ms ({change:+.1f}{gate.unit}; {gate.metric} delta 95% CI "
                    f"{lo:+.1f}..{hi:+.1f} ms, p={row.p_value:.2g})")
    exceeded = change > gate.value if gate.op == ">" else change < gate.value
    return GateResult(gate=gate.text, subject=row.subject, observed=observed, failed=bool(exceeded and significant),
                      scope=row.scope, change=round(change, 3), significant=bool(significant))


def _matches_nothing(gate: Gate, rows: list[Row]) -> str:
    """A scoped gate naming no subject of the data (a typo) would pass forever: say which ones exist."""
    known = sorted({r.subject for r in rows if r.scope == gate.scope_kind})
    close = difflib.get_close_matches(gate.scope or "", known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
    return (f"gate {gate.text!r} matches no {gate.scope_kind} in the data{hint} "
            f"({gate.scope_kind}s: {listed or 'none'})")


def _side_missing(row: Row) -> str | None:
    """`absent in candidate` / `absent in baseline` when a subject has no sample at all on one side."""
    if row.n_candidate == 0 and row.n_baseline > 0:
        return "absent in candidate"
    if row.n_baseline == 0 and row.n_candidate > 0:
        return "absent in baseline"
    return None


def _judgeable(gate: Gate, row: Row, min_samples: int) -> bool:
    return row.enough_data or (gate.metric == "count" and row.n_baseline >= min_samples)


def _status(row: Row, results: list[GateResult]) -> str:
    mine = [g for g in results if g.scope == row.scope and g.subject == row.subject]
    if any(g.failed for g in mine):
        return "regressed"
    if not row.enough_data:
        return _side_missing(row) or "not enough data"
    return "pass" if mine else "not gated"


def compare_datasets(base: Dataset, cand: Dataset, gates: list[Gate], min_samples: int = 30, strict: bool = False, seed: int = 0) -> Comparison:
    """Compare candidate to baseline per endpoint, service and span operation, and evaluate the gates."""
    if min_samples < 2:
        raise UsageError(f"--min-samples must be at least 2, got {min_samples}")
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    vantage: dict[str, str] = {}
    rows, sides = _request_rows(base, cand, min_samples, rng, notes, vantage)
    rows += _operation_rows(base, cand, min_samples, rng)
    results: list[GateResult] = []
    skipped: list[GateResult] = []
    summaries: list[GateSummary] = []
    for gate in gates:
        applies = [row for row in rows if gate.applies_to(row)]
        if gate.scope_kind and not applies:
            raise UsageError(_matches_nothing(gate, rows))
        judged = [_evaluate(gate, row) for row in applies if _judgeable(gate, row, min_samples)]
        lacking = [GateResult(gate=gate.text, subject=row.subject, scope=row.scope, failed=False,
                              observed=f"{_side_missing(row) or 'not enough data'} ({row.n_baseline} vs {row.n_candidate} samples"
                                       + (")" if _side_missing(row) else f", need {min_samples} a side)"))
                   for row in applies if not _judgeable(gate, row, min_samples)]
        results += judged
        skipped += lacking
        failed_on = tuple(f"{g.scope} {g.subject}" for g in judged if g.failed)
        status = "fail" if failed_on else ("pass" if judged else "not judged")
        summaries.append(GateSummary(gate=gate.text, checked=len(judged), failed_on=failed_on, not_judged=len(lacking), status=status))
    regressed = {(g.scope, g.subject) for g in results if g.failed}
    final = []
    for row in rows:
        row = replace(row, status=_status(row, results))
        if (row.scope, row.subject) in regressed:
            causes = likely_causes(base, cand, row, sides.get((row.scope, row.subject)))
            row = replace(row, likely_causes=causes, likely_cause="; ".join(c.text for c in causes) or None)
        final.append(row)
    not_enough = tuple(f"{r.scope} {r.subject} ({r.n_baseline} vs {r.n_candidate} samples"
                       + (f", {_side_missing(r)})" if _side_missing(r) else ")") for r in final
                       if r.scope in GATED and not r.enough_data)
    return Comparison(rows=tuple(final), gates=tuple(results), not_enough=not_enough, strict=strict, notes=tuple(notes),
                      skipped=tuple(skipped), summaries=tuple(summaries), vantage=vantage, min_samples=min_samples)


__all__ = ["Cause", "Comparison", "Gate", "GateResult", "GateSummary", "Row", "check_comparable", "compare_datasets",
           "gates_from_config", "likely_causes", "parse_gate"]
