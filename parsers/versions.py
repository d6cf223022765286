"""Versions of a structured input's records (JSON lines, logfmt), kept batch by batch in small state.

A record without a version takes the one its host logged first (a pod runs one release: a start-up line
may be all that names it); a service that logs no version at all gets its pods' template hash; the first
sighting of each version of a service it ran without before is a `changes` row (kind deploy). Each of
these needs the whole input, yet none needs its rows at once: `VersionState.add` reads a batch's records
in line order and keeps only the first version each host logged (with its line), the services that log
one, the hosts of the records without one, and the first sighting of each (service, version). A record
whose host has logged no version yet is marked as waiting for it (`PENDING` + host), and `resolve` gives
the final version once every batch is read: rows kept in memory and the `version` dimension of request
aggregates are both resolved with it, so a host that names its version after its first requests counts
them under that version, as when every row is kept. Rows written out as they are read (`rca ingest`) go
out at once unless their version is pending: those wait in `WaitingRows` (bounded: spilled to Parquet)
until `resolve` can settle them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from rca.model import conform
from rca.parsers.bounded import compact

# A Kubernetes pod name made by a Deployment: `<deployment>-<pod-template-hash>-<5 random>`. The hash
# names the pod template, so a new set of hashes is a rollout even when no version is logged.
POD_NAME = r"^(?P<deployment>[a-z0-9][a-z0-9\-]*?)-(?P<hash>[bcdfghjklmnpqrstvwxz2456789]{6,10})-(?P<suffix>[bcdfghjklmnpqrstvwxz2456789]{5})$"


def pod_template_hash(host: pl.Expr) -> pl.Expr:
    """The pod-template hash in a Deployment's pod name (`api-7d4b9c8f6d-x2k9p` -> `7d4b9c8f6d`), else null."""
    return host.str.extract(POD_NAME, 2)


# A version first seen this soon after the service's first row was already running (a fleet mixed at the
# start of the data), not rolled out.
SETTLED = 60  # seconds


def version_changes(frame: pl.DataFrame) -> pl.DataFrame:
    """The first sighting of each version of a service that the service ran without before -> `changes`
    (kind deploy). Per service rather than per host: a rollout that replaces pods brings new host names
    (the old rule, per host, missed it), and a rolling one must not flap between old and new hosts."""
    if "version" not in frame.columns or frame["version"].null_count() == frame.height:
        return conform(pl.DataFrame(), "changes")  # type: ignore[return-value]
    rows = frame.filter(pl.col("version").is_not_null()).sort("ts", "line").with_columns(
        pl.col("service").fill_null("").alias("_svc"),
        pl.col("ts").min().over(pl.col("service").fill_null("")).alias("_since"),
    )
    firsts = rows.filter(pl.col("version").is_first_distinct().over("_svc"))
    seen = (
        firsts.with_columns(
            pl.col("version").shift(1).over("_svc").alias("_prev"),
            pl.col("host").str.extract(POD_NAME, 2).eq_missing(pl.col("version")).alias("_pod_hash"),
        )
        .filter(pl.col("_prev").is_not_null() & ((pl.col("ts") - pl.col("_since")).dt.total_seconds() >= SETTLED))
    )
    what = pl.when(pl.col("_pod_hash")).then(pl.lit("pod-template hash")).otherwise(pl.lit("version"))
    changes = seen.with_columns(
        kind=pl.lit("deploy"),
        subject=pl.col("version"),
        description=pl.format("{} of {} changed from {} to {} (first seen{})", what, pl.col("service").fill_null("?"),
                              pl.col("_prev"), pl.col("version"), (pl.lit(" on ") + pl.col("host")).fill_null("")),
    )
    return conform(changes, "changes")  # type: ignore[return-value]




# The version of a record whose host has logged none yet: this prefix and the host, resolved at the end.
PENDING = "\x00pending version of host "
VERSION_SIGHTING = {"ts": pl.Datetime("us", "UTC"), "line": pl.Int64(), "service": pl.String(), "host": pl.String(), "version": pl.String(),
             "origin": pl.String(), "signal": pl.String()}


