"""Ground truth of simulated incidents (`truth.json`) and the one rule for "the tool found it"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rca.findings import ServiceTrafficDetails
from rca.model import Finding, Hypothesis
from rca.ranking.registry import finding_to_hypothesis
from rca.ranking.tuning import TUNING


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read a truth.json file."""
    return orjson.loads(Path(path).read_bytes())


def matches(candidate: Hypothesis | Finding, root_cause: dict[str, Any] | None) -> bool:
    """Does a hypothesis (or a finding) name the true root cause? Kinds must agree, and the subject (or
    where) must be one of the truth's accepted subjects, compared case-insensitively; `*` accepts any.
    A truth with `subject_has` (a change: `flag checkout new_pricing`) also needs one of those words in
    the subject."""
    if root_cause is None:
        return False
    kind = candidate.kind if isinstance(candidate, Hypothesis) else finding_to_hypothesis().get(candidate.kind)
    if kind != root_cause["kind"]:
        return False
    if "subject_has" in root_cause:
        words = set(str(candidate.subject).lower().split())
        if not words & {str(w).lower() for w in root_cause["subject_has"]}:
            return False
    accept = {str(a).lower() for a in root_cause.get("accept", [])}
    if "*" in accept:
        return True
    names = {str(candidate.subject).lower()}
    if candidate.where:
        names.add(str(candidate.where).lower())
    return bool(names & accept)


# The truth's dimension -> the finding dimensions that name it.
FINDING_DIMENSIONS = {
    "source": {"source", "source_net", "user_agent", "client"},
    "endpoint": {"endpoint"},
    "resource": {"resource"},
    "operation": {"operation"},
    "clients": {"service"},
}


def finding_names_cause(finding: Finding, root_cause: dict[str, Any] | None) -> bool:
    """Does a finding name the true root cause with the right kind, subject and dimension? A surge
    spread over many clients is the vantage's own spike, told by its number of contributing clients."""
    if root_cause is None or not matches(finding, root_cause):
        return False
    if finding.dimension not in FINDING_DIMENSIONS.get(root_cause.get("dimension", ""), {finding.dimension}):
        return False
    if root_cause.get("dimension") != "clients":
        return True
    details = finding.details
    return isinstance(details, ServiceTrafficDetails) and details.clients >= TUNING.broad_surge_min_clients
