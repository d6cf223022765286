"""nginx and Apache access logs: combined, common, their vhost variants, and any nginx `log_format`.

Every layout, the predefined ones included, is written as an nginx `log_format` string and compiled
into ONE regular expression with a named group per variable (`compile_log_format`), so a custom format
given with `--log-format` goes through exactly the same code as `combined`. Lines are matched with one
vectorized `str.extract_groups`; timestamps with `str.strptime`.

Fast path: when a format is a space-separated row of `$var`, `"$var"` and `[$time_local]` fields (all four
predefined ones and most custom ones), polars' CSV reader splits the fields (`"` as quote), several times
faster than the regex. The input is read in chunks of whole lines (bounded memory, any size); in each,
Apache's `\"` and `\\` escapes are swapped for stand-in bytes while the reader splits, a line with an
unbalanced quote (a truncated write) is blanked so it cannot swallow the lines after it, and an upstream
list (`0.010, 0.020 : 0.003`) is rejoined from the columns it spills into. Each line is checked to split
exactly as the regex would read it; only the lines that do not (the unbalanced ones, a tab in a field,
garbage) are read with the regex, in their chunk, and counted (`ParseResult.slow_lines`), so results and
rejected-line reports are the same either way (a property test holds them equal).

Trailing timing fields that users append to the standard formats are recognized without configuration:
`$request_time` (seconds with a dot, e.g. `0.123`), then `$upstream_response_time` (seconds; `-` when no
upstream; a `, `/` : ` separated list when several upstreams were tried: summed). A trailing integer
without a dot is Apache's `%D` (microseconds).

`ts` is the timestamp as logged: for nginx `$time_local` the time the log line was written (end of the
request); for Apache `%t` the request start. `source` is `$http_x_forwarded_for`'s first address when
logged, else `$remote_addr`; `service` is `$host`/`$server_name`/the vhost when logged, else the file
name stem (e.g. `access`).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import PurePath

import numpy as np
import polars as pl

from rca.errors import InputError
from rca.model import REQUESTS_SCHEMA, Rejected, conform, empty_frame, storage_schema
from rca.parsers import ParseOptions, ParseResult, Streamed, lazy_batches, register
from rca.parsers import lines as line_reader
from rca.parsers.bounded import BoundedRequests
from rca.parsers.distinct import by_distinct
from rca.parsers.endpoints import (
    normalize_endpoints,
    strip_query_expr,
)
from rca.parsers.lines import (
    MAX_LINE_BYTES,
    LineChunk,
    Lines,
    byte_offsets,
    has_long_line,
    map_chunks,
    read_lines,
    read_share,
    rejected_examples,
)
from rca.parsers.sources import Sample, Source

FORMATS: dict[str, str] = {
    "combined": '$remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"',
    "common": '$remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent',
    "vcombined": '$vhost $remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"',
    "vcommon": '$vhost $remote_addr $remote_ident $remote_user [$time_local] "$request" $status $body_bytes_sent',
}
DESCRIPTIONS = {
    "combined": "nginx/Apache combined access log (+ optional $request_time $upstream_response_time or %D)",
    "common": "nginx/Apache common log format (+ optional timing fields)",
    "vcombined": "Apache vhost_combined: host:port then combined",
    "vcommon": "Apache vhost_common: host:port then common",
}

_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_QUOTED = r'(?:[^"\\]|\\.)*'
_SECONDS = r"-|\d+(?:\.\d+)?(?:\s*[,:]\s*(?:\d+(?:\.\d+)?|-))*"
# Optional timing fields after a standard format: request time then upstream time(s), anything else ignored.
_TRAILER = rf"(?: (?P<request_time>\d+(?:\.\d+)?|-))?(?: (?P<upstream_response_time>{_SECONDS}))?(?: .*)?"

# Variables whose value cannot contain a space even unquoted.
_TOKEN_VARS = {
    "remote_addr", "remote_ident", "remote_user", "status", "body_bytes_sent", "bytes_sent", "request_time",
    "msec", "request_length", "host", "server_name", "vhost", "upstream_addr", "upstream_status",
    "time_iso8601", "connection", "connection_requests", "server_port", "scheme", "request_method",
    "request_uri", "uri",
}


@dataclass(frozen=True)
class CompiledFormat:
    pattern: str
    variables: tuple[str, ...]


def compile_log_format(log_format: str, trailer: bool = False) -> CompiledFormat:
    """Turn an nginx `log_format` string into one anchored regex with a named group per variable."""
    parts: list[str] = ["^"]
    variables: list[str] = []
    pos = 0
    for match in _VAR.finditer(log_format):
        literal = log_format[pos : match.start()]
        parts.append(re.escape(literal))
        name = match.group(1) or match.group(2)
        before = log_format[: match.start()]
        after = log_format[match.end() : match.end() + 1]
        if before.endswith('"'):
            body = _QUOTED
        elif before.endswith("["):
            body = r"[^\]]*"
        elif name == "upstream_response_time" or (name.startswith("upstream_") and name.endswith("_time")):
            body = _SECONDS
        elif name in _TOKEN_VARS or after in (" ", ""):
            body = r"\S*"
        else:
            body = r".*?"
        if name in variables:  # a variable used twice: match it, capture once
            parts.append(f"(?:{body})")
        else:
            variables.append(name)
            parts.append(f"(?P<{name}>{body})")
        pos = match.end()
    parts.append(re.escape(log_format[pos:]))
    if trailer:
        parts.append(_TRAILER)
        variables += ["request_time", "upstream_response_time"]
    parts.append("$")
    return CompiledFormat("".join(parts), tuple(variables))


def _seconds_list_ms(col: pl.Expr) -> pl.Expr:
    """`0.010, 0.020 : 0.030` (seconds, nginx upstream lists) -> summed milliseconds; `-` -> null."""
    parts = col.str.extract_all(r"\d+(?:\.\d+)?").list.eval(pl.element().cast(pl.Float64))
    return pl.when(parts.list.len() > 0).then(parts.list.sum() * 1000.0).otherwise(None)


def _timestamp(col: str, tz: str) -> pl.Expr:
    c = pl.col(col)
    if col == "time_local":
        with_zone = c.str.strptime(pl.Datetime("us", "UTC"), "%d/%b/%Y:%H:%M:%S %z", strict=False)
        naive = c.str.strptime(pl.Datetime("us"), "%d/%b/%Y:%H:%M:%S", strict=False)
        naive2 = c.str.strptime(pl.Datetime("us"), "%d/%b/%Y %H:%M:%S", strict=False)  # python http.server
        local = pl.coalesce(naive, naive2).dt.replace_time_zone(_zone(tz), ambiguous="earliest").dt.convert_time_zone("UTC")
        return pl.coalesce(with_zone, local)
    if col == "time_iso8601":
        return c.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")
    if col == "msec":
        return (c.cast(pl.Float64, strict=False) * 1_000_000).cast(pl.Int64).cast(pl.Datetime("us", "UTC"))
    raise ValueError(col)


def _zone(tz: str) -> str:
    return "UTC" if tz.upper() in ("UTC", "Z", "+00:00") else tz


def _request_exprs(names: set[str], origin: str, tz: str, time_col: str | None) -> dict[str, pl.Expr]:
    """Canonical request columns from the variables of a matched (or split) line; `_target` is the raw URI."""
    exprs: dict[str, pl.Expr] = {}
    exprs["ts"] = _timestamp(time_col, tz) if time_col else pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    if "request" in names:  # split once by `_with_request`
        method = pl.col("_method").str.to_uppercase()
        target = pl.col("_target")
    else:
        method = pl.col("request_method").str.to_uppercase() if "request_method" in names else pl.lit(None, pl.String)
        target = pl.col("request_uri") if "request_uri" in names else (pl.col("uri") if "uri" in names else pl.lit(None, pl.String))
    exprs["method"] = method
    exprs["path"] = strip_query_expr(target)
    exprs["status"] = pl.col("status").cast(pl.Int32, strict=False) if "status" in names else pl.lit(None, pl.Int32)
    size = next((b for b in ("body_bytes_sent", "bytes_sent") if b in names), None)
    if size:  # `-` is Apache's %b for no body
        exprs["bytes"] = pl.when(pl.col(size) == "-").then(pl.lit(0, pl.Int64)).otherwise(pl.col(size).cast(pl.Int64, strict=False))
    else:
        exprs["bytes"] = pl.lit(None, pl.Int64)
    if "request_time" in names:
        rt = pl.col("request_time")
        value = rt.cast(pl.Float64, strict=False)
        # seconds with a dot; an integer is Apache %D, microseconds
        exprs["duration_ms"] = pl.when(rt.str.contains(".", literal=True)).then(value * 1000.0).otherwise(value / 1000.0)
    else:
        exprs["duration_ms"] = pl.lit(None, pl.Float64)
    exprs["upstream_ms"] = _seconds_list_ms(pl.col("upstream_response_time")) if "upstream_response_time" in names else pl.lit(None, pl.Float64)
    addr = pl.col("remote_addr") if "remote_addr" in names else pl.lit(None, pl.String)
    if "http_x_forwarded_for" in names:
        xff = pl.col("http_x_forwarded_for").str.split(",").list.first().str.strip_chars()
        addr = pl.when(xff.is_not_null() & (xff != "-") & (xff != "")).then(xff).otherwise(addr)
    exprs["source"] = addr
    exprs["user_agent"] = (
        pl.when(pl.col("http_user_agent") == "-").then(None).otherwise(pl.col("http_user_agent"))
        if "http_user_agent" in names
        else pl.lit(None, pl.String)
    )
    stem = PurePath(origin).name.split(".")[0] or "access"
    vhost = next((v for v in ("host", "server_name", "vhost") if v in names), None)
    exprs["service"] = pl.col(vhost).str.replace(r":\d+$", "") if vhost else pl.lit(stem)
    exprs["host"] = pl.lit(None, pl.String)
    exprs["trace_id"] = pl.col("trace_id").str.to_lowercase() if "trace_id" in names else pl.lit(None, pl.String)
    return exprs


_REQUEST_GROUPS = r"^(?P<_method>[A-Za-z]+) (?P<_target>\S+)(?: (?P<_proto>\S+))?$"
_REQUEST_LINE = r"^[A-Za-z]+ \S+(?: \S+)?$"  # the same, without captures


def _request_columns(requests: pl.Series, schema: dict[str, pl.DataType] | None = None) -> list[pl.Series]:
    """`method`, `path` and `endpoint` of each `$request` (`GET /a/7?q=1 HTTP/1.1`), null where the regex
    path would find the request line unreadable. Worked out once per distinct request (`by_distinct`):
    a log's requests repeat, and splitting, cutting the query and normalizing cost hundreds of
    nanoseconds a row. Each column is cast to its output type (`schema`) before it is gathered, so a
    categorical one is gathered as codes."""
    codes, distinct = by_distinct(requests)
    request = pl.col("request")
    parts = pl.when(request.str.contains(_REQUEST_LINE)).then(request.str.splitn(" ", 3))  # the regex path's pattern
    table = pl.DataFrame({"request": distinct}).select(
        parts.struct.field("field_0").str.to_uppercase().alias("method"), strip_query_expr(parts.struct.field("field_1")).alias("path")
    )
    table = table.with_columns(normalize_endpoints(table.get_column("path")))
    types = {**REQUESTS_SCHEMA, **(schema or {})}
    return [table.get_column(c).cast(types[c]).gather(codes) for c in ("method", "path", "endpoint")]


def _with_request(frame: pl.DataFrame, names: set[str]) -> pl.DataFrame:
    """`_method` and `_target` from `$request` (`GET /path HTTP/1.1`), matched once."""
    if "request" not in names:
        return frame
    request = pl.col("request").str.extract_groups(_REQUEST_GROUPS)
    return frame.with_columns(request.alias("_req")).unnest("_req")


def _time_column(names: set[str] | tuple[str, ...]) -> str | None:
    return next((t for t in ("time_local", "time_iso8601", "msec") if t in names), None)


_REASON = (
    pl.when(~pl.col("_matched"))
    .then(pl.lit("does not match the access-log format"))
    .when(pl.col("ts").is_null())
    .then(pl.lit("unreadable timestamp"))
    .when(pl.col("method").is_null())
    .then(pl.lit("unreadable request line"))
    .otherwise(None)
)


def _finish(good: pl.DataFrame, origin: str, schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Canonical requests: endpoint from the path (normalized on distinct values), origin and signal."""
    dtype = (schema or {}).get("origin", pl.String())
    good = good.with_columns(origin=pl.lit(origin).cast(dtype), signal=pl.lit("access_log").cast(dtype))
    if "endpoint" not in good.columns:
        good = good.with_columns(normalize_endpoints(good.get_column("path")))
    return conform(good, "requests", schema)


