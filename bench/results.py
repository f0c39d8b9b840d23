"""What a run produces: figures (value, ratio to its baseline, target, met?), the raw load
results behind them, the series the plot draws, and any correctness failure."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    key: str
    label: str
    value: float | None
    unit: str
    ratio: float | None = None
    ratio_of: str = ""  # what the ratio divides by, e.g. "bare"
    target: str = ""
    met: bool | None = None  # None: no target
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("value", "ratio"):
            if isinstance(data[key], float) and not math.isfinite(data[key]):
                data[key] = None
        return data


@dataclass
class Run:
    """One backend's results."""

    backend: str
    deployment: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # correctness: the run is broken
    broken: list[str] = field(default_factory=list)  # a phase crashed
    server_log: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> findings
    seconds: float = 0.0

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def figure(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "deployment": self.deployment,
            "seconds": round(self.seconds, 1),
            "figures": [f.to_json() for f in self.figures],
            "failures": self.failures,
            "broken": self.broken,
            "server_log": self.server_log,
            "series": self.series,
            "raw": self.raw,
        }


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or not base or math.isnan(base) or math.isnan(value):
        return None
    return value / base


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None or math.isnan(value) else value >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None or math.isnan(value) else value <= goal
