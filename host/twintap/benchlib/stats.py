"""Latency series and the figures of the report.

A :class:`Series` is a list of round-trip times (seconds) measured back to back by one
client: p50/p99 and requests per second (requests over the wall time of the whole run).
A :class:`Figure` is one line of the report: a value, the baseline measured in the same
run, and their ratio (value / baseline).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linear between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Series:
    """Round trips of one client against one target: samples in seconds, wall time."""

    name: str
    samples: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0

    @property
    def p50(self) -> float:
        """Median round trip (seconds)."""
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        """99th percentile round trip (seconds)."""
        return percentile(self.samples, 99)

    @property
    def rate(self) -> float:
        """Requests per second over the whole run (one request in flight)."""
        return len(self.samples) / self.wall if self.wall > 0 else math.nan

    def cdf(self, points: int = 60) -> list[tuple[float, float]]:
        """(latency ms, fraction) pairs for a CDF plot, ``points`` of them at most."""
        s = sorted(self.samples)
        if not s:
            return []
        step = max(1, len(s) // points)
        out = [(s[i] * 1000, (i + 1) / len(s)) for i in range(0, len(s), step)]
        out.append((s[-1] * 1000, 1.0))
        return out

    def summary(self) -> dict:
        """What the JSON report keeps of a series."""
        return {"name": self.name, "n": len(self.samples), "errors": self.errors,
                "p50_ms": self.p50 * 1000, "p99_ms": self.p99 * 1000,
                "max_ms": max(self.samples) * 1000 if self.samples else math.nan,
                "rate_per_s": self.rate, "cdf_ms": self.cdf()}


@dataclass
class Figure:
    """One line of the report. ``better`` says which direction is good ("lower"/"higher")."""

    section: str
    name: str
    unit: str
    value: float | None
    baseline: float | None
    baseline_name: str
    better: str = "lower"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / baseline (None when either is missing or the baseline is 0)."""
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        if math.isnan(self.value) or math.isnan(self.baseline):
            return None
        return self.value / self.baseline

    def to_json(self) -> dict:
        """The figure as a JSON object, with its ratio."""
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def fmt(v: float | None, unit: str) -> str:
    """A value for the table: a precision that suits its size, and its unit."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit in ("B", "KB", "count"):
        return f"{v:,.0f}" + ("" if unit == "count" else f" {unit}")
    a = abs(v)
    digits = 3 if a < 1 else 2 if a < 10 else 1 if a < 100 else 0
    return f"{v:,.{digits}f} {unit}"


def fmt_ratio(r: float | None) -> str:
    """A ratio for the table: ``2.41×``."""
    if r is None:
        return "-"
    return f"{r:.2f}×" if r < 100 else f"{r:,.0f}×"
