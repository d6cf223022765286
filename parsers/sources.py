"""Inputs: expanding paths, directories and globs; stdin; gzip/zstd/bz2 by magic bytes.

A `Source` is one input: its origin (the name the user gave, kept on every row) and a way to read its
decompressed bytes. Compression is found from magic bytes, never from the extension. Nothing the user
gave is ever written to.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rca.errors import InputError
from rca.parsers.nul_runs import NUL, text_past_nul_runs

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZ2_MAGIC = b"BZh"
SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 20
STREAM_READ_ON_BYTES = 64 << 20  # read (and kept) at most past a leading hole of stdin to sniff the text after it


def detect_compression(head: bytes) -> str | None:
    """'gzip', 'zstd', 'bz2' or None, from the first bytes of a file."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZ2_MAGIC) and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    return None


@dataclass(frozen=True)
class Sample:
    """The head of an input, decompressed: what sniffing looks at."""

    origin: str
    head: bytes  # up to SAMPLE_BYTES decompressed bytes (of text, for a text input with NUL runs: see parsers.nul_runs)
    lines: tuple[str, ...]  # the first non-empty lines, decoded leniently
    is_binary: bool  # NUL bytes among control bytes, or mostly undecodable bytes, in the head


class _Replay(io.RawIOBase):
    """A read of a one-pass stream (stdin) that first replays the bytes its Source kept while sniffing: the
    Source is read once, a chunk at a time, like a file (never whole in memory)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        source = self.source
        kept = source.kept
        data = bytes(kept[self.position : self.position + len(buffer)])
        if len(data) < len(buffer):
            if not source.recording:
                if source.passed is None:
                    source.passed = self  # the first read past what was kept: no other read can replay it
                elif source.passed is not self:
                    raise InputError("standard input was already read past its start: save it to a file and give the file",
                                     file=source.origin)
            assert source.stream is not None
            more = source.stream.read(len(buffer) - len(data))
            if source.recording:
                kept += more
            else:
                source.kept = bytearray()  # replayed and passed: not needed any more
            data += more
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position


@dataclass
class Source:
    """One input: a file (possibly compressed), stdin read as it goes, or bytes in memory."""

    origin: str  # as shown to the user and stored in the `origin` column
    path: Path | None = None  # None for stdin
    data: bytes | None = None  # the content (decompressed) when there is neither path nor stream
    compression: str | None = None
    stream: BinaryIO | None = field(default=None, repr=False)  # stdin (as given: maybe compressed), read once
    _sample: Sample | None = field(default=None, repr=False)
    on_read: Callable[[int, int], None] | None = field(default=None, repr=False)  # (bytes read, total) as chunked readers go
    kept: bytearray = field(default_factory=bytearray, repr=False)  # of `stream`: the bytes read while sniffing, replayed
    recording: bool = field(default=False, repr=False)  # keep what is read from `stream` (while sniffing)
    passed: object | None = field(default=None, repr=False)  # the read that went past `kept`
    stream_size: int = field(default=0, repr=False)  # of `stream` as stored, when it is a regular file (`rca analyze - < file`), else 0

    def open_raw(self) -> BinaryIO:
        """A binary stream of the content as stored (compressed, when it is)."""
        if self.path is None:
            return _Replay(self) if self.stream is not None else io.BytesIO(self.data or b"")  # type: ignore[return-value]
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror or exc}", file=self.origin) from None

    def size(self) -> int:
        """Bytes of the input as stored (0 when unknown: stdin from a pipe)."""
        if self.path is not None:
            return self.path.stat().st_size
        return self.stream_size if self.stream is not None else len(self.data or b"")

    def decompressing(self, raw: BinaryIO) -> BinaryIO:
        """`raw` (of `open_raw`) read decompressed."""
        if self.compression == "gzip":
            return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
        if self.compression == "bz2":
            return bz2.BZ2File(raw)  # type: ignore[return-value]
        if self.compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
        return raw

    def open(self) -> BinaryIO:
        """A binary stream of the decompressed content."""
        return self.decompressing(self.open_raw())

    def read_bytes(self) -> bytes:
        """All decompressed bytes. Raises InputError on a truncated or corrupt compressed file."""
        if self.path is None and self.stream is None:
            return self.data or b""
        if self.compression is None and self.path is not None:
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror or exc}", file=self.origin) from None
        try:
            with self.open() as stream:
                return stream.read()
        except InputError:
            raise
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(f"corrupt or truncated {self.compression} data ({exc})", file=self.origin) from None
        except Exception as exc:  # zstandard.ZstdError and friends
            raise InputError(f"corrupt {self.compression} data ({exc})", file=self.origin) from None

    def sample(self) -> Sample:
        """The decompressed head of the input, for sniffing."""
        if self._sample is None:
            self.recording = self.stream is not None  # stdin: what sniffing reads is kept, to be read again
            try:
                with self.open() as stream:
                    head = stream.read(SAMPLE_BYTES)
                    # NUL bytes in a text log are holes (logrotate copytruncate, a crash): the head is its text
                    holed = text_past_nul_runs(head, stream.read, SAMPLE_BYTES, STREAM_READ_ON_BYTES if self.stream is not None else None) if NUL in head[:8192] else None
            except InputError:
                raise
            except (OSError, EOFError, ValueError) as exc:
                # A truncated compressed file may still yield its head; report the rest in parse.
                raise InputError(f"corrupt or truncated {self.compression} data ({exc})", file=self.origin) from None
            except Exception as exc:
                raise InputError(f"corrupt {self.compression} data ({exc})", file=self.origin) from None
            finally:
                self.recording = False
            is_binary = NUL in head[:8192] and holed is None
            head = head if holed is None else holed
            text = head.decode("utf-8", errors="replace")
            if not is_binary and text:
                bad = text.count("\ufffd")
                is_binary = bad > max(8, len(text) // 10)
            # lines end at \n only: str.splitlines() would also split on U+0085 and friends inside JSON strings
            lines = tuple(line.rstrip("\r") for line in text.split("\n")[:200] if line.strip())[:SAMPLE_LINES]
            self._sample = Sample(origin=self.origin, head=head, lines=lines, is_binary=is_binary)
        return self._sample


STORE_SCHEMES = ("clickhouse://", "clickhouses://", "chdb:")  # inputs read by rca.parsers.clickhouse, not files


def is_store_url(text: str) -> bool:
    """Whether an input names a telemetry store (ClickHouse over HTTP, or an embedded chDB directory)."""
    return text.startswith(STORE_SCHEMES)


def _is_hidden(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    return any(part.startswith(".") for part in rel.parts)


def _file_source(path: Path, origin: str) -> Source:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except IsADirectoryError:
        raise InputError("is a directory", file=origin) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", file=origin) from None
    return Source(origin=origin, path=path, compression=detect_compression(head))


def stdin_source(stream: BinaryIO | None = None) -> Source:
    """Standard input as a Source read as it goes, a chunk at a time (its compression found from its
    first bytes, which are kept and read again)."""
    source = Source(origin="<stdin>", stream=stream or sys.stdin.buffer)
    source.stream_size = _regular_file_size(source.stream)  # type: ignore[arg-type]
    source.kept += source.stream.read(4)  # type: ignore[union-attr]
    source.compression = detect_compression(bytes(source.kept))
    return source


def _regular_file_size(stream: BinaryIO) -> int:
    """The bytes left in `stream` when it is a regular file (stdin redirected from one), else 0 (a pipe, a
    terminal, a stream without a descriptor): the size lets its readers plan as they do for the file."""
    import stat

    try:
        status = os.fstat(stream.fileno())
        return max(0, status.st_size - stream.tell()) if stat.S_ISREG(status.st_mode) else 0
    except (OSError, ValueError, AttributeError):
        return 0


def expand_inputs(inputs: Iterable[str], stdin: BinaryIO | None = None, outside: Path | None = None) -> tuple[list[Source], list[InputError]]:
    """Turn the user's inputs into Sources: files, directories (recursive, sorted, hidden skipped, and
    the folder `outside` skipped in a directory holding it), globs (with `**`), and `-` for stdin.
    Returns the sources and one error per input that names nothing readable; the caller decides whether
    the run can go on.
    """
    skipped = outside.resolve() if outside is not None else None
    sources: list[Source] = []
    errors: list[InputError] = []
    seen: set[Path] = set()

    def add(path: Path, origin: str) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        try:
            sources.append(_file_source(path, origin))
        except InputError as exc:
            errors.append(exc)

    for item in inputs:
        if item == "-":
            sources.append(stdin_source(stdin))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not _is_hidden(p, path))
            if skipped is not None and skipped != path.resolve() and skipped.is_relative_to(path.resolve()):
                files = [f for f in files if not f.resolve().is_relative_to(skipped)]
            if not files:
                errors.append(InputError("directory holds no files", file=item))
            for file in files:
                add(file, str(file))
        elif path.exists():
            add(path, item)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            files = [Path(m) for m in matches if os.path.isfile(m)]
            if not files:
                errors.append(InputError("no file matches this pattern", file=item))
            for file in files:
                add(file, str(file))
        else:
            errors.append(InputError("no such file or directory", file=item))
    return sources, errors
