"""Fill history, event rates and the time-to-full forecast."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Forecast:
    """``kind`` is 'full-in' (with ``seconds``), 'stable', 'draining' or 'full' (already at max)."""

    kind: str
    seconds: float | None = None

    def text(self) -> str:
        if self.kind == "full-in" and self.seconds is not None:
            s = int(self.seconds)
            return f"full in {s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else \
                f"full in {s // 60}m{s % 60:02d}s" if s >= 60 else f"full in {s}s"
        return self.kind


class FillHistory:
    """Samples of (time, count) over a window; the forecast fits a line to the recent ones."""

    def __init__(self, window: float = 600.0, trend: float = 60.0) -> None:
        self.window = window
        self.trend = trend  # seconds of history the forecast looks at
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, count: int) -> None:
        self.samples.append((t, count))
        while self.samples and self.samples[0][0] < t - self.window:
            self.samples.popleft()

    def values(self, n: int) -> list[int]:
        """The last ``n`` counts, oldest first, for a sparkline."""
        return [c for _, c in list(self.samples)[-n:]]

    def slope(self) -> float | None:
        """Least-squares entries per second over the trend window; None with under two samples."""
        if not self.samples:
            return None
        end = self.samples[-1][0]
        pts = [(t, c) for t, c in self.samples if t >= end - self.trend]
        if len(pts) < 2:
            return None
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        mc = sum(c for _, c in pts) / n
        var = sum((t - mt) ** 2 for t, _ in pts)
        if var == 0:
            return None
        return sum((t - mt) * (c - mc) for t, c in pts) / var

    def forecast(self, maximum: int) -> Forecast:
        if not self.samples or maximum <= 0:
            return Forecast("stable")
        count = self.samples[-1][1]
        if count >= maximum:
            return Forecast("full")
        slope = self.slope()
        # Under 0.1% of max per minute is noise, not a trend worth an alarm.
        if slope is None or abs(slope) * 60 < maximum * 0.001:
            return Forecast("stable")
        if slope < 0:
            return Forecast("draining")
        return Forecast("full-in", (maximum - count) / slope)


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
