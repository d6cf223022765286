"""Incident scenarios, one per seed postmortem, plus a trace-only dependency slowdown and a quiet control.

A scenario turns a platform and a seed into `Effects`: extra request streams (a partner source, new
users, a few hot features), latency and error multipliers over time, downstream slowdowns, cache-miss
ratios, the log events that go with them, and the changes (deploys, rollbacks) including the decoys
that misled the real teams. Onsets, magnitudes and names are drawn from the seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rca.simulate.platform import Client, Platform, db_span_names, make_clients, ramp


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    description: str
    postmortem: str  # which seed postmortem it mirrors
    build: Callable[[np.random.Generator, Platform], Effects]


@dataclass(frozen=True)
class Stream:
    """Extra requests on top of the baseline: rate per second, who sends them, to which endpoints."""

    rps: np.ndarray
    endpoint_weights: np.ndarray  # over platform.endpoints
    clients: list[Client]
    client_weights: np.ndarray


@dataclass
class Effects:
    """What a scenario does to the platform; a builder, filled in by the scenario function, then only read."""

    seconds: int
    rate_mult: np.ndarray  # multiplier on the baseline stream
    streams: list[Stream] = field(default_factory=list)
    app_latency_mult: np.ndarray | None = None  # on app services' own time
    db_latency_mult: np.ndarray | None = None  # on database calls
    cache_miss: np.ndarray | None = None  # share of cacheable reads that miss and go to the database
    error_prob: np.ndarray | None = None  # extra 5xx probability per request
    capacity: float = 2.2  # load (x baseline) the app serves before latency climbs
    events: list[tuple[float, str, str, str, str, str]] = field(
        default_factory=list
    )  # second, level, service, host, logger, message
    changes: list[dict[str, Any]] = field(
        default_factory=list
    )  # second, kind, service, version, description, decoy
    root_cause: dict[str, Any] | None = None
    symptoms: list[dict[str, Any]] = field(default_factory=list)
    decoys: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    network_noise: float = 0.0  # share of requests with extra client-side time (a network decoy)

    def add_event(
        self, second: float, level: str, service: str, host: str, logger: str, message: str
    ) -> None:
        self.events.append((float(second), level, service, host, logger, message))


def _empty(platform: Platform) -> Effects:
    n = platform.seconds
    return Effects(seconds=n, rate_mult=np.ones(n))


def _onset(rng: np.random.Generator, platform: Platform) -> int:
    """Onset second: between 45% and 65% of the period, on a whole minute plus a few seconds."""
    minute = int(rng.integers(int(platform.minutes * 0.45), int(platform.minutes * 0.65)))
    return minute * 60 + int(rng.integers(0, 30))


def _next_version(version: str, rng: np.random.Generator) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    return f"{major}.{minor}.{patch + int(rng.integers(1, 3))}"


def _deploy(
    effects: Effects, platform: Platform, rng: np.random.Generator, second: int, service: str, decoy: bool
) -> str:
    old = platform.versions[service]
    new = _next_version(old, rng)
    second = int(np.clip(second, 60, platform.seconds - 60))  # short periods: keep the change inside the data
    effects.changes.append(
        {"second": second, "kind": "deploy", "service": service, "version": new, "previous": old}
    )
    effects.add_event(
        second,
        "INFO",
        service,
        platform.hosts[service][0],
        "deploy",
        f"deployed {service} v{new} (was v{old})",
    )
    if decoy:
        effects.decoys.append(
            {
                "kind": "deploy",
                "service": service,
                "subject": f"v{new}",
                "second": second,
                "description": f"deploy of {service} v{new} shortly before the incident",
            }
        )
    return new


def _rollback(
    effects: Effects, platform: Platform, second: int, service: str, to_version: str, decoy: bool
) -> None:
    second = int(np.clip(second, 60, platform.seconds - 30))
    effects.changes.append({"second": second, "kind": "rollback", "service": service, "version": to_version})
    effects.add_event(
        second,
        "WARN",
        service,
        platform.hosts[service][0],
        "deploy",
        f"rolled back {service} to v{to_version}",
    )
    if decoy:
        effects.decoys.append(
            {
                "kind": "rollback",
                "service": service,
                "subject": f"v{to_version}",
                "second": second,
                "description": f"rollback of {service} to v{to_version} during the incident, without effect",
            }
        )


def _poisson_times(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    counts = rng.poisson(np.clip(rate, 0, None))
    seconds = np.repeat(np.arange(len(rate)), counts)
    return seconds + rng.random(len(seconds))


def _emit(
    effects: Effects,
    rng: np.random.Generator,
    rate: np.ndarray,
    level: str,
    service: str,
    hosts: list[str],
    logger: str,
    make: Callable[[np.random.Generator], str],
) -> None:
    for second in _poisson_times(rng, rate):
        effects.add_event(second, level, service, hosts[int(rng.integers(0, len(hosts)))], logger, make(rng))


def _feature_weights(platform: Platform, features: list[str]) -> np.ndarray:
    w = np.array([e.weight if e.feature in features else 0.0 for e in platform.endpoints])
    return w / w.sum()


# --- scenarios ---------------------------------------------------------------------------------------


def feature_surge(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    onset = _onset(rng, p)
    seconds = np.arange(p.seconds)
    hot = ["attach", "send", "view"]
    factor = float(rng.uniform(4.0, 7.0))
    shape = ramp(seconds, onset, float(rng.uniform(180, 360)))
    base = (
        p.base_rps
        * sum(e.weight for e in p.endpoints if e.feature in hot)
        / sum(e.weight for e in p.endpoints)
    )
    eff.streams.append(
        Stream(base * (factor - 1) * shape, _feature_weights(p, hot), p.clients, p.client_weights)
    )
    eff.capacity = float(rng.uniform(1.6, 2.0))
    # CPU saturation shows in the app's logs once the load is there (an effect, not the cause).
    cpu = ramp(seconds, onset + 90, 240)
    for svc in ("messages", "files"):
        _emit(
            eff,
            rng,
            0.002 + 0.05 * cpu,
            "WARN",
            svc,
            p.hosts[svc],
            "runtime.Monitor",
            lambda r: (
                f"CPU usage {int(r.integers(92, 100))}% on all cores, request queue depth {int(r.integers(40, 400))}"
            ),
        )
    for svc, host in [(name, host) for name in ("messages", "files") for host in p.hosts[name]]:
        for minute in range(p.minutes):
            level = 1.5 + 10.0 * cpu[min(minute * 60 + 30, p.seconds - 1)]
            eff.add_event(
                minute * 60 + 30.0 + float(rng.random()),
                "INFO",
                svc,
                host,
                "runtime.Monitor",
                f"load average: {level * rng.uniform(0.9, 1.1):.2f}, {level * 0.8:.2f}, {level * 0.6:.2f}",
            )
    _deploy(eff, p, rng, int(onset - rng.integers(10, 20) * 60), "users", decoy=True)
    routes = [e.route for e in p.endpoints if e.feature in hot]
    eff.root_cause = {
        "kind": "traffic_surge",
        "dimension": "endpoint",
        "subject": ", ".join(routes),
        "accept": routes + [f"{e.method} {e.route}" for e in p.endpoints if e.feature in hot],
        "where": None,
        "second": onset,
    }
    eff.symptoms = [
        {"kind": "latency_shift", "dimension": "endpoint", "subject": r, "second": onset} for r in routes
    ]
    eff.parameters = {"factor": round(factor, 2), "features": hot}
    return eff


def user_surge(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    onset = _onset(rng, p)
    seconds = np.arange(p.seconds)
    factor = float(rng.uniform(3.0, 5.0))
    shape = ramp(seconds, onset, float(rng.uniform(120, 300)))
    newcomers = make_clients(rng, int(rng.integers(300, 600)))
    weights = np.array([e.weight for e in p.endpoints])
    cw = rng.uniform(0.5, 1.5, len(newcomers))
    eff.streams.append(
        Stream(p.base_rps * (factor - 1) * shape, weights / weights.sum(), newcomers, cw / cw.sum())
    )
    eff.capacity = float(rng.uniform(1.8, 2.4))
    # The gateway reports its session count now and then; it follows the user count.
    sessions = float(rng.uniform(600, 1500))
    for second in _poisson_times(rng, np.full(p.seconds, 1 / 120)):
        count = sessions * (1 + (factor - 1) * shape[int(second)]) * rng.normal(1.0, 0.05)
        eff.add_event(
            second,
            "INFO",
            "gateway",
            p.hosts["gateway"][int(rng.integers(0, len(p.hosts["gateway"])))],
            "sessions",
            f"active sessions: {int(count)}",
        )
    # Network noise: a few resets all along, a little more during (the misleading path).
    _emit(
        eff,
        rng,
        np.full(p.seconds, 0.004) + 0.004 * shape,
        "WARN",
        "gateway",
        p.hosts["gateway"],
        "proxy",
        lambda r: (
            f"upstream connection reset by peer while reading response header, client: {r.integers(1, 255)}.{r.integers(0, 255)}.{r.integers(0, 255)}.{r.integers(1, 255)}"
        ),
    )
    eff.network_noise = 0.02
    _deploy(eff, p, rng, int(onset - rng.integers(5, 15) * 60), "messages", decoy=True)
    eff.decoys.append(
        {
            "kind": "network",
            "service": "gateway",
            "subject": "network",
            "second": onset,
            "description": "connection resets and request-time spread at the proxy",
        }
    )
    eff.root_cause = {
        "kind": "traffic_surge",
        "dimension": "clients",
        "subject": f"{len(newcomers)} new clients",
        "accept": ["*"],
        "where": None,
        "second": onset,
    }
    eff.symptoms = [{"kind": "latency_shift", "dimension": "service", "subject": "gateway", "second": onset}]
    eff.parameters = {"factor": round(factor, 2), "new_clients": len(newcomers)}
    return eff


def memory_exhaustion(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    onset = _onset(rng, p)
    seconds = np.arange(p.seconds)
    svc = str(rng.choice(["messages", "files", "users"]))
    hosts = p.hosts[svc]
    pressure = ramp(seconds, onset, float(rng.uniform(240, 420)))
    mult = np.ones(len(p.endpoints))
    eff.app_latency_mult = 1.0 + float(rng.uniform(2.0, 4.0)) * pressure**1.5
    eff.error_prob = 0.04 * pressure**2
    eff.parameters = {"service": svc}
    _emit(
        eff,
        rng,
        0.01 + 0.25 * pressure,
        "WARN",
        svc,
        hosts,
        "gc",
        lambda r: (
            f"GC pause (G1 Evacuation Pause) {int(r.integers(300, 2500))}ms, heap {int(r.integers(88, 99))}% of 4096MB"
        ),
    )
    _emit(
        eff,
        rng,
        0.002 + 0.05 * pressure,
        "WARN",
        svc,
        hosts,
        "runtime.Memory",
        lambda r: f"heap usage {int(r.integers(90, 99))}% of max 4096MB after full GC",
    )
    ooms = _poisson_times(rng, 0.004 * pressure**2)
    for second in ooms:
        host = hosts[int(rng.integers(0, len(hosts)))]
        eff.add_event(
            second,
            "ERROR",
            svc,
            host,
            "app.Server",
            "java.lang.OutOfMemoryError: Java heap space\n"
            "\tat java.util.Arrays.copyOf(Arrays.java:3745)\n\tat com.chat.app.Handler.handle(Handler.java:212)",
        )
        eff.add_event(
            second + 1.5,
            "ERROR",
            svc,
            host,
            "kernel",
            f"Out of memory: Killed process {int(rng.integers(1000, 9999))} (java) total-vm:8123456kB, anon-rss:4190000kB",
        )
        eff.add_event(
            second + 9, "INFO", svc, host, "app.Server", f"Starting {svc} service v{p.versions[svc]}"
        )
    del mult
    _deploy(
        eff, p, rng, int(onset - rng.integers(8, 20) * 60), str(rng.choice(["gateway", "users"])), decoy=True
    )
    eff.decoys.append(
        {
            "kind": "network",
            "service": "gateway",
            "subject": "network",
            "second": onset,
            "description": "internet connectivity (investigated first in the postmortem)",
        }
    )
    eff.root_cause = {
        "kind": "resource_exhaustion",
        "dimension": "resource",
        "subject": "memory",
        "accept": ["memory"],
        "where": svc,
        "second": onset,
    }
    eff.symptoms = [
        {"kind": "latency_shift", "dimension": "service", "subject": svc, "second": onset},
        {"kind": "error_rate", "dimension": "service", "subject": svc, "second": onset},
    ]
    return eff


def cache_exhaustion(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    onset = _onset(rng, p)
    seconds = np.arange(p.seconds)
    fill = ramp(seconds, onset, float(rng.uniform(180, 360)))
    eff.cache_miss = 0.04 + float(rng.uniform(0.5, 0.8)) * fill
    eff.db_latency_mult = 1.0 + 1.5 * fill  # the database takes the extra reads
    hosts = p.hosts["messages"]
    _emit(
        eff,
        rng,
        0.004 + 0.3 * fill,
        "WARN",
        "messages",
        hosts,
        "cache.MessageCache",
        lambda r: f"cache full, evicted {int(r.integers(100, 5000))} entries",
    )
    _emit(
        eff,
        rng,
        0.003 + 0.05 * fill,
        "WARN",
        "messages",
        hosts,
        "cache.MessageCache",
        lambda r: (
            f"cache miss rate {int(r.integers(40, 90))}% over the last minute, size {int(r.integers(31000, 32768))}MB of 32768MB"
        ),
    )
    _deploy(eff, p, rng, int(onset - rng.integers(6, 18) * 60), "files", decoy=True)
    eff.root_cause = {
        "kind": "resource_exhaustion",
        "dimension": "resource",
        "subject": "cache",
        "accept": ["cache"],
        "where": "messages",
        "second": onset,
    }
    eff.symptoms = [
        {"kind": "latency_shift", "dimension": "endpoint", "subject": e.route, "second": onset}
        for e in p.endpoints
        if e.service == "messages"
    ]
    eff.parameters = {"max_miss": round(float(eff.cache_miss.max()), 3)}
    return eff


def third_party_surge(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    onset = _onset(rng, p)
    seconds = np.arange(p.seconds)
    targets = [int(i) for i in rng.choice(len(p.endpoints), size=int(rng.integers(1, 3)), replace=False)]
    w = np.zeros(len(p.endpoints))
    w[targets] = 1.0
    factor = float(rng.uniform(2.5, 5.0))
    shape = ramp(seconds, onset, float(rng.uniform(180, 360)))
    # The integration always calls in a little (its sync job); at onset its volume multiplies.
    eff.streams.append(Stream(p.base_rps * (0.03 + factor * shape), w / w.sum(), [p.partner], np.ones(1)))
    # The partner's calls are heavy on the database: its CPU climbs, queries slow down for everyone.
    eff.db_latency_mult = 1.0 + float(rng.uniform(2.0, 4.0)) * ramp(seconds, onset + 60, 240)
    _emit(
        eff,
        rng,
        0.003 + 0.08 * ramp(seconds, onset + 60, 240),
        "WARN",
        "messages",
        p.hosts["messages"],
        "db.Pool",
        lambda r: f"slow query took {int(r.integers(800, 4000))}ms: SELECT * FROM messages WHERE room_id = ?",
    )
    # With queries slow, the connection pools of the services behind the flooded endpoints run dry.
    for svc in sorted({p.endpoints[i].service for i in targets}):
        _emit(
            eff,
            rng,
            0.02 * ramp(seconds, onset + 150, 240),
            "ERROR",
            svc,
            p.hosts[svc],
            "com.zaxxer.hikari.pool.HikariPool",
            lambda r: "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
        )
    version = _deploy(eff, p, rng, int(onset - rng.integers(8, 20) * 60), "messages", decoy=True)
    _rollback(eff, p, int(onset + rng.integers(8, 15) * 60), "messages", p.versions["messages"], decoy=True)
    del version
    name = p.partner.api_client or ""
    family = p.partner.user_agent.split("/")[0]
    eff.root_cause = {
        "kind": "traffic_surge",
        "dimension": "source",
        "subject": f"{family} ({p.partner_net}.0/24)",
        "accept": [p.partner.ip, f"{p.partner_net}.0/24", family, name],
        "where": None,
        "second": onset,
    }
    eff.symptoms = [
        {"kind": "latency_shift", "dimension": "endpoint", "subject": p.endpoints[i].route, "second": onset}
        for i in targets
    ]
    eff.parameters = {
        "factor": round(factor, 2),
        "endpoints": [p.endpoints[i].route for i in targets],
        "source": p.partner.ip,
    }
    return eff


def _slow_query(table: str, r: np.random.Generator) -> str:
    return f"slow query took {int(r.integers(300, 1500))}ms: SELECT * FROM {table} WHERE id = ?"


def _db_accept(p: Platform) -> list[str]:
    """Every name a correct answer may give the database: the peer service, the system, its span names."""
    names = db_span_names(p)
    return ["postgres", "postgresql", *names, *(f"postgres {n}" for n in names)]


def dependency_slowdown(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    onset = _onset(rng, p)
    seconds = np.arange(p.seconds)
    slow = ramp(seconds, onset, float(rng.uniform(30, 120)))
    eff.db_latency_mult = 1.0 + float(rng.uniform(3.0, 6.0)) * slow
    # Only weakly in the logs: now and then a service notices a slow statement.
    for svc in ("messages", "users"):
        _emit(
            eff,
            rng,
            0.0005 + 0.006 * slow,
            "WARN",
            svc,
            p.hosts[svc],
            "db.Pool",
            functools.partial(_slow_query, svc),
        )
    _deploy(
        eff, p, rng, int(onset - rng.integers(6, 18) * 60), str(rng.choice(["messages", "users"])), decoy=True
    )
    eff.root_cause = {
        "kind": "dependency_slowdown",
        "dimension": "operation",
        "subject": "postgres",
        "accept": _db_accept(p),
        "where": None,
        "second": onset,
    }
    eff.symptoms = [{"kind": "latency_shift", "dimension": "service", "subject": "messages", "second": onset}]
    return eff


def quiet(rng: np.random.Generator, p: Platform) -> Effects:
    eff = _empty(p)
    _deploy(
        eff,
        p,
        rng,
        int(p.seconds * float(rng.uniform(0.4, 0.6))),
        str(rng.choice(["messages", "users", "files"])),
        decoy=False,
    )
    return eff


def _spec(
    name: str, description: str, postmortem: str, build: Callable[[np.random.Generator, Platform], Effects]
) -> ScenarioSpec:
    return ScenarioSpec(name, description, postmortem, build)


SCENARIOS: dict[str, ScenarioSpec] = {
    s.name: s
    for s in (
        _spec(
            "feature-surge",
            "requests concentrate on attach/send/view features; app CPU saturates",
            "000",
            feature_surge,
        ),
        _spec(
            "user-surge",
            "concurrent users surge across many new clients; a deploy and network noise mislead",
            "001",
            user_surge,
        ),
        _spec(
            "memory-exhaustion",
            "memory pressure: GC pauses, OOM kills, restarts, slow responses, 5xx",
            "002",
            memory_exhaustion,
        ),
        _spec(
            "cache-exhaustion",
            "the message cache fills; misses fall through to the database",
            "003",
            cache_exhaustion,
        ),
        _spec(
            "third-party-surge",
            "a third-party integration floods one or two endpoints; a deploy is rolled back in vain",
            "004",
            third_party_surge,
        ),
        _spec(
            "dependency-slowdown",
            "the database slows down without any traffic change (visible in traces)",
            "-",
            dependency_slowdown,
        ),
        _spec("quiet", "a normal day with ordinary noise and a harmless deploy: no incident", "-", quiet),
    )
}
