"""Runs of NUL bytes in a text log: holes to skip, not a sign of a binary file.

When logrotate's `copytruncate` empties a log that its writer keeps open without O_APPEND, the writer
goes on at its old offset: the file starts with a hole as long as the old log (read back as NUL bytes,
often megabytes) and normal lines follow. A crash can leave NUL blocks in the middle of a log the
same way. Such a file is text with NUL runs: its NUL bytes are removed as it is read and counted (one
warning per input), and line numbers stay those `grep -n` gives, since a NUL is never a line break.

A truly binary file (an ELF, protobuf, a compressed stream) is told apart by what is left once the NUL
bytes are gone: control bytes and undecodable bytes, or (UTF-16) far more NUL runs than lines.
"""

from __future__ import annotations

from collections.abc import Callable

NUL = b"\x00"
READ_ON_BYTES = 1 << 20  # read at a time past a leading hole, to find the text that follows it
COUNTED_BYTES = 1 << 20  # compared at a time when counting runs (small temporaries)
# bytes below 0x20 (and DEL) that plain text does not hold: not tab, line feed, vertical tab, form feed,
# carriage return or escape (colour codes)
_CONTROL = bytes([*range(1, 9), *range(14, 27), *range(28, 32), 127])


class NulRuns:
    """Removes NUL bytes from blocks of one input read in order, counting the bytes and the runs they
    form (a run cut by a block boundary counts once)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.runs = 0
        self._in_run = False  # the last block ended with a NUL

    def strip(self, block: bytes) -> bytes:
        """`block` without its NUL bytes (the block itself when it holds none)."""
        if not block:
            return block
        if NUL not in block:  # a memchr: the usual block costs nothing more
            self._in_run = False
            return block
        import numpy as np

        view = np.frombuffer(block, np.uint8)
        kept: list[bytes | memoryview] = []
        for start in range(0, view.size, COUNTED_BYTES):  # small temporaries, however big the block
            part = view[start : start + COUNTED_BYTES]
            zero = part == 0
            nuls = int(np.count_nonzero(zero))
            if nuls:
                # a run starts at a NUL that follows another byte
                self.runs += int(np.count_nonzero(zero[1:] & ~zero[:-1])) + int(zero[0] and not self._in_run)
                self.bytes += nuls
                if nuls < part.size:  # bytes.replace is slow on long runs (tens of MB/s): a mask is not
                    kept.append(part[~zero].tobytes())
            else:
                kept.append(memoryview(block)[start : start + COUNTED_BYTES])
            self._in_run = bool(zero[-1])
        return b"".join(kept)

    def note(self) -> str | None:
        """The warning that says what was skipped, None when nothing was."""
        if not self.bytes:
            return None
        return (f"skipped {self.bytes:,} NUL byte(s) in {self.runs:,} run(s) (a hole left by logrotate copytruncate or a crash); "
                "read the lines around them")


def looks_like_text(kept: bytes, runs: int) -> bool:
    """Whether `kept` (bytes of an input with its NUL bytes removed, `runs` runs of them) is text: few
    control or undecodable bytes, and no more NUL runs than lines (UTF-16 has a NUL every other byte)."""
    if not kept:
        return True
    controls = len(kept) - len(kept.translate(None, _CONTROL))
    if controls > max(8, len(kept) // 100):
        return False
    bad = kept.decode("utf-8", errors="replace").count("\ufffd")
    return bad <= max(8, len(kept) // 10) and runs <= kept.count(b"\n") + 1


def text_past_nul_runs(head: bytes, read: Callable[[int], bytes], size: int, limit: int | None = None) -> bytes | None:
    """The first `size` bytes of text of an input whose `head` holds NUL bytes, with its NUL runs removed
    (reading on with `read` past a leading hole, at most `limit` bytes when given), or None when the input
    is binary."""
    runs = NulRuns()
    kept = runs.strip(head)
    if kept and not looks_like_text(kept, runs.runs):
        return None  # judged on the head alone: a binary file is not read further
    scanned = len(head)
    while len(kept) < size and (limit is None or scanned < limit):
        scanned += READ_ON_BYTES
        try:
            block = read(READ_ON_BYTES)
        except Exception:  # a truncated or corrupt compressed stream: its readers say so; sniff what came before
            break
        if not block:
            break
        kept += runs.strip(block)
    kept = kept[:size]
    return kept if looks_like_text(kept, runs.runs) else None
