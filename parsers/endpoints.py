"""Endpoint normalization: raw request paths -> routes (`/api/messages/12345` -> `/api/messages/{id}`).

The path is cut at `?`/`#`, split on `/`, and each segment that looks like an identifier is replaced by
a placeholder: `{id}` (digits), `{uuid}`, `{hex}` (8+ hex digits with at least one digit), `{email}`,
`{date}`, `{token}` (16+ characters mixing letters and digits, or base64/url-safe blobs). Static file
names with a content hash (`app.3f9a8b7c.js`) keep their extension: `app.{hex}.js`. The work is one
vectorized polars expression (`list.eval` over segments), no Python per row; `normalize_endpoint` applies
the same expression to one string so both always agree. A route given by the log (`http.route`) wins
over any of this: callers only normalize rows whose route is unknown.
"""

from __future__ import annotations

import polars as pl

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_NUMBER = r"^[+-]?\d+(\.\d+)?$"
_HEX = r"^(0x)?[0-9a-fA-F]{8,}$"
_EMAIL = r"^[^@/\s]+@[^@/\s]+\.[A-Za-z]{2,}$"
_DATE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?.*)?$"
# 16+ chars of token alphabet with letters and digits: API keys, session ids.
_TOKEN_CHARS = r"^[A-Za-z0-9_\-=~.]{16,}$"
_HASHED_ASSET = r"^(.+)\.([0-9a-fA-F]{6,})\.([A-Za-z0-9]{1,8})$"


def _segment(seg: pl.Expr) -> pl.Expr:
    has_digit = seg.str.contains(r"\d")
    has_letter = seg.str.contains(r"[A-Za-z]")
    return (
        pl.when(seg.str.contains(_UUID))
        .then(pl.lit("{uuid}"))
        .when(seg.str.contains(_NUMBER))
        .then(pl.lit("{id}"))
        .when(seg.str.contains(_DATE))
        .then(pl.lit("{date}"))
        .when(seg.str.contains(_HEX) & has_digit)
        .then(pl.lit("{hex}"))
        .when(seg.str.contains(_EMAIL))
        .then(pl.lit("{email}"))
        .when(seg.str.contains(_HASHED_ASSET) & seg.str.extract(_HASHED_ASSET, 2).str.contains(r"\d"))
        .then(seg.str.replace(_HASHED_ASSET, "${1}.{hex}.${3}"))
        .when(
            seg.str.contains(_TOKEN_CHARS)
            & has_digit
            & has_letter
            & ~seg.str.contains(r"\.[A-Za-z]{1,5}$")
            # a slug of words ("logstash-monitorama-2013") is a name, not a token: tokens are digit-dense
            # or mix cases without separators
            & (
                (seg.str.count_matches(r"\d") * 4 >= seg.str.len_chars())
                | (seg.str.contains(r"[a-z]") & seg.str.contains(r"[A-Z]") & ~seg.str.contains(r"[-_.]"))
            )
        )
        .then(pl.lit("{token}"))
        .otherwise(seg)
    )


def normalize_endpoint_expr(path: pl.Expr) -> pl.Expr:
    """Vectorized: raw paths (possibly with query strings or full URLs) -> normalized routes."""
    # Full URLs (http://host/path) keep only their path; empty -> "/".
    bare = (
        path.str.replace(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/]*", "")
        .str.replace(r"[?#].*$", "")
        .str.replace(r"/{2,}", "/")
    )
    bare = pl.when(bare == "").then(pl.lit("/")).otherwise(bare)
    normalized = bare.str.split("/").list.eval(_segment(pl.element())).list.join("/")
    return pl.when(path.is_null()).then(pl.lit(None, dtype=pl.String)).otherwise(normalized)


def normalize_endpoint(path: str) -> str:
    """Normalize one path (same rules as `normalize_endpoint_expr`)."""
    return pl.select(normalize_endpoint_expr(pl.lit(path, dtype=pl.String))).item()


def strip_query_expr(path: pl.Expr) -> pl.Expr:
    """The raw path without query string or fragment (what the `path` column stores)."""
    return path.str.replace(r"[?#].*$", "")


def endpoint_shape_expr(path: pl.Expr, plain: bool = False) -> pl.Expr:
    """Purely numeric segments replaced by `{id}` with two cheap regexes: what the full rules do to them,
    and `{id}` is a fixed point of the rules, so `routes_from_shapes` of the result equals the full rules
    on `path`. (A numeric segment right after another is left for the full rules; so are full URLs, whose
    host the rules strip first; doubled slashes are collapsed by the rules either way.) `plain`: the
    caller knows every path starts with `/`."""
    shaped = path.str.replace_all(r"/\d+/", "/{id}/").str.replace(r"/\d+$", "/{id}")
    return shaped if plain else pl.when(path.str.starts_with("/")).then(shaped).otherwise(path)


ROUTES_REMEMBERED = 100_000  # shapes whose route is kept between calls (a chunked reader calls once a chunk)
_routes: dict[str, str | None] = {}


def routes_from_shapes(shapes: pl.Series) -> pl.Series:
    """The full normalization rules applied once per distinct shape (hundreds, where paths number
    millions), and once per process for a shape seen before: the chunks of a log repeat their shapes, and
    the rules (a list evaluation of a dozen regexes a segment) cost microseconds a shape."""
    distinct = shapes.drop_nulls().unique()
    values = distinct.to_list()
    routes = {value: _routes.get(value, _routes) for value in values}  # the cache itself marks a shape not seen
    missing = [value for value, route in routes.items() if route is _routes]
    if missing:
        computed = pl.select(normalize_endpoint_expr(pl.lit(pl.Series(missing, dtype=pl.String)))).to_series().to_list()
        found = dict(zip(missing, computed, strict=True))
        routes.update(found)
        if len(_routes) + len(found) > ROUTES_REMEMBERED:
            _routes.clear()
        _routes.update(found)
    mapped = pl.Series([routes[value] for value in values], dtype=pl.String)
    return shapes.replace_strict(distinct, mapped, default=None, return_dtype=pl.String).alias("endpoint")


def normalize_endpoints(paths: pl.Series) -> pl.Series:
    """`normalize_endpoint_expr` over a column, computed once per distinct path shape."""
    return routes_from_shapes(pl.select(endpoint_shape_expr(pl.lit(paths))).to_series())
