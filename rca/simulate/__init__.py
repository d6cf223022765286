"""Incident simulator: realistic telemetry of a small chat platform under an incident, with its truth.

    rca simulate third-party-surge --seed 3 --out /tmp/incident

writes `telemetry/access.log.gz` (nginx combined + `$request_time $upstream_response_time`),
`telemetry/app.jsonl.gz` (application JSON lines: request logs and events, with `service.version`),
`telemetry/app.log.gz` (plain-text application log, log4j style, stack traces on several lines),
`telemetry/traces.otlp.jsonl.gz` (OTLP/JSON, one ExportTraceServiceRequest per line, the collector file
exporter's format) and `truth.json` (root cause, symptoms, decoys). The scenarios in the wild
(`rca.simulate.wild`: bad-release, flag-flip, uninstrumented-dependency, host-leak, client-flood) write
their own small services in real-world formats (`rca.simulate.formats`), uncompressed, with their truth. `generate` does the same in memory.
Everything derives from the seed; gzip members carry no timestamp, so the bytes are reproducible.

The seed fixes the platform (resource nouns and so routes, services, hosts, clients, versions, base
rate) and, by default, the noise too. `noise_seed` keeps the platform of `seed` and draws everything
else (traffic curve, scenario timing, requests, latencies, ids) as seed `noise_seed` would: two runs of
one platform that differ only in noise, such as a baseline and an unchanged candidate for `rca compare`.
"""

from __future__ import annotations

import gzip
import io
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from rca.errors import UsageError
from rca.simulate.platform import Platform, baseline_rate, build_platform
from rca.simulate.requests import simulate_requests
from rca.simulate.scenarios import SCENARIOS, Effects, ScenarioSpec
from rca.simulate.wild import WILD_SCENARIOS, generate_wild
from rca.simulate.writers import write_access_log, write_app_jsonl, write_app_text, write_traces

DEFAULT_MINUTES = 90
MIN_MINUTES, MAX_MINUTES = 20, 24 * 60
ALL_FORMATS = ("access", "jsonl", "text", "traces")
FILE_NAMES = {
    "access": "telemetry/access.log.gz",
    "jsonl": "telemetry/app.jsonl.gz",
    "text": "telemetry/app.log.gz",
    "traces": "telemetry/traces.otlp.jsonl.gz",
}

__all__ = ["SCENARIOS", "WILD_SCENARIOS", "Incident", "ScenarioSpec", "generate", "simulate"]


@dataclass(frozen=True)
class Incident:
    """One generated incident: file contents by relative path, and the truth."""

    scenario: str
    seed: int
    files: dict[str, bytes]
    truth: dict[str, Any]

    def write(self, out: Path) -> list[Path]:
        out = Path(out)
        written = []
        for rel, data in sorted(self.files.items()):
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
        return written


def _gzip(data: bytes, name: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buffer, mtime=0, compresslevel=3) as gz:
        gz.write(data)
    return buffer.getvalue()


def _iso(platform: Platform, second: float) -> str:
    return platform.t(second).isoformat().replace("+00:00", "Z")


def _truth(spec: ScenarioSpec, seed: int, platform: Platform, effects: Effects) -> dict[str, Any]:
    def stamp(item: dict[str, Any]) -> dict[str, Any]:
        # Symptoms carry an onset; decoys (deploys, rollbacks, network) carry the time they happened.
        out = {k: v for k, v in item.items() if k != "second"}
        key = "ts" if item.get("kind") in ("deploy", "rollback", "network") else "onset"
        out[key] = _iso(platform, item["second"])
        return out

    root = None
    if effects.root_cause is not None:
        root = {k: v for k, v in effects.root_cause.items() if k != "second"}
        root["onset"] = _iso(platform, effects.root_cause["second"])
    return {
        "scenario": spec.name,
        "seed": seed,
        "postmortem": spec.postmortem,
        "incident": root is not None,
        "span": {"start": _iso(platform, 0), "end": _iso(platform, platform.seconds)},
        "root_cause": root,
        "symptoms": [stamp(s) for s in effects.symptoms],
        "decoys": [stamp(d) for d in effects.decoys],
        "changes": [
            {
                "ts": _iso(platform, c["second"]),
                "kind": c["kind"],
                "service": c["service"],
                "subject": f"v{c['version']}",
            }
            for c in sorted(effects.changes, key=lambda c: c["second"])
        ],
        "parameters": effects.parameters,
    }


