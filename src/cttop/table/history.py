"""Fill history, event rates and the forecast: where the table is heading, from a flow model.

The table is a queue: flows arrive at new/s and each stays its lifetime, so it
tends to the level new/s × mean lifetime (Little's law), approaching it as
dN/dt = new/s − N/lifetime. The lifetime comes from the timeouts in force for the
table's state mix (:func:`cttop.table.timeouts.model_lifetime`), unless entries are
seen to leave faster than their timeouts imply (connections closing, flushes,
early_drop) while no more leaves than comes: then from what leaves. What leaves
is new/s minus the live count's growth, never the destroy events, which miss
entries made before anyone listened.

The model's level counts live entries, so it is compared with the live count, not
with the kernel's. The kernel's count (nf_conntrack_count) also holds entries whose
timeout has run out until something reaps them: the conntrack GC worker (kernel
6.x: one scan of the whole host's table every 1..60 s, spaced by the average
timeout left, so a host with long-lived entries anywhere scans rarely), a dump
or listing (which skips expired entries and evicts some), or early_drop when the
table is full. Between reaps that excess grows at the rate entries expire, so on
a steady table the kernel's count saw-tooths 20-60 % above the live entries (seen
on these machines) and its slope over a few seconds is the expiry rate, then a cliff: no
trend. :class:`LiveCount` counts the live entries instead: each dump lists
exactly them, with the timeout each has left; between dumps, the last dump's,
plus the NEW events since, minus those of its entries whose timeout has run out
since, whenever the kernel gets round to reaping them. Expired entries do not
keep a table full either: at the max, early_drop reaps those near a new entry's
hash and wakes the GC worker at once. Between dumps the last dump's timeouts also
say how many entries are due to end (:meth:`LiveCount.ending`): a storm's table,
nothing of which has left yet, is draining before it shows.

Rates and growth are least-squares slopes over the last :data:`WINDOW` seconds, which is
the smoothing: a fit of the count alone (the straight line this replaces) says
"full in 1 min" of a storm that is about to level off, and "draining" of a table
that fills faster than events keep up. With too little history, no events, no
flows coming or going, or a model that contradicts the live count, the forecast
is "unknown".
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, NamedTuple

WINDOW: Final = 10.0  # seconds the rates are averaged over
MIN_SPAN: Final = 3.0  # seconds of history needed before saying anything
# Growth under 1 % of the table (or of 100 entries) a minute is no direction at all.
FLAT_PER_MIN: Final = 0.01
FLAT_FLOOR: Final = 100
# A level within this share of the count is where the table already is.
NEAR: Final = 0.10
# The kernel gives an entry's timeout left in whole seconds, rounded down: it ends within the second after.
TICK: Final = 1.0
# Fewer entries due to end between two dumps than this say nothing of how many traffic renews.
MEASURED_ENDINGS: Final = 100


class Sample(NamedTuple):
    t: float
    entries: int  # the kernel's count
    created: int | None  # entries created so far (events); None without events
    lifetime: float | None  # the timeout model's mean lifetime at this moment
    live: int  # the live entries (LiveCount), what the model's level is compared with
    ending: float  # entries/s the last dump's timeouts say will end over the next WINDOW (LiveCount.ending)


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
    growth: float  # the live count's change/s
    lifetime: float  # mean seconds an entry stays
    count: int
    ending: float = 0.0  # entries/s due to end by their timeouts over the next WINDOW

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
        self._since = -math.inf  # the forecast fits samples from here on (see changed)

    def changed(self, t: float) -> None:
        """The table was changed from here at ``t`` (a flush): the forecast fits only what came after. A window
        holding the flush's drop read as a table draining while it refilled ("draining to 3.1k", 1k new a
        second). The history the sparkline draws keeps it."""
        self._since = t

    def add(self, t: float, count: int, created: int | None = None, lifetime: float | None = None,
            live: int | None = None, ending: float = 0.0) -> None:
        """``count``: the kernel's; ``live`` and ``ending``: the live entries, when known apart from it, and
        how fast they are due to end (LiveCount)."""
        self.samples.append(Sample(t, count, created, lifetime, count if live is None else live, ending))
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
        recent = [s for s in self.samples if s.t >= max(end.t - WINDOW, self._since) and s.created is not None]
        if not recent or end.created is None:
            return None
        if end.t - recent[0].t < MIN_SPAN:
            return None
        lifetimes = [s.lifetime for s in recent if s.lifetime is not None]
        if not lifetimes:
            return None
        # Least-squares slopes, not the window's ends: flows come in bursts, and the live count steps at each
        # dump (it is read afresh there); the ends alone would land on either.
        growth = _slope([(s.t, s.live) for s in recent])
        created = _slope([(s.t, s.created) for s in recent if s.created is not None])
        # Arrivals are at least the growth: a count rising faster than NEW events means events were lost.
        arrivals = max(created, growth, 0.0)
        lifetime = sum(lifetimes) / len(lifetimes)
        count = end.live
        # Entries leaving faster than their timeouts imply (closed, flushed, evicted) live shorter: take what
        # leaves, N / departures (Little's law). Only while no more leaves than comes: a table draining after a
        # storm loses its old entries faster than N/T too, yet each of them lived its full timeout.
        leaving = arrivals - growth
        if count > 0 and count / lifetime * (1 + NEAR) < leaving <= arrivals * (1 + NEAR):
            lifetime = count / leaving
        return Flow(arrivals, growth, lifetime, count, end.ending)

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
        if m.arrivals * WINDOW < 1:
            # Nothing came in the window: Little's law has no throughput to go by, and new/s × lifetime = 0
            # is no measurement. Entries leaving with nothing to replace them (or due to, by the timeouts the
            # last dump saw) drain to 0; a table neither gaining nor losing (injected entries waiting out long
            # timeouts, or long sessions whose traffic renews their timers: the counts cannot tell which) is
            # unknown.
            if m.growth < -flat or m.ending > flat:
                return Forecast("draining", 0.0, maximum=maximum)
            return Forecast("unknown", maximum=maximum)
        if level < n * (1 - NEAR):
            # Lower by the model. Draining if it shrinks, or is about to: so many of its entries' timeouts (as
            # the last dump saw them, less the share traffic renews) run out within the window that, beyond what
            # new ones bring, the table loses more than NEAR of itself (a storm's, nothing of which has left
            # yet). A smaller loss is one that shows in the live count before long, or a guess: entries of a
            # flood that renews its tuples, most of them due by the timeouts yet renewed each round.
            if m.growth < -flat or (m.ending - m.arrivals) * WINDOW > NEAR * n:
                return Forecast("draining", level, maximum=maximum)
            if m.growth > flat:
                return Forecast("unknown", level, maximum=maximum)  # "draining" by the model, yet it grows
            # Level by the live count, and nothing due to end: its entries outlive their timeout (every packet
            # renews an entry's timer, so a flow stays as long as it talks plus one timeout). What leaves is
            # what comes, and by Little's law the table holds where it is.
            return Forecast("levels-off", n, maximum=maximum)
        if level > n * (1 + NEAR) and m.growth < -flat:
            return Forecast("unknown", level, maximum=maximum)  # heading up by the model, yet it shrinks
        return Forecast("levels-off", level, maximum=maximum)


class LiveCount:
    """The live entries at any moment, from the last dump and the events since (see the module docstring).

    A dump lists exactly the live entries, each with the timeout it has left. Until the
    next, the live count is the dump's, plus the NEW events since, minus the dumped
    entries whose timeout has run out since. What this misses is bounded by what moves
    between two dumps (seconds apart, and read afresh at each): dumped entries whose
    timers traffic renews after the dump are taken as gone, but for the share of them
    renewed between the last two dumps; an entry closed early
    (RST, flush, early_drop) or a new one whose timeout is shorter than the time to
    the next dump (none of the defaults for a new entry is) as still there. It is
    never more than the kernel's count, which holds every live entry.
    """

    def __init__(self) -> None:
        self._dump: tuple[int, int] | None = None  # the dump's live entries, and the NEW events counted by then
        self._ends: list[float] = []  # when the dumped entries end (the source's clock), sorted, each once
        self._at_end: list[int] = []  # how many end at each of those
        self._ended: list[int] = []  # how many end at it or before
        # The share of the entries due to end between the last two dumps that the later one still listed:
        # traffic renewed their timers. A flood cycling over a fixed set of tuples keeps the whole table so, no
        # NEW event at all, and counted as ending, the entries read as a table draining until each dump put them
        # back. The entries due to end by this dump's timeouts are expected to be renewed alike.
        self._renewed = 0.0

    def dumped(self, live: int, created: int, timeouts: Iterable[tuple[int, int]] | Counter[tuple[int, int]],
               read_from: float, read_to: float, renewals: bool = True) -> None:
        """A dump read from ``read_from`` to ``read_to``: its size, the NEW events counted by its end, and
        each entry's (second it was read, whole seconds of timeout it had left then), or those counted.

        ``renewals``: whether it measures the share traffic renews. Not a dump read right after a change made from
        here: the flows a flush took were not due to end, and that share would read as none (after flushing a
        flood while the rest of the table kept talking, "draining to 470" as the table grew)."""
        if self._dump is not None and renewals:
            due = self._ended_by(read_to)
            if due >= MEASURED_ENDINGS:
                before, then = self._dump
                # What the dump lists beyond what the last one and the NEW events since would leave. Entries
                # closed early or short-lived new ones make it less: the share errs low, towards ending.
                kept = live - (before + created - then - due)
                self._renewed = min(1.0, max(0.0, kept / due))
        by_end: Counter[float] = Counter()
        for (seen, left), n in Counter(timeouts).items():
            # Read within that second and within the dump: the middle of both. It ends within the TICK after
            # the timeout left, half of one on average.
            read = (max(seen, read_from) + min(seen + 1, read_to)) / 2 if seen <= read_to else seen + 0.5
            by_end[read + left + TICK / 2] += n
        self._ends = sorted(by_end)
        self._at_end = [by_end[e] for e in self._ends]
        self._ended = list(accumulate(self._at_end))
        self._dump = (live, created)

    def first_end(self) -> float | None:
        """When the first of the last dump's countdowns runs out (None: it read none)."""
        return self._ends[0] if self._ends else None

    def at(self, t: float, kernel: int, created: int) -> int:
        """The live entries at ``t``, given the kernel's count and NEW events so far; the count before a dump."""
        if self._dump is None:
            return kernel
        live, then = self._dump
        return max(0, min(kernel, round(live + created - then - self._ending_by(t))))

    def ending(self, t: float) -> float:
        """Entries/s of the dump's due to end over the WINDOW after ``t`` by their timeouts, less the share traffic
        renewed between the last two dumps."""
        return (self._ending_by(t + WINDOW) - self._ending_by(t)) / WINDOW

    def _ending_by(self, t: float) -> float:
        """The dump's entries ended by ``t``: those due to, less the share renewed (see __init__)."""
        return self._ended_by(t) * (1 - self._renewed)

    def _ended_by(self, t: float) -> float:
        # Entries said to end at e end evenly over the TICK around it (the rounding above): all of those ending
        # before, a share of those ending around t. Counted all at e, a table losing 500 a second would step by
        # 500 each second, and a frame every 0.5 s would see a sawtooth of its own making.
        half = TICK / 2
        i = bisect_right(self._ends, t - half)
        ended = float(self._ended[i - 1]) if i else 0.0
        while i < len(self._ends) and self._ends[i] < t + half:
            ended += self._at_end[i] * (t + half - self._ends[i]) / TICK
            i += 1
        return ended


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
