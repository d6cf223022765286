"""The elements of a JSON document's big array, cut out of its bytes block by block (never the whole document).

A Jaeger download (`{"data": [trace, ...], ...}`) or a Zipkin one (`[span, ...]`, `[[span, ...], ...]`) is one
JSON document; read whole, a million spans hold some 5 GB as Python objects. `ArrayBatches` finds the
array's commas between elements in each block with numpy (quotes not escaped by an odd run of backslashes
open and close strings; brackets and braces outside strings give the depth) and hands out runs of whole
elements as small JSON arrays (`[e1,e2,...]`) for orjson, in order. Nothing but the element separators
is checked here: a malformed element fails in orjson, as the document read whole would.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import numpy as np

from rca.parsers.lines import text_blocks
from rca.parsers.sources import Source

_QUOTE, _BACKSLASH, _COMMA = 34, 92, 44
_OPEN = (91, 123)  # [ {
_CLOSE = (93, 125)  # ] }


class ArrayBatches:
    """Runs of whole elements of the first array that opens at nesting `depth` (0: the document is the
    array; 1: the array is a value of the top object, e.g. Jaeger's `data`), as JSON arrays of bytes."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.buffer = bytearray()  # bytes not yet handed out, from `start`
        self.offset = 0  # position of buffer[0] in the document
        self.start = -1  # position just after the array's `[` or the last comma handed out (-1: not found yet)
        self.ended = False  # the array's closing bracket was read (else: not found yet, or the document was cut short)
        self.in_string = False
        self.level = 0  # nesting depth at the end of what was scanned
        self.backslashes = 0  # backslashes ending what was scanned

    def feed(self, block: bytes) -> list[bytes]:
        """The runs of elements completed by `block` (the document's next bytes)."""
        if self.ended or not block:
            return []
        base = self.offset + len(self.buffer)
        self.buffer += block
        cuts, end = self._scan(block, base)
        out = []
        last = end if end is not None else (cuts[-1] if cuts else None)
        if last is not None and self.start >= 0 and last > self.start:
            out.append(self._run(last))
        if end is not None:
            self.ended = True
            self.buffer = bytearray()
        return out

    def _run(self, stop: int) -> bytes:
        """The elements between `start` and `stop` (document positions) as a JSON array; the buffer drops them."""
        run = b"[" + bytes(self.buffer[self.start - self.offset : stop - self.offset]) + b"]"
        del self.buffer[: stop + 1 - self.offset]
        self.offset = stop + 1
        self.start = stop + 1
        return run

    def _scan(self, block: bytes, base: int) -> tuple[list[int], int | None]:
        """Document positions of the separating commas in `block`, and of the array's closing bracket."""
        view = np.frombuffer(block, np.uint8)
        quotes = np.flatnonzero(view == _QUOTE)
        if quotes.size and (view == _BACKSLASH).any():
            slash = view == _BACKSLASH
            counts = np.cumsum(slash, dtype=np.int64)
            run = counts - np.maximum.accumulate(np.where(slash, 0, counts))  # backslashes ending at each byte
            before = np.where(quotes > 0, run[np.maximum(quotes - 1, 0)], 0)
            before = np.where(quotes == before, before + self.backslashes, before)  # a run from the last block
            quotes = quotes[before % 2 == 0]
        elif quotes.size and self.backslashes % 2 == 1 and quotes[0] == 0:
            quotes = quotes[1:]
        trailing = 0
        while trailing < len(block) and block[-1 - trailing] == _BACKSLASH:
            trailing += 1
        self.backslashes = trailing + (self.backslashes if trailing == len(block) else 0)
        marks = np.flatnonzero(_any_of(view, (*_OPEN, *_CLOSE, _COMMA)))
        inside = (np.searchsorted(quotes, marks) + int(self.in_string)) % 2 == 1
        if quotes.size % 2:
            self.in_string = not self.in_string
        marks = marks[~inside]
        chars = view[marks]
        step = np.where(_any_of(chars, _OPEN), 1, np.where(_any_of(chars, _CLOSE), -1, 0))
        after = np.cumsum(step) + self.level
        before = after - step
        self.level = int(after[-1]) if after.size else self.level
        cuts: list[int] = []
        end = None
        first = 0
        if self.start < 0:
            opened = np.flatnonzero((chars == 91) & (before == self.depth))
            if not opened.size:
                return [], None
            first = int(opened[0]) + 1
            self.start = base + int(marks[first - 1]) + 1
            del self.buffer[: self.start - self.offset]
            self.offset = self.start
        rest_chars, rest_before = chars[first:], before[first:]
        closing = np.flatnonzero(_any_of(rest_chars, _CLOSE) & (rest_before == self.depth + 1))
        stop = int(closing[0]) if closing.size else rest_chars.size
        commas = np.flatnonzero((rest_chars[:stop] == _COMMA) & (rest_before[:stop] == self.depth + 1))
        cuts = (marks[first:][commas] + base).tolist()
        if closing.size:
            end = int(marks[first:][stop]) + base
        return cuts, end


def _any_of(values: np.ndarray, wanted: tuple[int, ...]) -> np.ndarray:
    """Whether each byte is one of `wanted` (a few comparisons: `np.isin` sorts, several times slower)."""
    found = values == wanted[0]
    for byte in wanted[1:]:
        found |= values == byte
    return found


BATCH_BYTES = 8 << 20  # of the document read at a time: some 25k spans, a few hundred MB at most as objects


def document_runs(source: Source, warnings: list[str], depth: int) -> Iterator[list[Any] | str]:
    """The elements of `source`'s array at `depth` (see `ArrayBatches`) parsed a run at a time (a list), or
    the reason a run is not valid JSON (a str); read BATCH_BYTES at a time (without NUL runs, as every
    text reader) with the garbage collector paused (millions of small objects: generational collections
    would dominate). A warning when the document ends before the array closes (the whole elements before
    are given)."""
    import orjson

    batches = ArrayBatches(depth)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for block, read, total in text_blocks(source, warnings, BATCH_BYTES):
            for run in batches.feed(block):
                try:
                    yield orjson.loads(run)
                except orjson.JSONDecodeError as exc:
                    yield f"invalid JSON ({str(exc).split(':')[0]})"
            if source.on_read is not None:
                source.on_read(read, total)
    finally:
        if enabled:
            gc.enable()
    if not batches.ended:
        warnings.append("the document ends before its array of traces or spans closes: read the whole elements before")
