"""Generated microservice incidents end to end (files in, ranked hypotheses out), from
`rca.simulate.microservice`: 30 minutes of per-pod metrics and 3 minutes of traces beginning a minute
before the fault, in every trace format (OTLP/JSON, OTLP protobuf, Jaeger) and metric format
(Prometheus-style CSV, OTLP/JSON metrics) in turn. Faults: CPU on one pod of a service, a network delay
on one pod (one edge's calls wait), a slowdown in the deepest of three chained callers; on odd seeds an
unrelated service's memory jumps before the fault. Names, pods, topology and numbers vary by seed; the
service at fault must rank first on every seed (AC@1 = 1 over the seeds), with its pod when one of several is at fault."""

from __future__ import annotations

import pytest

from rca.pipeline import AnalyzeOptions, analyze
from rca.simulate.microservice import FAULTS, METRIC_FORMATS, TRACE_FORMATS, generate, write

SEEDS = range(8)
EXPECTED_KIND = {"cpu": "service_fault", "network": "network_delay", "propagation": "service_fault"}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fault", FAULTS)
def test_faulty_service_ranks_first(tmp_path, fault, seed):
    incident = generate(seed, fault)
    trace_format, metric_format = TRACE_FORMATS[seed % len(TRACE_FORMATS)], METRIC_FORMATS[(seed // len(TRACE_FORMATS)) % len(METRIC_FORMATS)]
    paths = write(incident, tmp_path, trace_format, metric_format)
    report = analyze([str(p) for p in paths], AnalyzeOptions())
    top = report.hypotheses[0]
    assert (top.kind, top.subject, top.where) == (EXPECTED_KIND[fault], incident.faulty, incident.expected_where), (
        trace_format, metric_format, [(h.kind, h.subject, h.where, round(h.score, 2)) for h in report.hypotheses[:3]])
