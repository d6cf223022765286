"""Log templates: group free-text messages into templates, then find new, bursting and error templates.

Method (Drain-like in quality, but cost grows with distinct messages, not lines):
1. Mask the obvious variables with vectorized polars regexes (IPs, UUIDs, hex, numbers, paths with
   numbers, quoted values...) so `evicted 512 entries` and `evicted 64 entries` become one string.
2. Take the distinct masked first lines only and mine them in a small Python loop: messages are split
   into tokens, bucketed by (token count, first token), and each joins the most similar template of its
   bucket when at least `SIM_THRESHOLD` of the positions agree (differing positions become `<*>`),
   as Drain's leaf step does.
3. Map every row back to its template with one join; the template id is a short hash of its text.

Detectors on the `events` frame (any signal): per (template, service) counts in baseline and incident,
each input against the seconds of each window its own lines cover (`log_coverage`: a log holding only
the minutes around a fault has no baseline, whatever the metrics' history), a Poisson excess z, a
conditional binomial test so that a short baseline cannot make a template "new", and an onset from the
per-bucket series. `new_template`: absent from the baseline, present in the incident; `template_burst`:
rate up >= 3x with z >= 4; `error_message`: the same tests on templates whose rows are mostly ERROR/FATAL.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from rca.detectors import register
from rca.detectors.stats import (
    binomial_lower_p,
    bucket_expr,
    confidence_from_z,
    dense_series,
    onset_at,
    onset_time,
    per_minute,
    poisson_excess_z,
    to_series,
    weighted_events,
    weighted_mode,
    window_masks,
)
from rca.findings import TemplateDetails
from rca.messages import WILDCARD, first_line_expr, mask_expr
from rca.model import AnalysisContext, Dataset, Finding, Window

__all__ = ["WILDCARD", "add_templates", "detect_templates", "first_line_expr", "mask_expr", "mine"]

SIM_THRESHOLD = 0.5


@dataclass
class _Cluster:
    tokens: list[str]


def _similarity(template: list[str], tokens: list[str]) -> float:
    same = sum(1 for a, b in zip(template, tokens, strict=True) if a in (b, WILDCARD))
    return same / len(tokens) if tokens else 1.0


def mine(masked: list[str], threshold: float = SIM_THRESHOLD) -> dict[str, str]:
    """Map each distinct masked message to its template text (one pass, Drain-like leaf merging)."""
    buckets: dict[tuple[int, str], list[_Cluster]] = {}
    assigned: dict[str, _Cluster] = {}
    for text in masked:
        tokens = text.split(" ") if text else [""]
        head = tokens[0] if not any(ch.isdigit() for ch in tokens[0]) else WILDCARD
        clusters = buckets.setdefault((len(tokens), head), [])
        best, best_sim = None, -1.0
        for cluster in clusters:
            sim = _similarity(cluster.tokens, tokens)
            if sim > best_sim:
                best, best_sim = cluster, sim
        if best is not None and best_sim >= threshold:
            best.tokens = [a if a == b else WILDCARD for a, b in zip(best.tokens, tokens, strict=True)]
        else:
            best = _Cluster(list(tokens))
            clusters.append(best)
        assigned[text] = best
    return {text: " ".join(cluster.tokens) for text, cluster in assigned.items()}


def template_id(template: str) -> str:
    """A short stable id for a template text."""
    return hashlib.blake2b(template.encode(), digest_size=5).hexdigest()


def add_templates(frame: pl.DataFrame, column: str = "message", weight: str | None = None) -> pl.DataFrame:
    """`frame` with `template` and `template_id` columns mined from `column` (null messages stay null).
    With `weight`, a row stands for that many messages (`weighted_events`).

    Masking runs once per distinct first line and mining once per distinct masked line, so repeated
    messages cost a hash lookup.
    """
    first = frame.select(first_line_expr(pl.col(column)).alias("_first"))["_first"]
    if weight is None:
        counted = first.drop_nulls().value_counts(name="_n")
    else:
        counted = (pl.DataFrame({"_first": first, "_w": frame[weight]}).drop_nulls("_first")
                   .group_by("_first").agg(pl.col("_w").sum().cast(pl.UInt32).alias("_n")))
    shapes = counted.with_columns(mask_expr(pl.col("_first")).alias("_masked"))
    # Most frequent masked shapes first, so a template starts from a typical member.
    order = shapes.group_by("_masked").agg(pl.col("_n").sum()).sort("_n", "_masked", descending=[True, False])
    mapping = mine(order["_masked"].to_list())
    templates = pl.DataFrame(
        {"_masked": list(mapping), "template": list(mapping.values())},
        schema={"_masked": pl.String, "template": pl.String},
    ).with_columns(pl.col("template").map_elements(template_id, return_dtype=pl.String).alias("template_id"))
    lookup = shapes.select("_first", "_masked").join(templates, on="_masked", how="left").drop("_masked")
    joined = frame.with_columns(first.alias("_first")).join(
        lookup, on="_first", how="left", maintain_order="left"
    )
    return joined.drop("_first")


MIN_EVENTS = 5
MIN_RATIO = 3.0
MIN_Z = 4.0
MAX_FINDINGS = 8
MAX_P = 0.5 * math.erfc(MIN_Z / math.sqrt(2))  # the one-sided tail of MIN_Z, for the conditional test
_ORIGIN = pl.coalesce("origin", pl.lit("?")).alias("_origin")


def log_coverage(events: pl.DataFrame, context: AnalysisContext) -> pl.DataFrame:
    """Per input (`_origin`), the seconds of the baseline and of the incident its own lines cover: from its
    first line to its last, less the data's gaps. A log that begins with the incident (its collection
    started late, or it holds only the minutes around a fault) has no baseline of its own: the analysis
    windows are chosen from the signal with the longest history, and comparing with seconds it never
    covered would make every template look new. Inputs covering no second of either window are left out."""
    last = pl.col("last_ts") if "last_ts" in events.columns else pl.col("ts")  # a counted key's last event (weighted_events)
    extents = events.group_by(_ORIGIN).agg(pl.col("ts").min().alias("first"), last.max().alias("last")).sort("_origin")
    rows = []
    for origin, first, last in extents.iter_rows():
        end = last + timedelta(microseconds=1)  # its last line is inside what it covers
        base_s, inc_s = (context.observed_s(Window(max(w.start, first), min(w.end, end))) if min(w.end, end) > max(w.start, first) else 0.0
                         for w in (context.baseline, context.incident))
        if base_s > 0 and inc_s > 0:
            rows.append((origin, base_s, inc_s))
    return pl.DataFrame(rows, schema={"_origin": pl.String, "base_s": pl.Float64, "inc_s": pl.Float64}, orient="row")


@register("templates", order=40)
def detect_templates(dataset: Dataset, context: AnalysisContext) -> list[Finding]:
    """new_template, template_burst and error_message findings over the events frame."""
    events = weighted_events(dataset).filter(pl.col("message").is_not_null() & (pl.col("message") != ""))
    if events.height == 0:
        return []
    coverage = log_coverage(events, context)
    if coverage.height == 0:
        return []
    windowed = events.filter(
        (pl.col("ts") >= context.baseline.start) & (pl.col("ts") < context.baseline.end)
        | (pl.col("ts") >= context.incident.start) & (pl.col("ts") < context.incident.end)
    )
    if windowed.height == 0:
        return []
    tagged = add_templates(windowed, weight="n").with_columns(
        pl.coalesce("service", "host", pl.lit("?")).alias("where"), bucket_expr(context), _ORIGIN
    )
    in_base = (pl.col("ts") >= context.baseline.start) & (pl.col("ts") < context.baseline.end)
    in_inc = (pl.col("ts") >= context.incident.start) & (pl.col("ts") < context.incident.end)
    # per input first: each compares its incident with its own baseline, over the seconds it covered of each
    per_input = ["template_id", "where", "_origin"]
    per_origin = (
        tagged.group_by(per_input)
        .agg(
            pl.col("template").first(),
            pl.col("n").filter(in_base).sum().alias("b"),
            pl.col("n").filter(in_inc).sum().alias("i"),
            pl.col("n").sum().alias("rows"),
            pl.col("n").filter(pl.col("level").is_in(["ERROR", "FATAL"])).sum().alias("errors"),
            pl.col("message").filter(in_inc).first().alias("example"),
        )
        .join(weighted_mode(tagged, per_input, "signal", in_inc), on=per_input, how="left", nulls_equal=True)
        .join(weighted_mode(tagged, per_input, "host", in_inc), on=per_input, how="left", nulls_equal=True)
        .join(coverage, on="_origin", how="inner")  # an input without baseline or incident seconds compares nothing
        .with_columns((pl.col("b") * pl.col("inc_s") / pl.col("base_s")).alias("expected"))
    )
    per = (
        per_origin.sort("i", "_origin", descending=[True, False])
        .group_by("template_id", "where", maintain_order=True)
        .agg(
            pl.col("template").first(), pl.col("b").sum(), pl.col("i").sum(), pl.col("expected").sum(),
            (pl.col("errors").sum() / pl.col("rows").sum()).alias("error_share"),
            pl.col("signal").first(), pl.col("host").first(), pl.col("example").first(),
            pl.col("base_s").max(), pl.col("inc_s").max(),
        )
        .filter(
            (pl.col("i") >= MIN_EVENTS)
            & (pl.col("i") >= MIN_RATIO * pl.max_horizontal(pl.col("expected"), pl.lit(0.5)))
        )
    )
    candidates = []
    for row in per.iter_rows(named=True):
        z = poisson_excess_z(row["i"], row["expected"])
        # the baseline's own length counts: so few events in it, given all of them, must be as unlikely
        # (a template is not "new" for missing from a few seconds of baseline)
        p_short = binomial_lower_p(row["b"], row["b"] + row["i"], row["base_s"] / (row["base_s"] + row["inc_s"]))
        if z >= MIN_Z and p_short <= MAX_P:
            candidates.append((z, row))
    candidates.sort(key=lambda item: (-item[0], item[1]["template"], item[1]["where"]))
    if not candidates:
        return []
    base_mask, inc_mask, grid = window_masks(context)
    keys = pl.DataFrame(
        {
            "template_id": [r["template_id"] for _, r in candidates[: 3 * MAX_FINDINGS]],
            "where": [r["where"] for _, r in candidates[: 3 * MAX_FINDINGS]],
        }
    )
    counts = tagged.join(keys, on=["template_id", "where"]).group_by("template_id", "where", "bucket").agg(pl.col("n").sum().alias("len"))
    series = dense_series(counts, ["template_id", "where"], "len", context)
    findings: list[Finding] = []
    per_kind: dict[str, int] = {}
    for z, row in candidates[: 3 * MAX_FINDINGS]:
        if row["error_share"] is not None and row["error_share"] >= 0.5:
            kind = "error_message"
        elif row["b"] == 0:
            kind = "new_template"
        else:
            kind = "template_burst"
        if per_kind.get(kind, 0) >= MAX_FINDINGS:
            continue
        per_kind[kind] = per_kind.get(kind, 0) + 1
        values = series.get((row["template_id"], row["where"]), np.zeros(len(grid)))
        onset = onset_at(grid, onset_time(values, base_mask, inc_mask), context.bucket_s)
        expected = row["expected"]
        findings.append(
            Finding(
                detector="templates",
                kind=kind,
                dimension="template",
                subject=row["template"],
                metric="events_per_min",
                onset=onset,
                baseline=per_minute(row["b"], row["base_s"]),
                incident=per_minute(row["i"], row["inc_s"]),
                magnitude=round(row["i"] / max(expected, 0.5), 3),
                confidence=confidence_from_z(z),
                signal=row["signal"] or "text_log",
                where=row["where"],
                excess=float(row["i"] - expected),
                series=to_series(values, grid, context, f"{row['template'][:40]}, {row['where']}"),
                details=TemplateDetails(
                    template_id=row["template_id"],
                    events_before=int(row["b"]),
                    events_after=int(row["i"]),
                    new=row["b"] == 0,
                    error_share=round(float(row["error_share"] or 0.0), 3),
                    host=row["host"],
                    example=(row["example"] or "").split("\n")[0][:160],
                    z=round(z, 1),
                ),
            )
        )
    return findings
