"""The incident rates: who creates flows now, and how fast flows and groups move bytes and packets.

Why a module of its own: these are counted on the collector's thread from what the
collector already has (event batches, and the last two dumps' tables), but what is
counted, for which group, and when it starts afresh is state of its own. New flows a
second are counted by the shown group only while the heaviest panel ranks by them (a
group key per NEW event is a cost nobody should pay for a view not shown), from NEW
events, or from what a dump holds that the last did not where the kernel sends no
events. Bytes and packets a second by flow come from two successive dumps (with
accounting on), and by group are summed from those once per dump and group.
"""

from __future__ import annotations

from collections.abc import Iterable

from cttop.model import EV_NEW, Row
from cttop.table.groups import GROUPS
from cttop.table.packing import unpack
from cttop.table.rates import FlowRate, NewFlowRate, flow_rates, group_rates
from cttop.table.store import FlowTable


class RateKeeper:
    """New flows a second by group, and bytes and packets a second by flow and by group."""

    def __init__(self) -> None:
        self.new_flows: tuple[str, NewFlowRate] | None = None  # (the group counted by, its counts)
        self.flow_rates: dict[int, FlowRate] = {}  # by flow key, from the last two dumps
        self._by_group: tuple[str, dict[int, FlowRate], dict[object, FlowRate]] | None = None  # cached

    def forget(self) -> None:
        """Start afresh: a replay's clock jumped, and rates across the jump would be false."""
        self.new_flows, self.flow_rates, self._by_group = None, {}, None

    def count_new_by(self, group: str | None, now: float) -> None:
        """Count new flows by ``group`` from now on (None: stop counting); a new group starts afresh."""
        if group is None:
            self.new_flows = None
        elif self.new_flows is None or self.new_flows[0] != group:
            counting = NewFlowRate(GROUPS[group].key)
            counting.start(now)
            self.new_flows = (group, counting)

    def events(self, now: float, events: Iterable[tuple[int, Row]]) -> None:
        """A batch of events received by ``now`` (only where the kernel sends events: else :meth:`dumped`)."""
        if self.new_flows is not None:
            self.new_flows[1].add(now, [row for kind, row in events if kind == EV_NEW])

    def dumped(self, old: FlowTable, fresh: FlowTable, seconds: float | None, now: float, events_on: bool) -> None:
        """Two successive dumps ``seconds`` apart (None: no last one to compare with), the second ending now.

        Without events, the new flows are those this dump holds and the last did not (it misses flows
        born and gone in between, which events would have caught).
        """
        was, seen = old.by_key(), fresh.by_key()
        self.flow_rates = flow_rates(was, seen, seconds) if fresh.counted and seconds is not None else {}
        if self.new_flows is not None and not events_on:
            self.new_flows[1].add(now, [unpack(rec) for key, rec in seen.items() if key not in was])

    def by_group(self, group: str, table: FlowTable) -> dict[object, FlowRate]:
        """Bytes and packets a second by ``group``, summed from the flows' once per dump and group."""
        cached = self._by_group
        if cached is None or cached[0] != group or cached[1] is not self.flow_rates:
            cached = (group, self.flow_rates, group_rates(self.flow_rates, table.by_key(), GROUPS[group].key))
            self._by_group = cached
        return cached[2]
