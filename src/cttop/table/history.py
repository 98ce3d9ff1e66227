"""Fill history, event rates and the forecast: where the table is heading, from a flow model.

The table is a queue: flows arrive at new/s and each stays its lifetime, so it
tends to the level new/s × mean lifetime (Little's law), approaching it as
dN/dt = new/s − N/lifetime. The lifetime comes from the timeouts in force for the
table's state mix (:func:`cttop.table.timeouts.model_lifetime`), unless entries are
seen to leave faster than their timeouts imply (connections closing, flushes,
early_drop) while no more leaves than comes: then from what leaves. What leaves
is new/s minus the kernel count's growth, never the destroy events, which miss
entries made before anyone listened.

Rates and growth are least-squares slopes over the last :data:`WINDOW` seconds, which is
the smoothing: a fit of the count alone (the straight line this replaces) says
"full in 1 min" of a storm that is about to level off, and "draining" of a table
that fills faster than events keep up. With too little history, no events, or a
model that contradicts the kernel's count, the forecast is "unknown".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, NamedTuple

WINDOW: Final = 10.0  # seconds the rates are averaged over
MIN_SPAN: Final = 3.0  # seconds of history needed before saying anything
# Growth under 1 % of the table (or of 100 entries) a minute is no direction at all.
FLAT_PER_MIN: Final = 0.01
FLAT_FLOOR: Final = 100
# A level within this share of the count is where the table already is.
NEAR: Final = 0.10


class Sample(NamedTuple):
    t: float
    entries: int  # the kernel's count
    created: int | None  # entries created so far (events); None without events
    lifetime: float | None  # the timeout model's mean lifetime at this moment


@dataclass(frozen=True)
class Forecast:
    """``kind``: 'levels-off' (near ``level``), 'full-in' (``seconds``), 'full', 'draining' (to ``level``), 'unknown'."""

    kind: str
    level: float | None = None
    seconds: float | None = None
    maximum: int = 0

    def text(self) -> str:
        if self.kind == "full-in" and self.seconds is not None:
            return f"full in {_eta(self.seconds)}"
        if self.kind == "levels-off" and self.level is not None:
            share = f" ({self.level / self.maximum:.0%} of max)" if self.maximum else ""
            return f"levels off near {_round(self.level)}{share}"
        if self.kind == "draining" and self.level is not None:
            return f"draining to {_round(self.level)}"
        return self.kind


def _eta(seconds: float) -> str:
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _round(n: float) -> str:
    """Two significant figures: the model is no more precise, and the text should not flicker."""
    if n < 100:
        return f"{n:.0f}"
    digits = math.floor(math.log10(n)) - 1
    v = round(n, -digits)
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.{max(0, 1 - int(math.log10(v / div)))}f}{suffix}"
    return f"{v:.0f}"


@dataclass(frozen=True)
class Flow:
    """The flow model over the window: what came, what grew, and what the table tends to."""

    arrivals: float  # new entries/s
    growth: float  # the kernel count's change/s
    lifetime: float  # mean seconds an entry stays
    count: int

    @property
    def departures(self) -> float:
        return self.arrivals - self.growth

    @property
    def level(self) -> float:
        return self.arrivals * self.lifetime


def _slope(points: list[tuple[float, int]]) -> float:
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0


class FillHistory:
    """Samples over a window; the forecast fits the flow model to the last :data:`WINDOW` seconds of them."""

    def __init__(self, window: float = 600.0) -> None:
        self.window = window
        self.samples: deque[Sample] = deque()

    def add(self, t: float, count: int, created: int | None = None, lifetime: float | None = None) -> None:
        self.samples.append(Sample(t, count, created, lifetime))
        while self.samples and self.samples[0].t < t - self.window:
            self.samples.popleft()

    def values(self, n: int) -> list[int]:
        """The last ``n`` counts, oldest first, for a sparkline."""
        return [s.entries for s in list(self.samples)[-n:]]

    def flow(self) -> Flow | None:
        """The model over the last WINDOW seconds; None without events, lifetimes or MIN_SPAN of history."""
        if not self.samples:
            return None
        end = self.samples[-1]
        # Samples without events (before the collector went live) cannot say what arrived: the window starts after.
        recent = [s for s in self.samples if s.t >= end.t - WINDOW and s.created is not None]
        if not recent or end.created is None:
            return None
        if end.t - recent[0].t < MIN_SPAN:
            return None
        lifetimes = [s.lifetime for s in recent if s.lifetime is not None]
        if not lifetimes:
            return None
        # Least-squares slopes, not the window's ends: flows come in bursts, and the kernel's count drops in
        # steps as its garbage collector reaps expired entries; the ends alone would land on either.
        growth = _slope([(s.t, s.entries) for s in recent])
        created = _slope([(s.t, s.created) for s in recent if s.created is not None])
        # Arrivals are at least the growth: a count rising faster than NEW events means events were lost.
        arrivals = max(created, growth, 0.0)
        lifetime = sum(lifetimes) / len(lifetimes)
        count = end.entries
        # Entries leaving faster than their timeouts imply (closed, flushed, evicted) live shorter: take what
        # leaves, N / departures (Little's law). Only while no more leaves than comes: a table draining after a
        # storm loses its old entries faster than N/T too, yet each of them lived its full timeout.
        leaving = arrivals - growth
        if count > 0 and count / lifetime * (1 + NEAR) < leaving <= arrivals * (1 + NEAR):
            lifetime = count / leaving
        return Flow(arrivals, growth, lifetime, count)

    def forecast(self, maximum: int) -> Forecast:
        m = self.flow()
        if m is None or maximum <= 0:
            return Forecast("unknown", maximum=maximum)
        n, level = m.count, m.level
        flat = FLAT_PER_MIN * max(n, FLAT_FLOOR) / 60
        if level >= maximum:
            if n >= maximum:
                return Forecast("full", level, 0.0, maximum)
            if m.growth <= flat:
                return Forecast("unknown", level, maximum=maximum)  # "full" by the model, but not filling
            return Forecast("full-in", level, (maximum - n) / m.growth, maximum)
        if level < n * (1 - NEAR):
            if m.growth > flat:
                return Forecast("unknown", level, maximum=maximum)  # "draining" by the model, yet it grows
            if m.growth < -flat:
                return Forecast("draining", level, maximum=maximum)
            # Lower by the model, level by the count: entries outlive their timeout a little (the kernel reaps
            # expired ones in batches), and a table that does not shrink is not draining.
            return Forecast("levels-off", level, maximum=maximum)
        if level > n * (1 + NEAR) and m.growth < -flat:
            return Forecast("unknown", level, maximum=maximum)  # heading up by the model, yet it shrinks
        return Forecast("levels-off", level, maximum=maximum)


class Rate:
    """Per-second rate of a monotonically increasing counter between two readings; None before the second."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self.value: float | None = None

    def update(self, t: float, total: int) -> float | None:
        if self._last is not None and t > self._last[0]:
            # Counters reset (module reload, namespace switch) would give a negative rate.
            self.value = max(0, total - self._last[1]) / (t - self._last[0])
        self._last = (t, total)
        return self.value
