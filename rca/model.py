"""The canonical data model: frame schemas, windows, findings, hypotheses and the report.

Everything downstream of the parsers speaks in these types. Parsers produce polars frames that
conform to the schemas below (`conform` enforces it); detectors read a `Dataset` and an
`AnalysisContext` and return `Finding`s; the ranker turns findings into `Hypothesis` and `RuledOut`
objects; renderers draw a `Report`. Schemas are declared once here and nowhere else.

Times are UTC with microsecond precision (`pl.Datetime("us", "UTC")`); durations are milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast, overload

import polars as pl

if TYPE_CHECKING:
    from rca.findings import FindingDetails

TS = pl.Datetime("us", "UTC")

# --- canonical frames -------------------------------------------------------------------------
# Columns shared by every frame: `origin` is the input path the row came from, `line` its 1-based line
# (or record) number there, `signal` the kind of observation (see SIGNALS) so the ranker can tell
# independent evidence (an access log and a trace agreeing) from one source counted twice.

SIGNALS = ("access_log", "app_log", "text_log", "syslog", "trace", "otlp_log", "metric", "external")

REQUESTS_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,  # when the request was served (access logs: log-write time, spans: start)
    "duration_ms": pl.Float64(),  # total time to serve
    "upstream_ms": pl.Float64(),  # time spent in the upstream/backend when a proxy logs it
    "service": pl.String(),  # the serving service (proxy name, app service, span service)
    "host": pl.String(),
    "method": pl.String(),  # upper-case HTTP method
    "endpoint": pl.String(),  # normalized route: /api/messages/{id}
    "path": pl.String(),  # raw path as logged, query string removed
    "status": pl.Int32(),
    "source": pl.String(),  # client address, calling service or API client
    "user_agent": pl.String(),
    "bytes": pl.Int64(),
    "trace_id": pl.String(),  # lower-case hex
    "version": pl.String(),  # the serving release when logged (version field, pod-template hash): canary splits
    "origin": pl.String(),
    "line": pl.Int64(),
    "signal": pl.String(),
}

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "level": pl.String(),  # TRACE DEBUG INFO WARN ERROR FATAL (normalized upper case), null if unknown
    "service": pl.String(),
    "host": pl.String(),
    "logger": pl.String(),  # logger, component, syslog tag or caller
    "message": pl.String(),
    "attributes": pl.String(),  # the other parsed fields as a JSON object text, null if none
    "trace_id": pl.String(),
    "origin": pl.String(),
    "line": pl.Int64(),
    "signal": pl.String(),
}

CHANGE_KINDS = ("deploy", "rollback", "config", "flag", "restart")

CHANGES_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "kind": pl.String(),  # one of CHANGE_KINDS
    "service": pl.String(),
    "subject": pl.String(),  # version, flag or config name: "v2.3.1"
    "description": pl.String(),
    "origin": pl.String(),
    "line": pl.Int64(),
    "signal": pl.String(),
}

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")

SPANS_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(),  # 32 lower-case hex
    "span_id": pl.String(),  # 16 lower-case hex
    "parent_span_id": pl.String(),  # null at a root
    "service": pl.String(),
    "name": pl.String(),
    "kind": pl.String(),  # one of SPAN_KINDS
    "ts": TS,  # span start
    "duration_ms": pl.Float64(),
    "self_ms": pl.Float64(),  # duration minus the union of its children's intervals; null until computed
    "status": pl.String(),  # unset | ok | error
    "http_route": pl.String(),
    "http_method": pl.String(),
    "http_status": pl.Int32(),
    "url_path": pl.String(),
    "client_address": pl.String(),
    "peer_service": pl.String(),
    "db_system": pl.String(),
    "service_version": pl.String(),
    "deployment_environment": pl.String(),
    "host": pl.String(),
    "origin": pl.String(),
    "line": pl.Int64(),
    "signal": pl.String(),
}

METRICS_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "name": pl.String(),  # e.g. system.memory.utilization, cache.evictions
    "value": pl.Float64(),
    "unit": pl.String(),
    "service": pl.String(),
    "host": pl.String(),
    "attributes": pl.String(),  # JSON object text of the other attributes, null if none
    "origin": pl.String(),
    "line": pl.Int64(),
    "signal": pl.String(),
}

# The request columns analysis reads (detectors, windows, input summaries). `rca analyze` keeps only these
# in memory, chunk by chunk as inputs are parsed, and reads the others (raw path, bytes, trace id, origin
# and line of each request: about 40% of an access log's frame) as nulls; `rca ingest` and `rca compare`
# keep every column. A detector that starts reading another request column adds it here.
ANALYZED_REQUEST_COLUMNS = (
    "ts", "duration_ms", "upstream_ms", "service", "host", "method", "endpoint", "status", "source", "user_agent", "version", "signal",
)
# The metrics columns analysis reads (the metric detectors and the windows: time, value and the series' keys). `rca
# analyze` keeps only these, block by block as inputs are parsed, with their strings as Categorical codes
# (`analyzed_metrics`); origin, line and signal are read as nulls. A metrics CSV's point as String columns held
# ~115 bytes (16 a string view, the text of names past 12 characters again per point), as codes ~38: reading
# 5M points peaks 0.72 -> 0.39 GB. `rca ingest` and `rca compare` keep every column as String. A detector that
# starts reading another metrics column adds it here.
ANALYZED_METRIC_COLUMNS = ("ts", "name", "value", "unit", "service", "host", "attributes")
# Request rows of one input `rca analyze` keeps in memory (about 0.2 GB at this count). A bigger input that
# is read in chunks keeps a uniform sample of at most this many and exact aggregates of every request
# (parsers.bounded), so memory stays flat however long the log; smaller inputs are analysed in full.
# RCA_MAX_REQUEST_ROWS overrides it (tests and benchmarks take the bounded path on small inputs).
MAX_ANALYZED_REQUEST_ROWS = 1_000_000
# Spans of one trace input `rca analyze` keeps in memory (about 0.15 GB, and the span detectors' work, at this
# count). A bigger input keeps the spans of a sample of whole traces (by trace-id hash) and the requests of
# every server span (parsers.bounded_spans); RCA_MAX_SPANS overrides it (tests take the bounded path on small inputs).
MAX_ANALYZED_SPANS = 250_000

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "requests": REQUESTS_SCHEMA,
    "events": EVENTS_SCHEMA,
    "changes": CHANGES_SCHEMA,
    "spans": SPANS_SCHEMA,
    "metrics": METRICS_SCHEMA,
}
FRAMES = tuple(SCHEMAS)


def empty_frame(name: str) -> pl.DataFrame:
    """An empty frame with the canonical schema of `name`."""
    return pl.DataFrame(schema=SCHEMAS[name])


# Columns whose values repeat (a handful of services, methods, routes, one origin per input): stored in
# Parquet as categoricals, i.e. dictionary-encoded once per row group instead of hashed value by value,
# which makes `rca ingest` write a big access log in about 60% of the CPU time. Read back as strings.
REPEATED_COLUMNS: dict[str, tuple[str, ...]] = {
    "requests": ("service", "host", "method", "endpoint", "user_agent", "version", "origin", "signal"),
}


def storage_schema(name: str) -> dict[str, pl.DataType]:
    """The schema frame `name` is written to Parquet with: repeated strings as categoricals."""
    repeated = REPEATED_COLUMNS.get(name, ())
    return {col: pl.Categorical() if col in repeated else dtype for col, dtype in SCHEMAS[name].items()}


# --- request aggregates (docs: /work/notes/aggregates.md; code: rca/aggregates.py) ------------------
# Exact per-bucket aggregates of the requests frame, mergeable by summing: what detectors read instead of
# every row, and what a store (ClickHouse) can compute itself and hand over. Every request row counts once
# under each of AGGREGATE_DIMENSIONS (`service`: the vantage's total, value = the service).

AGGREGATE_DIMENSIONS = ("service", "endpoint", "source", "user_agent", "host", "version")
# Widths aggregates are built at: each divides every analysis bucket (windows.BUCKETS_S) at least as wide,
# so aggregates coarsen to the analysis bucket chosen later by summing.
AGGREGATE_BASES_S = (5, 30, 300, 3600)

AGGREGATE_KEY = ("signal", "service", "bucket", "dimension", "value")
REQUEST_AGGREGATES_SCHEMA: dict[str, pl.DataType] = {
    "signal": pl.String(),
    "service": pl.String(),
    "bucket": TS,  # bucket start: ts floored to a multiple of the aggregates' bucket_s since the epoch
    "dimension": pl.String(),  # one of AGGREGATE_DIMENSIONS
    "value": pl.String(),  # that dimension's value; null for rows where it is null
    "method": pl.String(),  # in the key: detectors name a subject's usual method
    "requests": pl.Int64(),
    "errors": pl.Int64(),  # status >= 500
    "client_errors": pl.Int64(),  # 400 <= status < 500
    "with_status": pl.Int64(),  # rows with a status: error shares divide by this
    "bytes": pl.Int64(),
    "timed": pl.Int64(),  # rows with duration_ms
    "duration_ms_sum": pl.Float64(),
    "upstream_timed": pl.Int64(),
    "upstream_ms_sum": pl.Float64(),
}

# Latency as a log-binned histogram per key (DDSketch's logarithmic mapping): a value x > SKETCH_MIN_MS
# falls in bin ceil(ln x / ln gamma), gamma = (1 + alpha) / (1 - alpha); the bin's value 2 gamma^bin /
# (gamma + 1) is within SKETCH_ALPHA (relative) of every value in it, so quantiles are too.
SKETCH_ALPHA = 0.01
SKETCH_MIN_MS = 1e-3
SKETCH_ZERO_BIN = -(2**31) + 1  # values <= SKETCH_MIN_MS (zeros): read back as 0
SKETCH_METRICS = ("duration_ms", "upstream_ms")
LATENCY_SKETCH_SCHEMA: dict[str, pl.DataType] = {
    "signal": pl.String(),
    "service": pl.String(),
    "bucket": TS,
    "dimension": pl.String(),
    "value": pl.String(),
    "metric": pl.String(),  # one of SKETCH_METRICS
    "bin": pl.Int32(),
    "count": pl.Int64(),
}


# Calls to each dependency per bucket, of every span of the trace inputs whose spans were sampled
# (parsers.bounded_spans): what the span detectors' per-bucket series need to count every call.
CALL_AGGREGATES_SCHEMA: dict[str, pl.DataType] = {
    "origin": pl.String(),  # the input
    "dependency": pl.String(),  # a client span's peer.service, else its db.system (rca.aggregates.dependency_expr)
    "bucket": TS,  # ts floored to a multiple of bucket_s seconds since the epoch
    "calls": pl.Int64(),
    "log_ms_sum": pl.Float64(),  # sum of ln(duration_ms clipped at 1e-3): the mean log duration per bucket
}


@dataclass(frozen=True)
class CallAggregates:
    """Calls per (input, dependency, bucket of `bucket_s` seconds) of every client span (CALL_AGGREGATES_SCHEMA)."""

    bucket_s: int
    counts: pl.DataFrame


@dataclass(frozen=True)
class RequestAggregates:
    """Requests aggregated per (vantage, bucket, dimension, value): counts (REQUEST_AGGREGATES_SCHEMA) and
    latency histograms (LATENCY_SKETCH_SCHEMA), at buckets of `bucket_s` seconds (epoch-aligned)."""

    bucket_s: int
    counts: pl.DataFrame
    sketches: pl.DataFrame
    # the time of the first and last record they were made from (the buckets only say it to bucket_s): the
    # data's span when the rows are a sample that may miss its edges; None when unknown
    first: datetime | None = None
    last: datetime | None = None


# --- event aggregates (code: parsers/bounded_events.py; docs: docs/aggregates.md, "Events") ---------
# Exact counts of every log event of a big input per (signal, origin, service, host, bucket, level, shape,
# resource), mergeable by summing: what the event detectors (errors, templates, resources, window
# features) read for the inputs whose event rows were sampled. `shape` and `resource` are
# rca.messages.mask_expr / classify_expr of the message, so every event of a key has the same template
# and resource class; the key's example (the latest such event's message and logger) stands for them all.
# Past this many events an input keeps a sample of its rows and these aggregates of them all (about 0.3 GB
# of rows at this count); RCA_MAX_EVENT_ROWS overrides it (tests and benchmarks take the bounded path on small inputs).
MAX_ANALYZED_EVENT_ROWS = 1_000_000
EVENT_AGGREGATE_KEY = ("signal", "origin", "service", "host", "bucket", "level", "shape", "resource")
EVENT_AGGREGATES_SCHEMA: dict[str, pl.DataType] = {
    "signal": pl.String(),
    "origin": pl.String(),
    "service": pl.String(),
    "host": pl.String(),
    "bucket": TS,  # bucket start: ts floored to a multiple of bucket_s since the epoch
    "level": pl.String(),
    "shape": pl.String(),  # the first line of the message with its variables masked (rca.messages.mask_expr)
    "resource": pl.String(),  # rca.messages.classify_expr of the message, null when none
    "events": pl.Int64(),
    "first_ts": TS,  # the key's first and last event
    "last_ts": TS,
    "line": pl.Int64(),  # the key's first event (lowest line)
    "example": pl.String(),  # the message and logger of the latest event with the key's level, shape, resource, service and host (any bucket)
    "logger": pl.String(),
}


@dataclass(frozen=True)
class EventAggregates:
    """Log events counted per EVENT_AGGREGATE_KEY (EVENT_AGGREGATES_SCHEMA) at buckets of at most `bucket_s`
    seconds (epoch-aligned; inputs aggregated at finer widths keep theirs), for the inputs in `origins`:
    their rows in `Dataset.events` are only a sample."""

    bucket_s: int
    counts: pl.DataFrame
    origins: tuple[str, ...]


@overload
def conform(frame: pl.DataFrame, name: str, schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame: ...


@overload
def conform(frame: pl.LazyFrame, name: str, schema: dict[str, pl.DataType] | None = None) -> pl.LazyFrame: ...


def conform(
    frame: pl.DataFrame | pl.LazyFrame, name: str, schema: dict[str, pl.DataType] | None = None
) -> pl.DataFrame | pl.LazyFrame:
    """Select, cast and order the columns of `frame` to the schema of `name` (or to `schema`).

    Missing columns become nulls; extra columns are dropped. Works lazily on a LazyFrame.
    """
    schema = schema or SCHEMAS[name]
    have = set(frame.collect_schema().names())
    if not have:  # a select of literals alone would make one row of nulls out of no rows
        return pl.LazyFrame(schema=schema) if isinstance(frame, pl.LazyFrame) else pl.DataFrame(schema=schema)
    exprs = [
        (pl.col(col).cast(dtype, strict=False) if col in have else pl.lit(None, dtype=dtype)).alias(col)
        for col, dtype in schema.items()
    ]
    return frame.select(exprs)


def analyzed_metrics(metrics: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """A metrics frame (METRICS_SCHEMA) as analysis keeps it: the columns outside `columns` nulls (an all-null
    column costs nothing), the String ones among `columns` as Categorical codes (global categories: a series'
    name, pod, service and attributes repeat at every point). Copies nothing of the chunk it came from, and
    gives the same frame again when given its own result."""
    nulled = [pl.lit(None, dtype).alias(c) for c, dtype in METRICS_SCHEMA.items() if c not in columns and metrics[c].null_count() < metrics.height]
    coded = [pl.col(c).cast(pl.Categorical) for c in columns if metrics.schema[c] == pl.String]
    return metrics.with_columns(*nulled, *coded) if nulled or coded else metrics


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """One rejected input line: where, why, and the start of its text."""

    line: int
    reason: str
    text: str = ""


@dataclass(frozen=True)
class InputSummary:
    """What one input file gave: its format, row counts per frame and what was rejected."""

    path: str
    format: str
    lines: int  # records read (lines, or messages for binary formats)
    rows: Mapping[str, int]  # rows per canonical frame
    rejected: int
    rejected_examples: tuple[Rejected, ...] = ()
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    warnings: tuple[str, ...] = ()
    top_endpoints: tuple[tuple[str, int], ...] = ()  # most requested endpoints with counts
    top_sources: tuple[tuple[str, int], ...] = ()  # busiest sources with counts

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass
class Dataset:
    """All canonical frames of one run, concatenated over inputs, plus a summary per input."""

    requests: pl.DataFrame = field(default_factory=lambda: empty_frame("requests"))
    events: pl.DataFrame = field(default_factory=lambda: empty_frame("events"))
    changes: pl.DataFrame = field(default_factory=lambda: empty_frame("changes"))
    spans: pl.DataFrame = field(default_factory=lambda: empty_frame("spans"))
    metrics: pl.DataFrame = field(default_factory=lambda: empty_frame("metrics"))
    inputs: list[InputSummary] = field(default_factory=list)
    # Exact aggregates of every request of the store inputs (ClickHouse) whose rows were sampled: their
    # rows in `requests` are that sample, these carry every count (None when no input was sampled).
    request_aggregates: RequestAggregates | None = None
    # The smallest share of traces kept of the inputs whose spans were sampled (whole traces by trace-id
    # hash: big trace files, sampled stores); None when every span is in `spans`. Span findings say so.
    trace_share: float | None = None
    # Calls per dependency and bucket of every span of those inputs (None when no input's spans were sampled).
    call_aggregates: CallAggregates | None = None
    # Exact counts of every log event of the inputs whose event rows were sampled (None when none was)
    event_aggregates: EventAggregates | None = None

    def frame(self, name: str) -> pl.DataFrame:
        return getattr(self, name)

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The earliest and latest timestamp over all frames, or None when there is no timed row."""
        lows: list[datetime] = []
        highs: list[datetime] = []
        for name in FRAMES:
            ts = self.frame(name)["ts"].drop_nulls()
            if len(ts):
                lows.append(cast(datetime, ts.min()))
                highs.append(cast(datetime, ts.max()))
        aggregates = self.request_aggregates
        if aggregates is not None and aggregates.first is not None and aggregates.last is not None:
            lows.append(aggregates.first)
            highs.append(aggregates.last)
        events = self.event_aggregates
        if events is not None and events.counts.height:
            lows.append(cast(datetime, events.counts["first_ts"].min()))
            highs.append(cast(datetime, events.counts["last_ts"].max()))
        if not lows:
            return None
        return min(lows), max(highs)


