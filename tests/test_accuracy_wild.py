"""Accuracy over 20 seeds on the incidents in the wild (issue #15): `rca simulate bad-release`, `flag-flip`,
`uninstrumented-dependency`, `host-leak`, `client-flood`. Each seed draws its names, rates, onsets,
magnitudes and the format of every file (structlog, ECS, zap, pino, Apache `%D` with local offsets, Spring
Boot, rsyslog, OTLP with old and new semantic conventions). The true cause must rank first in at least
90% of the seeds (AC@1 >= 0.9) and in the top 3 in 19 of 20; each scenario's own property holds on every seed
(the decoy change ruled out with figures, the host named, the flood's window found two hours in).

Small volumes keep the sweep fast: a fraction of each scenario's default traffic (`SETUP`).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from rca.simulate import WILD_SCENARIOS
from rca.truth import matches

SEEDS = range(20)
# scenario -> (minutes or None for the scenario's default, traffic scale)
SETUP = {
    "bad-release": (150, 0.3),
    "flag-flip": (150, 0.3),
    "uninstrumented-dependency": (30, 0.6),
    "host-leak": (40, 0.5),
    "client-flood": (None, 0.5),
}


@pytest.fixture(scope="session")
def wild(simulated):
    """scenario -> its 20 analysed incidents, generated once per session (`simulated`, tests/conftest.py)."""

    def get(scenario: str):
        minutes, scale = SETUP[scenario]
        return simulated(scenario, SEEDS, minutes=minutes, scale=scale)

    return get


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(WILD_SCENARIOS))
def test_cause_ranked_first(scenario, wild):
    at1, misranked, outside = 0, [], []
    for o in wild(scenario):
        ranks = [h.rank for h in o.report.hypotheses[:3] if matches(h, o.truth["root_cause"])]
        at1 += bool(o.report.incident_detected and ranks and ranks[0] == 1)
        if not (ranks and ranks[0] == 1):
            misranked.append((o.seed, o.truth["parameters"], [(h.kind, h.subject, h.where, h.score) for h in o.report.hypotheses[:3]]))
        if not ranks:
            outside.append(o.seed)
    assert at1 / len(SEEDS) >= 0.9, misranked
    assert len(outside) <= 1, misranked  # AC@3 >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["bad-release", "flag-flip"])
def test_decoy_change_ruled_out_with_figures(scenario, wild):
    """The change that moved nothing (another service's release, an unrelated key's reload) is ruled out,
    with the before and after figures; the change that did is not."""
    missing = []
    for o in wild(scenario):
        decoy = o.truth["decoys"][0]
        ruled = [r for r in o.report.ruled_out if r.kind == decoy["kind"] and str(decoy["subject"]) in r.subject]
        if not (ruled and " -> " in ruled[0].reason and "ms" in ruled[0].reason):
            missing.append((o.seed, decoy, [(r.kind, r.subject) for r in o.report.ruled_out]))
        assert not any(set(o.truth["root_cause"]["subject_has"]) & set(r.subject.split()) for r in o.report.ruled_out), o.seed
    assert not missing, missing


def test_bad_release_quotes_what_moved(wild):
    """The top cause's summary quotes the slowed route or the canary split, not only service-wide figures."""
    for o in wild("bad-release"):
        top = o.report.hypotheses[0]
        if matches(top, o.truth["root_cause"]):
            routes = o.truth["parameters"]["slowed_routes"]
            assert "new release served" in top.summary or any(r in top.summary for r in routes), (o.seed, top.summary)


def test_host_leak_names_the_host_above_its_errors(wild):
    for o in wild("host-leak"):
        host = o.truth["parameters"]["host"]
        top = o.report.hypotheses[0]
        assert (top.kind, top.where) == ("resource_exhaustion", host), (o.seed, [(h.kind, h.subject, h.where) for h in o.report.hypotheses[:3]])
        # the crash dump written as plain text into the JSON stream is an event, not a rejected line
        streams = [i for i in o.report.inputs if i.format == "jsonl"]
        assert streams and all(i.rejected == 0 for i in streams), o.seed
        assert any(any("not JSON read as plain text" in w for w in i.warnings) for i in streams), o.seed


def test_client_flood_window_found_two_hours_in(wild):
    """Three hours of Apache `%D` in a local offset: the incident starts where the flood does (its recovery
    later in the data does not pull the window), times aligned to UTC."""
    for o in wild("client-flood"):
        start = o.report.context.incident.start
        onset = _ts(o.truth["root_cause"]["onset"])
        assert abs((start - onset).total_seconds()) <= 3 * o.report.context.bucket_s, (o.seed, start, onset)
