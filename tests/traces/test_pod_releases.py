"""OTLP spans without `service.version`: the pod-template hash in `k8s.pod.name` is the release (issue #15).
A rollout becomes a change, server spans carry their release for the canary split, and the pod (not the
node in `host.name`) is the host. A service that writes `service.version` keeps it."""

from __future__ import annotations

import orjson

from rca.pipeline import AnalyzeOptions, load

T0 = 1_785_222_000_000_000_000  # ns


def _doc(service: str, pod: str, node: str, version: str | None, t_s: float, n: int) -> bytes:
    attributes = [{"key": "service.name", "value": {"stringValue": service}},
                  {"key": "k8s.pod.name", "value": {"stringValue": pod}}, {"key": "host.name", "value": {"stringValue": node}}]
    if version:
        attributes.append({"key": "service.version", "value": {"stringValue": version}})
    spans = [{"traceId": f"{int(t_s):08x}{i:024x}", "spanId": f"{int(t_s):08x}{i:08x}", "name": "GET /api/x", "kind": 2,
              "startTimeUnixNano": str(T0 + int((t_s + i) * 1e9)), "endTimeUnixNano": str(T0 + int((t_s + i) * 1e9) + 20_000_000),
              "attributes": [{"key": "http.route", "value": {"stringValue": "/api/x"}}, {"key": "http.response.status_code", "value": {"intValue": "200"}}]}
             for i in range(n)]
    return orjson.dumps({"resourceSpans": [{"resource": {"attributes": attributes}, "scopeSpans": [{"spans": spans}]}]})


def _dataset(tmp_path, version_old: str | None, version_new: str | None):
    lines = [_doc("api", "api-7d4b9c8f6d-x2k9p", "node-a", version_old, 0, 120),
             _doc("api", "api-5f6c7d8b9q-m4n5p", "node-a", version_new, 600, 120)]
    (tmp_path / "traces.otlp.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return load([str(tmp_path)], AnalyzeOptions())


def test_a_rollout_in_pod_names_is_a_change_and_splits_requests_by_release(tmp_path):
    dataset = _dataset(tmp_path, None, None)
    changes = dataset.changes.filter(dataset.changes["service"] == "api")
    assert changes["subject"].to_list() == ["5f6c7d8b9q"]
    assert "pod-template hash of api changed from 7d4b9c8f6d to 5f6c7d8b9q" in changes["description"][0]
    assert set(dataset.requests["version"].unique().to_list()) == {"7d4b9c8f6d", "5f6c7d8b9q"}
    assert set(dataset.requests["host"].unique().to_list()) == {"api-7d4b9c8f6d-x2k9p", "api-5f6c7d8b9q-m4n5p"}


def test_service_version_wins_over_the_pod_hash(tmp_path):
    dataset = _dataset(tmp_path, "1.4.0", "1.4.0")
    assert dataset.changes.filter(dataset.changes["service"] == "api").height == 0
    assert dataset.requests["version"].unique().to_list() == ["1.4.0"]
