"""Detectors: anomalies in the canonical frames, as typed findings.

Each detector family lives in its own module in this package and registers its functions with
`@register("name")`. A detector is a function `(Dataset, AnalysisContext) -> list[Finding]`; it reads
frames only (it never opens a file and knows nothing of formats) and works in polars group-bys over
time buckets. Every public module here is imported on first use of the registry, so adding a
detector family touches exactly one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rca.model import AnalysisContext, Dataset, Finding

DetectorFn = Callable[["Dataset", "AnalysisContext"], "list[Finding]"]


@dataclass(frozen=True)
class Detector:
    name: str
    family: str  # the module it lives in
    run: DetectorFn
    order: int  # lower runs first; findings are sorted deterministically anyway


_REGISTRY: dict[str, Detector] = {}


def register(name: str, order: int = 100) -> Callable[[DetectorFn], DetectorFn]:
    """Decorator: add a detector function to the registry under `name`."""

    def decorate(fn: DetectorFn) -> DetectorFn:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"detector {name!r} registered twice")
        family = fn.__module__.rsplit(".", 1)[-1]
        _REGISTRY[name] = Detector(name=name, family=family, run=fn, order=order)
        return fn

    return decorate


def _load_all() -> None:
    from rca.plugins import import_submodules

    import_submodules(__name__, __path__)


def all_detectors() -> list[Detector]:
    """Every registered detector, in run order."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda d: (d.order, d.name))


def run_all(
    dataset: Dataset, context: AnalysisContext, only: set[str] | None = None, on_start: Callable[[str, int, int], None] | None = None
) -> list[Finding]:
    """Run every registered detector (or those named in `only`) and return all findings,
    sorted deterministically (detector, kind, dimension, subject). `on_start(name, i, n)` is called
    before the i-th (1-based) of n detectors runs, for progress."""
    findings: list[Finding] = []
    chosen = [d for d in all_detectors() if only is None or d.name in only]
    for index, detector in enumerate(chosen, 1):
        if on_start is not None:
            on_start(detector.name, index, len(chosen))
        findings.extend(detector.run(dataset, context))
    return sorted(findings, key=lambda f: (f.detector, f.kind, f.dimension, f.subject, f.metric))
