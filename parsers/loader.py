"""Loading a run's inputs into one Dataset: expand, sniff, parse, derive changes, summarize.

For each input the loader picks a parser (`--log-format` > `--input-format` > sniffing), parses it,
and records an `InputSummary` (format, rows per frame, rejected lines with examples, time range, top
endpoints and sources). An input that cannot be read at all (missing, binary, unknown format, empty,
corrupt) becomes a warning and the run goes on; only when nothing at all is readable does the loader
raise `InputError` (exit code 2). Change events are then derived for all formats alike: deploy,
rollback and config-reload announcements in any log message, plus `--changes` files.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

import polars as pl

from rca.aggregates import merge_aggregates, merge_call_aggregates
from rca.errors import InputError
from rca.model import (
    FRAMES,
    REQUESTS_SCHEMA,
    CallAggregates,
    Dataset,
    EventAggregates,
    InputSummary,
    Rejected,
    RequestAggregates,
    analyzed_metrics,
    empty_frame,
)
from rca.parsers import ParseOptions, ParseResult, get_parser, sniff
from rca.parsers.bounded import RequestSample
from rca.parsers.bounded_events import EventSample
from rca.parsers.changes import changes_from_messages, dedupe_changes, read_changes_file
from rca.parsers.sources import Source, expand_inputs, is_store_url, stdin_source
from rca.parsers.timezones import Clock, clock_of, naive_time_warnings

ProgressFn = Callable[[str, int, int], None]
MIN_SNIFF_SCORE = 0.3
TOP_N = 5


def _choose_parser(source: Source, options: ParseOptions):
    if options.log_format:
        from rca.parsers.access_log import custom_parser

        return custom_parser(options.log_format)
    if options.input_format:
        try:
            return get_parser(options.input_format)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None
    sample = source.sample()
    if not sample.head.strip():
        raise InputError("empty file", file=source.origin)
    parser, score = sniff(sample)
    if parser is None or score < MIN_SNIFF_SCORE:
        if sample.is_binary:
            raise InputError("binary file in no known format", file=source.origin, hint="see `rca formats`")
        first = sample.lines[0][:80] if sample.lines else ""
        raise InputError(f"unknown format (first line: {first!r})", file=source.origin, line=1, hint="use --input-format, see `rca formats`")
    return parser


def _summarize(source: Source, result: ParseResult, tops: bool = True) -> InputSummary:
    rows = {name: frame.height for name, frame in result.frames.items() if frame.height}
    lows: list[datetime] = []
    highs: list[datetime] = []
    for frame in result.frames.values():
        if "ts" in frame.columns and frame.height:
            ts = frame["ts"].drop_nulls()
            if len(ts):
                lows.append(cast(datetime, ts.min()))
                highs.append(cast(datetime, ts.max()))
    top_endpoints: tuple[tuple[str, int], ...] = ()
    top_sources: tuple[tuple[str, int], ...] = ()
    requests = result.frames.get("requests")
    if tops and requests is not None and requests.height:
        top_endpoints = _top(requests, "endpoint")
        top_sources = _top(requests, "source")
    return InputSummary(
        path=source.origin,
        format=result.format,
        lines=result.lines,
        rows=rows,
        rejected=result.rejected,
        rejected_examples=tuple(result.rejected_examples[:5]),
        first_ts=min(lows) if lows else None,
        last_ts=max(highs) if highs else None,
        warnings=tuple(result.warnings),
        top_endpoints=top_endpoints,
        top_sources=top_sources,
    )


def _narrow(requests: pl.DataFrame, columns: tuple[str, ...] | None) -> pl.DataFrame:
    """The requests frame with the columns outside `columns` (when given) read as nulls: not held in memory."""
    if columns is None:
        return requests
    dropped = [pl.lit(None, dtype).alias(c) for c, dtype in REQUESTS_SCHEMA.items() if c not in columns and requests[c].null_count() < requests.height]
    return requests.with_columns(dropped) if dropped else requests


def _analyzed(name: str, frame: pl.DataFrame, options: ParseOptions) -> pl.DataFrame:
    """Frame `name` of one input as the caller keeps it: requests and metrics narrowed to the columns it reads
    (`ParseOptions.request_columns`, `metric_columns`); the same frame when it reads every column."""
    if name == "requests":
        return _narrow(frame, options.request_columns)
    if name == "metrics" and options.metric_columns is not None:
        return analyzed_metrics(frame, options.metric_columns)
    return frame


def _top(frame: pl.DataFrame, column: str) -> tuple[tuple[str, int], ...]:
    counts = (
        frame.lazy()  # one column in, never a filtered copy of every column (0.7 GB at 5M rows)
        .group_by(column)
        .len()
        .filter(pl.col(column).is_not_null())
        .top_k(TOP_N, by=["len", column], reverse=[False, True])  # no full sort of a million sources
        .sort(["len", column], descending=[True, False])
        .collect()
    )
    return tuple((str(v), int(n)) for v, n in counts.iter_rows())


def _read_store(text: str, options: ParseOptions) -> tuple[ParseResult, InputSummary, RequestAggregates | None]:
    """A store URL (ClickHouse, chDB): its frames, and a summary whose totals, range and tops are the
    store's exact aggregates when the rows were sampled. Store errors (server, table, column) are raised:
    a URL the user named that cannot be read is a usage error, not an input to skip."""
    from rca.parsers.clickhouse import parse_store_url, read_store

    read = read_store(text, options)
    summary = _summarize(Source(origin=parse_store_url(text).display), read.result)
    return read.result, replace(
        summary,
        top_endpoints=summary.top_endpoints if read.top_endpoints is None else read.top_endpoints,
        top_sources=summary.top_sources if read.top_sources is None else read.top_sources,
    ), read.aggregates


def _merged(aggregates: list[RequestAggregates], whole: list[pl.DataFrame]) -> RequestAggregates | None:
    """The aggregates of the sampled inputs (stores, big files) summed, with those of the rows read in full
    that belong to the vantages they carry (a vantage's aggregates must count all its requests); None when
    there are none or their buckets do not nest (stores read over ranges that imply incompatible buckets:
    their rows still count, their aggregates are left out)."""
    from rca.aggregates import aggregate_requests

    try:
        merged = merge_aggregates(aggregates) if aggregates else None
    except ValueError:
        return None
    if merged is None or not whole:
        return merged
    carried = merged.counts.filter(pl.col("dimension") == "service").select("signal", "service").unique()
    rows = pl.concat([frame.lazy().join(carried.lazy(), on=["signal", "service"], how="semi", nulls_equal=True) for frame in whole])
    more = aggregate_requests(rows, merged.bucket_s)
    return merge_aggregates([merged, more]) if more.counts.height else merged


def _failed(source_or_origin: str, error: InputError) -> InputSummary:
    reason = error.reason + (f" ({error.hint})" if error.hint else "")
    return InputSummary(
        path=source_or_origin,
        format="unreadable",
        lines=0,
        rows={},
        rejected=0,
        warnings=(reason,),
    )


def load_dataset(
    inputs: Sequence[str],
    options: ParseOptions | None = None,
    changes_files: Sequence[str] = (),
    progress: ProgressFn | None = None,
    stdin: BinaryIO | None = None,
    tops: bool = True,
    sink_dir: Path | None = None,
    output_dir: Path | None = None,
) -> Dataset:
    """Read every input into one Dataset; raise InputError only when nothing at all is readable.

    `tops=False` skips the top endpoints and sources of each input's summary (a group-by over millions
    of distinct client addresses), for callers that do not show them. With `sink_dir`, inputs whose
    parser can stream are written straight to `sink_dir/<frame>.<n>.parquet` in bounded memory and
    left out of the Dataset (their rows still count in the summaries). `output_dir` (an ingest's): its files
    are no inputs when a directory holding it is given (`rca ingest logs -o logs/frames` run twice)."""
    options = options or ParseOptions()
    inputs = list(inputs)
    if not inputs:
        stream = stdin if stdin is not None else sys.stdin.buffer
        if stdin is None and sys.stdin.isatty():
            raise InputError("no inputs given and stdin is a terminal", hint="give files, directories or '-'")
        sources, errors = [stdin_source(stream)], list[InputError]()
    else:
        sources, errors = expand_inputs([i for i in inputs if not is_store_url(i)], stdin=stdin, outside=output_dir)
    summaries: list[InputSummary] = [_failed(e.file or "?", e) for e in errors]
    collected: dict[str, list[pl.DataFrame]] = {name: [] for name in FRAMES}
    whole: list[pl.DataFrame] = []  # the requests of the inputs read in full (not sampled)
    aggregates: list[RequestAggregates] = []
    trace_shares: list[float] = []  # of the inputs whose spans are a sample of their traces
    calls: list[CallAggregates] = []  # and their calls per dependency and bucket
    event_counts: list[EventAggregates] = []  # of the inputs whose event rows were sampled
    for url in [i for i in inputs if is_store_url(i)]:
        if progress is not None:
            progress(f"querying {url.split('@')[-1]}", 0, len(inputs))
        result, summary, store_aggregates = _read_store(url, options)
        if result.trace_share is not None:
            trace_shares.append(result.trace_share)
        if store_aggregates is not None:
            aggregates.append(store_aggregates)
        for name, frame in result.frames.items():
            # metrics as every input's (codes when analysed), or the frames would not concatenate
            collected[name].append(_analyzed(name, frame, options) if name == "metrics" else frame)
            if name == "requests" and store_aggregates is None:
                whole.append(frame)
        summaries.append(summary)
    streamed_rows = 0
    clocks: list[Clock] = []
    for index, source in enumerate(sources):
        if progress is not None:
            label = f"reading {source.origin}" + (f" ({index + 1}/{len(sources)})" if len(sources) > 1 else "")
            size = source.size()
            progress(label, 0, size)
            source.on_read = lambda read, total, label=label: progress(label, read, total)  # type: ignore[misc]
        try:
            parser = _choose_parser(source, options)
            sunk = _sink(parser, source, options, sink_dir, index) if sink_dir is not None else None
            result = parser.parse(source, options) if sunk is None else sunk[0]
        except InputError as exc:
            if exc.file is None:
                exc.file = source.origin
            summaries.append(_failed(source.origin, exc))
            continue
        except Exception as exc:  # a parser bug must not lose the other inputs nor show a traceback
            summaries.append(_failed(source.origin, InputError(f"could not be parsed ({type(exc).__name__}: {exc})", file=source.origin)))
            continue
        summary = _summarize(source, result, tops and result.request_sample is None)
        if result.trace_share is not None:
            trace_shares.append(result.trace_share)
        if result.call_aggregates is not None:
            calls.append(result.call_aggregates)
        if result.request_sample is not None:
            summary = _with_sample(summary, result.request_sample, result.frames["requests"].height, options, tops)
            aggregates.append(result.request_sample.aggregates)
        if result.event_sample is not None:
            summary = _with_event_sample(summary, result.event_sample, options)
            event_counts.append(result.event_sample.aggregates)
        if options.tz == "UTC":  # a zone the user chose is their reading of every offset-less time
            clocks.append(clock_of(source.origin, result.format, source.sample().lines, result.frames if sunk is None else None))
        for name, frame in result.frames.items():
            if frame.height:
                frame = _analyzed(name, frame, options)
                collected[name].append(frame)
                if name == "requests" and result.request_sample is None:
                    whole.append(frame)
        if sunk is not None:
            summary = _with_sunk(summary, sunk[1])
            streamed_rows += sum(sunk[1][0].values())
        summaries.append(summary)

    naive = naive_time_warnings(clocks)
    summaries = [replace(s, warnings=(*s.warnings, naive[s.path])) if s.path in naive else s for s in summaries]
    dataset = Dataset(inputs=summaries, request_aggregates=_merged(aggregates, whole), event_aggregates=_merged_events(event_counts),
                      trace_share=min(trace_shares) if trace_shares else None,
                      call_aggregates=merge_call_aggregates(calls))
    for name in FRAMES:
        frames = collected[name]
        setattr(dataset, name, pl.concat(frames, how="vertical") if frames else empty_frame(name))

    if not streamed_rows and not any(dataset.frame(name).height for name in FRAMES):
        reasons = "; ".join(
            f"{s.path}: {s.warnings[0]}" if s.warnings else
            f"{s.path}: all {s.rejected:,} line(s) rejected (first at line {s.rejected_examples[0].line}: {s.rejected_examples[0].reason})"
            for s in summaries if s.warnings or (s.rejected and s.rejected_examples)
        ) or "no rows"
        raise InputError(f"nothing readable in the inputs ({reasons})")

    extra = [dataset.changes, changes_from_messages(dataset.events)]
    for path in changes_files:
        found, errs = expand_inputs([path])
        if errs:
            raise errs[0]
        extra += [read_changes_file(src) for src in found]
    dataset.changes = dedupe_changes(pl.concat(extra, how="vertical"))
    return dataset


def _with_sample(summary: InputSummary, sample: RequestSample, kept: int, options: ParseOptions, tops: bool) -> InputSummary:
    """The summary of an input whose requests were sampled: every request counted, its range and top
    routes and clients from the aggregates of them all, and a line saying what the sample is."""
    rows = dict(summary.rows)
    rows["requests"] = sample.rows
    firsts = [t for t in (summary.first_ts, sample.first_ts) if t is not None]
    lasts = [t for t in (summary.last_ts, sample.last_ts) if t is not None]
    note = (
        f"{sample.rows:,} requests, over the {options.max_request_rows:,} kept in memory: a uniform sample of {kept:,} "
        f"({sample.kept_share:.2%}, by {sample.sampled_by.replace('_', '-')} hash) kept for drill-down. Exact over every request: counts and error shares per "
        f"bucket of each service, host, version, route, client and user agent (routes, clients and user agents under "
        f"{sample.prune_share:.1%} of a bucket's requests left out), latency quantiles (within 1%) and this input's totals; its top routes "
        f"and clients are summed over the subjects kept"
    )
    counts = sample.aggregates.counts
    return replace(
        summary,
        rows=rows,
        first_ts=min(firsts) if firsts else None,
        last_ts=max(lasts) if lasts else None,
        top_endpoints=_top_aggregated(counts, "endpoint") if tops else (),
        top_sources=_top_aggregated(counts, "source") if tops else (),
        warnings=(*summary.warnings, note),
    )


def _with_event_sample(summary: InputSummary, sample: EventSample, options: ParseOptions) -> InputSummary:
    """The summary of an input whose events were sampled: every event counted, its range from the counts
    of them all, and a line saying what the sample is."""
    counts = sample.aggregates.counts
    firsts = [t for t in (summary.first_ts, cast("datetime | None", counts["first_ts"].min())) if t is not None]
    lasts = [t for t in (summary.last_ts, cast("datetime | None", counts["last_ts"].max())) if t is not None]
    note = (
        f"{sample.rows:,} log events, over the {options.max_event_rows:,} kept in memory: {sample.kept:,} kept for drill-down "
        f"({sample.priority_share:.2%} of the warnings, errors, change and resource messages, {sample.other_share:.2%} of the others, "
        f"by line hash). Exact over every event: counts per bucket of each level, message template and resource, per service and host"
    )
    return replace(summary, rows={**summary.rows, "events": sample.rows}, first_ts=min(firsts) if firsts else None,
                   last_ts=max(lasts) if lasts else None, warnings=(*summary.warnings, note))


def _merged_events(counts: list[EventAggregates]) -> EventAggregates | None:
    """The event counts of the sampled inputs together (each input keeps its own bucket width: detectors
    place a key by its first event's time), None when no input was sampled."""
    if not counts:
        return None
    return EventAggregates(max(c.bucket_s for c in counts), pl.concat([c.counts for c in counts]),
                           tuple(sorted({o for c in counts for o in c.origins})))


def _top_aggregated(counts: pl.DataFrame, dimension: str) -> tuple[tuple[str, int], ...]:
    top = (
        counts.lazy().filter((pl.col("dimension") == dimension) & pl.col("value").is_not_null())
        .group_by("value").agg(pl.col("requests").sum())
        .top_k(TOP_N, by=["requests", "value"], reverse=[False, True])
        .sort(["requests", "value"], descending=[True, False])
        .collect()
    )
    return tuple((str(v), int(n)) for v, n in top.iter_rows())


SunkRows = tuple[dict[str, int], datetime | None, datetime | None]  # rows per frame, first ts, last ts


def _sink(parser: object, source: Source, options: ParseOptions, sink_dir: Path, index: int) -> tuple[ParseResult, SunkRows] | None:
    """Stream an input's bulk rows to Parquet (`<frame>.<index>.parquet`, every frame of the stream together)
    when its parser can; None to parse it the usual way."""
    stream = getattr(parser, "stream", None)
    streamed = stream(source, options) if stream is not None else None
    if streamed is None:
        return None
    paths = {name: sink_dir / f"{name}.{index}.parquet" for name in streamed.rows}
    try:
        pl.collect_all([rows.sink_parquet(paths[name], compression="snappy", lazy=True) for name, rows in streamed.rows.items()])
    except Exception:  # the pipeline gave up on this input (an unbalanced quote, bad UTF-8): parse it in memory
        for path in paths.values():
            path.unlink(missing_ok=True)
        return None
    rows: dict[str, int] = {}
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    for name, path in paths.items():
        count, first, last = pl.scan_parquet(path).select(pl.len(), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")).collect().row(0)
        if count == 0:
            path.unlink()
            continue
        rows[name] = count
        firsts += [first] if first is not None else []
        lasts += [last] if last is not None else []
    return streamed.remainder(), (rows, min(firsts) if firsts else None, max(lasts) if lasts else None)


def _with_sunk(summary: InputSummary, sunk: SunkRows) -> InputSummary:
    rows = dict(summary.rows)
    for name, count in sunk[0].items():
        rows[name] = rows.get(name, 0) + count
    firsts = [t for t in (summary.first_ts, sunk[1]) if t is not None]
    lasts = [t for t in (summary.last_ts, sunk[2]) if t is not None]
    return replace(summary, rows={k: v for k, v in rows.items() if v}, first_ts=min(firsts) if firsts else None, last_ts=max(lasts) if lasts else None)


def ingest_to_parquet(
    inputs: Sequence[str], out_dir: Path, options: ParseOptions | None = None, changes_files: Sequence[str] = ()
) -> list[InputSummary]:
    """Parse the inputs and write the canonical frames as Parquet: `out_dir/<frame>.parquet`, plus
    `<frame>.<n>.parquet` for inputs streamed straight to disk (access logs, plain-text logs, JSON lines, logfmt, trace files). Frames of an earlier
    ingest into the same directory are replaced."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("is a file: --out takes a directory", file=str(out_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".rca-ingest-", dir=out_dir))
    except OSError as exc:
        raise InputError(f"cannot write there: {exc.strerror or exc}", file=str(out_dir)) from None
    # Written aside first (a hidden folder: never taken as an input) and moved in once all is written: an
    # ingest that fails leaves the earlier frames as they were, and frames of the earlier ingest given as
    # inputs (`rca ingest DIR -o DIR`) are read before they are replaced.
    try:
        dataset = load_dataset(inputs, options, changes_files=changes_files, tops=False, sink_dir=staging, output_dir=out_dir)
        for name in FRAMES:
            frame = dataset.frame(name)
            if frame.height:
                frame.write_parquet(staging / f"{name}.parquet", compression="snappy")  # 2x faster to write than zstd, smaller than lz4
        for name in FRAMES:
            for old in [*out_dir.glob(f"{name}.parquet"), *out_dir.glob(f"{name}.*.parquet")]:
                old.unlink()
        for new in staging.iterdir():
            new.replace(out_dir / new.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dataset.inputs


def ingest_to_store(
    inputs: Sequence[str], url: str, options: ParseOptions | None = None, changes_files: Sequence[str] = ()
) -> tuple[list[InputSummary], dict[str, int]]:
    """Parse the inputs and write their spans, log events and metric points into a ClickHouse store in
    the OpenTelemetry exporter's schema (`rca ingest FILES --out chdb:PATH` or `clickhouse://...`)."""
    from rca.parsers.clickhouse import write_store

    dataset = load_dataset(inputs, options, changes_files=changes_files, tops=False)
    return dataset.inputs, write_store(dataset, url)


__all__ = ["Rejected", "dedupe_changes", "ingest_to_parquet", "ingest_to_store", "load_dataset"]
