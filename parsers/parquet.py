"""Canonical frames written by `rca ingest` (`requests.parquet`, `events.parquet`, ...), read back as is."""

from __future__ import annotations

from pathlib import PurePath

import polars as pl

from rca.errors import InputError
from rca.model import FRAMES, conform
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
        try:
            frame = pl.read_parquet(source.path if source.path is not None else source.read_bytes())
        except Exception as exc:  # polars raises several error types on corrupt parquet
            raise InputError(f"unreadable Parquet ({exc.__class__.__name__})", file=source.origin) from None
        return ParseResult(format=self.name, frames={stem: conform(frame, stem)}, lines=frame.height)  # type: ignore[dict-item]


register(ParquetFramesParser())