# --- analysis windows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A half-open time interval [start, end)."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def contains(self, ts: datetime) -> bool:
        return self.start <= ts < self.end


@dataclass(frozen=True)
class AnalysisContext:
    """How the detectors cut time: bucket size, the baseline and incident windows, the data span."""

    bucket_s: int
    span: Window  # all data
    baseline: Window
    incident: Window
    method: str = "auto"  # how the windows were found: "auto: ..." or "given"
    gaps: tuple[Window, ...] = ()  # long stretches without a single row (logging stopped): not observed

    @property
    def bucket(self) -> timedelta:
        return timedelta(seconds=self.bucket_s)

    def observed_s(self, window: Window) -> float:
        """Seconds of `window` with data: its duration less the gaps in it (rates divide by this)."""
        total = window.duration.total_seconds()
        for gap in self.gaps:
            low, high = max(gap.start, window.start), min(gap.end, window.end)
            if high > low:
                total -= (high - low).total_seconds()
        return max(total, 0.0)


# --- findings and hypotheses ------------------------------------------------------------------

def _no_details() -> FindingDetails:
    """The details of a finding that records none. `rca.findings` is imported here, not at the top: the
    parsers read this module, and the two dozen detail classes would cost every `rca ingest` their set-up."""
    from rca.findings import FindingDetails

    return FindingDetails()


