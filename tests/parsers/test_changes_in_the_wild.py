"""Changes as real systems write them (issue #15): version fields under their common names, rollouts seen
as new pod-template hashes, flags and configuration keys as subjects, and mixed JSON/text streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rca.parsers.loader import load_dataset

T0 = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


def _iso(second: float) -> str:
    return (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


def _write(tmp_path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _records(version_key: str, old: str, new: str, host=lambda i, new: f"h{i % 2}") -> list[str]:
    out = []
    for i in range(40):
        is_new = i >= 20
        record: dict = {"ts": _iso(10 * i), "level": "info", "msg": "handled", "service": "checkout",
                        "host": host(i, is_new), "path": "/cart", "status": 200, "duration_ms": 20}
        if version_key.startswith("service."):
            record["service"] = {"name": "checkout"}
        cursor = record
        *parents, leaf = version_key.split(".")
        for part in parents:
            cursor = cursor.setdefault(part, {})
        cursor[leaf] = new if is_new else old
        out.append(orjson.dumps(record).decode())
    return out


@pytest.mark.parametrize("key", ["version", "service.version", "app.version", "app_version", "build", "release",
                                 "git_sha", "commit", "container.image.tag"])
def test_version_fields_under_common_names_make_one_deploy(tmp_path, key):
    old, new = ("4f1c2d9", "9a8b7c6") if key in ("git_sha", "commit") else ("1.8.0", "1.9.0")
    data = load_dataset([_write(tmp_path, "app.jsonl", _records(key, old, new))])
    rows = data.changes.to_dicts()
    assert [(r["kind"], r["service"]) for r in rows] == [("deploy", "checkout")]
    assert rows[0]["subject"].lstrip("v") == new and rows[0]["ts"] == T0 + timedelta(seconds=200)
    assert set(data.requests["version"].unique().to_list()) == {old, new}  # for canary splits


def test_image_reference_gives_its_tag(tmp_path):
    data = load_dataset([_write(tmp_path, "app.jsonl", _records("image", "registry:5000/shop/checkout:2.0.1", "registry:5000/shop/checkout:2.1.0"))])
    assert data.changes["subject"].to_list() == ["v2.1.0"]


def test_rollout_seen_as_new_pod_template_hash(tmp_path):
    def pod(i, new):
        return f"checkout-{'7d4b9c8f6d' if new else '5f6c7b8d9'}-{['x2k9p', 'q8w7z', 'm4n5b'][i % 3]}"

    lines = [line for line in _records("unused", "x", "x", host=pod)]
    data = load_dataset([_write(tmp_path, "app.jsonl", lines)])
    # the records carry `unused`, no version key: the pod-template hash is the release
    rows = data.changes.to_dicts()
    assert [(r["kind"], r["service"], r["subject"]) for r in rows] == [("deploy", "checkout", "7d4b9c8f6d")]
    assert "pod-template hash" in rows[0]["description"]
    assert set(data.requests["version"].to_list()) == {"7d4b9c8f6d", "5f6c7b8d9"}


def test_same_version_on_new_hosts_is_no_change(tmp_path):
    data = load_dataset([_write(tmp_path, "app.jsonl", _records("version", "1.0.0", "1.0.0", host=lambda i, new: f"h{i}"))])
    assert data.changes.height == 0


@pytest.mark.parametrize(("message", "attributes", "kind", "subject"), [
    ("feature flag updated", {"flag": "new_checkout", "enabled": True}, "flag", "new_checkout"),
    ("Feature flag 'checkout.v2' enabled for 30% of users", {}, "flag", "checkout.v2"),
    ("flag pricing-beta switched on", {}, "flag", "pricing-beta"),
    ("config reloaded", {"key": "db.pool.size", "old": 10, "new": 50}, "config", "db.pool.size"),
    ("Configuration reloaded: payment.retry.max=5", {}, "config", "payment.retry.max"),
    ("Refreshed keys : [feature.recommendations.enabled, cache.ttl]", {}, "config", "feature.recommendations.enabled, cache.ttl"),
])
def test_flag_and_config_changes_name_their_key(tmp_path, message, attributes, kind, subject):
    line = orjson.dumps({"ts": _iso(0), "level": "info", "msg": message, "service": "web", **attributes}).decode()
    data = load_dataset([_write(tmp_path, "web.jsonl", [line])])
    assert [(r["kind"], r["service"], r["subject"]) for r in data.changes.to_dicts()] == [(kind, "web", subject)]


def test_flag_in_a_text_log(tmp_path):
    path = _write(tmp_path, "shop.log", [
        "2026-03-09 14:00:00.120  INFO 1 --- [main] c.s.FeatureFlags : Feature flag 'fastPricing' enabled (rollout 30%)",
        "2026-03-09 14:00:01.220  INFO 1 --- [main] c.s.Web : handled",
    ])
    data = load_dataset([path])
    assert [(r["kind"], r["subject"]) for r in data.changes.to_dicts()] == [("flag", "fastPricing")]


CRASH = """<--- Last few GCs --->

[1:0x5e1c040]    60134 ms: Mark-sweep 2045.1 (2082.4) -> 2044.6 (2083.4) MB, 1480.3 / 0.0 ms  allocation failure

<--- JS stacktrace --->

FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory
 1: 0xb09c10 node::Abort() [node]
 2: 0xa1c193 node::FatalError(char const*, char const*) [node]""".splitlines()


def test_mixed_stream_keeps_text_lines_as_events_of_the_stream(tmp_path):
    def record(second, host="api-7d4b9c8f6d-x2k9p"):
        return orjson.dumps({"time": _iso(second), "level": 30, "msg": "request completed", "hostname": host,
                             "req": {"url": "/api/items", "method": "GET"}, "res": {"statusCode": 200}, "responseTime": 9}).decode()

    lines = ["Server listening on port 3000", record(1), record(2), *CRASH, record(5),
             "2026-03-09T14:00:06Z ERROR java.lang.IllegalStateException: pool closed",
             "\tat com.shop.Pool.get(Pool.java:42)", "\tat com.shop.Api.items(Api.java:7)",
             record(7), '{"time": "2026-03-09T14:00:08Z", "msg": "trunc']
    data = load_dataset([_write(tmp_path, "api.jsonl", lines)])
    summary = data.inputs[0]
    assert summary.rejected == 1 and summary.rejected_examples[0].line == len(lines)  # the broken JSON only
    assert any("not JSON read as plain text" in w for w in summary.warnings)
    events = data.events.sort("line").to_dicts()
    assert len(events) == 3 and data.requests.height == 4
    start, crash, trace = events
    assert start["message"] == "Server listening on port 3000" and start["ts"] == T0 + timedelta(seconds=1)  # from the next record
    assert crash["line"] == 4 and crash["level"] == "FATAL" and "heap out of memory" in crash["message"]
    assert crash["message"].count("\n") == len([c for c in CRASH if c.strip()]) - 1  # one event
    assert crash["ts"] == T0 + timedelta(seconds=2) and crash["host"] == "api-7d4b9c8f6d-x2k9p"
    assert trace["ts"] == T0 + timedelta(seconds=6) and trace["level"] == "ERROR" and "Pool.java:42" in trace["message"]
    assert {e["signal"] for e in events} == {"app_log"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.just("json"), st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)),
                min_size=1, max_size=30))
@example(kinds=["0"] * 5)  # few objects among lines that are JSON but not objects: still this stream's format
@example(kinds=["r"])  # a text line reading like a record's message
def test_mixed_stream_never_loses_a_line(tmp_path_factory, kinds):
    """Every non-blank text line lands in exactly one event (or is a counted rejection); JSON records stay records."""
    lines = [orjson.dumps({"ts": _iso(0), "msg": "first"}).decode()]
    for second, kind in enumerate(kinds, start=1):
        lines.append(orjson.dumps({"ts": _iso(second), "msg": f"r{second}"}).decode() if kind == "json" else kind.replace("\n", " "))
    path = _write(tmp_path_factory.mktemp("mixed"), "s.jsonl", lines)
    data = load_dataset([path])
    texts = [t for t in lines[1:] if not t.startswith('{"ts"') and t.strip()]
    joined = "\n".join(m for m in data.events["message"].to_list())
    kept = sum(1 for t in texts if t.strip() in joined)
    assert kept + data.inputs[0].rejected >= len(texts)
    # the records by their line numbers: a text line may itself read "r" or "first"
    record_lines = [1] + [line for line, kind in enumerate(kinds, start=2) if kind == "json"]
    records = data.events.filter(data.events["line"].is_in(record_lines)).sort("line")
    assert records["message"].to_list() == ["first"] + [f"r{line - 1}" for line in record_lines[1:]]


def test_monolog_json_records_are_requests_with_their_levels_and_flags(tmp_path):
    """Monolog's JsonFormatter: numeric levels 100-600 (200 is INFO, not pino's FATAL), the request in
    `context`, the service, host and release from processors in `extra`; a flag named in `context`."""
    lines = []
    for i in range(30):
        level, name = (400, "ERROR") if i % 10 == 9 else (200, "INFO")
        lines.append(orjson.dumps({"message": "Matched route", "context": {"method": "GET", "uri": f"/api/cart/{i}", "status": 500 if level == 400 else 200,
                                   "duration_ms": 12.5}, "level": level, "level_name": name, "channel": "request",
                                   "datetime": (T0 + timedelta(seconds=i)).isoformat(), "extra": {"hostname": "web-2", "service": "cart", "version": "2.1.0"}}).decode())
    lines.append(orjson.dumps({"message": "feature flag updated", "context": {"flag": "new_checkout", "enabled": True}, "level": 250,
                               "level_name": "NOTICE", "channel": "app", "datetime": (T0 + timedelta(seconds=31)).isoformat(), "extra": {}}).decode())
    dataset = load_dataset([_write(tmp_path, "app.jsonl", lines)])
    requests = dataset.requests
    assert requests.height == 30
    assert requests.select("service", "host", "version").unique().rows() == [("cart", "web-2", "2.1.0")]
    assert requests["endpoint"].unique().to_list() == ["/api/cart/{id}"]
    assert (requests["status"] >= 500).sum() == 3 and requests["duration_ms"].max() == 12.5
    events = dataset.events
    assert events["level"].to_list() == ["INFO"]
    flags = dataset.changes.filter(dataset.changes["kind"] == "flag")
    assert flags["subject"].to_list() == ["new_checkout"]
