"""Building a Frame: the kernel's readings, the fill history and the rates, apart from the collector's timing.

Why a module of its own: what a frame shows (count, max, sysctls, pressure counters, the
fill history and its forecast, the arrival and departure rates, the state mix) is state of
its own, read and derived on every frame. The collector decides *when* to read (and
whether a reading reconciles the table with the kernel, and when to dump); this builds
*what* is shown, and is told of each dump's table (:meth:`FrameBuilder.dumped`): the
forecast counts live entries from it (:class:`cttop.table.history.LiveCount`).
"""

from __future__ import annotations

from typing import Any, Final

from cttop.errors import CttopError
from cttop.kernel import procstat, sysctl
from cttop.kernel.ctnetlink import Stats
from cttop.live.counters import PRESSURE
from cttop.live.frame import FAILED, LIVE, Frame, Pressure, StateRow
from cttop.model import TCP_STATES
from cttop.sources.live import Source
from cttop.table.aggregates import GroupRow
from cttop.table.history import FillHistory, LiveCount, Rate
from cttop.table.store import FlowTable
from cttop.table.timeouts import model_lifetime

SYSCTL_EVERY: Final = 5.0
_STATUS_ORDER: Final = ("UNREPLIED", "REPLIED", "ASSURED")


class FrameBuilder:
    """The numbers a frame shows besides the table, and the frame itself. Used from the collector's thread."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.seq = 0
        self.sysctls: dict[str, str] = {}
        self.count: int | None = None
        self.max: int | None = None
        self.pressure: tuple[Pressure, ...] = ()
        self.pressure_from = ""
        self._next_sysctls = 0.0
        self.restart_clock()

    def restart_clock(self) -> None:
        """Forget history and rates: after a replay's clock jumped, they would draw a false slope."""
        self._history = FillHistory()
        self._live = LiveCount()
        self._rates = {name: Rate() for name in PRESSURE}
        self._new_rate, self._gone_rate = Rate(), Rate()

    def dumped(self, table: FlowTable, started: float, after_change: bool = False) -> None:
        """A dump begun at ``started`` (the source's clock) is in: it lists exactly the live entries, with
        their timeouts. One pass over the packed records (the compiled store's: 4 ms for a million), once per
        dump, never per frame. ``after_change``: read right after a change from here (a flush), which the
        forecast's measures must not take for the table's own doing (LiveCount.dumped, FillHistory.changed).
        """
        self._live.dumped(len(table), table.created, table.timeouts(), started,
                          self.source.now(), renewals=not after_change)
        if after_change:
            self._history.changed(started)

    def first_end(self) -> float | None:
        """When the first countdown the last dump read runs out (the source's clock; None: it read none)."""
        return self._live.first_end()

    def read_sysctls(self, now: float, always: bool) -> None:
        """The sysctls (count and max among them), every SYSCTL_EVERY seconds unless ``always``."""
        if now >= self._next_sysctls or not self.sysctls or always:
            self.sysctls = self.source.sysctls()
            self._next_sysctls = now + SYSCTL_EVERY
            self.count = sysctl.as_int(self.sysctls.get("nf_conntrack_count"))
            self.max = sysctl.as_int(self.sysctls.get("nf_conntrack_max"))

    def take_stats(self, stats: Stats) -> None:
        self.count, self.max = stats.count, stats.max

    def read_proc(self, now: float) -> None:
        """Without CAP_NET_ADMIN: the count and pressure counters from world-readable /proc/net/stat."""
        spec = self.source.spec
        if spec is None:
            return  # a recording has no /proc
        try:
            stat = procstat.read(spec)
        except CttopError:
            return  # no such file, or another namespace we may not enter: the counters stay unknown
        self.count = stat.count
        self.set_pressure(now, stat.as_cpu_totals(), procstat.SOURCE)

    def set_pressure(self, now: float, totals: dict[str, int], source: str) -> None:
        self.pressure = tuple(Pressure(n, self._rates[n].update(now, totals[n]), totals[n]) for n in PRESSURE)
        self.pressure_from = source

    def build(self, now: float, table: FlowTable, *, phase: str, note: str, interval: float, group: str,
              by: str, top: tuple[GroupRow, ...], lost: int, bad: int, refreshed: float | None,
              ranked_total: float, **extra: Any) -> Frame:
        """The frame; ``extra`` are the Frame's fields the collector derives itself (rates, the event log)."""
        self.seq += 1
        if self.count is not None and (not self._history.samples or now > self._history.samples[-1][0]):
            live = phase == LIVE  # arrivals and the state mix come from events and dumps
            self._history.add(now, self.count, table.created if live else None,
                              model_lifetime(table.by_state, self.sysctls) if live else None,
                              self._live.at(now, self.count, table.created), self._live.ending(now))
        shown = phase in (LIVE, FAILED)
        src = self.source
        return Frame(
            seq=self.seq, time=now, label=src.label, live=src.live, phase=phase, note=note,
            interval=interval, count=self.count, maximum=self.max,
            buckets=sysctl.as_int(self.sysctls.get("nf_conntrack_buckets")),
            flows=len(table) if shown else 0, evictable=table.evictable, counted=table.counted,
            history=tuple(self._history.values(240)), forecast=self._history.forecast(self.max or 0).text(),
            new_rate=self._new_rate.update(now, table.created), gone_rate=self._gone_rate.update(now, table.destroyed),
            pressure=self.pressure, states=ordered_states(table.by_state) if shown else (), group=group,
            top_by=by, top=top, lost=lost, bad=bad, refreshed=refreshed,
            ranked_total=ranked_total, pressure_from=self.pressure_from, **extra)


def ordered_states(by_state: dict[str, int]) -> tuple[StateRow, ...]:
    """TCP states in protocol order, then UDP and ICMP by how far the exchange got, then the rest."""
    out: list[StateRow] = []
    for s in TCP_STATES:
        if n := by_state.get(f"tcp:{s}"):
            out.append(StateRow("tcp", s, n))
    for proto in ("udp", "icmp"):
        for s in _STATUS_ORDER:
            n = by_state.get(f"{proto}:{s}", 0) + (by_state.get(f"icmpv6:{s}", 0) if proto == "icmp" else 0)
            if n:
                out.append(StateRow(proto, s, n))
    other: dict[str, int] = {}
    stateful: list[StateRow] = []
    for key, n in sorted(by_state.items()):
        proto, _, s = key.partition(":")
        if proto in ("tcp", "udp", "icmp", "icmpv6"):
            continue
        if s in _STATUS_ORDER:
            other[s] = other.get(s, 0) + n
        else:
            stateful.append(StateRow(proto, s, n))
    out += stateful
    out += [StateRow("other", s, other[s]) for s in _STATUS_ORDER if other.get(s)]
    return tuple(out)
