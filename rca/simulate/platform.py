"""The simulated platform: services, endpoints, clients and a diurnal, noisy baseline of requests.

Everything is drawn from one `numpy.random.Generator`, so a seed fixes every name, address, rate and
latency. Requests are generated as numpy arrays (one element per request), never in a Python loop per
request: per-second Poisson counts, then endpoint and client indices drawn by weight, then latencies
from per-endpoint log-normal distributions scaled by the scenario's effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

# Endpoint families: (method, path template, service, base median latency ms, weight, feature tag).
# Resource nouns are drawn per seed from synonyms so no detector can key on fixed names.
_NOUNS = {
    "messages": ["messages", "chats", "posts", "notes", "threads"],
    "files": ["files", "attachments", "uploads", "media", "documents"],
    "users": ["users", "accounts", "members", "profiles", "people"],
    "rooms": ["rooms", "channels", "groups", "spaces", "teams"],
}
_ENDPOINTS = [
    ("GET", "/api/{messages}/{id}", "messages", 35.0, 14.0, "view"),
    ("POST", "/api/{messages}", "messages", 60.0, 8.0, "send"),
    ("GET", "/api/{rooms}/{id}/{messages}", "messages", 55.0, 10.0, "list"),
    ("POST", "/api/{files}/{id}/attach", "files", 120.0, 3.0, "attach"),
    ("GET", "/api/{files}/{id}", "files", 45.0, 5.0, "download"),
    ("GET", "/api/{users}/{id}", "users", 20.0, 9.0, "profile"),
    ("PUT", "/api/{users}/{id}/settings", "users", 40.0, 1.5, "settings"),
    ("POST", "/api/auth/login", "users", 80.0, 2.0, "login"),
    ("GET", "/api/{rooms}", "messages", 30.0, 6.0, "rooms"),
    ("GET", "/api/{users}/{id}/presence", "users", 15.0, 7.0, "presence"),
    ("POST", "/api/{messages}/{id}/reactions", "messages", 25.0, 3.0, "react"),
    ("GET", "/api/search", "messages", 150.0, 2.0, "search"),
]
FEATURE_TAGS = [e[5] for e in _ENDPOINTS]

_BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "ChatApp/{m}.{v} (Android 14; okhttp/4.12.0)",
    "ChatApp/{m}.{v} (iOS 17.{m}; CFNetwork)",
]
_PARTNERS = ["AcmeSync", "BridgeBot", "SyncHub", "PipeLink", "RelayWorks", "OrbitConnect", "HookPilot"]
# Ranges a third-party integration may call from (documentation and cloud-provider-looking ranges).
_PARTNER_NETS = ["203.0.113", "198.51.100", "192.0.2", "52.14.77", "34.201.18", "18.194.220", "35.180.44"]
SERVICES = ("gateway", "messages", "files", "users")
DOWNSTREAMS = ("postgres", "redis")


@dataclass(frozen=True)
class Endpoint:
    method: str
    route: str  # normalized: /api/messages/{id}
    service: str
    median_ms: float
    weight: float
    feature: str

    def path(self, ids: np.ndarray) -> np.ndarray:
        """Concrete paths for an array of ids."""
        head, sep, tail = self.route.partition("{id}")
        if not sep:
            return np.full(len(ids), self.route, dtype=object)
        return np.char.add(np.char.add(head, ids.astype(str)), tail).astype(object)


@dataclass(frozen=True)
class Client:
    ip: str
    user_agent: str
    api_client: str | None = None


@dataclass(frozen=True)
class Platform:
    start: datetime
    minutes: int
    endpoints: list[Endpoint]
    clients: list[Client]
    client_weights: np.ndarray
    hosts: dict[str, list[str]]
    versions: dict[str, str]
    base_rps: float
    partner: Client
    partner_net: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def seconds(self) -> int:
        return self.minutes * 60

    def t(self, second: float) -> datetime:
        return self.start + timedelta(seconds=float(second))


def _ip(rng: np.random.Generator) -> str:
    first = int(rng.choice([24, 31, 46, 62, 73, 81, 88, 92, 95, 104, 109, 151, 176, 185, 188, 212, 217]))
    return f"{first}.{rng.integers(1, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 255)}"


def user_agent(rng: np.random.Generator) -> str:
    template = _BROWSERS[int(rng.integers(0, len(_BROWSERS)))]
    return template.format(v=int(rng.integers(110, 131)), m=int(rng.integers(1, 9)))


def make_clients(rng: np.random.Generator, n: int) -> list[Client]:
    return [Client(_ip(rng), user_agent(rng)) for _ in range(n)]


def build_platform(rng: np.random.Generator, seed: int, minutes: int, scale: float) -> Platform:
    nouns = {k: v[int(rng.integers(0, len(v)))] for k, v in _NOUNS.items()}
    endpoints = []
    for method, template, service, median, weight, feature in _ENDPOINTS:
        route = template.format(id="{id}", **nouns)
        endpoints.append(
            Endpoint(
                method,
                route,
                service,
                median * float(rng.uniform(0.8, 1.25)),
                weight * float(rng.uniform(0.7, 1.3)),
                feature,
            )
        )
    n_clients = int(rng.integers(60, 400))
    clients = make_clients(rng, n_clients)
    weights = rng.zipf(1.6, n_clients).astype(float)
    weights = np.minimum(weights, 50.0)
    hosts = {svc: [f"{svc}-{i}" for i in range(1, int(rng.integers(2, 4)) + 1)] for svc in SERVICES}
    versions = {
        svc: f"{int(rng.integers(1, 4))}.{int(rng.integers(0, 20))}.{int(rng.integers(0, 9))}"
        for svc in SERVICES
    }
    name = _PARTNERS[int(rng.integers(0, len(_PARTNERS)))]
    net = _PARTNER_NETS[int(rng.integers(0, len(_PARTNER_NETS)))]
    partner = Client(
        f"{net}.{int(rng.integers(2, 250))}",
        f"{name}/{int(rng.integers(1, 5))}.{int(rng.integers(0, 10))} (+https://{name.lower()}.example/bot)",
        api_client=name.lower(),
    )
    start = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=seed % 300, hours=int(rng.integers(8, 15)))
    return Platform(
        start=start,
        minutes=minutes,
        endpoints=endpoints,
        clients=clients,
        client_weights=weights / weights.sum(),
        hosts=hosts,
        versions=versions,
        base_rps=float(rng.uniform(3.0, 4.5)) * scale,
        partner=partner,
        partner_net=net,
    )


def baseline_rate(rng: np.random.Generator, platform: Platform) -> np.ndarray:
    """Requests per second over the period: a slow diurnal swell plus minute-level noise."""
    seconds = np.arange(platform.seconds)
    phase = float(rng.uniform(0, 2 * np.pi))
    diurnal = 1.0 + 0.12 * np.sin(2 * np.pi * seconds / (6 * 3600) + phase)
    minute_noise = rng.normal(1.0, 0.04, platform.minutes + 1).clip(0.85, 1.15)
    return platform.base_rps * diurnal * np.repeat(minute_noise, 60)[: platform.seconds]


def ramp(
    seconds: np.ndarray, onset: float, ramp_s: float, end: float | None = None, ramp_down_s: float = 120.0
) -> np.ndarray:
    """0 before onset, rising linearly to 1 over ramp_s, falling back to 0 after `end`."""
    up = np.clip((seconds - onset) / max(ramp_s, 1.0), 0.0, 1.0)
    if end is None:
        return up
    down = np.clip(1.0 - (seconds - end) / max(ramp_down_s, 1.0), 0.0, 1.0)
    return up * down


# The database table each service reads and writes, named in the database spans.
DB_TABLES = {"messages": "messages", "files": "files", "users": "users", "gateway": "sessions"}


def db_span_names(platform: Platform) -> list[str]:
    """Names of the database spans the traces carry (`SELECT messages`, `INSERT files`, ...)."""
    names = []
    for e in platform.endpoints:
        name = f"{'SELECT' if e.method == 'GET' else 'INSERT'} {DB_TABLES.get(e.service, e.service)}"
        if name not in names:
            names.append(name)
    return sorted(names)