@dataclass(frozen=True)
class Series:
    """A regular time series behind a finding, for charts: value per bucket from `start`."""

    start: datetime
    bucket_s: int
    values: tuple[float | None, ...]
    label: str = ""

    def timestamps(self) -> list[datetime]:
        step = timedelta(seconds=self.bucket_s)
        return [self.start + i * step for i in range(len(self.values))]


@dataclass(frozen=True)
class Finding:
    """One anomaly a detector found: what changed, where, when and by how much.

    `kind` names the anomaly (see FINDING_KINDS), `dimension` what is grouped by (endpoint, source,
    service, host, template, resource, operation, change ...), `subject` the value of that dimension.
    `metric` names the measured quantity with its unit (`requests_per_min`, `p95_ms`, `error_rate`).
    `baseline` and `incident` are that metric in the two windows; `magnitude` their ratio (or the
    detector's effect size when a ratio means nothing); `excess` the absolute difference summed over
    the incident (extra requests, extra errors); `share_explained` the fraction of the total excess of
    its family that this subject accounts for; `confidence` in [0, 1].
    """

    detector: str
    kind: str
    dimension: str
    subject: str
    metric: str
    onset: datetime | None
    baseline: float | None
    incident: float | None
    magnitude: float
    confidence: float
    signal: str  # which kind of observation it came from (SIGNALS)
    where: str | None = None  # service or host it is located at, when that is not the subject
    peak: datetime | None = None
    excess: float | None = None
    share_explained: float | None = None
    series: Series | None = None
    details: FindingDetails = field(default_factory=_no_details)  # typed per kind (rca/findings.py)


