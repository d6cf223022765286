"""Requests of the simulated platform as columns: who called what, when, how long it took, how it ended.

Latency is causal: each request's time is its service's own work plus its database (or cache) work,
scaled by the load the app is under (requests per second smoothed over the last minute against the
platform's capacity), so a surge raises latency only once load builds up, after its onset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rca.simulate.platform import Platform
from rca.simulate.scenarios import Effects


@dataclass(frozen=True)
class Requests:
    second: np.ndarray  # float seconds since start: request start
    endpoint: np.ndarray  # index into platform.endpoints
    ip: np.ndarray  # object array of client addresses
    user_agent: np.ndarray
    api_client: np.ndarray  # object, None for ordinary users
    status: np.ndarray
    duration_ms: np.ndarray  # total, as seen by the app
    app_ms: np.ndarray  # the service's own time
    db_ms: np.ndarray  # database time (0 when served from cache)
    cache_ms: np.ndarray  # cache lookup time (0 when not cacheable)
    db_calls: np.ndarray  # database calls made
    client_extra_ms: np.ndarray  # time lost between client and proxy (network)
    host: np.ndarray  # object: serving host

    def __len__(self) -> int:
        return len(self.second)


def _stream(rng, rate, endpoint_p, ips, uas, api, client_p):
    counts = rng.poisson(np.clip(rate, 0, None))
    seconds = np.repeat(np.arange(len(rate)), counts) + rng.random(int(counts.sum()))
    n = len(seconds)
    endpoint = rng.choice(len(endpoint_p), size=n, p=endpoint_p)
    client = rng.choice(len(client_p), size=n, p=client_p)
    return seconds, endpoint, ips[client], uas[client], api[client]


def simulate_requests(
    rng: np.random.Generator,
    platform: Platform,
    base_rate: np.ndarray,
    effects: Effects,
    latency_regression: float | None = None,
    regression_endpoint: str | None = None,
) -> Requests:
    endpoints = platform.endpoints
    weights = np.array([e.weight for e in endpoints])
    ips = np.array([c.ip for c in platform.clients], dtype=object)
    uas = np.array([c.user_agent for c in platform.clients], dtype=object)
    api = np.array([c.api_client for c in platform.clients], dtype=object)
    parts = [
        _stream(
            rng,
            base_rate * effects.rate_mult,
            weights / weights.sum(),
            ips,
            uas,
            api,
            platform.client_weights,
        )
    ]
    for stream in effects.streams:
        s_ips = np.array([c.ip for c in stream.clients], dtype=object)
        s_uas = np.array([c.user_agent for c in stream.clients], dtype=object)
        s_api = np.array([c.api_client for c in stream.clients], dtype=object)
        parts.append(
            _stream(rng, stream.rps, stream.endpoint_weights, s_ips, s_uas, s_api, stream.client_weights)
        )
    second = np.concatenate([p[0] for p in parts])
    order = np.argsort(second, kind="stable")
    second = second[order]
    endpoint = np.concatenate([p[1] for p in parts])[order]
    ip = np.concatenate([p[2] for p in parts])[order]
    ua = np.concatenate([p[3] for p in parts])[order]
    api_client = np.concatenate([p[4] for p in parts])[order]
    n = len(second)
    sec = np.minimum(second.astype(np.int64), platform.seconds - 1)

    # Load: requests per second over the last two minutes, against the quiet baseline.
    per_second = np.bincount(sec, minlength=platform.seconds).astype(float)
    kernel = np.ones(120) / 120.0  # queues build up over a couple of minutes
    smoothed = np.convolve(per_second, kernel)[: platform.seconds]
    smoothed[:120] = np.maximum(smoothed[:120], per_second[:120].mean())
    load = smoothed / max(float(np.median(base_rate)), 1e-9)
    load_mult = 1.0 + 4.0 * np.clip(load / effects.capacity - 1.0, 0.0, None) ** 1.3

    median = np.array([e.median_ms for e in endpoints])[endpoint]
    service = np.array([e.service for e in endpoints], dtype=object)[endpoint]
    method = np.array([e.method for e in endpoints], dtype=object)[endpoint]
    app_ms = median * 0.45 * rng.lognormal(0.0, 0.3, n)
    db_ms = median * 0.55 * rng.lognormal(0.0, 0.35, n)
    if effects.db_latency_mult is not None:
        db_ms = db_ms * effects.db_latency_mult[sec]
    # Message reads go through the cache; a miss reads the database (three queries: thread, messages, authors).
    cacheable = (service == "messages") & (method == "GET")
    miss_ratio = effects.cache_miss[sec] if effects.cache_miss is not None else np.full(n, 0.04)
    miss = rng.random(n) < miss_ratio
    cache_ms = np.where(cacheable, rng.lognormal(np.log(1.5), 0.3, n), 0.0)
    db_calls = np.where(cacheable, np.where(miss, 3, 0), 1)
    db_ms = np.where(cacheable & ~miss, 0.0, np.where(cacheable, db_ms * 1.8, db_ms))
    if effects.app_latency_mult is not None:
        target = effects.parameters.get("service")
        hit = service == target if target else np.ones(n, dtype=bool)
        app_ms = np.where(hit, app_ms * effects.app_latency_mult[sec], app_ms)
    if latency_regression is not None and regression_endpoint is not None:
        idx = next(i for i, e in enumerate(endpoints) if e.route == regression_endpoint)
        chosen = endpoint == idx
        # The database call of this endpoint got slower by enough to scale the endpoint's time.
        extra = (app_ms + db_ms + cache_ms) * (latency_regression - 1.0)
        db_ms = np.where(chosen, db_ms + extra, db_ms)
        db_calls = np.where(chosen & (db_calls == 0), 1, db_calls)
    scale = load_mult[sec]
    app_ms, db_ms, cache_ms = app_ms * scale, db_ms * scale, cache_ms * scale
    duration = app_ms + db_ms + cache_ms + rng.uniform(0.5, 2.0, n)

    status = np.full(n, 200, dtype=np.int32)
    status = np.where(method == "POST", 201, status)
    roll = rng.random(n)
    status = np.where(roll < 0.012, 404, status)
    status = np.where((roll >= 0.012) & (roll < 0.016), 401, status)
    error_p = np.full(n, 0.002)
    if effects.error_prob is not None:
        target = effects.parameters.get("service")
        hit = service == target if target else np.ones(n, dtype=bool)
        error_p = error_p + np.where(hit, effects.error_prob[sec], 0.0)
    # Overload: requests that wait too long time out at the proxy.
    error_p = error_p + np.clip((duration - 3000.0) / 20000.0, 0.0, 0.3)
    fail = rng.random(n) < error_p
    status = np.where(
        fail, rng.choice(np.array([500, 502, 503, 504]), size=n, p=[0.3, 0.3, 0.25, 0.15]), status
    )
    client_extra = np.where(
        rng.random(n) < effects.network_noise, rng.exponential(300.0, n), rng.exponential(1.0, n)
    )
    hosts = np.empty(n, dtype=object)
    for svc, names in platform.hosts.items():
        mask = service == svc
        hosts[mask] = np.array(names, dtype=object)[rng.integers(0, len(names), int(mask.sum()))]
    return Requests(
        second,
        endpoint,
        ip,
        ua,
        api_client,
        status,
        duration,
        app_ms,
        db_ms,
        cache_ms,
        db_calls,
        client_extra,
        hosts,
    )
