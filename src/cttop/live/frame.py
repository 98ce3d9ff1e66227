"""The immutable snapshot the collector hands the app once per refresh.

A Frame holds everything the panels draw, already computed, so applying one on
the UI thread is only a matter of handing fields to widgets. Times are in the
source's clock (``Source.now()``), so a fixed source gives a fixed screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cttop.live.eventlog import LogView
from cttop.table.aggregates import GroupRow
from cttop.table.rates import FlowRate

# Phases of the collector, as the header shows them.
LOADING = "loading"  # subscribing and reading the first dump
LIVE = "live"
LIMITED = "limited"  # no CAP_NET_ADMIN: count and max from /proc/sys only
FAILED = "failed"  # the source broke (namespace gone...): the note says why


@dataclass(frozen=True)
class Pressure:
    name: str
    rate: float | None  # per second over the last refresh; None until two readings
    total: int  # since boot (or since the namespace was made)


@dataclass(frozen=True)
class StateRow:
    section: str  # "tcp", "udp", "icmp", or another protocol's name, or "other"
    state: str
    count: int


@dataclass(frozen=True)
class Frame:
    seq: int
    time: float
    label: str
    live: bool  # False for a replayed recording
    phase: str
    note: str  # progress while loading, why when limited or failed; else ""
    interval: float
    count: int | None  # the kernel's count (None before it is known)
    maximum: int | None
    buckets: int | None
    flows: int  # flows held in the table (what the list shows before filtering)
    evictable: int
    counted: int  # flows carrying byte/packet counters
    history: tuple[int, ...]  # counts, oldest first
    forecast: str
    new_rate: float | None  # None until two readings
    gone_rate: float | None
    pressure: tuple[Pressure, ...]  # empty when the counters cannot be read
    states: tuple[StateRow, ...]
    group: str
    top_by: str  # "entries", "bytes", "packets" or "new-rate"
    top: tuple[GroupRow, ...]
    lost: int  # event losses (ENOBUFS) recovered by a resync
    bad: int  # event messages that failed to decode
    refreshed: float | None  # when the last full dump was read
    # The ranked measure (top_by) summed over every flow: what the heaviest panel's % is a share of.
    ranked_total: float = 0
    # What new flows a second (top_by "new-rate") are measured over: seconds so far (0: not yet), and
    # where they come from: "events", or "dumps" where the kernel sends none.
    new_rate_seconds: float = 0.0
    new_rate_source: str | None = None
    # Bytes and packets a second of the flows that moved between the last two dumps, by flow key
    # (packing.flow_key); replaced, never changed, at each dump.
    flow_rates: Mapping[int, FlowRate] = field(default_factory=dict)
    event_log: LogView | None = None  # while the event screen is open
    pressure_from: str = ""  # where the pressure counters came from: ctnetlink or /proc (without CAP_NET_ADMIN)
    bounded: int | None = None  # the table is over --max-flows (this): counted, not held; the list is paged

    @property
    def fill(self) -> float | None:
        if self.count is None or not self.maximum:
            return None
        return self.count / self.maximum
