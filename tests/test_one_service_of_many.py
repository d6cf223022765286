"""A sustained x2 p95 shift of one traced service of many (issue #15 item 5: 'below the reporting
threshold'). Traces of a front service calling five to seven backends, an hour long; from 35-45 minutes in,
one backend's own time doubles and stays so. The incident must be reported, open within two buckets of
the shift, and name that backend first. Names, fan-out, rates and base latencies vary by seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from rca.pipeline import analyze
from rca.simulate import formats
from rca.simulate.traffic import Route, Traffic

WORDS = ["ledger", "quote", "stock", "mail", "auth", "rank", "geo", "price", "bill", "media", "tax", "promo"]
MINUTES = 60


def _traces(seed: int, path: Path) -> tuple[str, datetime, float]:
    rng = np.random.default_rng([seed, 1502])
    start = datetime(2026, 3, 2, 8, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 200)), minutes=int(rng.integers(0, 600)))
    backends = [f"{w}-{rng.choice(['svc', 'api', 'service'])}" for w in rng.choice(WORDS, int(rng.integers(5, 8)), replace=False)]
    slow = backends[int(rng.integers(0, len(backends)))]
    at = float(rng.uniform(35, 45) * 60)
    factor = float(rng.uniform(1.9, 2.2))
    rate = float(rng.uniform(1.0, 1.6))
    t = np.sort(rng.uniform(0, MINUTES * 60, rng.poisson(rate * MINUTES * 60)))
    base = {b: float(rng.uniform(5, 40)) for b in backends}
    spans = []
    for i, ti in enumerate(t):
        trace = f"{seed:08x}{i:024x}"
        root = f"{i:012x}0000"
        cursor, children = float(ti) + 0.002, []
        for k, b in enumerate(backends):
            ms = base[b] * float(rng.lognormal(0, 0.35)) * (factor if (b == slow and ti >= at) else 1.0)
            client, server = f"{i:012x}{2 * k + 1:04x}", f"{i:012x}{2 * k + 2:04x}"
            children.append({"service": "front", "trace": trace, "id": client, "parent": root, "name": "POST", "kind": 3, "t": cursor,
                             "dur_ms": ms + 0.6, "error": False, "attrs": {"http.request.method": "POST", "server.address": b}})
            children.append({"service": b, "trace": trace, "id": server, "parent": client, "name": "POST /rpc", "kind": 2, "t": cursor + 0.0003,
                             "dur_ms": ms, "error": False, "attrs": {"http.request.method": "POST", "http.route": "/rpc", "http.response.status_code": 200}})
            cursor += (ms + 1.0) / 1000
        spans.append({"service": "front", "trace": trace, "id": root, "parent": None, "name": "GET /api/page", "kind": 2, "t": float(ti),
                      "dur_ms": (cursor - float(ti)) * 1000 + 1.0, "error": False,
                      "attrs": {"http.request.method": "GET", "http.route": "/api/page", "http.response.status_code": 200}})
        spans.extend(children)
    traffic = Traffic(t=t, service=np.full(t.size, "front", dtype=object), host=np.full(t.size, "front-1", dtype=object),
                      route=np.zeros(t.size, dtype=int), status=np.full(t.size, 200), duration_ms=np.ones(t.size),
                      version=np.full(t.size, None, dtype=object), client=np.full(t.size, None, dtype=object),
                      agent=np.full(t.size, None, dtype=object), routes=[Route("GET", "/api/page", 10.0, 0.3, 1.0)], start=start)
    hosts = {s: f"{s}-{int(rng.integers(1, 9))}" for s in ["front", *backends]}
    path.write_bytes(formats.otlp_json(traffic, spans, hosts, dict.fromkeys(hosts, "1.0.0")))
    return slow, start + timedelta(seconds=at), factor


@pytest.mark.parametrize("seed", range(3))
def test_one_service_doubling_is_reported_and_named(seed, tmp_path):
    slow, onset, factor = _traces(seed, tmp_path / "traces.otlp.jsonl")
    report = analyze([str(tmp_path)])
    top = report.hypotheses[0] if report.hypotheses else None
    described = [(h.kind, h.subject, h.where, round(h.score, 2)) for h in report.hypotheses[:3]]
    assert report.incident_detected, (slow, factor, report.headline)
    assert top is not None and slow in f"{top.subject} {top.where}", (slow, described)
    lag = (report.context.incident.start - onset).total_seconds() / report.context.bucket_s
    assert -2 <= lag <= 2, (lag, report.context.incident.start, onset)
