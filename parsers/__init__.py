"""Parsers: logs and traces in, canonical polars frames out.

Each input format lives in its own module in this package and registers one or more `Parser`
objects with `register`. Every public module here is imported on first use of the registry
(`all_parsers`), so adding a format touches exactly one file: the new module.

A parser sniffs the first lines of an input (`sniff` returns a confidence in [0, 1]) and parses a
whole `Source` into a `ParseResult`: canonical frames (see `rca.model.SCHEMAS`) plus the count and
first examples of rejected lines. Parsers never raise on a malformed line; they count it. They raise
`rca.errors.InputError` only when the input as a whole cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    import polars as pl

    from rca.model import CallAggregates, Rejected
    from rca.parsers.bounded import RequestSample
    from rca.parsers.bounded_events import EventSample
    from rca.parsers.sources import Sample, Source

MAX_REJECTED_EXAMPLES = 5


@dataclass
class ParseOptions:
    """Options the user gave that change how inputs are read."""

    input_format: str | None = None  # force a registered parser by name
    log_format: str | None = None  # custom nginx log_format string
    fields: dict[str, str] = field(default_factory=dict)  # canonical name -> field path override
    year: int | None = None  # for timestamps without a year (syslog RFC 3164)
    tz: str = "UTC"  # zone of timestamps that carry none
    signal: str | None = None  # traces | logs | metrics, for ambiguous binary OTLP
    # the time range read from a store (ClickHouse) when its URL names none: --baseline-since and --until;
    # --since (the incident start) only widens the default range to hold a baseline as long as the incident
    store_since: str | None = None
    store_until: str | None = None
    store_incident_since: str | None = None
    # the requests columns the caller reads (rca.model.ANALYZED_REQUEST_COLUMNS for analysis); the others
    # are left null, as early as the parser can (per chunk), so memory holds only what is read. None: all.
    request_columns: tuple[str, ...] | None = None
    # the metrics columns the caller reads (rca.model.ANALYZED_METRIC_COLUMNS for analysis): the others left
    # null and the read strings held as Categorical codes (rca.model.analyzed_metrics), per block where the
    # parser reads in blocks. None: every column, as String.
    metric_columns: tuple[str, ...] | None = None
    # keep at most this many request rows of an input (a uniform sample beyond it, with exact aggregates of
    # every row: `parsers.bounded`), for the formats that read in chunks. None: every row.
    max_request_rows: int | None = None
    # keep at most this many spans of a trace input: past it, the spans of a sample of whole traces (by
    # trace-id hash) and the requests of every server span (`parsers.bounded_spans`). None: every span.
    max_spans: int | None = None
    # keep at most this many event rows of an input (a sample beyond it, with exact counts of every event:
    # `parsers.bounded_events`), for the formats that read in chunks. None: every row.
    max_event_rows: int | None = None


@dataclass
class ParseResult:
    """What a parser made of one input."""

    format: str
    frames: dict[str, pl.DataFrame]  # frame name -> frame conforming to rca.model.SCHEMAS[name]
    lines: int  # records read
    rejected: int = 0
    rejected_examples: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    slow_lines: int = 0  # lines read by a slower per-line path where the format has a fast one (for benchmarks)
    # set when the requests frame holds only a sample (ParseOptions.max_request_rows): aggregates of them all
    request_sample: RequestSample | None = None
    # set when the spans frame holds only the traces of a sample (ParseOptions.max_spans): the share kept
    trace_share: float | None = None
    call_aggregates: CallAggregates | None = None  # with trace_share: calls per dependency and bucket of every span
    # set when the events frame holds only a sample (ParseOptions.max_event_rows): counts of them all
    event_sample: EventSample | None = None


@dataclass
class Streamed:
    """A parse whose bulk comes as lazy pipelines, sunk to disk in bounded memory (`rca ingest`).

    `rows` (canonical frame name -> its rows) must be consumed exactly once, every frame's together (one
    `pl.collect_all` of their sinks: `lazy_tee`); `remainder()` then gives what the pipelines left over:
    rows they handed back to a slower path, the line count, the rejected lines. A pipeline that raises
    means the input must be parsed again with `parse`."""

    rows: dict[str, pl.LazyFrame]
    remainder: Callable[[], ParseResult]


def lazy_batches(batches: Callable[[], Iterator[pl.DataFrame]], schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """A lazy frame over the batches `batches()` yields (rows of `schema`), read once as the engine asks:
    the columns, filter and row limit it pushes down are applied to each batch (`Streamed.rows`)."""
    from polars.io.plugins import register_io_source

    def source(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _size: int | None) -> Iterator[pl.DataFrame]:
        for batch in batches():
            rows = batch if predicate is None else batch.filter(predicate)
            if n_rows is not None:
                rows = rows.head(n_rows)
                n_rows -= rows.height
            yield rows if with_columns is None else rows.select(with_columns)
            if n_rows == 0:
                return

    return register_io_source(source, schema=dict(schema))


HELD_PARTS = 4  # parts' rows a frame's queue holds before the frames behind it are let catch up (`lazy_tee`)
TEE_PATIENCE_S = 2.0  # a frame waiting this long while nothing of the others is taken reads on regardless


def lazy_tee(parts: Callable[[], Iterator[Mapping[str, pl.DataFrame]]], schemas: Mapping[str, Mapping[str, pl.DataType]]) -> dict[str, pl.LazyFrame]:
    """One lazy frame per frame of `schemas` (`lazy_batches`) over the parts `parts()` yields (frame name ->
    rows; each cast to its frame's schema), the parse run once for them all, to be sunk together
    (`pl.collect_all`). Whichever frame the engine asks for next reads the next part, whose rows of the
    other frames wait in their queues until asked; a frame asking while another's queue holds HELD_PARTS
    parts waits for that one to be taken first (the engine asks for every frame at once), so memory holds
    a few parts, not every row of a frame asked for less often (a few events among many requests). Should
    the engine take nothing of the others for TEE_PATIENCE_S, the frames no longer wait for each other."""
    import threading
    from collections import deque

    turn = threading.Condition()
    queues: dict[str, deque[pl.DataFrame]] = {name: deque() for name in schemas}
    running: list[Iterator[Mapping[str, pl.DataFrame]]] = []  # parts(), once started
    state = {"ended": False, "patient": True, "taken": 0}

    def frame_batches(name: str) -> Callable[[], Iterator[pl.DataFrame]]:
        schema = dict(schemas[name])

        def backlog() -> bool:
            return any(len(queue) >= HELD_PARTS for other, queue in queues.items() if other != name)

        def batches() -> Iterator[pl.DataFrame]:
            while True:
                with turn:
                    while not queues[name] and not state["ended"]:
                        if state["patient"] and backlog():
                            taken = state["taken"]
                            if not turn.wait_for(lambda: not backlog(), TEE_PATIENCE_S) and state["taken"] == taken:
                                state["patient"] = False  # nothing taken meanwhile: the engine does not read the frames together
                            continue
                        if not running:
                            running.append(parts())
                        part = next(running[0], None)
                        state["ended"] = part is None
                        for frame, rows in (part or {}).items():
                            if rows.height:
                                queues[frame].append(rows)
                    if not queues[name]:
                        return
                    rows = queues[name].popleft()
                    state["taken"] += 1
                    turn.notify_all()
                yield rows.select(list(schema)).cast(schema)  # type: ignore[arg-type]

        return batches

    return {name: lazy_batches(frame_batches(name), schema) for name, schema in schemas.items()}


@runtime_checkable
class Parser(Protocol):
    """One input format."""

    name: str  # unique, lower-case, e.g. "nginx-combined", "jsonl", "otlp-json"
    description: str

    def sniff(self, sample: Sample) -> float:
        """Confidence in [0, 1] that `sample` (the head of an input) is this format."""
        ...

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        """Parse the whole input into canonical frames, counting rejected lines."""
        ...

    # Optional: `stream(source, options) -> Streamed | None` for formats big enough to stream.


_REGISTRY: dict[str, Parser] = {}


def register(parser: Parser) -> Parser:
    """Add a parser to the registry (called at import time by format modules)."""
    if parser.name in _REGISTRY and _REGISTRY[parser.name] is not parser:
        raise ValueError(f"parser {parser.name!r} registered twice")
    _REGISTRY[parser.name] = parser
    return parser


def _load_all() -> None:
    from rca.plugins import import_submodules

    import_submodules(__name__, __path__)


def all_parsers() -> list[Parser]:
    """Every registered parser, sorted by name."""
    _load_all()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_parser(name: str) -> Parser:
    """The parser registered as `name`; raises KeyError with the known names."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown input format {name!r}; known formats: {known}") from None


def sniff(sample: Sample) -> tuple[Parser | None, float]:
    """The parser most confident about `sample`, and its confidence (None, 0.0 when none is)."""
    best: Parser | None = None
    best_score = 0.0
    for parser in all_parsers():
        score = parser.sniff(sample)
        if score > best_score:
            best, best_score = parser, score
    return best, best_score
