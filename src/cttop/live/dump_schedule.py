"""When the collector reads a full dump: periodic refreshes, and resyncs when the table drifts from the kernel.

Periodic dumps, spaced in proportion to what a dump costs, refresh what events never carry:
byte counters, and the timeouts packets renew (more rarely without accounting, when those are
all a dump brings). Without accounting, a table no event has touched since its dump is at rest:
until the first countdown it holds runs out, a dump would bring back what it holds, so the next
waits for that (at most REFRESH_REST_MAX). A proxy's idle keep-alive connections are a table of
hundreds of thousands that nothing changes for hours.

Every frame compares the table with the kernel's count (see live.collector). A table larger
than the count on a frame, and still when looked at again right after it, holds flows that
ended without a DESTROY (an entry created while nf_conntrack_events was 0, or 2 with no
listener anywhere on the host, carries no event cache: its expiry or eviction is silent). A
table smaller than the count by more than DRIFT_SHARE misses flows whose NEW never came
(events off). Either way a resync follows, spaced by DRIFT_DUTY times what a dump costs, so
a table that keeps drifting costs at most a share of one core, and twice as far each time
one leaves the table drifting still: a full table under churn is never dumped consistently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

REFRESH_MIN: Final = 10.0  # seconds between full dumps, at least...
REFRESH_DUTY: Final = 20  # ...and at least this many times what the last one cost (5 % of the time),
# or this many without accounting while events come: a dump then refreshes only the timeouts packets
# renewed silently (they count down between dumps), not worth more than 1 % of a core that is busy.
REFRESH_DUTY_UNCOUNTED: Final = 100
REFRESH_REST_MAX: Final = 600.0  # the longest a table at rest goes unread (its countdowns none ran out)
# Drift from the kernel's count that triggers a resync when it lasts two readings. A table over the
# count by more than DRIFT_SLACK holds flows that are gone; under it by more than DRIFT_SLACK and
# DRIFT_SHARE, it misses flows. The slack is for what the instant of the count can hold that no event
# has told yet: entries allocated for packets still on their way, freed ones.
DRIFT_SLACK: Final = 8
DRIFT_SHARE: Final = 0.01
DRIFT_DUTY: Final = 3  # never resync more often than every this many times a dump's cost...
DRIFT_READINGS: Final = 2
# ...and, for resyncs that leave the table drifting as before, twice as far each time, up to 2**this
# times DRIFT_DUTY: redumping a full table under churn (early_drop evicting entries that carry no event
# cache, so no DESTROY comes) every DRIFT_DUTY would cost a third of a core.
DRIFT_BACKOFF: Final = 4


@dataclass(frozen=True)
class Drift:
    """How the table compared with the kernel's count on the last readings: which way, how many in a row."""

    way: int = 0  # 1: the table holds flows that are gone; -1: it misses flows; 0: it agrees
    readings: int = 0  # consecutive readings off the same way

    def after(self, before: int, after: int, count: int) -> Drift:
        """The next reading: the table's size ``before`` and ``after`` the kernel's ``count`` was read."""
        if min(before, after) - count > DRIFT_SLACK:
            way = 1
        elif count - max(before, after) > max(DRIFT_SLACK, DRIFT_SHARE * count):
            way = -1
        else:
            return Drift()
        return Drift(way, self.readings + 1 if way == self.way else 1)


class DumpSchedule:
    """When the next periodic dump is due, and whether a drift has lasted long enough to resync."""

    def __init__(self) -> None:
        self.refreshed: float | None = None  # the source's time of the last complete dump
        self._next_refresh = 0.0  # monotonic deadlines
        self._duty_refresh = 0.0  # the next refresh by the duty alone, which an event brings it back to
        self._next_drift_check = 0.0
        self._drift = Drift()
        self._resyncs = 0  # drift resyncs since a reading last agreed with the kernel's count

    def refresh_due(self) -> bool:
        return time.monotonic() >= self._next_refresh

    def drift_check_due(self) -> bool:
        """Whether the last frame saw the table off and a resync may follow now."""
        return bool(self._drift.readings) and time.monotonic() >= self._next_drift_check

    def reading(self, before: int, after: int, count: int) -> None:
        """The table's size before and after the kernel's count was read (see Drift.after)."""
        self._drift = self._drift.after(before, after, count)
        if not self._drift.readings:
            self._resyncs = 0
        if before != count or after != count:
            # Off by less than the drift's slack is still not at rest: flows made before anyone listened end
            # with no event (nf_conntrack_events=2), and only a dump takes them out. The duty's refresh does.
            self.touched()

    def drifted(self) -> bool:
        """Off the same way on enough readings in a row: resync (and call :meth:`resyncing`)."""
        return self._drift.readings >= DRIFT_READINGS

    def resyncing(self) -> None:
        self._resyncs += 1

    def dumped(self, at: float, cost: float, counted: bool, rest: float | None = None) -> None:
        """A full dump read at ``at`` (the source's time), costing ``cost`` seconds; ``counted``: it brings
        counters (accounting on, or events off), which makes it worth REFRESH_DUTY rather than the uncounted duty.
        ``rest``: with accounting off, the seconds until the first countdown it read runs out (inf: it read none),
        which the next waits for (up to REFRESH_REST_MAX) while no event touches the table (:meth:`touched`)."""
        self.refreshed = at
        now = time.monotonic()
        self._duty_refresh = now + max(REFRESH_MIN, (REFRESH_DUTY if counted else REFRESH_DUTY_UNCOUNTED) * cost)
        self._next_refresh = max(self._duty_refresh, now + min(rest or 0.0, REFRESH_REST_MAX))
        backoff = 2 ** min(max(self._resyncs - 1, 0), DRIFT_BACKOFF)
        self._next_drift_check = now + DRIFT_DUTY * cost * backoff
        self._drift = Drift()

    def touched(self) -> None:
        """Events came: the table is not at rest, and the next refresh is the duty's."""
        self._next_refresh = min(self._next_refresh, self._duty_refresh)