def parse_lines(frame: pl.DataFrame, compiled: CompiledFormat, origin: str, tz: str = "UTC") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Match a (line, text) frame against a compiled format: (requests frame, rejected (line, text, reason))."""
    present = frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    fields = present.with_columns(pl.col("text").str.extract_groups(compiled.pattern).alias("m")).unnest("m")
    names = set(compiled.variables)
    matched = pl.col(compiled.variables[0]).is_not_null()
    exprs = _request_exprs(names, origin, tz, _time_column(names))
    out = _with_request(fields.with_columns(matched.alias("_matched")), names)
    out = out.with_columns(**exprs).with_columns(_REASON.alias("_reason"))
    bad = out.filter(pl.col("_reason").is_not_null()).select("line", "text", pl.col("_reason").alias("reason"))
    good = out.filter(pl.col("_reason").is_null())
    if not good.height:  # only garbage (the few lines a chunk's split sends here): nothing to finish
        return empty_frame("requests"), bad
    return _finish(good, origin), bad


# --- fast path: polars' CSV reader splits the fields -------------------------------------------------


@dataclass(frozen=True)
class SplitLayout:
    """How a space-separated, `"`-quoted log format falls into CSV columns (one variable per column;
    `[$time_local]` is two columns, `_time_date` and `_time_zone`)."""

    columns: tuple[str, ...]
    quoted: tuple[str, ...]
    optional: tuple[str, ...]  # trailing timing fields that may be absent


# Columns after the layout's: an upstream list (`0.010, 0.020 : 0.003`) spills into all but the last,
# which must stay empty (a line with more fields than the layout goes to the regex).
_SPARE = ("_spare1", "_spare2", "_spare3", "_spare4", "_spare5", "_spare6")


@dataclass
class SpareColumns:
    """How many of the `_SPARE` columns the CSV reader makes for the chunks of one input. One tells a
    line with more fields than the layout (the regex's); all of them are needed only to rejoin upstream
    lists, and the five more cost the reader a sixth of its time even when empty (Apache corpus). So the
    chunks are read with one until a chunk holds a list: that chunk is read again with all, and so are
    the chunks after it (a log that writes lists writes many). Shared by the chunks of an input, which
    workers read side by side: a chunk read with one while another found lists is judged by its own
    columns, its list lines going to the regex at worst."""

    count: int = 1

    def lists_in(self, fields: pl.DataFrame, layout: SplitLayout) -> bool:
        """Whether a chunk read with fewer than all spare columns holds an upstream list (`, ` or ` : `
        between servers, or the same without the spaces: `_SECONDS`); such a chunk is read again with all."""
        if _SPARE[-1] in fields.columns or "upstream_response_time" not in layout.optional or fields.get_column(_SPARE[0]).null_count() == fields.height:
            return False
        up, spare = pl.col("upstream_response_time"), pl.col(_SPARE[0])
        found = fields.select((up.str.contains(r"[,:]$") | spare.str.contains(r"^[,:]")).any()).item()
        if found:
            self.count = len(_SPARE)
        return bool(found)


_SPLIT_TOKEN = re.compile(r'^(?:"\$(?P<quoted>\w+)"|\$(?P<bare>\w+)|(?P<time>\[\$time_local\]))$')


def split_layout(log_format: str, trailer: bool) -> SplitLayout | None:
    """The CSV layout of a log format, or None when its fields cannot be split on spaces safely."""
    columns: list[str] = []
    quoted: list[str] = []
    for token in log_format.split(" "):
        m = _SPLIT_TOKEN.match(token)
        if m is None:
            return None
        if m.group("time"):
            columns += ["_time_date", "_time_zone"]
        elif m.group("quoted"):
            columns.append(m.group("quoted"))
            quoted.append(m.group("quoted"))
        elif m.group("bare") in _TOKEN_VARS:
            columns.append(m.group("bare"))
        else:
            return None
    optional = ("request_time", "upstream_response_time") if trailer else ()
    columns += optional
    if len(set(columns)) != len(columns):
        return None
    return SplitLayout(tuple(columns), tuple(quoted), optional)


@functools.cache
def unread_columns(layout: SplitLayout) -> tuple[str, ...]:
    """The quoted fields of `layout` no canonical column is made of (a referer): the CSV reader splits them
    but never builds their strings. A field the line must reach stays read: the last field that is not an
    optional trailer (a line cut short lacks it); so must every field when a line may be over MAX_LINE_BYTES
    (the caller's check)."""
    names = set(layout.columns)
    made_of = {root for expr in _request_exprs(names, "", "UTC", _time_column(names)).values() for root in expr.meta.root_names()}
    made_of |= {"request"} if "request" in names else set()  # split by `_request_columns`
    last = [c for c in layout.columns if c not in layout.optional][-1]
    return tuple(c for c in layout.quoted if c not in made_of and c != last)


def _zone_seconds(zone: str | None) -> int | None:
    """`-0700]` -> -25200 (the offset of a `[$time_local]` zone in seconds); None if it is no offset."""
    m = None if zone is None else re.fullmatch(r"([+-])(\d\d)(\d\d)\]", zone)
    return None if m is None else (1 if m.group(1) == "+" else -1) * (int(m.group(2)) * 3600 + int(m.group(3)) * 60)


def _split_time(date: pl.Expr, zones: pl.Series) -> pl.Expr:
    """`[10/Oct/2000:13:55:36` + `-0700]` -> UTC: the date parsed naive, minus its zone's offset.

    Zones are few (usually one per file), so offsets are computed per distinct zone, not per line, and
    a chunk with one zone throughout subtracts one constant (a line without a zone, blank or cut short,
    fails the split's checks: its time is never used)."""
    naive = date.str.strptime(pl.Datetime("us", "UTC"), "[%d/%b/%Y:%H:%M:%S", strict=False)
    first = [z for z in zones.head(100).to_list() if z is not None][:1] or zones.drop_nulls().head(1).to_list()
    if first and (zones == first[0]).all(ignore_nulls=True):
        offset = _zone_seconds(first[0])
        return naive - timedelta(seconds=offset) if offset is not None else pl.lit(None, pl.Datetime("us", "UTC"))
    distinct = zones.drop_nulls().unique()
    offsets = pl.Series([_zone_seconds(z) for z in distinct.to_list()], dtype=pl.Int64)
    seconds = pl.col("_time_zone").replace_strict(distinct, offsets, default=None, return_dtype=pl.Int64)
    return naive - pl.duration(seconds=seconds)


# Apache writes `\"` and `\\` inside quoted fields (nginx `\x22`). The CSV reader knows no escapes, so
# each is swapped for a control byte while it splits, and swapped back in the quoted fields after.
_STAND_IN = {b"\\\\": b"\x1d", b'\\"': b"\x1e"}


@dataclass
class SplitChunk:
    """One chunk of an access log, parsed: its requests (in line order) and what it rejected."""

    requests: pl.DataFrame
    lines: int
    last_line: int
    rejected: int
    examples: list[Rejected]
    slow_lines: int  # lines the regex had to read: those the CSV split could not vouch for
    read_share: float | None = None  # share of the input's bytes read once this chunk is (None: size unknown)


def _fields(
    data: bytes, layout: SplitLayout, first_line: int, lines: int, unread: tuple[str, ...] = (), spares: int = len(_SPARE)
) -> pl.DataFrame | None:
    """The chunk's fields, one row a line, without the `unread` columns (split but never built), with the
    first `spares` of the `_SPARE` columns; None when the reader fails or a quote swallowed a line break.

    An unbalanced quote joins its line to the next ones (fewer rows than lines), except on the last
    line, where it takes in the final line break: only that row needs a look."""
    for encoding in ("utf8", "utf8-lossy"):  # strict UTF-8 is faster; invalid bytes need the lossy decoder
        try:
            fields = scan_split(data, layout, encoding, first_line, spares).drop(unread).collect()
        except pl.exceptions.ComputeError:
            continue
        except pl.exceptions.NoDataError:
            return None
        if fields.height != lines:
            return None
        last = [fields.get_column(c)[-1] for c in layout.quoted if c not in unread] if fields.height else []
        return None if any(value is not None and "\n" in value for value in last) else fields
    return None


class _LineIndex:
    """Where the lines of a chunk lie, found piece by piece: the chunk is cut at line ends into about
    PIECES runs of lines, each piece's lines counted in one numpy pass; the offsets of a piece's lines,
    and the quotes of its lines, are looked at only when asked for. Finding a few lines (unbalanced
    quotes, lines for the regex) so costs a pass over the chunk for a count, not an array of every
    line end."""

    PIECES = 64

    def __init__(self, data: bytes):
        self.data = data
        self.bytes = np.frombuffer(data, np.uint8)
        starts, step = [0], max(len(data) // self.PIECES, 1)
        while (cut := data.find(b"\n", starts[-1] + step)) != -1 and cut + 1 < len(data):
            starts.append(cut + 1)
        self.starts = np.array([*starts, len(data)], dtype=np.int64)
        counts = [np.count_nonzero(self.bytes[a:b] == 10) for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]
        self.first_lines = np.concatenate([[0], np.cumsum(counts)])  # 0-based number of each piece's first line
        self._ends: dict[int, np.ndarray] = {}

    def _piece_ends(self, piece: int) -> np.ndarray:
        if piece not in self._ends:
            a, b = int(self.starts[piece]), int(self.starts[piece + 1])
            self._ends[piece] = np.flatnonzero(self.bytes[a:b] == 10) + a
        return self._ends[piece]

    def span(self, line: int) -> tuple[int, int]:
        """Byte offsets of the 0-based line `line` (its start, and its line break)."""
        piece = int(np.searchsorted(self.first_lines, line, side="right")) - 1
        ends, i = self._piece_ends(piece), line - int(self.first_lines[piece])
        return (int(ends[i - 1]) + 1 if i else int(self.starts[piece])), int(ends[i])

    def line(self, line: int) -> bytes:
        """The bytes of the 0-based line `line`, without its line break."""
        start, end = self.span(line)
        return self.data[start:end]

    def odd_quote_lines(self, every_piece: bool = False) -> np.ndarray:
        """0-based numbers of the lines holding an odd number of `"`: an unbalanced quote, which would
        swallow the line breaks after it. Only pieces with an odd count are searched, unless
        `every_piece` (two such lines in one piece cancel out)."""
        found: list[np.ndarray] = []
        for piece in range(len(self.starts) - 1):
            a, b = int(self.starts[piece]), int(self.starts[piece + 1])
            quotes = np.flatnonzero(self.bytes[a:b] == 34) + a if every_piece or np.count_nonzero(self.bytes[a:b] == 34) % 2 else None
            if quotes is None or not len(quotes):
                continue
            ends = self._piece_ends(piece)
            per_line = np.bincount(np.searchsorted(ends, quotes), minlength=len(ends) + 1)
            found.append(np.flatnonzero(per_line[: len(ends)] % 2) + self.first_lines[piece])
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)

    def blanked(self, lines: np.ndarray) -> bytes:
        """The data with `lines` (0-based, sorted) emptied, their line breaks kept so numbering stays."""
        view = memoryview(self.data)
        parts, pos = [], 0
        for line in lines.tolist():
            start, end = self.span(line)
            parts.append(view[pos:start])
            pos = end
        parts.append(view[pos:])
        return b"".join(parts)


def _escapes(data: bytes) -> list[bytes]:
    """Which of `\\\\` and `\\"` occur in `data` (a backslash is rare; a two-byte search of every chunk is not cheap)."""
    if b"\\" not in data:
        return []
    arr = np.frombuffer(data, np.uint8)
    after = set(arr[np.minimum(byte_offsets(data, 92) + 1, len(arr) - 1)].tolist())
    return [escape for escape in _STAND_IN if escape[1] in after]


def split_chunk(
    chunk: LineChunk, layout: SplitLayout, compiled: CompiledFormat, origin: str, tz: str, schema: dict[str, pl.DataType] | None = None,
    spares: SpareColumns | None = None,
) -> SplitChunk:
    """Split a chunk's lines with polars' CSV reader, convert them, and read with the regex only the
    lines the split cannot vouch for (unbalanced quotes, upstream lists, odd fields, garbage). `spares`:
    the input's (shared by its chunks), else the chunk's own."""
    spares = spares or SpareColumns()
    data = chunk.data
    escaped = _escapes(data)
    if escaped and any(v in data for v in _STAND_IN.values()):  # the stand-ins already occur: no split
        return _regex_chunk(chunk, None, compiled, origin, tz, schema)
    for escape in escaped:
        data = data.replace(escape, _STAND_IN[escape])
    # A line with an unbalanced quote (a truncated write) would make the reader fail after reading
    # everything: such lines are found first in the pieces of the chunk with an odd count of quotes,
    # and blanked (the regex reads them). Two in one piece cancel out: found when the read fails.
    index = _LineIndex(data)
    unbalanced = index.odd_quote_lines()
    # A line over MAX_LINE_BYTES is the regex path's to reject: the unread fields are read to find it.
    unread = () if has_long_line(chunk) else unread_columns(layout)
    split = index.blanked(unbalanced) if len(unbalanced) else data
    fields = _fields(split, layout, chunk.first_line, chunk.lines, unread, spares.count)
    if fields is None:
        every = index.odd_quote_lines(every_piece=True)
        if len(every) > len(unbalanced):
            unbalanced = every
            split = index.blanked(unbalanced)
            fields = _fields(split, layout, chunk.first_line, chunk.lines, unread, spares.count)
    if fields is not None and spares.lists_in(fields, layout):
        fields = _fields(split, layout, chunk.first_line, chunk.lines, unread, len(_SPARE))
    if fields is None:
        return _regex_chunk(chunk, None, compiled, origin, tz, schema)
    if escaped:
        fields = fields.with_columns(
            pl.col(c).str.replace_all("\x1d", "\\\\", literal=True).str.replace_all("\x1e", '\\"', literal=True)
            for c in layout.quoted if c not in unread
        )
    requests, retry = _convert_split(fields, layout, origin, tz, schema)
    blank = retry.get_column("_blank")
    numbers = retry.get_column("line").filter(~blank).to_list() + (unbalanced + chunk.first_line).tolist()
    if unread and blank.any():  # every field read is empty: a blank line, or one holding only unread fields (the regex rejects it)
        skipped = set(numbers)
        numbers += [n for n in retry.get_column("line").filter(blank).to_list() if n not in skipped and index.line(n - chunk.first_line).strip()]
    if not numbers:
        return SplitChunk(requests, chunk.lines, chunk.first_line + chunk.lines - 1, 0, [], 0)
    slow = _regex_chunk(chunk, numbers, compiled, origin, tz, schema, index if data is chunk.data else None)
    # the split's rows are in line order: a sort is needed only to place the regex's among them
    both = pl.concat([requests, slow.requests]).sort("line") if slow.requests.height else requests
    return SplitChunk(both, chunk.lines, slow.last_line, slow.rejected, slow.examples, slow.slow_lines)


def _regex_chunk(
    chunk: LineChunk, numbers: list[int] | None, compiled: CompiledFormat, origin: str, tz: str, schema: dict[str, pl.DataType] | None,
    index: _LineIndex | None = None,
) -> SplitChunk:
    """The lines of a chunk (those at `numbers`, or all) read with the regex (`index`: of the chunk's bytes, if at hand)."""
    if numbers is not None and len(numbers) * 50 < chunk.lines:  # a few lines: cut them out of the bytes
        lines = _lines_at(chunk, sorted(set(numbers)), index or _LineIndex(chunk.data))
    else:
        lines = read_lines(Source(origin=origin, data=b""), payload=chunk.data)
        lines.frame = lines.frame.with_columns(pl.col("line") + (chunk.first_line - 1))
        lines.rejected = [replace(r, line=r.line + chunk.first_line - 1) for r in lines.rejected]
        if numbers is not None:
            wanted = set(numbers)
            lines.frame = lines.frame.join(pl.DataFrame({"line": numbers}, schema={"line": pl.Int64}), on="line", how="semi")
            lines.rejected = [r for r in lines.rejected if r.line in wanted]
            lines.rejected_count = len(wanted) - lines.frame.height  # the wanted lines cut out as too long
    read = lines.frame.height
    frame, unmatched = _unmatched_apart(lines.frame, compiled)
    if frame.height:
        requests, bad = parse_lines(frame, compiled, origin, tz)
    else:  # every line garbage (the usual few of a chunk's split): no frames to make
        requests, bad = empty_frame("requests"), pl.DataFrame(schema={"line": pl.Int64, "text": pl.String, "reason": pl.String})
    examples = sorted(lines.rejected + unmatched[:5] + rejected_examples(bad, pl.col("reason")), key=lambda r: r.line)[:5]
    rejected = bad.height + len(unmatched) + lines.rejected_count
    return SplitChunk(
        conform(requests, "requests", schema),  # type: ignore[arg-type]
        chunk.lines, chunk.first_line + chunk.lines - 1, rejected, examples, read + lines.rejected_count,
    )


UNMATCHED_APART = 50  # lines handed to the regex that Python's `re` tries first, when they are no more
_NOT_SPACE_TO_RUST = re.compile("[\x1c-\x1f]")  # whitespace to Python's `\s`, not to Rust's (polars')
_PREDEFINED = {compile_log_format(f, trailer=True).pattern for f in FORMATS.values()}


@functools.cache
def _python_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _unmatched_apart(frame: pl.DataFrame, compiled: CompiledFormat) -> tuple[pl.DataFrame, list[Rejected]]:
    """The (line, text) rows but those that do not match the format at all, and those as Rejected (in line
    order). A chunk's split hands the regex a few lines, mostly garbage, and polars' regex path costs about
    a millisecond whatever their number; Python's `re` tells a line that cannot match in microseconds.
    Only for the predefined formats, whose patterns match the same lines in both engines (their classes
    differ only on `\x1c`-`\x1f`, lines holding which are left to polars, and on digits of recent Unicode
    versions, which only their optional trailer reads, and which `(?: .*)?` takes either way); a custom
    format's lazy `.*?` could also backtrack long in `re`."""
    if frame.height > UNMATCHED_APART or compiled.pattern not in _PREDEFINED:
        return frame, []
    pattern = _python_pattern(compiled.pattern)
    kept: list[tuple[int, str | None]] = []
    unmatched: list[Rejected] = []
    for number, text in frame.iter_rows():
        if text is not None and text.strip() and pattern.match(text) is None and not _NOT_SPACE_TO_RUST.search(text):
            unmatched.append(Rejected(number, "does not match the access-log format", text[:160]))
        else:
            kept.append((number, text))
    if not unmatched:
        return frame, []
    return pl.DataFrame(kept, schema=frame.schema, orient="row"), unmatched


def _lines_at(chunk: LineChunk, numbers: list[int], index: _LineIndex) -> Lines:
    """The lines of a chunk at `numbers` (sorted), decoded as `read_lines` decodes them."""
    texts: list[str] = []
    rejected: list[Rejected] = []
    kept: list[int] = []
    for number in numbers:
        start, end = index.span(number - chunk.first_line)
        raw = chunk.data[start:end]
        text = raw.decode("utf-8", errors="replace").removesuffix("\r")
        if len(raw) > MAX_LINE_BYTES:
            rejected.append(Rejected(number, f"line too long ({len(text):,} characters)", text[:120]))
            continue
        kept.append(number)
        texts.append(text)
    frame = pl.DataFrame({"line": kept, "text": texts}, schema={"line": pl.Int64, "text": pl.String})
    return Lines(frame=frame, total=len(numbers), rejected=rejected[:5], rejected_count=len(rejected))


CONVERT_WORKERS = 2  # chunks converted at once: polars releases the GIL, so each runs on its own core
# A chunk's split costs ~3.5 ms of CPU whatever its size (about twenty polars calls, each planned and run,
# and the Python building their expressions; ~0.6 us a line on top): `rca ingest` reads chunks twice the
# readers' usual size, halving that share. Apache corpus on 2 cores: 1M lines 0.89-0.93 -> 0.84 s, 5M
# 3.39 -> 2.97 s, for a peak of 0.44-0.49 GB instead of 0.33 (x3 and x4 the size were slower: less
# overlap, more memory). The analysis keeps the usual size: there a chunk's rows weigh more (+0.1 GB at
# the peak) and the split is a smaller share of the time (1M lines: 1.13 vs 1.11 s).
INGEST_CHUNK_SCALE = 2


def split_chunks(
    source: Source, layout: SplitLayout, compiled: CompiledFormat, tz: str, warnings: list[str], schema: dict[str, pl.DataType] | None = None,
    chunk_bytes: int | None = None,
) -> Iterator[SplitChunk]:
    """Every chunk of `source` (of `chunk_bytes`, else the readers' usual size) through `split_chunk`, in
    order, CONVERT_WORKERS at a time.

    A chunk's string kernels mostly run on one thread, so converting chunks side by side (with a reader
    thread reading the next ones meanwhile: `lines.map_chunks`) is what keeps both cores busy."""

    spares = SpareColumns()

    def one(chunk: LineChunk) -> SplitChunk:
        return replace(split_chunk(chunk, layout, compiled, source.origin, tz, schema, spares), read_share=read_share(chunk))

    return map_chunks(source, warnings, one, CONVERT_WORKERS, chunk_bytes=chunk_bytes)


def scan_split(data: str | bytes, layout: SplitLayout, encoding: str = "utf8", first_line: int = 1, spares: int = len(_SPARE)) -> pl.LazyFrame:
    """A lazy CSV scan of an access log in `layout`: one String column per field, the first `spares` of
    the `_SPARE` columns, plus `line`."""
    return pl.scan_csv(
        io.BytesIO(data) if isinstance(data, bytes) else data,
        has_header=False,
        separator=" ",
        quote_char='"',
        schema={c: pl.String for c in (*layout.columns, *_SPARE[:spares])},
        missing_columns="insert",
        extra_columns="ignore",  # the spare columns already send such lines to the regex
        truncate_ragged_lines=True,
        encoding=encoding,  # type: ignore[arg-type]
        comment_prefix=None,
        row_index_name="line",
        row_index_offset=first_line,
    )


_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PROPFIND")
_NUMBER_OR_DASH = r"-|\d+(?:\.\d+)?"
_PRINTABLE = "[^!-~]"  # a character a bare field cannot hold: space (it was quoted), control, non-ASCII
_DASH_OR_INTEGER = {"status", "body_bytes_sent", "bytes_sent", "request_length", "connection", "connection_requests", "server_port"}
_DASH_ONLY = {"remote_ident", "remote_user"}  # almost always `-`


def _plainly_printable(column: str) -> pl.Expr:
    """Whether a bare field is known printable without a regex: `-`, or an integer for numeric fields."""
    value = pl.col(column)
    known = value.is_null() | (value == "-")
    if column in _DASH_OR_INTEGER:
        known = known | value.cast(pl.Int64, strict=False).is_not_null()
    return known


def _convert_split(
    fields: pl.DataFrame, layout: SplitLayout, origin: str, tz: str, schema: dict[str, pl.DataType] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One chunk of split fields -> (canonical requests, line numbers for the regex). Every check keeps
    the result identical to the regex path's for the lines taken here, with one leniency: a bare field written in quotes (`"200"`) loses its quotes.
    `schema` overrides the output dtypes (the Parquet sink stores repeated strings as categoricals).

    Comparisons and casts cost a few instructions a row where a regex or substring search costs
    hundreds, so checks that usually pass cheaply (a bare field that is `-` or an integer is printable)
    are made that way first and the regex runs only on the rows that fail them.
    """
    # The reader's batch holds its columns in many chunks; the columns computed here come in one. An
    # eager operation on a frame whose columns are chunked differently rechunks every column first.
    fields = fields.rechunk()
    names = set(layout.columns) - {"_time_date", "_time_zone"}
    read = [c for c in layout.columns if c in fields.columns]  # all but the unread ones (`unread_columns`)
    spares = [c for c in _SPARE if c in fields.columns]  # one, unless the chunk holds upstream lists (`SpareColumns`)
    listed = "upstream_response_time" in layout.optional and len(spares) > 1 and fields.get_column(_SPARE[0]).null_count() < fields.height
    spill = spares[:-1] if listed else []
    checks: list[pl.Expr] = [pl.col(c).is_null() for c in spares if c not in spill]
    # a field missing at the end (a line cut short) is null; so is an empty bare field: the regex judges both
    checks += [pl.col(c).is_not_null() for c in read if c not in layout.optional]
    exprs = _request_exprs(names | {"time_local"}, origin, tz, None)
    if "_time_date" in layout.columns:
        date, zone = pl.col("_time_date"), pl.col("_time_zone")
        checks += [date.str.len_bytes() == 21, date.str.starts_with("["), zone.str.len_bytes() == 6, zone.str.ends_with("]")]
        exprs["ts"] = _split_time(date, fields.get_column("_time_zone"))
    for name in layout.optional:  # a trailing field that is not a plain number (or `-`) is the regex's job
        checks.append(pl.col(name).is_null() | pl.col(name).str.contains(f"^(?:{_NUMBER_OR_DASH})$") | (pl.lit(listed) & (name == "upstream_response_time")))
    if len(layout.optional) == 2:  # an empty first timing field (two spaces) before a second: the regex reads neither
        checks.append(pl.col(layout.optional[0]).is_not_null() | pl.col(layout.optional[1]).is_null())
    bare = [c for c in layout.columns if c not in layout.quoted and c not in layout.optional and not c.startswith("_time")]
    cheap = [c for c in bare if c in _DASH_OR_INTEGER or c in _DASH_ONLY]
    # whitespace in a bare field means it was quoted: the regex rejects it (anything but printable ASCII goes there)
    checks += [~pl.col(c).str.contains(_PRINTABLE).fill_null(False) for c in bare if c not in cheap]
    if quoted := [c for c in layout.quoted if c in read]:  # a line too long for the regex path is too long here as well
        checks.append(pl.sum_horizontal(pl.col(c).str.len_bytes().fill_null(0) for c in quoted) <= MAX_LINE_BYTES)
    if "upstream_response_time" in names:
        up = pl.col("upstream_response_time")
        exprs["upstream_ms"] = pl.when(up == "-").then(None).otherwise(up.cast(pl.Float64, strict=False) * 1000.0)
        if listed:  # some lines hold upstream lists: the list, rejoined from its columns, read as the regex would
            upstream = pl.concat_str([up, *(pl.col(c) for c in spill)], separator=" ", ignore_nulls=True)
            checks.append(upstream.is_null() | upstream.str.contains(f"^(?:{_SECONDS})$"))
            exprs["upstream_ms"] = pl.when(pl.col(_SPARE[0]).is_null()).then(exprs["upstream_ms"]).otherwise(_seconds_list_ms(upstream))
    prepare: list[pl.Expr] = [
        pl.all_horizontal(checks).alias("_matched"),
        pl.all_horizontal(pl.col(c).is_null() for c in (*read, *spares)).alias("_blank"),
    ]
    late = {k: exprs.pop(k) for k in ("method", "path")}  # these read `_method`/`_target`
    # independent expressions in one pass run in parallel
    out = fields.with_columns(*prepare, **exprs)
    # Only the lines taken here need their bare fields vouched for; a status or size converted to a number
    # (or a size `-`, converted to 0) was one, so the conversions above are read, not made again.
    size = next((b for b in ("body_bytes_sent", "bytes_sent") if b in names), None)
    converted: dict[str, pl.Expr] = {"status": pl.col("status").is_not_null()}
    if size:
        converted[size] = pl.col("bytes").is_not_null()
    plain = out.select(~pl.col("_matched").fill_null(False) | pl.all_horizontal(True, *(converted.get(c, _plainly_printable(c)) for c in cheap))).to_series()
    if not plain.all():  # the regex for the bare fields the cheap test could not vouch for
        suspects = fields.filter(~plain)  # the raw fields: `out` holds converted ones
        unprintable = suspects.filter(pl.any_horizontal(pl.col(c).str.contains(_PRINTABLE).fill_null(False) for c in cheap)).get_column("line")
        out = out.with_columns(pl.col("_matched") & ~pl.col("line").is_in(unprintable.implode()))
    if "request" in names:
        out = out.with_columns(_request_columns(fields.get_column("request"), schema))
    else:
        out = out.with_columns(**late)
    out = out.with_columns(_REASON.alias("_reason"))
    out = out.select(c for c in (*REQUESTS_SCHEMA, "_reason", "_blank") if c in out.columns)  # no copy: the raw fields go
    if out.get_column("_reason").null_count() == out.height:  # the usual chunk: every line taken here
        return _finish(out, origin, schema), pl.DataFrame(schema={"line": pl.Int64, "_blank": pl.Boolean})
    good = out.filter(pl.col("_reason").is_null())
    retry = out.filter(pl.col("_reason").is_not_null()).select(pl.col("line").cast(pl.Int64), "_blank")
    return _finish(good, origin, schema), retry


class AccessLogParser:
    """One predefined access-log layout (or a custom nginx log_format)."""

    def __init__(self, name: str, log_format: str, description: str, trailer: bool = True):
        self.name = name
        self.description = description
        self.log_format = log_format
        self.compiled = compile_log_format(log_format, trailer=trailer)
        self._regex = re.compile(self.compiled.pattern)
        # More specific layouts (more fields) win ties when several match every line.
        self._specificity = len(self.compiled.variables) / 100.0
        self.layout = split_layout(log_format, trailer)

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        lines = sample.lines[:20]
        hits = sum(1 for line in lines if self._regex.match(line))
        if hits == 0:
            return 0.0
        return 0.8 * hits / len(lines) + self._specificity

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        if self.layout is None:
            lines = read_lines(source)
            requests, bad = parse_lines(lines.frame, self.compiled, source.origin, options.tz)
            return self._result(requests, bad, lines)
        warnings: list[str] = []
        # `line` orders a chunk's rows when the regex read some of them; the loader drops it after
        kept = None if options.request_columns is None else {c: t for c, t in REQUESTS_SCHEMA.items() if c in (*options.request_columns, "line")}
        bounded = BoundedRequests(options.max_request_rows)
        chunks: list[SplitChunk] = []
        for chunk in split_chunks(source, self.layout, self.compiled, options.tz, warnings, kept):
            bounded.add(chunk.requests, chunk.read_share)
            chunks.append(replace(chunk, requests=chunk.requests.clear()))  # the counts; the rows are in `bounded`
        if not chunks and warnings:
            raise InputError(warnings[0], file=source.origin)
        requests = conform(bounded.frame(empty_frame("requests")), "requests")
        result = self._chunks_result({"requests": requests}, chunks, warnings)
        result.request_sample = bounded.sample()
        return result

    def stream(self, source: Source, options: ParseOptions) -> Streamed | None:
        """The chunked parse as a streaming pipeline (for `rca ingest`): each chunk's requests go out as
        one batch of a lazy source the caller sinks to Parquet; `remainder()` then gives the counts."""
        if self.layout is None:
            return None
        layout, compiled, tz = self.layout, self.compiled, options.tz
        schema = storage_schema("requests")
        chunks: list[SplitChunk] = []
        warnings: list[str] = []

        def batches() -> Iterator[pl.DataFrame]:
            for chunk in split_chunks(source, layout, compiled, tz, warnings, schema, INGEST_CHUNK_SCALE * line_reader.CHUNK_BYTES):
                chunks.append(replace(chunk, requests=chunk.requests.clear()))  # the counts; the rows go out
                yield chunk.requests

        rows = lazy_batches(batches, schema)
        return Streamed({"requests": rows}, lambda: self._chunks_result({}, chunks, warnings))

    def _chunks_result(self, frames: dict[str, pl.DataFrame], chunks: list[SplitChunk], warnings: list[str]) -> ParseResult:
        examples = [e for c in chunks for e in c.examples][:5]
        return ParseResult(
            format=self.name,
            frames=frames,
            lines=chunks[-1].last_line if chunks else 0,
            rejected=sum(c.rejected for c in chunks),
            rejected_examples=examples,
            warnings=warnings,
            slow_lines=sum(c.slow_lines for c in chunks),
        )

    def _result(self, requests: pl.DataFrame, bad: pl.DataFrame, lines: Lines) -> ParseResult:
        rejected = lines.rejected + rejected_examples(bad, pl.col("reason"))
        return ParseResult(
            format=self.name,
            frames={"requests": requests},
            lines=lines.total,
            rejected=lines.rejected_count + bad.height,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=list(lines.warnings),
            slow_lines=lines.total,
        )


def custom_parser(log_format: str) -> AccessLogParser:
    """A parser for a user's nginx `log_format` string (given with `--log-format`)."""
    return AccessLogParser("nginx-custom", log_format, f"nginx log_format {log_format!r}", trailer=False)


for _name, _fmt in FORMATS.items():
    register(AccessLogParser(_name, _fmt, DESCRIPTIONS[_name]))
