"""Who owns the flows, kept current, and the heaviest processes or containers, ranked no more often than affordable.

Why a module of its own: only a live namespace has processes to ask (a replay has none,
so ``process`` and ``container`` are then no group keys). The owners are refreshed on
their own interval, and ranking a big table by owner costs about a second per million
flows, so it is done only while such a group is shown, cached, and redone no more often
than a multiple of what it cost. The collector asks for the ranking; this decides when
it is redone.
"""

from __future__ import annotations

import time
from typing import Final

from cttop.host.containers import host_owners
from cttop.kernel.netns import NetnsSpec
from cttop.live.owner_top import PackedOwners
from cttop.table.aggregates import GroupRow
from cttop.table.store import FlowTable
from cttop.table.tally import FlowTally

OWNER_TOP_DUTY: Final = 5  # rank by owner at most once per this many times what the last ranking cost


class OwnerRanking:
    """The owners of one namespace's flows, and the cached ranking of the table by them."""

    def __init__(self, spec: NetnsSpec) -> None:
        self.owners = host_owners(spec)  # here and in the host's other namespaces
        self._packed: PackedOwners | None = None
        self._ranked: tuple[tuple[object, ...], tuple[GroupRow, ...]] | None = None  # (what was ranked, result)
        self._next = 0.0

    def top(self, table: FlowTable, group: str, by: str, n: int) -> tuple[GroupRow, ...]:
        """The heaviest ``n`` processes or containers: a pass over the whole table, so cached, and
        redone (for the same group) only after the table or the owners changed and no sooner
        than OWNER_TOP_DUTY times what the last pass took."""
        if isinstance(table, FlowTally):  # no records: it counts the flows by owner itself, as they come and go
            return tuple(table.owner_top(self.owners.group_defs()[group], n))
        index = self.owners.index
        if self._packed is None or self._packed.at != index.at:
            self._packed = PackedOwners(index)
        ranked = (group, by, index.at, table.generation)
        cached = self._ranked
        if cached is not None and cached[0][:2] == ranked[:2] and (
                cached[0] == ranked or time.monotonic() < self._next):
            return cached[1]
        t0 = time.monotonic()
        top = tuple(self._packed.top(table.records(), group, n, by))
        self._ranked = (ranked, top)
        self._next = time.monotonic() + OWNER_TOP_DUTY * (time.monotonic() - t0)
        return top
