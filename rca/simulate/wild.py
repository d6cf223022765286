"""Incidents as they happen in the wild (issue #15), on small services written by real-world loggers.

Five scenarios, one per failure class the postmortem scenarios never exercised:

- `bad-release`: a Kubernetes rollout replaces a service's pods one by one with a release that makes
  one or two of its routes several times slower (a load rise at the same minutes on some seeds); an
  earlier release of another service changes nothing.
- `flag-flip`: a configuration reload switches a feature flag on, and a share of one route's requests
  fail; an earlier reload of an unrelated key changes nothing.
- `uninstrumented-dependency`: a dependency seen only through its callers' client spans (a URL host,
  `server.address`/`net.peer.name`, `peer.service`, a database) slows down; traces with the old or the
  new semantic conventions.
- `host-leak`: one host of three to five leaks memory (GC pauses, heap warnings, an OutOfMemoryError or
  a Node.js heap crash dump written as plain text into its JSON stream, the kernel's OOM killer in
  syslog, a restart); its latency and errors rise, the other hosts stay well.
- `client-flood`: a single client sends ten times the normal rate to two endpoints for half an hour,
  two hours into a three-hour access log with `%D` and a non-UTC offset, then stops.

The seed draws the names (services, routes, hosts, flags, clients), the rates, onsets, magnitudes and
which format each file is written in (see `formats`). Requests are numpy arrays, one element each.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from rca.simulate import formats
from rca.simulate.traffic import Route, Traffic

_SERVICES = ["checkout", "cart", "catalog", "orders", "payments", "search", "inventory", "accounts", "billing",
             "shipping", "reviews", "pricing", "ledger", "quotes", "bookings", "wallet"]
_ROUTES = [("GET", "/api/{s}/{id}"), ("GET", "/api/{s}"), ("POST", "/api/{s}"), ("GET", "/api/{s}/{id}/items"),
           ("PUT", "/api/{s}/{id}"), ("GET", "/api/{s}/search"), ("POST", "/api/{s}/{id}/confirm"), ("GET", "/api/{s}/{id}/status")]
_POD_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FLAG_WORDS = ["new", "fast", "smart", "async", "bulk", "beta", "v2", "lazy", "edge", "express"]
_FLAG_NOUNS = ["checkout", "pricing", "search", "recommendations", "cart", "tax", "shipping", "coupons", "sessions", "ranking"]
_AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
           "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"]
_BOTS = ["python-requests/2.32.3", "Go-http-client/1.1", "curl/8.7.1", "okhttp/4.12.0", "axios/1.7.2", "Apache-HttpClient/4.5.14"]


@dataclass(frozen=True)
class Wild:
    """One generated incident before it is written: the start time, the traffic, the truth and the files."""

    start: datetime
    seconds: int
    traffic: Traffic
    truth: dict[str, Any]
    files: dict[str, bytes]


def pod_names(rng: np.random.Generator, deployment: str, n: int) -> tuple[str, list[str]]:
    """A Deployment's pod-template hash and `n` pod names made from it."""
    template = "".join(rng.choice(list(_POD_ALPHABET), int(rng.integers(9, 11))))
    pods = ["".join(rng.choice(list(_POD_ALPHABET), 5)) for _ in range(n)]
    return template, [f"{deployment}-{template}-{p}" for p in pods]


def draw_routes(rng: np.random.Generator, service: str, n: int) -> list[Route]:
    picks = rng.choice(len(_ROUTES), n, replace=False)
    out = []
    for i in sorted(picks):
        method, tpl = _ROUTES[i]
        out.append(Route(method, tpl.replace("{s}", service), float(rng.uniform(12, 90)), float(rng.uniform(0.3, 0.55)),
                         float(rng.uniform(1, 10))))
    return out


