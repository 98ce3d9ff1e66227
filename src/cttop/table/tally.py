"""A bounded view's table: exact counts, states and heaviest groups over every flow, holding no flow's record.

A table of four million flows held as records (:class:`cttop.table.store.FlowTable`, ~200 bytes
a flow) would take most of a gigabyte from a box already in trouble. This one keeps the
aggregates that table keeps, fed the same way, and of each flow only its digest
(:mod:`cttop.table.digest`, 20 to 40 bytes): what an update can change, so an UPDATE or DESTROY moves
the counts from where the flow was counted. A flow's tuple never changes, so the address and
port groups follow from the events' own rows.

What it cannot keep: bytes and packets (an event carries no counters to move them by, and the
dump's are not held), so it ranks by entries; and a group it was not tracking when the dump was
read, which needs the next dump (:attr:`FlowTally.needs_dump`). The flow list pages from the
kernel instead (live.pager).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter

from cttop.model import EV_DESTROY, EV_NEW, R_ID, R_MARK, R_OPKTS, R_PSTATE, R_START, R_STATUS, R_TIMEOUT, R_ZONE, Row
from cttop.table.aggregates import Aggregates
from cttop.table.digest import Digests, Shape
from cttop.table.packing import FLOW_TUPLE, KEY_HIGH, flow_key, unpack
from cttop.table.store import FlowTable, Own

_NO_COUNTERS = (None, None, None, None)
_SHAPE = itemgetter(R_PSTATE, R_STATUS, R_MARK, R_ZONE)
_TIMEOUT = itemgetter(R_TIMEOUT)
assert (R_PSTATE, R_STATUS, R_MARK, R_ZONE, R_OPKTS) == (3, 4, 14, 15, 17), "shaped() slices at these"


def shaped(row: Row, shape: Shape) -> Row:
    """``row`` as counted under ``shape``: its own tuple, the digest's state, status, mark and zone, no counters."""
    pstate, status, mark, zone = shape
    return row[:3] + (pstate, status) + row[5:14] + (mark, zone, row[16]) + _NO_COUNTERS + row[R_START:]


class FlowTally(FlowTable):
    """The aggregates of every flow, each flow's digest, and no records: :meth:`records` is empty."""

    bounded = True

    def __init__(self, track: Iterable[str] = (), own: Own | None = None, expect: int = 0) -> None:
        super().__init__(track, own)
        self._digests = Digests(expect)
        self._timeouts: Counter[tuple[int, int]] = Counter()
        self.needs_dump = False  # a group was asked for that only a dump can count

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, key: int) -> bool:
        return self._digests.get(key) is not None

    @property
    def held(self) -> int:
        return len(self._digests) + len(self._own)

    def set_own(self, own: Own | None) -> None:
        """Hold apart what ``own`` recognises from now on. Unlike the full table's, the flows already
        counted stay counted (there are no records to recognise them by) until they end: cttop's own DNS
        lookups are a handful of 30-second UDP flows."""
        if own is self.own:
            return
        back, self._own, self.own = self._own, {}, own
        if own is None:
            self.extend([unpack(r) for r in back.values()])
        self.generation += 1

    def track(self, name: str) -> None:
        """Count the ``name`` groups: from the next dump on, as there are no rows to count them from now."""
        if name not in self.agg.groups:
            self.agg.groups.update(Aggregates([name]).groups)
            self.needs_dump = True

    def clear(self) -> None:
        super().clear()
        self._digests = Digests()
        self._timeouts.clear()

    def extend(self, rows: Iterable[Row], at: float = 0.0) -> None:
        rows = self._held_apart(rows, at)
        put = self._digests.put
        for key, shape in zip(map(flow_key, rows), map(_SHAPE, rows)):
            put(key, shape)
        self._timeouts.update(zip(repeat(int(at)), map(_TIMEOUT, rows)))
        self.agg.add_rows(rows, counters=False)
        self.generation += 1

    def timeouts(self) -> Counter[tuple[int, int]]:
        """Each dumped flow's (second it was read, timeout left then), counted: the forecast's input."""
        return self._timeouts

    def apply_events(self, events: Iterable[tuple[int, Row]], at: float = 0.0) -> None:
        digests, agg = self._digests, self.agg
        if self.own is not None:
            events = self._hold_own(events, int(at))
        for kind, row in events:
            fid = hash(row[FLOW_TUPLE]) & KEY_HIGH | row[R_ID]
            if kind == EV_DESTROY:
                self.destroyed += 1
                old = digests.pop(fid)
                if old is not None:
                    agg.add(shaped(row, old), -1)
                continue
            if kind == EV_NEW:
                self.created += 1
            shape = _SHAPE(row)
            old = digests.put(fid, shape)
            if old is None:
                agg.add(shaped(row, shape), 1)
            elif old != shape:
                agg.replace(shaped(row, old), shaped(row, shape))
        self.generation += 1
