"""JSON lines: the vectorized path (polars' NDJSON reader, mapping as expressions) must give what the
per-record path (orjson, a dict per line) gives, on varied dialects and odd lines, for any batch size."""

from __future__ import annotations

import random

import orjson
import pytest
from polars.testing import assert_frame_equal

from rca.parsers import ParseOptions
from rca.parsers import fields as fields_module
from rca.parsers import lines as lines_module
from rca.parsers.jsonl import JsonLinesParser
from rca.parsers.sources import Source


def _record(rnd: random.Random, i: int, ecs: bool) -> dict:
    t = 1_767_693_600 + i
    stamp = rnd.choice([f"2026-01-06T10:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z", t, t * 1000, f"2026-01-06 10:00:{i % 60:02d}+01:00"])
    svc = rnd.choice(["api", "users", "billing"])
    shape = rnd.choice([1 if ecs else 0, 2, 3, 4, 5])  # one file, one way of writing `service`
    if shape == 0:  # flat, dotted names
        return {"ts": stamp, "level": rnd.choice(["info", "warn", "ERROR", 30, 50]), "service": svc, "service.version": rnd.choice(["1.2.3", "1.2.4"]),
                "msg": "request completed", "http.route": "/api/u/{id}", "url.path": f"/api/u/{i}", "method": "get", "status": rnd.choice([200, 503]),
                "duration_ms": round(rnd.expovariate(0.05), 2), "client.address": f"10.0.0.{i % 250}"}
    if shape == 1:  # nested objects (ECS-like), a list
        return {"@timestamp": stamp, "log": {"level": "warn"}, "service": {"name": svc, "version": "2.0"}, "message": f"slow \"query\" {i}",
                "http": {"request": {"method": "POST"}, "response": {"status_code": 200}}, "url": {"path": f"/v1/o/{i}?x=1"},
                "event": {"duration": rnd.randrange(10**6, 10**9)}, "tags": ["a", "b"], "labels": {"zone": rnd.choice(["eu", "us"])}}
    if shape == 2:  # pino
        return {"time": t * 1000, "level": rnd.choice([30, 40, 50]), "msg": "pool exhausted", "hostname": f"{svc}-1", "pid": 7, "responseTime": 12,
                "req": {"url": f"/r/{i}", "method": "GET"}, "res": {"statusCode": 500}}
    if shape == 3:  # event without request fields, extra keys of varying types
        return {"ts": stamp, "level": "error", "service": {"name": svc} if ecs else svc, "msg": f"cache miss {i % 7}", "attempt": rnd.choice([1, 2, "3"]), "ok": rnd.random() < 0.5,
                "ratio": rnd.random(), "empty": {}}
    if shape == 4:  # no timestamp: rejected
        return {"level": "info", "msg": "no time here"}
    return {"ts": stamp, "msg": "deep", "a": {"b": {"c": {"d": i}}}, "trace_id": f"{rnd.getrandbits(128):032X}"}


def _loose(attributes) -> list:
    """Attribute objects with every value as JSON text (strings bare)."""
    out = []
    for text in attributes.to_list():
        value = orjson.loads(text) if text else None
        out.append(value and {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in value.items()})
    return out


def _lines(seed: int, n: int, odd: bool = True) -> bytes:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        roll = rnd.random() if odd else 1.0
        if roll < 0.01:
            out.append('{"ts": "2026-01-06T10:00:00Z", "msg": "broken')
        elif roll < 0.02:
            out.append("Traceback (most recent call last): plain text from the same stream")
        elif roll < 0.025:
            out.append("[1, 2, 3]")
        elif roll < 0.03:
            out.append("")
        else:
            out.append(orjson.dumps(_record(rnd, i, seed % 2 == 1)).decode())
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize(("seed", "odd"), [(0, True), (1, True), (2, True), (3, True), (4, False), (5, False)])
def test_vectorized_json_lines_equal_the_per_record_path(monkeypatch, seed, odd):
    rnd = random.Random(seed)
    monkeypatch.setattr(fields_module, "JSON_BATCH_LINES", rnd.choice([64, 200, 1000]))
    monkeypatch.setattr(fields_module, "PER_RECORD_LINES", rnd.choice([4, 16]))
    monkeypatch.setattr(lines_module, "CHUNK_BYTES", rnd.choice([20_000, 1 << 20]))  # several chunks, or one
    source = Source(origin="app.jsonl", data=_lines(seed, rnd.randrange(400, 1500), odd))
    parser = JsonLinesParser()
    fast, slow = parser.parse(source, ParseOptions()), parser.parse_per_record(source, ParseOptions())
    for name, frame in slow.frames.items():
        if "attributes" in frame.columns:  # leniency: a key whose JSON type varies between lines is kept as text
            assert _loose(fast.frames[name]["attributes"]) == _loose(frame["attributes"])
            frame, fast.frames[name] = frame.drop("attributes"), fast.frames[name].drop("attributes")
        assert_frame_equal(fast.frames[name], frame, check_column_order=True)
    assert (fast.rejected, fast.rejected_examples, fast.lines, fast.warnings) == (slow.rejected, slow.rejected_examples, slow.lines, slow.warnings)
    assert fast.frames["requests"].height > 0 and fast.frames["events"].height > 0
    assert fast.slow_lines < fast.lines / 2  # most lines took the vectorized path
    if not odd:  # every line an object: the input was decoded straight from its bytes
        assert fast.slow_lines == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logfmt_in_columns_equals_the_per_record_path(seed):
    from rca.parsers.logfmt import LogfmtParser

    rnd = random.Random(seed)
    out = []
    for i in range(rnd.randrange(200, 600)):
        stamp = f"2026-01-06T10:{i % 60:02d}:{i % 59:02d}Z"
        roll = rnd.random()
        if roll < 0.03:
            out.append(rnd.choice(["", "plain text line", "only=one", "a=1 a=2"]))
        elif roll < 0.5:
            out.append(f'ts={stamp} level=info service=api msg="request completed" method=GET path=/api/u/{i} status={rnd.choice([200, 500])} '
                       f'duration_ms={rnd.random() * 90:.1f} client_ip=10.0.0.{i % 250} line={i}')
        else:
            out.append(f'ts={stamp} level={rnd.choice(["warn", "error"])} caller=db.go:{i} msg="pool \\"main\\" exhausted \\\\ x" waiting={i % 9} '
                       f'err= component=pool{" extra=" + str(i) if i % 3 == 0 else ""} waiting={i % 4}')
    source = Source(origin="app.log", data=("\n".join(out) + "\n").encode())
    parser = LogfmtParser()
    fast, slow = parser.parse(source, ParseOptions()), parser.parse_per_record(source, ParseOptions())
    for name, frame in slow.frames.items():
        assert_frame_equal(fast.frames[name], frame, check_column_order=True)
    assert (fast.rejected, fast.rejected_examples, fast.lines) == (slow.rejected, slow.rejected_examples, slow.lines)
    assert fast.frames["requests"].height > 0 and fast.frames["events"].height > 0
