"""The event log behind the event screen: the last events that match its filter, losses where they happened,
and the rates of each kind.

The collector feeds it every batch it applies, on its own thread, while the screen is open
(and not otherwise: a log nobody reads is a cost on every event). What the screen draws is a
:class:`LogView`, an immutable copy of the newest entries taken once per frame, so the UI never
reads the ring while it is written. Adding an event is a filter match (when there is a filter)
and a deque append; formatting is left to the screen, for the lines it shows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cttop.filter import Filter, compile_filter
from cttop.kernel.events import EventBatch
from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE, Row
from cttop.table.history import Rate

LOST: Final = 0  # an entry of this kind marks where the kernel dropped events (no row)
KEEP: Final = 5_000  # entries the ring holds
SHOWN: Final = 1_000  # entries a view carries: more than any screen's height, far fewer than the ring

Entry = tuple[float, int, Row | None]  # (time received, EV_* or LOST, the flow)


@dataclass(frozen=True)
class LogView:
    entries: tuple[Entry, ...]  # oldest first, the newest last
    rates: dict[int, float]  # events a second by kind, all of them (before the filter)
    matched_rate: float  # events a second that matched the filter
    total: int  # events seen since the log was opened
    matched: int
    lost: int  # losses (ENOBUFS) since the log was opened
    filter: str


class EventLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._ring: deque[Entry] = deque(maxlen=keep)
        self.flt: Filter = compile_filter("")
        self.total = self.matched = self.lost = 0
        self._seen = {EV_NEW: 0, EV_UPDATE: 0, EV_DESTROY: 0}
        self._rates = {kind: Rate() for kind in self._seen}
        self._matched_rate = Rate()

    def set_filter(self, flt: Filter) -> None:
        """Events from now on must match ``flt`` (compiled by the caller, who reports its errors)."""
        self.flt = flt

    def add(self, batch: EventBatch, t: float, hide: Callable[[Row], bool] | None = None) -> None:
        """One batch of events received at ``t``; ``hide`` drops cttop's own flows (its DNS lookups)."""
        events = batch.events
        seen = self._seen
        for kind, _row in events:
            seen[kind] += 1
        self.total += len(events)
        match = None if self.flt.is_all else self.flt.match
        append = self._ring.append
        start = 0
        for cut in [*(batch.lost_at or ([0] if batch.lost else [])), None]:
            for kind, row in events[start:cut]:
                if (match is None or match(row)) and (hide is None or not hide(row)):
                    append((t, kind, row))
                    self.matched += 1
            if cut is None:
                break
            append((t, LOST, None))
            self.lost += 1
            start = cut

    def view(self, t: float) -> LogView:
        """The newest entries and the rates up to ``t``, for one frame."""
        ring = self._ring
        n = len(ring)
        entries = tuple(ring) if n <= SHOWN else tuple(ring[i] for i in range(n - SHOWN, n))
        rates = {kind: self._rates[kind].update(t, self._seen[kind]) for kind in self._seen}
        return LogView(entries, rates, self._matched_rate.update(t, self.matched), self.total, self.matched,
                       self.lost, self.flt.text)
