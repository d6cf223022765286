"""Reading a text input as a frame of numbered lines, robust to bad bytes.

Lines are read by polars' CSV reader with a separator that does not occur in text and no quoting: it
is several times faster than splitting in Python, keeps blank lines (so line numbers stay exact) and
decodes invalid UTF-8 lossily (U+FFFD), so one bad byte never loses a file. Very long lines are cut
out here and reported as rejected by the caller. A truncated compressed file yields what could be read
plus a warning.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl

from rca.errors import InputError
from rca.model import Rejected
from rca.parsers.nul_runs import NulRuns
from rca.parsers.sources import Source

MAX_LINE_BYTES = 1 << 20  # longer lines are rejected, not parsed
# Separators for reading a line as one field, the first not in the text taken (ASCII unit, record, group
# and file separators, then SOH): a separator in a line would split it, and the line would be cut short
# there, or the read fail when it is the first line.
_SEPARATORS = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01")
T = TypeVar("T")


@dataclass
class Lines:
    """Numbered lines of one input: `frame` has `line` (1-based Int64) and `text` (String, null if blank)."""

    frame: pl.DataFrame
    total: int  # lines in the input, blank ones included
    rejected: list[Rejected] = field(default_factory=list)  # too long, and the like
    rejected_count: int = 0
    warnings: list[str] = field(default_factory=list)


def read_payload(source: Source, binary: bool = False) -> tuple[bytes, list[str]]:
    """The decompressed bytes of a source; a truncated gzip gives what was readable plus a warning. A text
    input (not `binary`) loses its NUL runs (holes: `parsers.nul_runs`), counted in a warning."""
    payload, warnings = _payload(source)
    if not binary:
        runs = NulRuns()
        payload = runs.strip(payload)
        if note := runs.note():
            warnings.append(note)
    return payload, warnings


def _payload(source: Source) -> tuple[bytes, list[str]]:
    warnings: list[str] = []
    if source.compression == "gzip" and (source.path is not None or source.stream is not None):
        with source.open_raw() as stream:
            raw = stream.read()
        out = bytearray()
        data = raw
        while data:
            decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out += decomp.decompress(data)
            except zlib.error as exc:
                warnings.append(f"corrupt gzip data after {len(out):,} bytes ({exc}); read what came before")
                break
            if not decomp.eof:
                warnings.append(f"truncated gzip data: read {len(out):,} bytes, the rest is missing")
                break
            data = decomp.unused_data  # multi-member gzip (nginx `access_log ... gzip`)
        payload = bytes(out)
        if not payload and warnings:
            raise InputError(warnings[0], file=source.origin)
        return payload, warnings
    return source.read_bytes(), warnings


def read_blocks(source: Source, size: int, warnings: list[str]) -> Iterator[tuple[bytes, int]]:
    """The decompressed bytes of a source in blocks of about `size` cut after line ends (a line longer
    than `size` stays whole), each with the number of its first line. A truncated or corrupt compressed
    file ends the blocks with what was readable and a warning (InputError when nothing was): gzip is
    decompressed as `line_chunks` does it, so a truncated member still gives the lines before the cut."""
    number, carry, produced = 1, b"", 0
    blocks = text_blocks(source, warnings, size)
    while True:
        try:
            item = next(blocks, None)
        except InputError:
            raise
        except Exception as exc:  # bz2's EOFError and OSError, zstandard's: the input ends here
            if not produced:
                raise InputError(f"corrupt or truncated {source.compression or ''} data ({exc})".replace("  ", " "), file=source.origin) from None
            warnings.append(f"corrupt or truncated {source.compression} data after {produced:,} bytes ({exc}); read what came before")
            break
        if item is None:
            break
        chunk, read, total = item
        produced += len(chunk)
        if source.on_read is not None:
            source.on_read(read, total)
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: a line longer than a block
            carry = data
            continue
        block, carry = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
        yield block, number
        number += block.count(b"\n")
    if carry:
        yield carry, number
    elif not produced and warnings:
        raise InputError(warnings[-1], file=source.origin)


def read_lines(source: Source, payload: bytes | None = None) -> Lines:
    """All lines of `source` as a frame (`line`, `text`), with lines over MAX_LINE_BYTES rejected."""
    warnings: list[str] = []
    if payload is None:
        payload, warnings = read_payload(source)
    if not payload.strip():
        return Lines(frame=pl.DataFrame(schema={"line": pl.Int64, "text": pl.String}), total=0, warnings=warnings)
    if payload.endswith(b"\n"):
        payload = payload[:-1]
    separator = next((s for s in _SEPARATORS if s.encode() not in payload), None)
    if separator is None:  # every separator in the text (binary junk): split here
        texts = payload.decode("utf-8", errors="replace").split("\n")
        frame = pl.DataFrame({"text": [text or None for text in texts]}, schema={"text": pl.String}).with_row_index("line", offset=1)
    else:
        frame = pl.read_csv(
            payload,
            has_header=False,
            separator=separator,
            quote_char=None,
            encoding="utf8-lossy",
            new_columns=["text"],
            schema={"text": pl.String},
            truncate_ragged_lines=True,
            comment_prefix=None,
        ).with_row_index("line", offset=1)
    frame = frame.with_columns(pl.col("line").cast(pl.Int64), pl.col("text").str.strip_suffix("\r"))
    total = frame.height
    too_long = frame.filter(pl.col("text").str.len_bytes() > MAX_LINE_BYTES)
    rejected: list[Rejected] = []
    if too_long.height:
        frame = frame.filter((pl.col("text").str.len_bytes() <= MAX_LINE_BYTES) | pl.col("text").is_null())
        for row in too_long.head(5).iter_rows(named=True):
            rejected.append(Rejected(row["line"], f"line too long ({len(row['text']):,} characters)", row["text"][:120]))
    return Lines(frame=frame, total=total, rejected=rejected, rejected_count=too_long.height, warnings=warnings)


def rejected_examples(frame: pl.DataFrame, reason: pl.Expr | str, limit: int = 5) -> list[Rejected]:
    """The first `limit` rows of a (line, text) frame as Rejected with a reason (expression or text)."""
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    head = frame.head(limit).select("line", pl.col("text").str.slice(0, 160).alias("text"), reason_expr.alias("reason"))
    return [Rejected(r["line"], r["reason"], r["text"] or "") for r in head.iter_rows(named=True)]


CHUNK_BYTES = 8 << 20  # whole lines read at a time by the chunked readers: bounds memory on multi-GB logs


@dataclass
class LineChunk:
    """A run of whole lines of an input (ending with a newline) and where it lies in the input."""

    data: bytes
    first_line: int  # 1-based number of the first line in `data`
    lines: int  # lines in `data`
    read: int  # bytes of the input (compressed, when it is) consumed so far, for progress
    total: int  # size of the input in the same unit (0 when unknown: stdin)
    _ends: np.ndarray | None = field(default=None, repr=False)

    def line_ends(self) -> np.ndarray:
        """Offsets of the line breaks in `data` (found once, on demand)."""
        if self._ends is None:
            self._ends = byte_offsets(self.data, 10)
        return self._ends


_COMPARED_BYTES = 1 << 18


def count_byte(data: bytes, byte: int) -> int:
    """How many times `byte` occurs in `data`. Compared a quarter megabyte at a time: a temporary array the
    size of a chunk is fresh memory each time, which the kernel zeroes (numpy asks huge pages for it), a
    small one is reused; a third of `bytes.count`'s time."""
    view = np.frombuffer(data, np.uint8)
    return sum(int(np.count_nonzero(view[i : i + _COMPARED_BYTES] == byte)) for i in range(0, view.size, _COMPARED_BYTES))


