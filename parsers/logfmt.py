"""logfmt: `key=value key2="quoted value" ...` lines (Heroku, Go kit, Grafana, Prometheus components).

A program writes its logfmt lines from a few templates, so most lines of a chunk hold the same keys in
the same order. The key sequences of lines spread over a chunk become whole-line patterns
(`ts=(V) level=(V) msg=(V) ...`, up to LAYOUTS of them, most frequent first; layouts that keep one key
order, such as the same records with and without a `pid`, become one pattern whose keys some lack are
optional); one vectorized match per line then puts each value straight into its key's column. The other lines (other keys, a repeated key, a
value with a stray quote, odd spacing) take the general way: every pair extracted with one regex
(`str.extract_all`), one row a pair, pivoted to one column a key. Both give the same columns for a line
(a property test holds them equal). The flat frame is mapped to canonical frames by the same conventions
as JSON lines (`parsers.fields`), chunk by chunk on two threads as the input is read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePath

import polars as pl

from rca.errors import InputError
from rca.model import Rejected
from rca.parsers import ParseOptions, ParseResult, Streamed, register
from rca.parsers.bounded import compact
from rca.parsers.fields import (
    LINE,
    FinishedRows,
    MappedRows,
    RowsFinisher,
    map_flat,
    records_to_frames,
    streamed_records,
)
from rca.parsers.lines import LineChunk, Lines, chunk_lines, map_chunks, read_lines, read_share
from rca.parsers.sources import Sample, Source

_PAIR = r'([A-Za-z_@][A-Za-z0-9_.\-/@]*)=("(?:[^"\\]|\\.)*"|[^ ]*)'
_PAIR_RE = re.compile(_PAIR)
SNIFF_CHARS = 4096


def _unquote_expr(value: pl.Expr, escapes: bool = True) -> pl.Expr:
    """`_unquote` on a column (`escapes` False: no value holds a backslash)."""
    quoted = (value.str.len_bytes() >= 2) & value.str.starts_with('"') & value.str.ends_with('"')
    inner = value.str.strip_prefix('"').str.strip_suffix('"')  # (when quoted: one quote off each end)
    if escapes:
        inner = inner.str.replace_all('\\"', '"', literal=True).str.replace_all("\\\\", "\\", literal=True)
    return pl.when(quoted).then(inner).otherwise(value)


def _unquoted(values: pl.DataFrame) -> pl.DataFrame:
    """`_unquote_expr` on every column of `values`, but for the columns where no value opens with a quote
    (most of a layout's: levels, hosts, numbers), and without the escapes where no value holds a backslash."""
    opens = values.select(pl.col(c).str.starts_with('"').any() for c in values.columns).row(0)
    quoted = [c for c, found in zip(values.columns, opens, strict=True) if found]
    if not quoted:
        return values
    escaped = values.select(pl.col(c).str.contains("\\", literal=True).any() for c in quoted).row(0)
    return values.with_columns(_unquote_expr(pl.col(c), escapes).alias(c) for c, escapes in zip(quoted, escaped, strict=True))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


# A value as `_PAIR` reads it, when a space or the line's end follows: quoted (escapes allowed), or bare
# without a quote (a bare value holding one goes the general way).
_LAYOUT_VALUE = r'("[^"\\]*(?:\\.[^"\\]*)*"|[^ "]*)'
LAYOUT_SAMPLE = 400  # lines spread over a chunk whose key sequences become whole-line patterns
LAYOUTS = 12  # the most frequent sequences tried, each one pass over the lines no pattern has taken yet
LAYOUT_MIN_SHARE = 0.02  # a sequence rarer than this in the sample is not worth a pass: its lines go apart


def _layouts(texts: list[str]) -> list[tuple[str, ...]]:
    """The key sequences of the sample lines that are nothing but their pairs joined by single spaces
    (two keys at least, none repeated), most frequent first."""
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        pairs = _PAIR_RE.findall(text[:SNIFF_CHARS])
        keys = tuple(key for key, _ in pairs)
        if len(keys) >= 2 and len(set(keys)) == len(keys) and " ".join(f"{k}={v}" for k, v in pairs) == text:
            counts[keys] += 1
    return [keys for keys, count in counts.most_common(LAYOUTS) if count >= LAYOUT_MIN_SHARE * len(texts)]


def _layout_pattern(keys: tuple[str, ...], optional: frozenset[str] = frozenset()) -> str:
    """The whole-line pattern of `keys` in that order, the pair of an `optional` key present or not (one
    key at least is not optional: the pairs up to the last such are each followed by a space, those
    after it preceded by one; spaces before the optional pairs' keys would make every pair a branch on
    the same byte, three times slower to match)."""
    # a key holds letters, digits and `_.-/@`: only the dot means something to a regex there
    pairs = [f"{key.replace('.', chr(92) + '.')}={_LAYOUT_VALUE}" for key in keys]
    last = max(i for i, key in enumerate(keys) if key not in optional)
    text = "".join(f"(?:{pair} )?" if key in optional else f"{pair} " for key, pair in zip(keys[:last], pairs[:last], strict=True)) + pairs[last]
    text += "".join(f"(?: {pair})?" for pair in pairs[last + 1 :])
    return "^" + text + "$"


def _one_layout(layouts: list[tuple[str, ...]]) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The layouts as one: every key in an order each layout keeps, the keys some layout lacks optional;
    None when two layouts order their keys differently or fewer than two keys are in them all (a line
    needs two). A line of any layout, or of another subset of the keys in that order, is then matched by
    one pass; the parse stays unique (a bare value holds no space, a quoted one ends at its first
    unescaped quote, and each key is spelled out)."""
    if len(layouts) < 2:
        return None
    order = list(layouts[0])
    for keys in layouts[1:]:
        for i, key in enumerate(keys):
            if key not in order:
                order.insert(order.index(keys[i - 1]) + 1 if i else 0, key)
    position = {key: i for i, key in enumerate(order)}
    if any([position[k] for k in keys] != sorted(position[k] for k in keys) for keys in layouts):
        return None
    required = set.intersection(*(set(keys) for keys in layouts))
    if len(required) < 2:
        return None
    return tuple(order), frozenset(order) - required


def _pairs(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Rejected], int]:
    """(line, text) rows -> (flat frame: one column per key, line numbers in LINE, in line order; the
    first lines that are not key=value pairs, as Rejected; how many there are). A line needs two
    distinct keys. Lines of the chunk's usual layouts are matched whole (by one pattern when the layouts
    agree on an order: `_one_layout`); the rest go `_pairs_apart`."""
    frame = frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    flats: list[pl.DataFrame] = []
    texts = frame.get_column("text")
    layouts = _layouts(texts.gather_every(max(1, len(texts) // LAYOUT_SAMPLE)).head(LAYOUT_SAMPLE).to_list())  # a log may change layouts by the block
    one = _one_layout(layouts)
    for keys, optional in [one] if one is not None else [(keys, frozenset[str]()) for keys in layouts]:
        values = pl.col("text").str.extract_groups(_layout_pattern(keys, optional))
        found = str(next(i for i, key in enumerate(keys, 1) if key not in optional))  # a group every matched line fills
        matched = frame.select(pl.col("line").alias(LINE), values.alias("_values")).filter(pl.col("_values").struct.field(found).is_not_null())
        if matched.height:
            columns = matched.get_column("_values").struct.rename_fields(list(keys)).struct.unnest()
            if optional:  # a key no matched line holds is no column (as taken apart)
                columns = columns.select(key for key in keys if key not in optional or columns.get_column(key).null_count() < columns.height)
            flats.append(pl.concat([matched.select(LINE), _unquoted(columns)], how="horizontal"))
            frame = frame.filter(~pl.col("line").is_in(matched.get_column(LINE).implode()))
    rest, bad, bad_count = _pairs_apart(frame)
    if not flats:
        return rest, bad, bad_count
    if rest.height:
        flats.append(rest)
    flat = pl.concat(flats, how="diagonal") if len(flats) > 1 else flats[0]
    return flat.sort(LINE) if len(flats) > 1 else flat, bad, bad_count


def _pairs_apart(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Rejected], int]:
    """`_pairs` for any line: every pair extracted, one row a pair, pivoted to one column a key."""
    frame = frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    pairs = (
        frame.select(pl.col("line").alias(LINE), pl.col("text").str.extract_all(_PAIR).alias("pair"))
        .explode("pair")
        .filter(pl.col("pair").is_not_null())
        .select(LINE, pl.col("pair").str.splitn("=", 2).struct.rename_fields(["key", "value"]).alias("pair"))  # a key holds no `=`
        .unnest("pair")
        .with_columns(_unquote_expr(pl.col("value")))
    )
    keys = pairs.group_by(LINE).agg(pl.col("key").n_unique().alias("n"))
    good = keys.filter(pl.col("n") >= 2).get_column(LINE)
    not_pairs = frame.filter(~pl.col("line").is_in(good.implode())).get_column("line")
    bad = [Rejected(n, "not key=value pairs") for n in not_pairs.head(5).to_list()]
    pairs = pairs.filter(pl.col(LINE).is_in(good.implode()))
    flat = pairs.pivot(on="key", index=LINE, values="value", aggregate_function="last", maintain_order=True) if pairs.height else pl.DataFrame(schema={LINE: pl.Int64})
    return flat, bad, not_pairs.len()


@dataclass
class _LogfmtRead:
    """What reading logfmt a chunk at a time found besides its records."""

    lines: Lines = field(default_factory=lambda: Lines(frame=pl.DataFrame(schema={"line": pl.Int64, "text": pl.String}), total=0))
    bad: list[Rejected] = field(default_factory=list)  # the first lines that are not key=value pairs
    bad_count: int = 0


class LogfmtParser:
    name = "logfmt"
    description = "logfmt key=value lines"

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        good = 0
        for full in sample.lines:
            line = full[:SNIFF_CHARS]  # the pair regex backtracks over a long run of key characters: O(n^2)
            if line.lstrip().startswith(("{", "[")):
                continue
            pairs = _PAIR_RE.findall(line)
            covered = sum(len(k) + len(v) + 1 for k, v in pairs)
            if len(pairs) >= 3 and covered >= 0.8 * len(line.replace(" ", "")):
                good += 1
        return 0.85 * good / len(sample.lines)

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        """Pairs taken apart in columns: one row a pair, pivoted to one column a key (no Python per
        line), chunk by chunk as the input is read, each chunk mapped to canonical rows at once."""
        finisher = RowsFinisher(options.max_request_rows, options.request_columns, options.max_event_rows)
        read = _LogfmtRead()
        for part, share in self._parts(source, options, read, kept=True):
            finisher.add(part, share)
        return self._read_result(source, read, finisher.finish())

    def stream(self, source: Source, options: ParseOptions) -> Streamed:
        """The chunked parse as a stream of request and event rows (for `rca ingest`): each chunk's rows go
        out as it is read (`parsers.fields.streamed_records`), the same rows as `parse`'s."""
        read = _LogfmtRead()
        return streamed_records(lambda: (part for part, _ in self._parts(source, options, read, kept=False)), RowsFinisher(),
                                lambda finished: self._read_result(source, read, finished))

    @staticmethod
    def _parts(source: Source, options: ParseOptions, read: _LogfmtRead, kept: bool) -> Iterator[tuple[MappedRows, float | None]]:
        """Each chunk's canonical rows as the input is read (two chunks at once), with the share of the input
        read; `read` gathers the line counts and the lines that are not pairs. `kept`: the request rows are
        kept in memory (not written out at once), so they get their own buffers."""
        default_service = PurePath(source.origin).name.split(".")[0] or None

        def one(chunk: LineChunk) -> tuple[MappedRows, Lines, list[Rejected], int, float | None]:
            lines = chunk_lines(source.origin, chunk)
            flat, bad, bad_count = _pairs(lines.frame)
            part = map_flat(flat, source.origin, "app_log", options.fields, options.tz, default_service)
            # the values are views of the chunk's text (a layout's match, unlike a sort of its parts, keeps
            # them so): request rows kept whole would hold every chunk's text (+80 MB over 1M lines);
            # events are compacted as they are taken
            return replace(part, requests=compact(part.requests)) if kept else part, lines, bad, bad_count, read_share(chunk)

        total = read.lines
        for part, lines, chunk_bad, chunk_bad_count, share in map_chunks(source, total.warnings, one):
            total.total += lines.total
            total.rejected = (total.rejected + lines.rejected)[:5]
            total.rejected_count += lines.rejected_count
            read.bad += chunk_bad[: max(0, 5 - len(read.bad))]
            read.bad_count += chunk_bad_count
            yield part, share

    def _read_result(self, source: Source, read: _LogfmtRead, finished: FinishedRows) -> ParseResult:
        if read.lines.total == 0 and read.lines.warnings:
            raise InputError(read.lines.warnings[0], file=source.origin)
        return self._result(read.lines, finished, read.bad, read.bad_count)

    def parse_per_record(self, source: Source, options: ParseOptions) -> ParseResult:
        """`parse` with a dict per line (the reference the column path is held equal to)."""
        lines = read_lines(source)
        frame = lines.frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
        pairs = frame.select("line", pl.col("text").str.extract_all(_PAIR).alias("pairs"))
        records: list[dict[str, str]] = []
        numbers: list[int] = []
        bad: list[Rejected] = []
        bad_count = 0
        for line_no, items in pairs.iter_rows():
            record = {}
            for item in items or ():
                key, _, value = item.partition("=")
                record[key] = _unquote(value)
            if len(record) < 2:
                bad_count += 1
                if len(bad) < 5:
                    bad.append(Rejected(line_no, "not key=value pairs"))
                continue
            records.append(record)
            numbers.append(line_no)
        default_service = PurePath(source.origin).name.split(".")[0] or None
        finished = records_to_frames(records, numbers, source.origin, "app_log", options.fields, options.tz, default_service)
        return self._result(lines, finished, bad, bad_count)

    def _result(self, lines: Lines, finished: FinishedRows, bad: list[Rejected], bad_count: int) -> ParseResult:
        rejected = list(lines.rejected) + bad + [Rejected(r["line"], r["reason"]) for r in finished.no_ts.iter_rows(named=True)]
        return ParseResult(
            format=self.name,
            frames=finished.frames,
            lines=lines.total,
            rejected=lines.rejected_count + bad_count + finished.no_ts_count,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=list(lines.warnings),
            request_sample=finished.request_sample,
            event_sample=finished.event_sample,
        )

register(LogfmtParser())
