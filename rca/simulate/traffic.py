"""Requests of a simulated service in the wild as columns, and the log events that go with them: the data
`rca.simulate.wild` builds and `rca.simulate.formats` writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # /api/orders/{id}
    median_ms: float
    sigma: float
    weight: float


@dataclass
class Traffic:
    """Requests as columns (one element per request), and the log events that go with them."""

    t: np.ndarray  # seconds from the start
    service: np.ndarray
    host: np.ndarray
    route: np.ndarray  # index into routes
    status: np.ndarray
    duration_ms: np.ndarray
    version: np.ndarray
    client: np.ndarray
    agent: np.ndarray
    routes: list[Route]
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    events: list[dict[str, Any]] = field(default_factory=list)  # t, level, service, host, logger, message, fields, text

    def path(self, rng: np.random.Generator) -> np.ndarray:
        ids = rng.integers(1, 99999, self.t.size).astype(str)
        templates = np.array([r.template for r in self.routes], dtype=object)[self.route]
        return np.array([tpl.replace("{id}", i) for tpl, i in zip(templates, ids, strict=True)], dtype=object)

    def method(self) -> np.ndarray:
        return np.array([r.method for r in self.routes], dtype=object)[self.route]

    def event(self, t: float, level: str, service: str, host: str, logger: str, message: str, text: str | None = None,
              **fields: Any) -> None:
        """A log event; `text` is what a plain-text stream writes instead of a record (crash dumps)."""
        self.events.append({"t": float(t), "level": level, "service": service, "host": host, "logger": logger,
                            "message": message, "fields": fields, "text": text})