# Finding kinds, the vocabulary shared by detectors and the ranker.
FINDING_KINDS = (
    "traffic_spike",  # request rate up (endpoint, source, source_net, user_agent, client, endpoint_source, service, host)
    "traffic_drop",  # request rate down
    "latency_shift",  # p50/p95/p99 up (endpoint, service, host)
    "error_rate",  # 5xx or error-level share up (endpoint, service, host)
    "error_message",  # a new or bursting error message/template (template)
    "template_burst",  # a log template whose rate bursts (template)
    "new_template",  # a template that appears only in the incident (template)
    "change_effect",  # before/after comparison around a change event (change); details hold the figures
    "resource_saturation",  # memory/cpu/cache/pool/disk pressure (resource; where = host or service)
    "self_time_shift",  # a service/operation's own time grew (operation)
    "fanout_growth",  # calls per request to a downstream grew (operation)
    "error_origin",  # the deepest failing span in failing traces (operation)
    "caller_share",  # which caller drives a downstream's load (caller)
    "metric_shift",  # a service/pod metric moved away from its own baseline (service; where = pod)
    "call_wait_shift",  # calls from one service to another wait longer beyond the callee's own time (edge)
    "service_time_shift",  # a service's own time per request (server spans less their calls) rose on a pod (service; where = pod)
    "call_drop",  # a caller makes fewer calls to a callee per request of its own (edge; subject = caller)
    "shape_shift",  # a service operation's requests took a new path or left an old one (operation; subject = service)
    "network_split",  # request time rose while the time outside the backend stayed flat (scope)
    "host_spread",  # every host of a service slowed alike (service)
)
# Findings that describe the context of an incident (a change and its effect, where the time went) rather
# than a deviation: never listed as the largest deviations.
CONTEXT_FINDING_KINDS = ("change_effect", "network_split", "host_spread")


