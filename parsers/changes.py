"""Change events: deploy/rollback/config-reload lines in any log, and `--changes FILE` markers.

`changes_from_messages` scans the `events` frame of every input with one vectorized regex: a message
that announces a deploy, release, rollback or configuration reload becomes a `changes` row with the
version it names (`v2.3.1`, `2.3.1`, a git sha) as subject. `read_changes_file` reads deploy markers
from outside: JSON lines or CSV with at least `ts` and `kind` (optionally `service`, `subject`,
`description`).
"""

from __future__ import annotations

import polars as pl

from rca.errors import InputError
from rca.model import CHANGE_KINDS, conform
from rca.parsers.fields import parse_json_lines, parse_timestamp
from rca.parsers.sources import Source

_ROLLBACK = r"(?i)\b(rolled back|rolling back|roll(?:ing)?[- ]?back|rollback|reverted to|reverting to)\b"
_DEPLOY = r"(?i)\b(deployed|deploying|deployment (?:of|completed|finished|succeeded)|released|releasing|rolled out|rolling out|upgraded to|new version)\b"
_CONFIG = r"(?i)\b(config(?:uration)? (?:reload(?:ed)?|changed|updated|applied)|reload(?:ed|ing)? (?:config(?:uration)?|settings)|feature flag)\b"
_RESTART = r"(?i)\b(restart(?:ed|ing)|starting (?:\S+ )?(?:service|server|application)|started (?:\S+ )?(?:service|server|application))\b"
_VERSION = r"\b(v?\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.\-]+)?)\b"


def changes_from_messages(events: pl.DataFrame) -> pl.DataFrame:
    """Deploy/rollback/config/restart announcements in log messages -> `changes` rows."""
    msg = pl.col("message")
    kind = (
        pl.when(msg.str.contains(_ROLLBACK)).then(pl.lit("rollback"))
        .when(msg.str.contains(_DEPLOY)).then(pl.lit("deploy"))
        .when(msg.str.contains(_CONFIG)).then(pl.lit("config"))
        .when(msg.str.contains(_RESTART)).then(pl.lit("restart"))
        .otherwise(None)
    )
    found = (
        events.filter(msg.is_not_null() & pl.col("ts").is_not_null())
        .with_columns(kind.alias("kind"))
        .filter(pl.col("kind").is_not_null())
        .with_columns(
            subject=msg.str.extract(_VERSION, 1),
            description=msg.str.slice(0, 200),
        )
    )
    return conform(found, "changes")  # type: ignore[return-value]


def read_changes_file(source: Source) -> pl.DataFrame:
    """Deploy markers from a JSON-lines or CSV file (ts,kind,service,subject[,description])."""
    payload = source.read_bytes()
    text = payload.decode("utf-8", errors="replace").strip()
    if not text:
        raise InputError("empty changes file", file=source.origin)
    if text.startswith("{"):
        records, positions, bad = parse_json_lines(text.splitlines())
        if bad:
            pos, _, reason = bad[0]
            raise InputError(reason, file=source.origin, line=pos + 1)
        frame = pl.DataFrame([{k: (None if v is None else str(v)) for k, v in r.items()} for r in records])
        lines = [p + 1 for p in positions]
    else:
        try:
            frame = pl.read_csv(payload, infer_schema=False)
        except Exception as exc:  # polars raises several error types on malformed CSV
            raise InputError(f"not a CSV of ts,kind,service,subject ({exc.__class__.__name__})", file=source.origin) from None
        lines = list(range(2, frame.height + 2))
    frame.columns = [c.strip().lower() for c in frame.columns]
    if "ts" not in frame.columns:
        for alt in ("time", "timestamp", "date"):
            if alt in frame.columns:
                frame = frame.rename({alt: "ts"})
                break
    if "ts" not in frame.columns:
        raise InputError("changes file needs a ts column", file=source.origin, line=1)
    ts = parse_timestamp(frame["ts"])
    if ts.null_count():
        first = ts.is_null().arg_true()[0]
        raise InputError(f"unreadable timestamp {frame['ts'][first]!r}", file=source.origin, line=lines[first])
    kind = frame["kind"].str.to_lowercase() if "kind" in frame.columns else pl.Series(["deploy"] * frame.height)
    kind = kind.replace({"release": "deploy", "version": "deploy", "feature_flag": "flag", "rollout": "deploy"})
    unknown = ~kind.is_in(list(CHANGE_KINDS))
    if unknown.any():
        first = unknown.arg_true()[0]
        raise InputError(
            f"unknown change kind {kind[first]!r} (expected one of {', '.join(CHANGE_KINDS)})",
            file=source.origin,
            line=lines[first],
        )
    out = frame.with_columns(
        ts=ts, kind=kind, line=pl.Series(lines, dtype=pl.Int64), origin=pl.lit(source.origin), signal=pl.lit("external")
    )
    if "description" not in out.columns:
        out = out.with_columns(description=pl.lit(None, pl.String))
    return conform(out, "changes")  # type: ignore[return-value]
