"""What a log message says, as polars expressions shared by parsers and detectors: its shape (the first line
with the obvious variables masked, what log templates are mined from) and the resource it speaks of (memory,
cpu, cache, connection pool, disk).

They live here, not in the detectors that read them, because a bounded read of a big log
(`parsers.bounded_events`) aggregates events by shape and resource while parsing, and parsers know nothing
of detectors; both sides must compute the same shape and class of the same message.
"""

from __future__ import annotations

import polars as pl

WILDCARD = "<*>"
_H = "[0-9a-fA-F]"
_B = r"(?-u:\b)"  # ASCII word boundary: much faster than the Unicode one
_WORD = r"[A-Za-z0-9_.\-]"
# One alternation, one pass; at each position the first (more specific) shape wins.
MASKS: tuple[str, ...] = (
    rf"{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}",  # uuid
    rf"(?:{_H}{{2}}:){{5}}{_H}{{2}}",  # mac
    r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::[0-9]+)?",  # ipv4[:port]
    rf"{_B}0[xX]{_H}+{_B}",  # hex literal
    rf"{_B}{_H}*[0-9]{_H}*[a-fA-F]{_H}*{_B}|{_B}{_H}*[a-fA-F]{_H}*[0-9]{_H}*{_B}",  # hex ids
    rf"(?:/{_WORD}*)*/{_WORD}*[0-9]{_WORD}*(?:/{_WORD}*)*",  # paths holding a number
    rf"{_WORD}*[0-9]{_WORD}*@{_WORD}+",  # user@host
    r"(?:(?-u:\B)[-+])?[0-9]+(?:[.,][0-9]+)*(?:[eE][-+]?[0-9]+)?",  # numbers; a sign only after a non-word
)
_MASK = "(?:" + "|".join(MASKS) + ")"
_GLUED = r"<\*>(?:[A-Za-z0-9_.\-:]*<\*>)+"  # runs of masks glued together


def first_line_expr(message: pl.Expr) -> pl.Expr:
    """The first line of a (possibly multi-line) message, stripped."""
    return message.str.split("\n").list.first().str.strip_chars()


def mask_expr(message: pl.Expr) -> pl.Expr:
    """The first line of `message` with the obvious variables replaced by `<*>` (vectorized)."""
    masked = first_line_expr(message).str.replace_all(_MASK, WILDCARD).str.replace_all(_GLUED, WILDCARD)
    return masked.str.replace_all(r"\s+", " ")


RESOURCE_PATTERNS: dict[str, str] = {
    "memory": r"(?i)(out ?of ?memory|\boom\b|killed process|heap (?:usage|space|exhaust)|gc (?:pause|overhead)|"
    r"garbage collect|memory (?:pressure|limit|exhaust)|cannot allocate memory|allocation fail)",
    "cpu": r"(?i)(cpu (?:usage|throttl|saturat|load)|load average|throttl(?:ed|ing)|thread pool (?:saturat|exhaust|full)|"
    r"request queue (?:depth|full))",
    "cache": r"(?i)(cache (?:full|miss|evict|exhaust|capacity)|evicted \d+ (?:entries|keys|items)|eviction)",
    "connection_pool": r"(?i)(pool (?:exhausted|is full|timeout)|connection is not available|too many (?:connections|clients)|"
    r"remaining connection slots|max_connections|could not (?:obtain|acquire) (?:a )?connection)",
    "disk": r"(?i)(no space left|disk (?:full|quota)|enospc|filesystem full|inode)",
}


def classify_expr(message: pl.Expr) -> pl.Expr:
    """The resource a log message speaks of, or null."""
    expr = pl.lit(None, dtype=pl.String)
    for resource, pattern in reversed(list(RESOURCE_PATTERNS.items())):
        expr = pl.when(message.str.contains(pattern)).then(pl.lit(resource)).otherwise(expr)
    return expr