class VersionState:
    """What the versions of an input's records need, kept batch by batch (see the module docstring):
    memory follows the hosts, services and versions, not the records (its frames hold their own
    strings, not views of a batch's: `bounded.compact`)."""

    def __init__(self) -> None:
        self.first = pl.DataFrame(schema={"host": pl.String(), "line": pl.Int64(), "version": pl.String()})  # each host's first logged version
        self.logging: set[str] = set()  # services ("" for none) with a record that logs a version
        self.unversioned = pl.DataFrame(schema={"service": pl.String(), "host": pl.String()})  # (service, host) of records without one
        self.sightings = pl.DataFrame(schema=VERSION_SIGHTING)  # the first record of each (service, version or PENDING host)

    def add(self, records: pl.DataFrame) -> None:
        """Take the (line, service, host, version) of a batch's records (every kind, timed or not), batches
        in line order."""
        logged = records.filter(pl.col("version").is_not_null())
        if logged.height:
            self.logging.update(logged.get_column("service").fill_null("").unique().to_list())
            hosts = logged.filter(pl.col("host").is_not_null()).group_by("host").agg(pl.col("line", "version").sort_by("line").first())
            new = hosts.join(self.first, on="host", how="anti")  # a host's earlier batches hold its earlier lines
            if new.height:
                self.first = compact(pl.concat([self.first, new.select(self.first.columns)]))
        missing = records.filter(pl.col("version").is_null() & pl.col("host").is_not_null())
        if missing.height:
            pairs = missing.select(pl.col("service").fill_null(""), "host").unique()
            self.unversioned = compact(pl.concat([self.unversioned, pairs]).unique())

    def fill(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (with host and version) with each missing version taken from its host's first, or
        PENDING + host when the host has logged none so far (`resolve` settles it at the end)."""
        if not frame.height or not frame.get_column("version").null_count():
            return frame
        known = pl.col("host").replace_strict(self.first.get_column("host"), self.first.get_column("version"), default=None, return_dtype=pl.String)
        return frame.with_columns(pl.coalesce(pl.col("version"), known, PENDING + pl.col("host")).alias("version"))

    def sight(self, frame: pl.DataFrame) -> None:
        """Keep the first record of each (service, version) of `frame` (filled rows with ts and line)."""
        rows = frame.select(list(VERSION_SIGHTING)).filter(pl.col("version").is_not_null())
        if rows.height:
            both = pl.concat([self.sightings, rows.cast(VERSION_SIGHTING)]).sort("ts", "line")  # type: ignore[arg-type]
            self.sightings = compact(both.unique(["service", "version"], keep="first", maintain_order=True))

    def resolve(self, version: pl.Expr, service: pl.Expr) -> pl.Expr:
        """The final version of a filled one: a pending host's first logged version; without one, none
        in a service that logs versions, else the host's pod-template hash."""
        versioned = self.logging | set(
            self.unversioned.join(self.first, on="host", how="semi").get_column("service").to_list()
        )
        host = version.str.strip_prefix(PENDING)
        logged_later = host.replace_strict(self.first.get_column("host"), self.first.get_column("version"), default=None, return_dtype=pl.String)
        unlogged = pl.when(service.fill_null("").is_in(sorted(versioned))).then(pl.lit(None, pl.String)).otherwise(pod_template_hash(host))
        return pl.when(version.str.starts_with(PENDING)).then(pl.coalesce(logged_later, unlogged)).otherwise(version)

    def changes(self) -> pl.DataFrame:
        """The version changes of every batch read (`version_changes` of the first sightings)."""
        return version_changes(self.sightings.with_columns(self.resolve(pl.col("version"), pl.col("service")).alias("version")))


WAITING_ROWS = 200_000  # rows waiting for a version held in memory (about 30 MB); past it they are spilled to disk


class WaitingRows:
    """Rows whose version is pending (`PENDING`: their host had logged none yet), held until every batch
    is read: in memory up to `held_rows`, past it written to Parquet in a temporary directory (TMPDIR), so
    an input whose hosts never log a version holds no more than that. `drain` gives them back in the
    order they came, finished (their versions resolved), and removes the files."""

    def __init__(self, held_rows: int | None = None) -> None:
        self.held_rows = WAITING_ROWS if held_rows is None else held_rows
        self.held: list[pl.DataFrame] = []
        self.spilled: list[Path] = []
        self.directory: tempfile.TemporaryDirectory[str] | None = None

    def add(self, rows: pl.DataFrame) -> None:
        """Hold `rows` (own buffers, not views of their chunk's: `bounded.compact`), spilling past the bound."""
        if not rows.height:
            return
        self.held.append(compact(rows))
        if sum(f.height for f in self.held) >= self.held_rows:
            if self.directory is None:
                self.directory = tempfile.TemporaryDirectory(prefix="rca-waiting-rows-")
            path = Path(self.directory.name) / f"{len(self.spilled)}.parquet"
            pl.concat(self.held).write_parquet(path, compression="lz4")
            self.spilled.append(path)
            self.held = []

    def drain(self, finish: Callable[[pl.DataFrame], pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """Every row held, `finish`ed, a spilled file or the rows in memory at a time."""
        try:
            for path in self.spilled:
                yield finish(pl.read_parquet(path))
            if self.held:
                yield finish(pl.concat(self.held))
        finally:
            self.held, self.spilled = [], []
            if self.directory is not None:
                self.directory.cleanup()
                self.directory = None
