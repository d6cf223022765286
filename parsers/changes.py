"""Change events: deploy/rollback/config-reload lines in any log, and `--changes FILE` markers.

`changes_from_messages` scans the `events` frame of every input with vectorized regexes: a message
that announces a deploy, release, rollback, feature-flag switch or configuration reload becomes a
`changes` row whose subject is what it names: the version (`v2.3.1`, `2.3.1`) of a release, the flag of
a flag change, the key (or file) of a configuration change, from the record's fields or its message. `read_changes_file` reads deploy markers
from outside: JSON lines or CSV with at least `ts` and `kind` (optionally `service`, `subject`,
`description`).
"""

from __future__ import annotations

import polars as pl

from rca.errors import InputError
from rca.model import CHANGE_KINDS, conform
from rca.parsers.decoding import parse_json_lines, parse_timestamp
from rca.parsers.sources import Source

_ROLLBACK = r"(?i)\b(rolled back|rolling back|roll(?:ing)?[- ]?back|rollback|reverted to|reverting to)\b"
_DEPLOY = r"(?i)\b(deployed|deploying|deployment (?:of|completed|finished|succeeded)|released|releasing|rolled out|rolling out|upgraded to|new version)\b"
_FLAG = r"(?i)(\bfeature[ _\-]?(?:flag|toggle|switch)|\bflag\b.{0,60}\b(?:enabled|disabled|toggled|switched|turned|flipped|set to|changed|updated|rolled)|\btoggle[ds]?\b)"
_CONFIG = (r"(?i)\b(config(?:uration)? (?:reload(?:ed)?|refresh(?:ed)?|changed|updated|applied)|reload(?:ed|ing)? (?:config(?:uration)?|settings)"
           r"|refreshed keys|(?:setting|property|parameter|config key) \S+ (?:changed|updated|set))")
_RESTART = r"(?i)\b(restart(?:ed|ing)|starting (?:\S+ )?(?:service|server|application)|started (?:\S+ )?(?:service|server|application))\b"
_VERSION = r"\b(v?\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.\-]+)?)\b"

# Where the flag or the configuration key a change names is written: a field of a structured record
# (attributes hold the unmapped fields as compact JSON, perhaps in an envelope: Monolog's `context`), a quoted name, `Refreshed keys : [a.b]`
# (Spring Cloud), `a.b.c=value`, or the word next to "flag".
_FLAG_FIELDS = r'"(?:(?:context|extra|fields)\.)?(?:feature_flag\.key|feature_flag|flag_key|flag\.key|flag\.name|flag|feature|toggle|flag_name)":"([^"]+)"'
_CONFIG_FIELDS = r'"(?:(?:context|extra|fields)\.)?(?:config_key|config\.key|key|keys|changed_keys|setting|property|parameter|param)":"([^"]+)"'
_QUOTED = r"""['"`]([A-Za-z_][\w.\-/:]{1,80})['"`]"""
_REFRESHED = r"(?i)refreshed keys\s*:?\s*\[([^\]]+)\]"
_KEY_VALUE = r"\b([A-Za-z_][\w\-]*(?:\.[\w\-]+)+)\s*(?:=|:|->|to)\s*\S"
_AFTER_FLAG = r"(?i)\b(?:flag|toggle|feature)s?\s*[:=]?\s*([A-Za-z_][\w.\-/:]*)"
_BEFORE_FLAG = r"(?i)\b([A-Za-z_][\w.\-/:]*)\s+(?:feature[ _\-]?)?(?:flag|toggle)\b"
_NOT_NAMES = ("enabled", "disabled", "updated", "changed", "toggled", "switched", "set", "is", "was", "for", "to", "on", "off",
              "reloaded", "flipped", "evaluation", "state", "value", "flag", "flags", "toggle", "feature", "the", "a", "new", "turned",
              "rolled", "rollout", "change", "update", "config", "configuration", "reload", "key", "keys")


def _name(pattern: str, text: pl.Expr) -> pl.Expr:
    found = text.str.extract(pattern, 1).str.strip_chars()
    return pl.when(found.str.to_lowercase().is_in(_NOT_NAMES)).then(None).otherwise(found)


def change_subject_expr(kind: pl.Expr, message: pl.Expr, attributes: pl.Expr) -> pl.Expr:
    """What a change names: the version of a deploy or rollback, the flag of a flag change, the key (or
    file) of a configuration change; null when the line names none."""
    flag = pl.coalesce(_name(_FLAG_FIELDS, attributes), _name(_QUOTED, message), _name(_AFTER_FLAG, message), _name(_BEFORE_FLAG, message))
    config = pl.coalesce(
        _name(_CONFIG_FIELDS, attributes), _name(_REFRESHED, message), _name(_QUOTED, message), _name(_KEY_VALUE, message),
        message.str.extract(r"(?i)\b(?:from|file)\s+(\S+\.(?:ya?ml|json|toml|ini|conf|properties|env))\b", 1),
    )
    return (
        pl.when(kind == "flag").then(flag)
        .when(kind == "config").then(pl.coalesce(_name(_FLAG_FIELDS, attributes), config))
        .otherwise(message.str.extract(_VERSION, 1))
    )