def byte_offsets(data: bytes, byte: int) -> np.ndarray:
    """The offsets of `byte` in `data`, ascending (int64; compared as `count_byte` does)."""
    view = np.frombuffer(data, np.uint8)
    found = [np.flatnonzero(view[i : i + _COMPARED_BYTES] == byte) + i for i in range(0, view.size, _COMPARED_BYTES)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def line_chunks(source: Source, warnings: list[str], chunk_bytes: int | None = None) -> Iterator[LineChunk]:
    """The input's lines, `chunk_bytes` (about) at a time, cut at line ends; a gzip file is decompressed
    member by member (nginx writes multi-member gzip). A truncated or corrupt compressed input yields
    what came before and appends a warning to `warnings`."""
    first, read, total = 1, 0, 0
    carry = b""
    for block, read, total in text_blocks(source, warnings, chunk_bytes or CHUNK_BYTES):
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            carry += block
            continue
        data = b"".join((carry, memoryview(block)[:cut]))  # one copy
        carry = block[cut:]
        count = count_byte(data, 10)
        if source.on_read is not None:
            source.on_read(read, total)
        yield LineChunk(data, first, count, read, total)
        first += count
    if carry:
        yield LineChunk(carry + b"\n", first, 1, read, total)


def text_blocks(source: Source, warnings: list[str], size: int) -> Iterator[tuple[bytes, int, int]]:
    """The decompressed bytes of a text input in blocks of about `size`, without NUL runs (holes:
    `parsers.nul_runs`, counted in one warning at the end), with (bytes read, total) for progress."""
    runs = NulRuns()
    for block, read, total in decompressed_blocks(source, warnings, size):
        yield runs.strip(block), read, total
    if note := runs.note():
        warnings.append(note)


def decompressed_blocks(source: Source, warnings: list[str], size: int) -> Iterator[tuple[bytes, int, int]]:
    """The decompressed bytes of an input as they are (binary too), in blocks of about `size`, with (bytes
    read, total) as stored for progress; gzip member by member, a truncated or corrupt stream ending the
    blocks with a warning."""
    if source.path is None and source.stream is None:
        data = source.data or b""
        for start in range(0, len(data), size):
            yield data[start : start + size], min(start + size, len(data)), len(data)
        return
    total = source.size()
    with source.open_raw() as raw:
        if source.compression is None:
            while block := raw.read(size):
                yield block, raw.tell(), total
            return
        if source.compression != "gzip":
            with source.decompressing(raw) as stream:
                while block := stream.read(size):
                    yield block, raw.tell(), total
            return
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        produced = 0
        in_member = False
        while compressed := raw.read(size // 8):
            while compressed:
                in_member = True
                try:
                    block = decomp.decompress(compressed)
                except zlib.error as exc:
                    warnings.append(f"corrupt gzip data after {produced:,} bytes ({exc}); read what came before")
                    return
                produced += len(block)
                if block:
                    yield block, raw.tell(), total
                compressed = b""
                if decomp.eof:  # multi-member gzip: go on with the next member
                    compressed, in_member = decomp.unused_data, False
                    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if in_member:
            warnings.append(f"truncated gzip data: read {produced:,} bytes, the rest is missing")


def has_long_line(chunk: LineChunk) -> bool:
    """Whether a line of the chunk is over MAX_LINE_BYTES, probing every MAX_LINE_BYTES/2 bytes (such a
    line spans a probe) instead of measuring every line."""
    data = chunk.data
    for probe in range(0, len(data), MAX_LINE_BYTES // 2):
        if data.find(b"\n", probe) - data.rfind(b"\n", 0, probe) - 1 > MAX_LINE_BYTES:
            return True
    return False


def read_share(chunk: LineChunk) -> float | None:
    """The share of its input read once `chunk` is (bytes read / size; None when the size is unknown: stdin)."""
    return chunk.read / chunk.total if chunk.total > 0 else None


def map_chunks(source: Source, warnings: list[str], work: Callable[[LineChunk], T], workers: int = 2,
               chunks: Iterable[LineChunk] | None = None, chunk_bytes: int | None = None) -> Iterator[T]:
    """`work` applied to each chunk of the input (`line_chunks` of `chunk_bytes`, or the rest of `chunks`
    when given) on `workers` threads (polars releases the GIL), results in input order.

    A reader thread reads the chunks and hands them to the workers as soon as one of the `workers + 1`
    places is free, so the workers never wait for the consumer to ask for the next result, nor for the
    read: the consumer (a Parquet sink, a bounded sample) works meanwhile. At most `workers + 1` chunks
    are in flight besides the result the consumer holds, so memory stays bounded."""
    import queue
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    places = threading.Semaphore(workers + 1)
    stop = threading.Event()
    handed: queue.SimpleQueue[Future[T] | BaseException | None] = queue.SimpleQueue()  # None: no more chunks

    def read(pool: ThreadPoolExecutor) -> None:
        try:
            for chunk in (line_chunks(source, warnings, chunk_bytes) if chunks is None else chunks):
                while not places.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                handed.put(pool.submit(work, chunk))
            handed.put(None)
        except BaseException as exc:  # an unreadable input: raised where the results are taken
            handed.put(exc)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rca-chunks") as pool:
        # not joined: a consumer that stops early must not wait on a read (a pipe) that may never end
        threading.Thread(target=read, args=(pool,), name="rca-read-chunks", daemon=True).start()
        try:
            while (item := handed.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                result = item.result()
                places.release()
                yield result
        finally:
            stop.set()
            while not handed.empty():
                if isinstance(left := handed.get(), Future):
                    left.cancel()


def chunk_lines(origin: str, chunk: LineChunk) -> Lines:
    """`read_lines` of one chunk, numbered as lines of the whole input."""
    lines = read_lines(Source(origin=origin, data=b""), payload=chunk.data)
    lines.frame = lines.frame.with_columns(pl.col("line") + (chunk.first_line - 1))
    lines.rejected = [Rejected(r.line + chunk.first_line - 1, r.reason, r.text) for r in lines.rejected]
    return lines
