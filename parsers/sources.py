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


@dataclass
class Source:
    """One input: a file (possibly compressed) or stdin already read into memory."""

    origin: str  # as shown to the user and stored in the `origin` column
    path: Path | None = None  # None for stdin
    data: bytes | None = None  # stdin's bytes (decompressed) when path is None
    compression: str | None = None
    _sample: Sample | None = field(default=None, repr=False)
    on_read: Callable[[int, int], None] | None = field(default=None, repr=False)  # (bytes read, total) as chunked readers go

    def open(self) -> BinaryIO:
        """A binary stream of the decompressed content."""
        if self.path is None:
            return io.BytesIO(self.data or b"")
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 - returned to the caller
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror or exc}", file=self.origin) from None
        if self.compression == "gzip":
            return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
        if self.compression == "bz2":
            return bz2.BZ2File(raw)  # type: ignore[return-value]
        if self.compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
        return raw

    def read_bytes(self) -> bytes:
        """All decompressed bytes. Raises InputError on a truncated or corrupt compressed file."""
        if self.path is None:
            return self.data or b""
        if self.compression is None:
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
            try:
                if self.path is None:
                    stream: BinaryIO = io.BytesIO(self.data or b"")
                else:
                    stream = self.open()
                with stream:
                    head = stream.read(SAMPLE_BYTES)
                    # NUL bytes in a text log are holes (logrotate copytruncate, a crash): the head is its text
                    holed = text_past_nul_runs(head, stream.read, SAMPLE_BYTES) if NUL in head[:8192] else None
            except InputError:
                raise
            except (OSError, EOFError, ValueError) as exc:
                # A truncated compressed file may still yield its head; report the rest in parse.
                raise InputError(f"corrupt or truncated {self.compression} data ({exc})", file=self.origin) from None
            except Exception as exc:
                raise InputError(f"corrupt {self.compression} data ({exc})", file=self.origin) from None
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
    """Read standard input whole (decompressing it if it is compressed)."""
    raw = (stream or sys.stdin.buffer).read()
    compression = detect_compression(raw[:4])
    if compression == "gzip":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"corrupt or truncated gzip data ({exc})", file="<stdin>") from None
    elif compression == "bz2":
        raw = bz2.decompress(raw)
    elif compression == "zstd":
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)) as reader:
            raw = reader.read()
    return Source(origin="<stdin>", data=raw)


def expand_inputs(inputs: Iterable[str], stdin: BinaryIO | None = None) -> tuple[list[Source], list[InputError]]:
    """Turn the user's inputs into Sources: files, directories (recursive, sorted, hidden skipped),
    globs (with `**`), and `-` for stdin. Returns the sources and one error per input that names
    nothing readable; the caller decides whether the run can go on.
    """
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