def change_kind_expr(message: pl.Expr) -> pl.Expr:
    """The kind of change (CHANGE_KINDS) a log message announces, or null."""
    return (
        pl.when(message.str.contains(_ROLLBACK)).then(pl.lit("rollback"))
        .when(message.str.contains(_FLAG)).then(pl.lit("flag"))
        .when(message.str.contains(_DEPLOY)).then(pl.lit("deploy"))
        .when(message.str.contains(_CONFIG)).then(pl.lit("config"))
        .when(message.str.contains(_RESTART)).then(pl.lit("restart"))
        .otherwise(None)
    )


def changes_from_messages(events: pl.DataFrame) -> pl.DataFrame:
    """Deploy/rollback/flag/config/restart announcements in log messages -> `changes` rows."""
    msg = pl.col("message")
    kind = change_kind_expr(msg)
    found = (
        events.filter(msg.is_not_null() & pl.col("ts").is_not_null())
        .with_columns(kind.alias("kind"))
        .filter(pl.col("kind").is_not_null())
        .with_columns(
            subject=change_subject_expr(pl.col("kind"), msg, pl.col("attributes").fill_null("")),
            description=pl.when(pl.col("attributes").is_not_null() & pl.col("kind").is_in(["flag", "config"]))
            .then(pl.format("{} {}", msg.str.slice(0, 160), pl.col("attributes").str.slice(0, 120)))
            .otherwise(msg.str.slice(0, 200)),
        )
    )
    return conform(found, "changes")  # type: ignore[return-value]


def dedupe_changes(changes: pl.DataFrame) -> pl.DataFrame:
    """One row per (kind, service, subject): the earliest sighting. A subject-less announcement is kept
    only when no versioned change of the same kind and service lies within 5 minutes of it."""
    if changes.height == 0:
        return changes
    # "2.3.1" from a version field and "v2.3.1" from a log line are the same release
    changes = changes.with_columns(pl.col("subject").str.replace(r"^(\d+\.\d)", "v${1}")).sort("ts", "origin", "line")
    # the same release seen as a version change and as a "rolled back to v2.3.0" line: keep the most
    # specific kind (rollback > config > deploy), at the earliest time it was seen
    priority = pl.col("kind").replace_strict({"rollback": 0, "config": 1, "flag": 2, "deploy": 3, "restart": 4}, default=5)
    with_subject = (
        changes.filter(pl.col("subject").is_not_null())
        .with_columns(pl.col("ts").min().over("service", "subject", "kind").alias("_first"))
        .sort(priority, "ts")
        .unique(subset=["service", "subject", "kind"], keep="first", maintain_order=True)
    )
    releases = with_subject.filter(pl.col("kind") != "restart")
    releases = releases.with_columns(priority.alias("_p")).sort("_p", "ts").unique(subset=["service", "subject"], keep="first", maintain_order=True)
    releases = releases.with_columns(pl.min_horizontal("ts", "_first").alias("ts")).drop("_p")
    with_subject = pl.concat([releases.drop("_first"), with_subject.filter(pl.col("kind") == "restart").drop("_first")]).sort("ts")
    bare = changes.filter(pl.col("subject").is_null())
    if bare.height and with_subject.height:
        near = bare.join(with_subject.select("kind", "service", pl.col("ts").alias("_ts")), on=["kind", "service"], how="left", nulls_equal=True)
        near = near.with_columns(((pl.col("_ts") - pl.col("ts")).abs() <= pl.duration(minutes=5)).fill_null(False).alias("_near"))
        keep = near.group_by("origin", "line", maintain_order=True).agg(pl.col("_near").any()).filter(~pl.col("_near"))
        bare = bare.join(keep.select("origin", "line"), on=["origin", "line"], how="semi")
    bare = bare.unique(subset=["kind", "service", "ts"], keep="first", maintain_order=True)
    out = pl.concat([with_subject, bare]).sort("ts", "kind", "service")
    # "Starting messages v2.3.1" right after "deployed messages v2.3.1" is the deploy, not another change
    releases = out.filter(pl.col("kind").is_in(["deploy", "rollback"])).select("service", "subject", pl.col("ts").alias("_rts"))
    restarts = out.filter(pl.col("kind") == "restart").join(releases, on=["service", "subject"], how="left", nulls_equal=True)
    echo = restarts.filter(((pl.col("ts") - pl.col("_rts")).abs() <= pl.duration(minutes=5)).fill_null(False)).select("origin", "line")
    return out.join(echo, on=["origin", "line"], how="anti", nulls_equal=True).sort("ts", "kind", "service")


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
