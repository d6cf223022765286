"""nginx and Apache access logs: combined, common, their vhost variants, and any nginx `log_format`.

Every layout, the predefined ones included, is written as an nginx `log_format` string and compiled
into ONE regular expression with a named group per variable (`compile_log_format`), so a custom format
given with `--log-format` goes through exactly the same code as `combined`. Lines are matched with one
vectorized `str.extract_groups`; timestamps with `str.strptime`.

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

import re
from dataclasses import dataclass
from pathlib import PurePath

import polars as pl

from parsers import ParseOptions, ParseResult, register
from parsers.endpoints import normalize_endpoint_expr, strip_query_expr
from parsers.lines import read_lines, rejected_examples
from parsers.sources import Sample, Source
from rca.model import conform

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


def parse_lines(frame: pl.DataFrame, compiled: CompiledFormat, origin: str, tz: str = "UTC") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Match a (line, text) frame against a compiled format: (requests frame, rejected (line, text, reason))."""
    present = frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    fields = present.with_columns(pl.col("text").str.extract_groups(compiled.pattern).alias("m")).unnest("m")
    names = set(compiled.variables)
    first_var = compiled.variables[0]
    matched = pl.col(first_var).is_not_null()
    time_col = next((t for t in ("time_local", "time_iso8601", "msec") if t in names), None)
    exprs: dict[str, pl.Expr] = {}
    exprs["ts"] = _timestamp(time_col, tz) if time_col else pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    if "request" in names:
        req = pl.col("request").str.extract_groups(r"^(?P<method>[A-Za-z]+) (?P<target>\S+)(?: (?P<proto>\S+))?$")
        method = req.struct.field("method").str.to_uppercase()
        target = req.struct.field("target")
    else:
        method = pl.col("request_method").str.to_uppercase() if "request_method" in names else pl.lit(None, pl.String)
        target = pl.col("request_uri") if "request_uri" in names else (pl.col("uri") if "uri" in names else pl.lit(None, pl.String))
    exprs["method"] = method
    exprs["path"] = strip_query_expr(target)
    exprs["endpoint"] = normalize_endpoint_expr(target)
    exprs["status"] = pl.col("status").cast(pl.Int32, strict=False) if "status" in names else pl.lit(None, pl.Int32)
    size = next((b for b in ("body_bytes_sent", "bytes_sent") if b in names), None)
    exprs["bytes"] = pl.col(size).replace("-", "0").cast(pl.Int64, strict=False) if size else pl.lit(None, pl.Int64)
    if "request_time" in names:
        rt = pl.col("request_time")
        exprs["duration_ms"] = (
            pl.when(rt.str.contains(r"\."))
            .then(rt.cast(pl.Float64, strict=False) * 1000.0)
            .otherwise(rt.cast(pl.Float64, strict=False) / 1000.0)  # an integer is Apache %D, microseconds
        )
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
    out = fields.with_columns(matched.alias("_matched")).with_columns(**exprs)
    reason = (
        pl.when(~pl.col("_matched"))
        .then(pl.lit("does not match the access-log format"))
        .when(pl.col("ts").is_null())
        .then(pl.lit("unreadable timestamp"))
        .when(pl.col("method").is_null())
        .then(pl.lit("unreadable request line"))
        .otherwise(None)
    )
    out = out.with_columns(reason.alias("_reason"))
    bad = out.filter(pl.col("_reason").is_not_null()).select("line", "text", pl.col("_reason").alias("reason"))
    good = out.filter(pl.col("_reason").is_null()).with_columns(
        origin=pl.lit(origin), signal=pl.lit("access_log")
    )
    return conform(good, "requests"), bad


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

    def sniff(self, sample: Sample) -> float:
        if sample.is_binary or not sample.lines:
            return 0.0
        lines = sample.lines[:20]
        hits = sum(1 for line in lines if self._regex.match(line))
        if hits == 0:
            return 0.0
        return 0.8 * hits / len(lines) + self._specificity

    def parse(self, source: Source, options: ParseOptions) -> ParseResult:
        lines = read_lines(source)
        requests, bad = parse_lines(lines.frame, self.compiled, source.origin, options.tz)
        rejected = lines.rejected + rejected_examples(bad, pl.col("reason"))
        return ParseResult(
            format=self.name,
            frames={"requests": requests},
            lines=lines.total,
            rejected=lines.rejected_count + bad.height,
            rejected_examples=sorted(rejected, key=lambda r: r.line)[:5],
            warnings=list(lines.warnings),
        )


def custom_parser(log_format: str) -> AccessLogParser:
    """A parser for a user's nginx `log_format` string (given with `--log-format`)."""
    return AccessLogParser("nginx-custom", log_format, f"nginx log_format {log_format!r}", trailer=False)


for _name, _fmt in FORMATS.items():
    register(AccessLogParser(_name, _fmt, DESCRIPTIONS[_name]))
