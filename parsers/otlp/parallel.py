"""Big OTLP files in parts: worker processes beside this one, and how a part and its result travel.

A worker is a fresh interpreter running `rca.parsers.otlp.worker` (neither forking running polars
threads nor re-importing the caller's main module). A part travels as `send_part` writes it (the
pickled meta after its 8-byte length, then the part's bytes as they are); the result comes back as
`write_part` writes it (the pickled rest after its length, then the span frame as Arrow IPC: pickling
a frame of 400k spans took 0.4 s to write and 0.2 s to read, IPC 0.1 s each way).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any

import polars as pl


def send_part(given: IO[bytes], meta: Any, raw: bytes | memoryview = b"") -> None:
    """`meta` pickled after its length, then `raw` as it is (a slice of the payload is not copied)."""
    header = pickle.dumps(meta, protocol=5)
    given.write(struct.pack("<Q", len(header)) + header)
    given.write(raw)
    given.flush()


def receive_part(given: IO[bytes]) -> tuple[Any, bytes]:
    """What `send_part` wrote: (meta, raw)."""
    (size,) = struct.unpack("<Q", given.read(8))
    return pickle.loads(given.read(size)), given.read()


def write_part(out: IO[bytes], rest: Any, frame: pl.DataFrame | None) -> None:
    """`rest` pickled after its length, then `frame` (a polars DataFrame, or None) as Arrow IPC."""
    header = pickle.dumps((rest, frame is not None), protocol=5)
    out.write(struct.pack("<Q", len(header)) + header)
    if frame is not None:
        frame.write_ipc(out, compat_level=pl.CompatLevel.newest())
    out.flush()


def read_part(given: IO[bytes]) -> tuple[Any, pl.DataFrame | None]:
    """What `write_part` wrote: (rest, frame or None)."""
    import io

    (size,) = struct.unpack("<Q", given.read(8))
    rest, has_frame = pickle.loads(given.read(size))
    return rest, pl.read_ipc(io.BytesIO(given.read())) if has_frame else None


# The walk is Python (msgspec decodes in C, but each span's fields are then read one by one), so a big
# file is cut at line ends into one part per core, each walked by its own process. Below this size a
# process's start (importing polars, about half a second) costs more than it saves.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def in_workers(requests: list[tuple[Any, bytes | memoryview]], here: Callable[[], Any],
                unpack: Callable[[Any, pl.DataFrame | None], Any], redo: Callable[[int], Any]) -> tuple[Any, list[Any]]:
    """`here()` in this process while a worker process (`rca.parsers.otlp.worker` in a fresh interpreter:
    neither forking running polars threads nor re-importing the caller's main module) handles each
    request; returns `here()`'s result and `unpack(rest, frame)` of each worker's reply, in request
    order. Requests and replies travel through temporary files, not pipes a thread of this process
    would have to pump while the decode holds the GIL. A worker that fails (an input error in its part
    included) leaves its part to `redo(k)` here, so errors are raised in order; if `here()` raises,
    the workers are stopped."""
    import subprocess
    import tempfile

    command = worker_command()
    workers = []
    for meta, raw in requests:
        given, taken = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed below, after the worker)
        send_part(given, meta, raw)
        given.seek(0)
        workers.append((subprocess.Popen(command, stdin=given, stdout=taken, stderr=subprocess.DEVNULL), given, taken))
    try:
        mine = here()
    except BaseException:
        for child, given, taken in workers:
            child.kill()
            child.wait()
            given.close()
            taken.close()
        raise
    theirs = []
    for k, (child, given, taken) in enumerate(workers):
        with given, taken:
            try:
                if child.wait() != 0:
                    raise RuntimeError(child.returncode)
                taken.seek(0)
                theirs.append(unpack(*read_part(taken)))
            except Exception:  # the worker died, wrote nothing readable or met an input error: its part here
                theirs.append(redo(k))
    return mine, theirs


def write_message(out: IO[bytes], meta: Any, frames: list[pl.DataFrame | None], raw: bytes | memoryview = b"") -> None:
    """One message of a worker conversation: `meta`, then each frame (Arrow IPC) and `raw`, all length-prefixed."""
    import io

    blobs: list[bytes | memoryview] = []
    for frame in frames:
        if frame is None:
            blobs.append(b"")
            continue
        buffer = io.BytesIO()
        frame.write_ipc(buffer, compat_level=pl.CompatLevel.newest())
        blobs.append(buffer.getbuffer())
    header = pickle.dumps((meta, [None if f is None else len(b) for f, b in zip(frames, blobs, strict=True)], len(raw)), protocol=5)
    out.write(struct.pack("<Q", len(header)) + header)
    for blob in blobs:
        out.write(blob)
    out.write(raw)
    out.flush()


def read_message(given: IO[bytes]) -> tuple[Any, list[pl.DataFrame | None], bytes] | None:
    """What `write_message` wrote: (meta, frames, raw); None at the end of the stream."""
    import io

    head = given.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    meta, sizes, raw_size = pickle.loads(_read_exactly(given, size))
    frames = [None if n is None else pl.read_ipc(io.BytesIO(_read_exactly(given, n))) for n in sizes]
    return meta, frames, _read_exactly(given, raw_size)


def _read_exactly(given: IO[bytes], size: int) -> bytes:
    data = given.read(size)
    if len(data) != size:
        raise EOFError(f"a worker message was cut: {len(data)} of {size} bytes")
    return data


Reply = tuple[Any, Any]  # what a block gave: (the rest of its decode, its spans as `bounded_spans.reduce_block` gives them)


class BlockWorkers:
    """Worker processes (`rca.parsers.otlp.worker` serving a conversation) that each decode one block of
    an input at a time, fed and read through pipes, replies taken in the order blocks were sent.

    Each worker holds at most one block: this process writes a block only to a worker whose reply it has
    read, and a worker replies only after reading its whole block, so neither side waits on the other's
    pipe. A worker that fails leaves its block to `redo` here (an input error included), so errors are
    raised in order."""

    def __init__(self, count: int, redo: Callable[[Any, bytes], Reply]):
        import subprocess

        self.redo = redo
        self.workers = [subprocess.Popen(worker_command(serve=True), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                        for _ in range(count)]
        self.sent: list[tuple[int, Any, bytes]] = []  # (worker, meta, block) in the order sent, replies not read yet
        self.next = 0

    def send(self, meta: Any, raw: bytes) -> Reply | None:
        """Give `raw` to the next worker; when it still held a block, that block's reply (else None)."""
        reply = self.receive() if len(self.sent) == len(self.workers) else None
        k = self.next
        self.next = (k + 1) % len(self.workers)
        try:
            stdin = self.workers[k].stdin
            assert stdin is not None
            write_message(stdin, meta, [], raw)
        except OSError:  # the worker is gone: its blocks are decoded here
            pass
        self.sent.append((k, meta, raw))
        return reply

    def receive(self) -> Reply:
        """The reply to the oldest block sent (decoded here when its worker failed)."""
        k, meta, raw = self.sent.pop(0)
        try:
            stdout = self.workers[k].stdout
            assert stdout is not None
            message = read_message(stdout)
            if message is not None:
                meta, frames, _ = message
                if meta is not None:
                    rest, sampled = meta
                    return rest, (sampled, frames)
        except Exception:  # a worker that died or wrote nothing readable: its block here
            pass
        return self.redo(meta, raw)

    def drain(self) -> list[Reply]:
        """The replies to every block still held, in order."""
        return [self.receive() for _ in range(len(self.sent))]

    def close(self) -> None:
        """Stop the workers (they end when their input does)."""
        for child in self.workers:
            try:
                if child.stdin is not None:
                    child.stdin.close()
            except OSError:
                pass
        for child in self.workers:
            try:
                child.wait(timeout=10)
            except Exception:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()


def decode_blocks(blocks: Iterator[tuple[tuple[Any, ...], bytes]], level: Callable[[], int | None], here: Callable[..., Reply],
                  take: Callable[[Reply], None], workers: int, start_after: int = 0) -> None:
    """Each block (`(kind, *meta)`, bytes) decoded by `here(bytes, *meta, level())` (`worker.serve` calls the
    same function in a worker process, by `kind`), in worker processes when `workers` > 1 once `start_after`
    bytes of blocks were decoded here (an input of unknown size, stdin: a short one never pays for their
    start); `take` gets the replies in block order. `level()` is asked when a block is sent: its reply may
    come at a lower level than the one of the moment (the reader thins it)."""
    seen = 0
    if workers < 2 or start_after > 0:
        for (_, *fields), raw in blocks:
            take(here(raw, *fields, level()))
            seen += len(raw)
            if workers >= 2 and seen >= start_after:
                break
        else:
            return
    pool = BlockWorkers(workers, lambda meta, raw: here(raw, *meta[1:]))
    try:
        for meta, raw in blocks:
            reply = pool.send((*meta, level()), raw)
            del raw
            if reply is not None:
                take(reply)
        for reply in pool.drain():
            take(reply)
    finally:
        pool.close()


def worker_count(size: int) -> tuple[int, int]:
    """Worker processes for an input of `size` bytes read in blocks (one per core, none when small or one
    core), and the bytes to decode before starting them: none for a file, PARALLEL_MIN_BYTES when the
    size is unknown (`size` 0: stdin, a pipe)."""
    import os

    cores = min(os.cpu_count() or 1, 8)
    if cores < 2 or 0 < size < PARALLEL_MIN_BYTES:
        return 1, 0
    return cores, 0 if size else PARALLEL_MIN_BYTES


def worker_command(serve: bool = False) -> list[str]:
    """A fresh interpreter running `rca.parsers.otlp.worker` from this very code, wherever it was imported from
    (`serve`: a conversation of blocks, `worker.serve`; else one part, `worker.main`)."""
    import sys
    from pathlib import Path

    # rca/parsers/otlp/parallel.py -> the folder holding the rca package (not resolved: in a source checkout
    # rca/parsers is a link to the top-level parsers/ folder, and the worker must import it as rca.parsers)
    root = str(Path(__file__).absolute().parents[3])
    entry = "serve" if serve else "main"
    return [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {root!r}); from rca.parsers.otlp.worker import {entry}; {entry}()"]