def generate(
    scenario: str,
    seed: int = 0,
    minutes: int | None = None,
    scale: float = 1.0,
    formats: tuple[str, ...] = ALL_FORMATS,
    latency_regression: float | None = None,
    regression_endpoint: str | None = None,
    trace_sample: float = 0.08,
    noise_seed: int | None = None,
) -> Incident:
    """Generate one incident in memory. `latency_regression` multiplies the database time of one
    endpoint (`regression_endpoint`, or one drawn from the seed) for the whole period, as a bad release
    would; the endpoint and the span responsible are recorded in truth["parameters"]. `noise_seed`
    (default: `seed`) draws the noise on the platform of `seed`; truth.json then records it."""
    if scenario in WILD_SCENARIOS:
        return _generate_wild(scenario, seed, minutes, scale)
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; known: {', '.join([*SCENARIOS, *WILD_SCENARIOS])}")
    unknown = set(formats) - set(ALL_FORMATS)
    if unknown:
        raise UsageError(f"unknown formats {sorted(unknown)}; known: {', '.join(ALL_FORMATS)}")
    if minutes is not None and not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise UsageError(f"--minutes must be between {MIN_MINUTES} and {MAX_MINUTES}, got {minutes}")
    if not 0.01 <= scale <= 50:
        raise UsageError(f"--scale must be between 0.01 and 50, got {scale}")
    if latency_regression is not None and not 0.1 <= latency_regression <= 20:
        raise UsageError(
            f"the latency regression factor must be between 0.1 and 20, got {latency_regression}"
        )
    if regression_endpoint is not None and latency_regression is None:
        raise UsageError("a regression endpoint needs a latency regression factor")
    spec = SCENARIOS[scenario]
    # The scenario name is mixed into the seed so that samples of different scenarios differ in everything.
    rng = np.random.default_rng([seed, zlib.crc32(scenario.encode())])
    platform = build_platform(rng, seed, minutes or DEFAULT_MINUTES, scale)
    if noise_seed is not None and noise_seed != seed:
        # The generator of `noise_seed`, advanced past its own platform: the noise that seed would draw.
        rng = np.random.default_rng([noise_seed, zlib.crc32(scenario.encode())])
        build_platform(rng, noise_seed, minutes or DEFAULT_MINUTES, scale)
    base = baseline_rate(rng, platform)
    effects = spec.build(rng, platform)
    if latency_regression is not None:
        routes = [e.route for e in platform.endpoints]
        if regression_endpoint is not None and regression_endpoint not in routes:
            raise UsageError(
                f"unknown endpoint {regression_endpoint!r}; this platform has {', '.join(routes)}"
            )
        # Drawn from a side generator, so the rest of the incident is the same as without the knob.
        side = np.random.default_rng([seed, 1])
        route = regression_endpoint or routes[int(side.integers(0, len(routes)))]
        effects.parameters.update(
            {
                "regression_endpoint": route,
                "regression_factor": latency_regression,
                "regression_span": "postgres",
            }
        )
    requests = simulate_requests(
        rng,
        platform,
        base,
        effects,
        latency_regression=latency_regression,
        regression_endpoint=effects.parameters.get("regression_endpoint"),
    )
    truth = _truth(spec, seed, platform, effects)
    if noise_seed is not None and noise_seed != seed:
        truth["noise_seed"] = noise_seed
    raw: dict[str, bytes] = {}
    if "access" in formats:
        raw["access"] = write_access_log(platform, requests)
    if "jsonl" in formats:
        raw["jsonl"] = write_app_jsonl(platform, requests, effects)
    if "text" in formats:
        raw["text"] = write_app_text(rng, platform, requests, effects)
    if "traces" in formats:
        raw["traces"] = write_traces(rng, platform, requests, effects, trace_sample)
    # zlib releases the GIL: the files compress in parallel, each to the same bytes as alone.
    with ThreadPoolExecutor(max_workers=len(raw) or 1) as pool:
        packed = pool.map(
            lambda kv: (FILE_NAMES[kv[0]], _gzip(kv[1], Path(FILE_NAMES[kv[0]]).stem)), raw.items()
        )
        files: dict[str, bytes] = dict(packed)
    files["truth.json"] = orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return Incident(scenario=scenario, seed=seed, files=files, truth=truth)


def _generate_wild(scenario: str, seed: int, minutes: int | None, scale: float) -> Incident:
    """An incident in the wild (`rca.simulate.wild`): its own formats, files as the systems write them."""
    if minutes is not None and not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise UsageError(f"--minutes must be between {MIN_MINUTES} and {MAX_MINUTES}, got {minutes}")
    if not 0.01 <= scale <= 50:
        raise UsageError(f"--scale must be between 0.01 and 50, got {scale}")
    files, truth = generate_wild(scenario, seed, minutes=minutes, scale=scale)
    files["truth.json"] = orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return Incident(scenario=scenario, seed=seed, files=files, truth=truth)


def simulate(
    scenario: str,
    seed: int = 0,
    out: Path | None = None,
    minutes: int | None = None,
    scale: float = 1.0,
    noise_seed: int | None = None,
    latency_regression: float | None = None,
    regression_endpoint: str | None = None,
) -> list[Path]:
    """Generate one incident and write it under `out`; returns the written paths."""
    if out is None:
        raise ValueError("out is required")
    incident = generate(
        scenario,
        seed=seed,
        minutes=minutes,
        scale=scale,
        noise_seed=noise_seed,
        latency_regression=latency_regression,
        regression_endpoint=regression_endpoint,
    )
    return incident.write(Path(out))
