"""Every span of a big trace input, finished in bounded memory: spilled to disk by trace, finished a group of
traces at a time, written back in read order (`rca ingest`).

What `spantree.finish_spans` makes of spans needs whole traces, not the whole input: a span's parent and
children (self time, the caller of a server span), duplicate ids, orphans, skew and rootless traces all
stay within its trace. So a reader hands its raw spans block by block (as `bounded_spans.BoundedSpans`
takes them, never sampled here) and `SpilledSpans`:
- numbers them in read order (`_seq`) and notes which services carry `service.version` on any span (the
  one fact of the whole input a trace's spans need: a service that never does is versioned by its pods'
  template hash, `spantree.unversioned_services`);
- holds up to `SPILL_SPANS` of them, then writes them to one temporary Parquet file sorted by trace bucket
  (`BUCKETS` buckets by trace-id hash, small row groups, so a bucket range reads only its own rows);
- once the input is read, finishes the buckets in groups of consecutive buckets of about `GROUP_SPANS`
  spans (a group holds whole traces), each written to temporary spans and requests files in read order,
  and counts its integrity findings and release sightings (merged into the input's warnings and version
  changes: `spantree.merge_sightings`);
- merges the groups' files back into read order (`in_read_order`), a slice of each group at a time.
An input of no more than `SPILL_SPANS` spans is finished in memory as it is (nothing written to disk). So the frames are those `finish_spans` makes of the whole input, row for row and in the same order, while
memory holds a few hundred thousand spans at any size (more only for one trace, or the spans without a trace
id, bigger than that). The temporary files (in TMPDIR, lz4-compressed) take some tenth of the input's size (about
0.3 GB for 5M spans of OTLP/JSON lines, 2.3 GB) and are removed once read.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from itertools import zip_longest
from pathlib import Path

import polars as pl

from rca.model import REQUESTS_SCHEMA, SPANS_SCHEMA
from rca.parsers import ParseResult, Streamed, lazy_tee
from rca.parsers.bounded_spans import Reduced
from rca.parsers.spantree import InputSpans, finish_spans, unversioned_services, versioned_services

BUCKETS = 4096  # trace buckets (by trace-id hash): an input of BUCKETS * GROUP_SPANS spans still finishes in groups of GROUP_SPANS
BUCKET_SEED = 0x5B111  # the trace-id hash placing a trace in its bucket
SPILL_SPANS = 250_000  # raw spans held before they are written to disk, sorted by bucket
SPILL_ROW_GROUP = 8_192  # rows per row group of a spill file: a group's read skips the row groups of other buckets
GROUP_SPANS = 250_000  # spans finished at a time (consecutive buckets; a bucket bigger than that alone)
MERGE_ROWS = 200_000  # rows of every group's files held at once while merging them back into read order


def streamed_spans(origin: str, read: Callable[[SpilledSpans], ParseResult]) -> Streamed:
    """A trace input as `Streamed` (`rca ingest`): `read(spans)` reads every span of it into `spans` and gives the
    rest of its parse (lines, rejected lines, warnings, log events and metric points: no span frames); the
    spans and requests stream from `SpilledSpans.frames`, the version changes and integrity warnings of
    every span join the rest."""
    spans = SpilledSpans(origin)
    reads: list[ParseResult] = []

    def parts() -> Iterator[dict[str, pl.DataFrame]]:
        reads.append(read(spans))
        yield from spans.frames()

    def remainder() -> ParseResult:
        (rest,) = reads
        return dataclasses.replace(rest, frames={"changes": spans.whole.changes(origin), **rest.frames}, warnings=rest.warnings + spans.whole.warnings())

    return Streamed(lazy_tee(parts, {"spans": SPANS_SCHEMA, "requests": REQUESTS_SCHEMA}), remainder)


class SpilledSpans:
    """An input's raw spans, every one of them, spilled by trace and finished a group of traces at a time
    (see the module docstring). Takes blocks as `BoundedSpans` does (`take`, `wanted_level`)."""

    wanted_level = None  # blocks come back whole from worker processes: nothing is sampled

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.directory = tempfile.TemporaryDirectory(prefix="rca-spans-")
        self.held: list[pl.DataFrame] = []
        self.held_spans = 0
        self.spans = 0  # spans taken, the next one's `_seq`
        self.spills: list[Path] = []
        self.bucket_spans = pl.Series("spans", [0] * BUCKETS, dtype=pl.Int64)
        self.versioned: list[pl.DataFrame] = []  # `versioned_services` of each spill
        self.whole = InputSpans(pl.Series("service", [], dtype=pl.String))  # what the groups make of the input: set by `frames`

    def take(self, reduced: Reduced) -> None:
        """Take a block as `bounded_spans.reduce_block` gave it (at level None: every raw span)."""
        _, (raw, *_) = reduced
        if raw is not None:
            self.add_raw(raw)

    def add_raw(self, raw: pl.DataFrame) -> None:
        """Take a block of raw spans (blocks in read order)."""
        if not raw.height:
            return
        self.held.append(raw.with_columns(pl.int_range(self.spans, self.spans + raw.height, dtype=pl.Int64).alias("_seq")))
        self.spans += raw.height
        self.held_spans += raw.height
        if self.held_spans >= SPILL_SPANS:
            self._spill()

    def _spill(self) -> None:
        if not self.held:
            return
        rows = pl.concat(self.held).with_columns((pl.col("trace_id").hash(BUCKET_SEED) % BUCKETS).cast(pl.UInt16).alias("_bucket"))
        self.held, self.held_spans = [], 0
        self.versioned.append(versioned_services(rows))
        counts = rows.get_column("_bucket").value_counts()
        self.bucket_spans = self.bucket_spans.scatter(counts["_bucket"].cast(pl.Int64), self.bucket_spans.gather(counts["_bucket"].cast(pl.Int64)) + counts["count"])
        path = Path(self.directory.name) / f"spill-{len(self.spills)}.parquet"
        rows.sort("_bucket", "_seq").write_parquet(path, compression="lz4", row_group_size=SPILL_ROW_GROUP, statistics=True)
        self.spills.append(path)

    def groups(self) -> list[tuple[int, int]]:
        """(first, last) bucket of each group finished together: consecutive buckets of about GROUP_SPANS spans."""
        groups: list[tuple[int, int]] = []
        first, held = 0, 0
        for bucket, count in enumerate(self.bucket_spans.to_list()):
            if held and held + count > GROUP_SPANS:
                groups.append((first, bucket - 1))
                first, held = bucket, 0
            held += count
        if held:
            groups.append((first, BUCKETS - 1))
        return groups

    def frames(self) -> Iterator[dict[str, pl.DataFrame]]:
        """The canonical spans and requests rows of every span taken, a slice at a time in read order (read
        once, after the last block); `whole` then holds the input's warnings and version changes."""
        if not self.spills:  # every span still held (a small input): finished as it is, nothing on disk
            raw = pl.concat(self.held) if self.held else None
            self.held = []
            self.whole = InputSpans(unversioned_services([versioned_services(raw)]) if raw is not None else pl.Series("service", [], pl.String))
            if raw is not None:
                frames, _ = finish_spans(raw, self.origin, self.whole)
                yield {name: self._finished(frames[name]) for name in ("spans", "requests")}
            self.close()
            return
        self._spill()
        self.whole = InputSpans(unversioned_services(self.versioned))
        files: dict[str, list[Path]] = {"spans": [], "requests": []}
        groups = self.groups()
        slice_rows = max(MERGE_ROWS // len(groups), 1_000)
        for first, last in groups:
            raw = pl.scan_parquet(self.spills).filter(pl.col("_bucket").is_between(first, last)).drop("_bucket").collect().sort("_seq")
            frames, _ = finish_spans(raw, self.origin, self.whole)
            del raw
            if len(groups) == 1:  # in read order already
                self.close()
                yield {name: self._finished(frames[name]) for name in files}
                return
            for name, paths in files.items():
                path = Path(self.directory.name) / f"{name}-{len(paths)}.parquet"
                frames[name].write_parquet(path, compression="lz4", row_group_size=slice_rows)
                paths.append(path)
            del frames
        for path in self.spills:
            path.unlink()
        self.spills = []
        merged = {name: in_read_order(paths, slice_rows) for name, paths in files.items()}
        for spans, requests in zip_longest(merged["spans"], merged["requests"]):
            yield {name: self._finished(rows) for name, rows in (("spans", spans), ("requests", requests)) if rows is not None}
        self.close()

    def _finished(self, rows: pl.DataFrame) -> pl.DataFrame:
        return rows.drop("_seq").with_columns(origin=pl.lit(self.origin), signal=pl.lit("trace"))

    def close(self) -> None:
        """Remove the temporary files."""
        self.directory.cleanup()


def in_read_order(paths: list[Path], slice_rows: int) -> Iterator[pl.DataFrame]:
    """The rows of `paths` (each in `_seq` order) merged into `_seq` order, `slice_rows` of each file held at a
    time: each round gives every row up to the lowest of the files' last `_seq` held (so at least one file's
    slice is used up and read on)."""
    offsets = [0] * len(paths)
    sizes = [pl.scan_parquet(path).select(pl.len()).collect().item() for path in paths]

    def read(k: int) -> pl.DataFrame | None:
        if offsets[k] >= sizes[k]:
            return None
        rows = pl.scan_parquet(paths[k]).slice(offsets[k], slice_rows).collect()
        offsets[k] += rows.height
        return rows

    held = [read(k) for k in range(len(paths))]
    while True:
        live = [k for k, rows in enumerate(held) if rows is not None]
        if not live:
            return
        mark = min(held[k]["_seq"][-1] for k in live)  # type: ignore[index]
        out = []
        for k in live:
            rows = held[k]
            assert rows is not None
            cut = rows["_seq"].search_sorted(mark, side="right")
            out.append(rows.slice(0, cut))
            held[k] = rows.slice(cut) if cut < rows.height else read(k)
        merged = pl.concat(out)
        yield merged.sort("_seq") if len(out) > 1 else merged