def clients(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` client addresses (spread over many networks) and their user agents."""
    ips = np.array([f"{rng.integers(11, 223)}.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 254)}" for _ in range(n)], dtype=object)
    agents = np.array([_AGENTS[i] for i in rng.integers(0, len(_AGENTS), n)], dtype=object)
    return ips, agents


def poisson_times(rng: np.random.Generator, rps: np.ndarray) -> np.ndarray:
    """Request times for a per-second rate: Poisson counts, uniform within the second."""
    counts = rng.poisson(np.clip(rps, 0, None))
    seconds = np.repeat(np.arange(rps.size), counts)
    return np.sort(seconds + rng.random(seconds.size))


def base_traffic(rng: np.random.Generator, seconds: int, rate: float, services: dict[str, tuple[list[Route], Callable[[np.ndarray], np.ndarray]]],
                 start: datetime, population: int = 400, error_p: float = 0.002) -> Traffic:
    """Steady, slightly wavy traffic over `services` (name -> routes, host-of-time function)."""
    curve = rate * (1 + 0.08 * np.sin(np.arange(seconds) / seconds * 2 * np.pi + rng.uniform(0, 6))) * rng.lognormal(0, 0.05, seconds)
    ips, agents = clients(rng, population)
    parts = []
    all_routes: list[Route] = []
    for service, (routes, host_of) in services.items():
        share = sum(r.weight for r in routes)
        t = poisson_times(rng, curve * share / sum(sum(r.weight for r in rs) for rs, _ in services.values()))
        w = np.array([r.weight for r in routes])
        route = rng.choice(len(routes), t.size, p=w / w.sum()) + len(all_routes)
        all_routes.extend(routes)
        who = (rng.zipf(1.6, t.size) - 1) % population
        parts.append((t, np.full(t.size, service, dtype=object), host_of(t), route, who))
    t = np.concatenate([p[0] for p in parts])
    order = np.argsort(t, kind="stable")
    route = np.concatenate([p[3] for p in parts])[order]
    med = np.array([r.median_ms for r in all_routes])[route]
    sig = np.array([r.sigma for r in all_routes])[route]
    who = np.concatenate([p[4] for p in parts])[order]
    return Traffic(
        t=t[order], service=np.concatenate([p[1] for p in parts])[order], host=np.concatenate([p[2] for p in parts])[order],
        route=route, status=np.where(rng.random(t.size) < error_p, 500, 200), duration_ms=med * rng.lognormal(0, sig),
        version=np.full(t.size, None, dtype=object), client=ips[who], agent=agents[who], routes=all_routes, start=start,
    )


def round_robin(hosts: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    arr = np.array(hosts, dtype=object)
    return lambda t: arr[np.arange(t.size) % len(arr)]


def onset(rng: np.random.Generator, seconds: int, low: float = 0.45, high: float = 0.6) -> int:
    return int(rng.integers(int(seconds * low), int(seconds * high))) // 60 * 60 + int(rng.integers(0, 40))


def semver(rng: np.random.Generator) -> tuple[str, str]:
    major, minor, patch = int(rng.integers(1, 6)), int(rng.integers(0, 30)), int(rng.integers(0, 12))
    bump = int(rng.integers(0, 3))
    new = (major, minor, patch + 1) if bump == 0 else ((major, minor + 1, 0) if bump == 1 else (major, minor + 1, int(rng.integers(1, 4))))
    return f"{major}.{minor}.{patch}", ".".join(map(str, new))


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), 15])


def start_time(rng: np.random.Generator) -> datetime:
    day = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 300)))
    return day + timedelta(hours=int(rng.integers(0, 20)), minutes=int(rng.integers(0, 60)))


# --- scenarios ----------------------------------------------------------------------------------------


def bad_release(seed: int, minutes: int, scale: float) -> Wild:
    rng = _rng("bad-release", seed)
    start = start_time(rng)
    seconds = minutes * 60
    names = list(rng.choice(_SERVICES, 3, replace=False))
    target, other, third = (str(n) for n in names)
    n_pods = int(rng.integers(3, 7))
    old_hash, old_pods = pod_names(rng, target, n_pods)
    new_hash, new_pods = pod_names(rng, target, n_pods)
    other_pods = pod_names(rng, other, int(rng.integers(2, 4)))[1]
    third_pods = pod_names(rng, third, int(rng.integers(2, 4)))[1]
    at = onset(rng, seconds)
    rollout_s = int(rng.integers(90, 360))
    swap = at + np.arange(n_pods) * rollout_s / max(n_pods - 1, 1)  # pod i is replaced at swap[i]

    def target_hosts(t: np.ndarray) -> np.ndarray:
        slot = rng.integers(0, n_pods, t.size)
        new = t >= swap[slot]
        return np.where(new, np.array(new_pods, dtype=object)[slot], np.array(old_pods, dtype=object)[slot])

    routes = {target: draw_routes(rng, target, int(rng.integers(3, 6))), other: draw_routes(rng, other, 3), third: draw_routes(rng, third, 3)}
    rate = float(rng.uniform(6, 12)) * scale
    traffic = base_traffic(rng, seconds, rate, {target: (routes[target], target_hosts), other: (routes[other], round_robin(other_pods)),
                                               third: (routes[third], round_robin(third_pods))}, start)
    old_v, new_v = semver(rng)
    other_old, other_new = semver(rng)
    decoy_at = int(rng.integers(int(seconds * 0.15), int(seconds * 0.3)))
    on_target = traffic.service == target
    is_new = np.isin(traffic.host, new_pods)
    traffic.version[on_target] = np.where(is_new[on_target], new_v, old_v)
    on_other = traffic.service == other
    traffic.version[on_other] = np.where(traffic.t[on_other] >= decoy_at, other_new, other_old)
    traffic.version[traffic.service == third] = "1.0." + str(int(rng.integers(0, 9)))
    # the release slows one or two of its routes
    target_routes = [i for i, r in enumerate(traffic.routes) if r.template.startswith(f"/api/{target}")]
    slowed = list(rng.choice(target_routes, int(rng.integers(1, 3)), replace=False))
    factor = float(rng.uniform(2.5, 4.0))
    hit = is_new & np.isin(traffic.route, slowed)
    traffic.duration_ms[hit] *= factor
    if rng.random() < 0.5:  # load rises on another service at the same minutes: the canary split tells them apart
        extra = base_traffic(rng, seconds, rate * 0.3, {third: (routes[third], round_robin(third_pods))}, start)
        _append(traffic, extra, extra.t >= at, version=str(traffic.version[traffic.service == third][0]))
    for pod, t_swap in zip(new_pods, swap, strict=True):
        traffic.event(t_swap + 4, "INFO", target, pod, "main", f"{target} {new_v} started", version=new_v)
    traffic.event(decoy_at + 3, "INFO", other, other_pods[0], "main", f"{other} {other_new} started", version=other_new)
    style = formats.JSON_STYLES[seed % len(formats.JSON_STYLES)]
    version_key = formats.VERSION_KEYS[(seed // len(formats.JSON_STYLES)) % len(formats.VERSION_KEYS)]
    decoy_subject = other_new
    if seed % 5 == 4:  # traces only, no service.version: the pods' template hash in k8s.pod.name is the release
        style, version_key = f"otlp-{'old' if seed % 10 == 4 else 'new'}", None
        decoy_hash, decoy_pods = pod_names(rng, other, len(other_pods))
        rolled = (traffic.service == other) & (traffic.t >= decoy_at)
        replaced = dict(zip(other_pods, decoy_pods, strict=True))  # the other service rolls out too: its pods get a new hash
        traffic.host[rolled] = np.array([replaced[h] for h in traffic.host[rolled]], dtype=object)
        decoy_subject = decoy_hash
        files = {"traces/traces.otlp.jsonl": _server_spans(traffic, rng, style[5:], [target, other, third])}
    else:
        files = {f"logs/{target}.jsonl": formats.json_lines(traffic, style, version_key=version_key, services={target}, rng=rng),
                 f"logs/{other}.jsonl": formats.json_lines(traffic, style, version_key=version_key or "version", services={other}, rng=rng),
                 f"logs/{third}.jsonl": formats.json_lines(traffic, style, version_key=version_key or "version", services={third}, rng=rng)}
    subject = new_v if version_key else new_hash
    truth = _truth("bad-release", seed, kind="deploy", dimension="change", accept=[target], subject_has=[subject, f"v{subject}"],
                   onset=at, parameters={"service": target, "version": new_v, "previous": old_v, "pod_template_hash": new_hash, "previous_pod_template_hash": old_hash,
                                         "slowed_routes": [traffic.routes[i].template for i in slowed], "factor": round(factor, 2),
                                         "rollout_s": rollout_s, "style": style, "version_key": version_key},
                   decoys=[{"kind": "deploy", "service": other, "subject": decoy_subject, "t": decoy_at}])
    return Wild(start, seconds, traffic, truth, files)


def _server_spans(traffic: Traffic, rng: np.random.Generator, convention: str, services: list[str]) -> bytes:
    """One server span per request, on its pod (`k8s.pod.name`, no `service.version`), in the old or the
    new HTTP semantic conventions; pods run on a few nodes."""
    names = formats.SEMCONV[convention]
    method = traffic.method()
    ids = rng.bytes(24 * traffic.t.size)
    spans = []
    for i in range(traffic.t.size):
        route = traffic.routes[int(traffic.route[i])].template
        spans.append({"service": traffic.service[i], "host": traffic.host[i], "trace": ids[24 * i : 24 * i + 16].hex(), "id": ids[24 * i + 16 : 24 * i + 24].hex(),
                      "parent": None, "name": f"{method[i]} {route}", "kind": 2, "t": float(traffic.t[i]), "dur_ms": float(traffic.duration_ms[i]),
                      "error": bool(traffic.status[i] >= 500),
                      "attrs": {names["method"]: method[i], names["route"]: route, names["status"]: int(traffic.status[i])}})
    pods = sorted({str(h) for h in traffic.host})
    nodes = {pod: f"ip-10-0-{int(rng.integers(0, 16))}-{int(rng.integers(2, 250))}.ec2.internal" for pod in pods}
    return formats.otlp_json(traffic, spans, {s: s for s in services}, dict.fromkeys(services), nodes=nodes)


def _append(traffic: Traffic, extra: Traffic, mask: np.ndarray, version: str | None = None) -> None:
    offset = len(traffic.routes)
    routes = extra.route[mask] + offset
    traffic.routes.extend(extra.routes)
    cols = {"t": extra.t[mask], "service": extra.service[mask], "host": extra.host[mask], "route": routes, "status": extra.status[mask],
            "duration_ms": extra.duration_ms[mask], "version": np.full(int(mask.sum()), version, dtype=object),
            "client": extra.client[mask], "agent": extra.agent[mask]}
    order = np.argsort(np.concatenate([traffic.t, cols["t"]]), kind="stable")
    for name, values in cols.items():
        setattr(traffic, name, np.concatenate([getattr(traffic, name), values])[order])


def flag_flip(seed: int, minutes: int, scale: float) -> Wild:
    rng = _rng("flag-flip", seed)
    start = start_time(rng)
    seconds = minutes * 60
    service = str(rng.choice(_SERVICES))
    hosts = [f"{service}-{i:02d}" for i in range(1, int(rng.integers(2, 5)))]
    routes = draw_routes(rng, service, int(rng.integers(4, 7)))
    traffic = base_traffic(rng, seconds, float(rng.uniform(6, 12)) * scale, {service: (routes, round_robin(hosts))}, start)
    flag = f"{rng.choice(_FLAG_WORDS)}{'_' if rng.random() < 0.5 else '-'}{rng.choice(_FLAG_NOUNS)}"
    if rng.random() < 0.4:
        flag = f"feature.{flag.replace('-', '.').replace('_', '.')}"
    at = onset(rng, seconds)
    decoy_at = int(rng.integers(int(seconds * 0.15), int(seconds * 0.3)))
    decoy_key = str(rng.choice(["logging.level.root", "cache.ttl.seconds", "http.client.timeout", "metrics.interval", "banner.text"]))
    route = int(rng.integers(0, len(routes)))
    share = float(rng.uniform(0.2, 0.4))
    hit = (traffic.route == route) & (traffic.t >= at) & (rng.random(traffic.t.size) < share)
    traffic.status[hit] = rng.choice([500, 502, 503], int(hit.sum()), p=[0.8, 0.1, 0.1])
    traffic.duration_ms[hit] *= float(rng.uniform(0.5, 1.6))
    text = seed % 2 == 1
    for h in hosts:
        traffic.event(decoy_at + 2, "INFO", service, h, "config", f"Refreshed keys : [{decoy_key}]" if text else "configuration reloaded",
                      key=decoy_key)
        message = rng.choice([f"Feature flag '{flag}' enabled", f"Refreshed keys : [{flag}]", f"flag {flag} switched on"]) if text else "feature flag updated"
        traffic.event(at + 1, "INFO", service, h, "config", str(message), flag=flag, enabled=True)
    errors = np.flatnonzero(hit)[:: max(1, int(hit.sum()) // 60)]
    for i in errors:
        traffic.event(traffic.t[i] + 0.001, "ERROR", service, traffic.host[i], "web", f"request failed: {traffic.routes[route].template}",
                      text=None, error="IllegalStateException")
    traffic.version[:] = "3.2." + str(int(rng.integers(0, 9)))
    if text:  # Spring Boot application log beside an Apache access log with %D
        files = {f"logs/{service}.log": formats.spring_boot(traffic, rng), "logs/access.log": formats.apache(traffic, rng, "combined", 0)}
        change_service = service
    else:
        style = formats.JSON_STYLES[(seed // 2) % len(formats.JSON_STYLES)]
        files = {f"logs/{service}.jsonl": formats.json_lines(traffic, style, version_key="version", services={service}, rng=rng)}
        change_service = service
    truth = _truth("flag-flip", seed, kind="deploy", dimension="change", accept=["*"], subject_has=[flag], onset=at,
                   parameters={"service": change_service, "flag": flag, "route": routes[route].template, "failing_share": round(share, 3),
                               "format": "spring-boot+apache" if text else "json"},
                   decoys=[{"kind": "config", "service": service, "subject": decoy_key, "t": decoy_at}])
    return Wild(start, seconds, traffic, truth, files)


def _truth(name: str, seed: int, kind: str, dimension: str, accept: list[str], onset: float, parameters: dict[str, Any],
           decoys: list[dict[str, Any]] | None = None, subject_has: list[str] | None = None) -> dict[str, Any]:
    root: dict[str, Any] = {"kind": kind, "dimension": dimension, "accept": accept, "second": onset}
    if subject_has:
        root["subject_has"] = subject_has
    return {"scenario": name, "seed": seed, "incident": True, "root_cause": root, "decoys": decoys or [], "parameters": parameters}


WILD_SCENARIOS: dict[str, tuple[str, Callable[[int, int, float], Wild]]] = {
    "bad-release": ("a rollout whose new pods serve one or two routes several times slower", bad_release),
    "flag-flip": ("a feature flag switched on by a configuration reload makes part of one route fail", flag_flip),
}
DEFAULT_MINUTES = {"bad-release": 50, "flag-flip": 50}


def generate_wild(name: str, seed: int, minutes: int | None = None, scale: float = 1.0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Files (relative path -> bytes) and truth of one incident in the wild."""
    wild = WILD_SCENARIOS[name][1](seed, minutes or DEFAULT_MINUTES[name], scale)
    truth = dict(wild.truth)
    iso = lambda s: (wild.start + timedelta(seconds=float(s))).isoformat().replace("+00:00", "Z")  # noqa: E731
    root = dict(truth["root_cause"])
    root["onset"] = iso(root.pop("second"))
    truth["root_cause"] = root
    truth["decoys"] = [{**{k: v for k, v in d.items() if k != "t"}, "ts": iso(d["t"])} for d in truth["decoys"]]
    truth["span"] = {"start": iso(0), "end": iso(wild.seconds)}
    files = {rel: data.replace(b"\x00START\x00", b"") for rel, data in wild.files.items()}
    return files, truth


_VENDORS = ["stripe", "adyen", "twilio", "sendgrid", "shippo", "avalara", "plaid", "segment", "algolia", "mapbox"]


def uninstrumented_dependency(seed: int, minutes: int, scale: float) -> Wild:
    """Traces edge -> api -> (dependency without spans of its own, an instrumented database): the
    dependency slows down; its callers' client spans are all that show it."""
    rng = _rng("uninstrumented-dependency", seed)
    start = start_time(rng)
    seconds = minutes * 60
    edge, api = (str(s) for s in rng.choice(_SERVICES, 2, replace=False))
    hosts = {edge: f"{edge}-{int(rng.integers(1, 9))}", api: f"{api}-{int(rng.integers(1, 9))}"}
    routes = draw_routes(rng, edge, int(rng.integers(3, 6)))
    traffic = base_traffic(rng, seconds, float(rng.uniform(3, 5)) * scale, {edge: (routes, round_robin([hosts[edge]]))}, start)
    convention = "old" if seed % 2 == 0 else "new"
    names = formats.SEMCONV[convention]
    vendor = str(rng.choice(_VENDORS))
    shape = ["url", "address", "peer", "database"][(seed // 2) % 4]
    if shape == "database":
        system = str(rng.choice(["redis", "mongodb", "mysql", "elasticsearch"]))
        target = f"{system}-{rng.choice(['sessions', 'catalog', 'cache', 'search'])!s}.internal"
        dep_attrs = {names["db"]: system, names["address"]: target, names["db_op"]: "GET" if system == "redis" else "find"}
        dep_name, accept = f"{system} GET", [target, system]
    else:
        target = f"api.{vendor}.com"
        dep_attrs = {names["method"]: "POST", names["url"]: f"https://{target}/v1/charges"}
        if shape == "address":
            dep_attrs[names["address"]] = target
        if shape == "peer":
            dep_attrs[names["peer"]] = vendor
        dep_name, accept = "POST", [target, vendor]
    at = onset(rng, seconds)
    factor = float(rng.uniform(3, 6))
    dep_base = float(rng.uniform(15, 60))
    db_base = float(rng.uniform(2, 8))
    spans: list[dict[str, Any]] = []
    ids = iter(rng.bytes(8 * traffic.t.size * 6)[i : i + 8].hex() for i in range(0, 8 * traffic.t.size * 6, 8))
    traces = rng.bytes(16 * traffic.t.size)
    ramp = np.clip((traffic.t - at) / 90, 0, 1)
    dep_ms = dep_base * rng.lognormal(0, 0.3, traffic.t.size) * (1 + (factor - 1) * ramp)
    db_ms = db_base * rng.lognormal(0, 0.3, traffic.t.size)
    own_api = rng.uniform(3, 10, traffic.t.size)
    own_edge = traffic.duration_ms * 0.3
    method = traffic.method()
    for i in range(traffic.t.size):
        trace = traces[16 * i : 16 * i + 16].hex()
        t = float(traffic.t[i])
        route = traffic.routes[int(traffic.route[i])]
        api_ms = own_api[i] + db_ms[i] + dep_ms[i]
        edge_ms = own_edge[i] + api_ms + 1.0
        error = bool(traffic.status[i] >= 500)
        e_id, ec_id, a_id, d_id, b_id = (next(ids) for _ in range(5))
        spans.append({"service": edge, "trace": trace, "id": e_id, "parent": None, "name": f"{method[i]} {route.template}", "kind": 2, "t": t,
                      "dur_ms": edge_ms, "error": error, "attrs": {names["method"]: method[i], names["route"]: route.template, names["status"]: int(traffic.status[i])}})
        spans.append({"service": edge, "trace": trace, "id": ec_id, "parent": e_id, "name": "POST", "kind": 3, "t": t + own_edge[i] / 2000, "dur_ms": api_ms + 0.8,
                      "error": error, "attrs": {names["method"]: "POST", names["peer"]: api, names["address"]: api}})
        t_api = t + own_edge[i] / 2000 + 0.0004
        spans.append({"service": api, "trace": trace, "id": a_id, "parent": ec_id, "name": "POST /internal/quote", "kind": 2, "t": t_api, "dur_ms": api_ms,
                      "error": error, "attrs": {names["method"]: "POST", names["route"]: "/internal/quote", names["status"]: int(traffic.status[i])}})
        spans.append({"service": api, "trace": trace, "id": b_id, "parent": a_id, "name": "SELECT", "kind": 3, "t": t_api + own_api[i] / 2000, "dur_ms": db_ms[i],
                      "error": False, "attrs": {names["db"]: "postgresql", names["db_op"]: "SELECT", names["address"]: "pg-primary"}})
        spans.append({"service": api, "trace": trace, "id": d_id, "parent": a_id, "name": dep_name, "kind": 3, "t": t_api + (own_api[i] / 2 + db_ms[i]) / 1000,
                      "dur_ms": dep_ms[i], "error": False, "attrs": dep_attrs})
    traffic.duration_ms = own_edge + own_api + db_ms + dep_ms + 1.0
    files = {"traces/traces.otlp.jsonl": formats.otlp_json(traffic, spans, hosts, {edge: "2.4.1", api: "1.9.0"})}
    truth = _truth("uninstrumented-dependency", seed, kind="dependency_slowdown", dimension="operation", accept=accept, onset=at,
                   parameters={"target": target, "shape": shape, "convention": convention, "factor": round(factor, 2), "caller": api})
    return Wild(start, seconds, traffic, truth, files)


def host_leak(seed: int, minutes: int, scale: float) -> Wild:
    """One host of several leaks memory: GC pauses, heap warnings, an out-of-memory crash written as
    plain text in its JSON stream, the kernel's OOM killer, a restart; its latency and errors rise."""
    rng = _rng("host-leak", seed)
    start = start_time(rng)
    seconds = minutes * 60
    service = str(rng.choice(_SERVICES))
    naming = seed % 3
    n_hosts = int(rng.integers(3, 6))
    if naming == 0:
        hosts = [f"ip-10-{int(rng.integers(0, 9))}-{int(rng.integers(0, 99))}-{int(rng.integers(2, 250))}" for _ in range(n_hosts)]
    elif naming == 1:
        hosts = pod_names(rng, service, n_hosts)[1]
    else:
        hosts = [f"{service}-{i}" for i in range(1, n_hosts + 1)]
    routes = draw_routes(rng, service, int(rng.integers(3, 6)))
    traffic = base_traffic(rng, seconds, float(rng.uniform(6, 10)) * scale, {service: (routes, round_robin(hosts))}, start)
    leaky = hosts[int(rng.integers(0, n_hosts))]
    at = onset(rng, seconds)
    oom_at = at + int(rng.integers(8, 14)) * 60
    runtime = "java" if seed % 2 == 0 else "node"
    on = traffic.host == leaky
    growth = np.clip((traffic.t - at) / (oom_at - at), 0, 1.2)
    growth[traffic.t > oom_at + 30] = np.clip((traffic.t[traffic.t > oom_at + 30] - oom_at - 30) / (oom_at - at), 0, 1)
    traffic.duration_ms[on] *= 1 + 3.0 * growth[on] ** 2
    fail = on & (rng.random(traffic.t.size) < 0.25 * growth**3)
    traffic.status[fail] = 503
    for k, t in enumerate(np.arange(at, seconds, 20.0)):
        g = min((t - at) / (oom_at - at), 1.0) if t < oom_at else (t - oom_at - 30) / (oom_at - at)
        if g <= 0.05:
            continue
        pause = int(80 + 1500 * g * g * rng.uniform(0.7, 1.3))
        if runtime == "java":
            traffic.event(t, "WARN", service, leaky, "gc", f"GC pause (G1 Evacuation Pause) {pause}ms, heap {int(60 + 38 * min(g, 1))}% used")
        else:
            traffic.event(t, "WARN", service, leaky, "v8", f"long GC pause: mark-sweep {pause} ms, heap used {int(1500 + 500 * min(g, 1))} MB")
        if k % 4 == 0 and g > 0.5:
            traffic.event(t + 3, "WARN", service, leaky, "health", f"memory pressure: heap usage {int(85 + 14 * min(g, 1))}% of limit")
    if runtime == "java":
        dump = ("Exception in thread \"http-nio-8080-exec-7\" java.lang.OutOfMemoryError: Java heap space\n"
                "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n\tat com.example.cache.LocalCache.put(LocalCache.java:211)\n"
                "\tat com.example.web.Handler.handle(Handler.java:88)")
        started = "Started Application in 6.2 seconds (process running for 7.1)"
        process = "java"
    else:
        dump = ("<--- Last few GCs --->\n\n[1:0x6b2c040]  1805134 ms: Mark-sweep 2045.1 (2082.4) -> 2044.6 (2083.4) MB, 1480.3 / 0.0 ms  "
                "allocation failure; scavenge might not succeed\n\n<--- JS stacktrace --->\n\n"
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0xb09c10 node::Abort() [node]\n"
                " 2: 0xa1c193 node::FatalError(char const*, char const*) [node]")
        started = f"Server listening on port {int(rng.integers(3000, 9000))}"
        process = "node"
    traffic.event(oom_at, "FATAL", service, leaky, "stderr", "out of memory", text=dump)
    traffic.event(oom_at + 1, "ERROR", service, leaky, "kernel",
                  f"Out of memory: Killed process {int(rng.integers(1000, 30000))} ({process}) total-vm:8123456kB, anon-rss:4012345kB, oom_score_adj:0")
    traffic.event(oom_at + 20, "INFO", service, leaky, "stdout", "started", text=started)
    for h in hosts:
        traffic.event(float(rng.uniform(5, 60)), "INFO", service, h, "stdout", "started", text=started)
    style = formats.JSON_STYLES[(seed // 3) % len(formats.JSON_STYLES)]
    app_events = [e for e in traffic.events if e["logger"] != "kernel"]
    kernel = Traffic(**{**traffic.__dict__, "events": [e for e in traffic.events if e["logger"] == "kernel"]})
    traffic.events = app_events
    files = {f"logs/{h}.jsonl": formats.json_lines(traffic, style, version_key="version", services={service}, rng=rng, hosts={h}) for h in hosts}
    files["logs/syslog"] = formats.rsyslog(kernel)
    traffic.version[:] = "4.0.2"
    truth = _truth("host-leak", seed, kind="resource_exhaustion", dimension="resource", accept=[leaky], onset=at,
                   parameters={"service": service, "host": leaky, "runtime": runtime, "style": style, "oom_at_s": oom_at})
    return Wild(start, seconds, traffic, truth, files)


_OFFSETS = [-420, -300, 330, 60, -240, 540, -180, 120]


def client_flood(seed: int, minutes: int, scale: float) -> Wild:
    """Three hours of an Apache access log (`%D`, a local offset): two hours in, one client sends ten
    times the normal rate to two endpoints for half an hour, then stops."""
    rng = _rng("client-flood", seed)
    start = start_time(rng)
    seconds = minutes * 60
    site = str(rng.choice(_SERVICES))
    routes = draw_routes(rng, site, int(rng.integers(5, 8)))
    rate = float(rng.uniform(1.5, 3)) * scale
    traffic = base_traffic(rng, seconds, rate, {site: (routes, round_robin([f"{site}-web"]))}, start, population=1500)
    at = int(seconds * rng.uniform(0.62, 0.7)) // 60 * 60 + int(rng.integers(0, 50))
    stop = at + int(rng.integers(20, 40)) * 60
    flooded = rng.choice(len(routes), 2, replace=False)
    share = sum(routes[i].weight for i in flooded) / sum(r.weight for r in routes)
    multiple = float(rng.uniform(8, 12))
    rps = np.zeros(seconds)
    rps[at:stop] = rate * share * (multiple - 1)
    t = poisson_times(rng, rps)
    ip = f"{rng.integers(11, 223)}.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 254)}"
    agent = str(rng.choice(_BOTS))
    w = np.array([routes[i].weight for i in flooded])
    extra = Traffic(t=t, service=np.full(t.size, site, dtype=object), host=np.full(t.size, f"{site}-web", dtype=object),
                    route=rng.choice(flooded, t.size, p=w / w.sum()), status=np.full(t.size, 200),
                    duration_ms=np.array([routes[i].median_ms for i in range(len(routes))])[rng.choice(flooded, t.size, p=w / w.sum())] * rng.lognormal(0, 0.4, t.size),
                    version=np.full(t.size, None, dtype=object), client=np.full(t.size, ip, dtype=object),
                    agent=np.full(t.size, agent, dtype=object), routes=list(routes), start=start)
    _append(traffic, extra, np.ones(t.size, dtype=bool))
    busy = (traffic.t >= at) & (traffic.t < stop) & np.isin(traffic.route % len(routes), flooded)
    traffic.duration_ms[busy] *= float(rng.uniform(1.3, 2.0))
    layout = ["combined", "vhost_combined", "common"][seed % 3]
    offset = _OFFSETS[seed % len(_OFFSETS)]
    files = {"logs/access.log": formats.apache(traffic, rng, layout, offset)}
    truth = _truth("client-flood", seed, kind="traffic_surge", dimension="source",
                   accept=[ip, ".".join(ip.split(".")[:3]) + ".0/24", agent.split("/")[0]], onset=at,
                   parameters={"client": ip, "agent": agent, "routes": [routes[i].template for i in flooded], "multiple": round(multiple, 1),
                               "stop_s": stop, "layout": layout, "offset_min": offset})
    return Wild(start, seconds, traffic, truth, files)


WILD_SCENARIOS.update({
    "uninstrumented-dependency": ("a dependency seen only through its callers' client spans slows down", uninstrumented_dependency),
    "host-leak": ("one host of several leaks memory until it is OOM-killed; a mixed JSON/text stream", host_leak),
    "client-flood": ("one client floods two endpoints, two hours into a three-hour access log, then stops", client_flood),
})
DEFAULT_MINUTES.update({"uninstrumented-dependency": 40, "host-leak": 50, "client-flood": 180})
