"""`network_delay`: a service whose pod makes its calls wait, with no resource shift on its pods.

The evidence and its localisation are the service-fault kind's (`service_fault.service_evidence`): the
service the slow call edges have in common. It is a network delay, not a "dependency slowdown" of its
callers, when the calls touching it wait longer beyond its own server time while none of its pods'
resources (cpu, memory, network, disk, syscalls) shifted; `where` names the pod when one carries the waits.
"""

from __future__ import annotations

from rca.figures import hhmm
from rca.model import Finding, Hypothesis
from rca.ranking.candidate import Candidate
from rca.ranking.kinds.service_fault import NETWORK_KIND, candidates_of_kind, evidence_clause
from rca.ranking.prose import effect_clause
from rca.ranking.registry import HypothesisKind, Observations, register_kind


@register_kind
class NetworkDelay(HypothesisKind):
    name = NETWORK_KIND
    finding_kinds = ("call_wait_shift",)
    suggestions = (
        "Check the network path of the named pod: its node's interface, CNI, any traffic shaping or sidecar proxy.",
        "Compare the callers' client-side time with the pod's server time to confirm where the time goes.",
        "Move the pod to another node and see whether the waits follow it.",
    )
    order = 26

    def candidates(self, seen: Observations) -> list[Candidate]:
        return candidates_of_kind(self.name, seen)

    def summary(self, cand: Candidate, explained: list[Finding]) -> str:
        return (f"Network delay at {cand.where or cand.subject} from {hhmm(cand.onset)}: {evidence_clause(cand)}, with no resource "
                f"shift on its pods{effect_clause(cand, explained)}.")

    def cause_phrase(self, hypothesis: Hypothesis) -> str:
        return f"the network delay at {hypothesis.where or hypothesis.subject}"
