"""The event log behind the event screen: the last events, losses where they happened, the rates of each kind.

The collector feeds it every batch it applies, on its own thread, while the screen is open
(and not otherwise: a log nobody reads is a cost on every event). Adding is a deque append per
event and nothing else; the filter is applied when a frame's :class:`LogView` is taken, newest
first, until a screenful and then some is found, so typing a filter re-filters what the log
already holds at once, as the flow list's does. The view is an immutable copy, so the UI never
reads the ring while it is written; formatting is left to the screen, for the lines it shows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Final

from cttop.filter import Filter, compile_filter
from cttop.kernel.events import EventBatch
from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE, Row
from cttop.table.history import Rate

LOST: Final = 0  # an entry of this kind marks where the kernel dropped events (no row)
KEEP: Final = 20_000  # entries the ring holds: what a filter typed later can still find
SHOWN: Final = 1_000  # matching entries a view carries: more than any screen's height

Entry = tuple[float, int, Row | None]  # (time received, EV_* or LOST, the flow)


@dataclass(frozen=True)
class LogView:
    entries: tuple[Entry, ...]  # the newest matching entries (and every loss among them), oldest first
    rates: dict[int, float | None]  # events a second by kind (None until two readings), every event (before the filter)
    held: int  # entries the ring holds (what the filter looked through)
    total: int  # events seen since the log was opened
    lost: int  # losses (ENOBUFS) since the log was opened
    filter: str
    appended: int = 0  # entries put in the ring so far: where a paused view stands (EventLog.set_until)


class EventLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._ring: deque[Entry] = deque(maxlen=keep)
        self.flt: Filter = compile_filter("")
        self.total = self.lost = 0
        self.appended = 0  # entries put in the ring, ever
        self.until: int | None = None  # views look only at the entries up to this many (a paused screen's)
        self._seen = {EV_NEW: 0, EV_UPDATE: 0, EV_DESTROY: 0}
        self._rates = {kind: Rate() for kind in self._seen}

    def set_filter(self, flt: Filter) -> None:
        """What the views show (compiled by the caller, who reports its errors)."""
        self.flt = flt

    def set_until(self, appended: int | None) -> None:
        """Views from now on hold only the first ``appended`` entries (what a paused screen showed), so a filter
        typed while paused filters what was there; None: every entry again."""
        self.until = appended

    def add(self, batch: EventBatch, t: float, hide: Callable[[Row], bool] | None = None) -> None:
        """One batch of events received at ``t``; ``hide`` drops cttop's own flows (its DNS lookups)."""
        events = batch.events
        seen = self._seen
        for kind, _row in events:
            seen[kind] += 1
        self.total += len(events)
        ring = self._ring
        start = 0
        added = 0
        for cut in [*(batch.lost_at or ([0] if batch.lost else [])), None]:
            part = events[start:cut]
            if hide is None:
                ring.extend((t, kind, row) for kind, row in part)
                added += len(part)
            else:
                kept = [(t, kind, row) for kind, row in part if not hide(row)]
                ring.extend(kept)
                added += len(kept)
            if cut is None:
                break
            ring.append((t, LOST, None))
            added += 1
            self.lost += 1
            start = cut
        self.appended += added

    def view(self, t: float) -> LogView:
        """The newest entries matching the filter (losses always shown) and the rates up to ``t``."""
        ring, flt = self._ring, self.flt
        # Paused: the entries added since are passed over (the ring holds them newest last).
        until = self.until  # (set from the UI thread: read once)
        skip = min(len(ring), self.appended - until) if until is not None else 0
        if flt.is_all:
            entries = tuple(reversed(list(islice(reversed(ring), skip, skip + SHOWN))))
        else:
            match = flt.match
            found: list[Entry] = []
            for e in islice(reversed(ring), skip, None):
                if e[2] is None or match(e[2]):
                    found.append(e)
                    if len(found) == SHOWN:
                        break
            entries = tuple(reversed(found))
        rates = {kind: self._rates[kind].update(t, self._seen[kind]) for kind in self._seen}
        return LogView(entries, rates, len(ring) - skip, self.total, self.lost, flt.text,
                       self.appended - skip)
