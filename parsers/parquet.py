"""Canonical frames written by `rca ingest` (`requests.parquet`, `events.parquet`, ...), read back as is.

With the analysis bounds (`ParseOptions.max_request_rows`, `max_event_rows`), requests and events are read a
batch of rows at a time into the bounded samplers the log parsers use (`bounded.BoundedRequests`,
`bounded_events.BoundedEvents`): past the bound, exact aggregates of every row and a sample of the rows,
as the log the frames came from gives them; never every row in memory. Other frames are read whole.
"""

from __future__ import annotations

from pathlib import Path, PurePath

import polars as pl

from rca.errors import InputError
from rca.model import FRAMES, REQUESTS_SCHEMA, SCHEMAS, conform, empty_frame
from rca.parsers import ParseOptions, ParseResult, register
from rca.parsers.sources import Sample, Source


class ParquetFramesParser:
    name = "parquet"
    description = "canonical frames written by `rca ingest` (<frame>.parquet)"

    def sniff(self, sample: Sample) -> float:
        stem = PurePath(sample.origin).name.split(".")[0]
        return 1.0 if sample.head.startswith(b"PAR1") and stem in FRAMES else 0.0

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        stem = PurePath(source.origin).name.split(".")[0]
        bound = {"requests": options.max_request_rows, "events": options.max_event_rows}.get(stem)
        if bound is not None and source.path is not None:
            return _parse_bounded(source, source.path, stem, options)
        try:
            frame = pl.read_parquet(source.path if source.path is not None else source.read_bytes())
        except Exception as exc:  # polars raises several error types on corrupt parquet
            raise InputError(f"unreadable Parquet ({exc.__class__.__name__})", file=source.origin) from None
        return ParseResult(format=self.name, frames={stem: conform(frame, stem)}, lines=frame.height)  # type: ignore[dict-item]


BATCH_ROWS = 200_000  # rows read at a time by the bounded read: some tens of MB of requests


def _parse_bounded(source: Source, path: Path, stem: str, options: ParseOptions) -> ParseResult:
    """Requests or events read a batch of rows at a time into their bounded sampler (see the module docstring)."""
    from rca.parsers.bounded import BoundedRequests
    from rca.parsers.bounded_events import BoundedEvents

    requests = BoundedRequests(options.max_request_rows) if stem == "requests" else None
    events = BoundedEvents(options.max_event_rows) if stem == "events" else None
    columns = None if options.request_columns is None or stem != "requests" else [c for c in REQUESTS_SCHEMA if c in (*options.request_columns, "line")]
    rows = 0
    try:
        scan = pl.scan_parquet(path)
        total = scan.select(pl.len()).collect().item()
        present = set(scan.collect_schema().names())
        read = [c for c in (columns or SCHEMAS[stem]) if c in present]
        # a slice at a time, in memory: the streaming engine's batches (collect_batches, sink_batches) read the
        # whole file ahead of a slower consumer (5M requests: 0.63-0.86 GB), slices read what they give
        for offset in range(0, total, BATCH_ROWS):
            batch = conform(scan.select(read).slice(offset, BATCH_ROWS).collect(engine="in-memory"), stem)
            rows += batch.height
            if requests is not None:
                requests.add(batch if columns is None else batch.select(columns), rows / total)
            elif events is not None:
                events.add(batch, rows / total)
    except Exception as exc:  # polars raises several error types on corrupt parquet
        raise InputError(f"unreadable Parquet ({exc.__class__.__name__})", file=source.origin) from None
    if requests is not None:
        kept = conform(requests.frame(empty_frame("requests")), "requests")
        return ParseResult(format=ParquetFramesParser.name, frames={"requests": kept}, lines=rows, request_sample=requests.sample())
    assert events is not None
    frames_read = {"events": events.frame(empty_frame("events")), "changes": events.changes(empty_frame("changes"))}
    return ParseResult(format=ParquetFramesParser.name, frames=frames_read, lines=rows, event_sample=events.sample())


register(ParquetFramesParser())