@dataclass(frozen=True)
class Evidence:
    """One line of evidence for or against a hypothesis, with its figures."""

    detector: str
    text: str
    baseline: float | None = None
    incident: float | None = None
    ratio: float | None = None


@dataclass(frozen=True)
class Hypothesis:
    """A candidate root cause, scored, with the symptoms it explains and its evidence."""

    rank: int
    kind: str  # a registered hypothesis kind (rca.ranking.kind_names())
    dimension: str
    subject: str
    where: str | None
    score: float  # in [0, 1]
    onset: datetime | None
    summary: str  # one sentence
    explains: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    findings: tuple[Finding, ...] = ()
    effect_of: int | None = None  # rank of the hypothesis this one is likely an effect of (the summary says why)


@dataclass(frozen=True)
class RuledOut:
    """A tempting explanation the data contradicts, with the figures that contradict it."""

    kind: str
    subject: str
    reason: str
    evidence: tuple[Evidence, ...] = ()
    ts: datetime | None = None


@dataclass(frozen=True)
class TimelineEntry:
    ts: datetime
    what: str  # "change" | "cause" | "symptom" | "recovery"
    text: str
    ref: str | None = None  # file:line or metric name


@dataclass(frozen=True)
class Report:
    """Everything one `rca analyze` run concluded; renderers draw it and compute nothing new."""

    schema_version: int
    tool_version: str
    inputs: tuple[InputSummary, ...]
    context: AnalysisContext | None
    incident_detected: bool
    headline: str
    hypotheses: tuple[Hypothesis, ...] = ()
    ruled_out: tuple[RuledOut, ...] = ()
    findings: tuple[Finding, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    largest_deviations: tuple[Finding, ...] = ()
    command: str | None = None
