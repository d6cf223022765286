"""`analyze`: the product as a library call. Parsers -> frames -> detectors -> findings -> ranker -> report.

    >>> from rca.pipeline import analyze, AnalyzeOptions
    >>> report = analyze(["samples/third-party-surge"], AnalyzeOptions())

The CLI only turns options into an `AnalyzeOptions` and hands the `Report` to a renderer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from rca.model import (
    ANALYZED_METRIC_COLUMNS,
    ANALYZED_REQUEST_COLUMNS,
    MAX_ANALYZED_EVENT_ROWS,
    MAX_ANALYZED_REQUEST_ROWS,
    MAX_ANALYZED_SPANS,
    AnalysisContext,
    Dataset,
    Report,
)
from rca.parsers import ParseOptions

ProgressFn = Callable[[str, int, int], None]  # (stage or file, bytes done, bytes total; 0 when not counted)


@dataclass
class AnalyzeOptions:
    """Everything the user can set for one analysis."""

    parse: ParseOptions = field(default_factory=ParseOptions)
    changes_files: list[str] = field(default_factory=list)  # extra deploy markers (JSON lines or CSV)
    bucket: str | None = None  # "30s", "1m", "5m"; None: chosen from the data
    since: str | None = None  # incident window: RFC 3339, "YYYY-MM-DD HH:MM", or "30m" before data end
    until: str | None = None
    baseline_since: str | None = None
    baseline_until: str | None = None
    command: str | None = None  # the command line, for the report's appendix


def analyzed_request_rows() -> int:
    """The request rows of one input analysis keeps (MAX_ANALYZED_REQUEST_ROWS, or RCA_MAX_REQUEST_ROWS)."""
    text = os.environ.get("RCA_MAX_REQUEST_ROWS", "")
    return int(text) if text.strip().isdigit() and int(text) > 0 else MAX_ANALYZED_REQUEST_ROWS


def analyzed_spans() -> int:
    """The spans of one trace input analysis keeps (MAX_ANALYZED_SPANS, or RCA_MAX_SPANS)."""
    text = os.environ.get("RCA_MAX_SPANS", "")
    return int(text) if text.strip().isdigit() and int(text) > 0 else MAX_ANALYZED_SPANS


def analyzed_event_rows() -> int:
    """The event rows of one input analysis keeps (MAX_ANALYZED_EVENT_ROWS, or RCA_MAX_EVENT_ROWS)."""
    text = os.environ.get("RCA_MAX_EVENT_ROWS", "")
    return int(text) if text.strip().isdigit() and int(text) > 0 else MAX_ANALYZED_EVENT_ROWS


def load(
    inputs: Sequence[str],
    options: AnalyzeOptions,
    progress: ProgressFn | None = None,
    stdin: BinaryIO | None = None,
    request_columns: tuple[str, ...] | None = None,
    metric_columns: tuple[str, ...] | None = None,
    max_request_rows: int | None = None,
    max_spans: int | None = None,
    max_event_rows: int | None = None,
) -> Dataset:
    """Read every input into one Dataset (raises InputError only when nothing is readable). With
    `request_columns`, the requests' other columns are not kept (nulls): analysis passes
    `ANALYZED_REQUEST_COLUMNS`, what it reads; `metric_columns` likewise for the metrics, their strings held as
    codes (`ANALYZED_METRIC_COLUMNS`, `rca.model.analyzed_metrics`). With `max_request_rows`, an input with more requests keeps
    a sample of them and exact aggregates of them all (`Dataset.request_aggregates`): analysis passes
    `analyzed_request_rows()`; `max_event_rows` likewise for log events (`Dataset.event_aggregates`). With
    `max_spans`, a trace input with more spans keeps those of a sample of whole traces and the requests of
    them all (`Dataset.trace_share`): analysis passes `analyzed_spans()`."""
    from dataclasses import replace

    from rca.parsers.loader import load_dataset

    parse = replace(options.parse, store_since=options.baseline_since, store_until=options.until, store_incident_since=options.since,
                    request_columns=request_columns, metric_columns=metric_columns, max_request_rows=max_request_rows,
                    max_spans=max_spans, max_event_rows=max_event_rows)
    return load_dataset(
        inputs, parse, changes_files=options.changes_files, progress=progress, stdin=stdin
    )


def context_for(dataset: Dataset, options: AnalyzeOptions) -> AnalysisContext | None:
    """Bucket size and baseline/incident windows for this data (None when it has no timed rows)."""
    from rca.detectors.windows import choose_context

    return choose_context(
        dataset,
        bucket=options.bucket,
        since=options.since,
        until=options.until,
        baseline_since=options.baseline_since,
        baseline_until=options.baseline_until,
    )


def analyze_dataset(dataset: Dataset, options: AnalyzeOptions, progress: ProgressFn | None = None) -> Report:
    """Detect, rank and assemble the report for an already loaded Dataset."""
    from rca import detectors
    from rca.detectors.windows import too_little_data
    from rca.ranking import build_report

    stage = progress or (lambda _stage, _done, _total: None)
    stage("choosing windows", 0, 0)
    context = context_for(dataset, options)
    if context is not None and (reason := too_little_data(context)) is not None:
        return replace(build_report(dataset, None, [], command=options.command), headline=reason)
    stage("detecting", 0, 0)
    findings = detectors.run_all(dataset, context, on_start=lambda name, i, n: stage(f"detecting: {name} ({i}/{n})", 0, 0)) if context is not None else []
    stage("ranking", 0, 0)
    return build_report(dataset, context, findings, command=options.command)


def analyze(
    inputs: Sequence[str],
    options: AnalyzeOptions | None = None,
    progress: ProgressFn | None = None,
    stdin: BinaryIO | None = None,
) -> Report:
    """Read the inputs and return the ranked causes of the incident they show."""
    options = options or AnalyzeOptions()
    dataset = load(inputs, options, progress=progress, stdin=stdin, request_columns=ANALYZED_REQUEST_COLUMNS, metric_columns=ANALYZED_METRIC_COLUMNS, max_request_rows=analyzed_request_rows(),
                   max_spans=analyzed_spans(), max_event_rows=analyzed_event_rows())
    return analyze_dataset(dataset, options, progress)
