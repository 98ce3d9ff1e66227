"""A bounded view's table: exact counts, states and heaviest groups over every flow, holding no flow's record.

A table of four million flows held as records (:class:`cttop.table.store.FlowTable`, ~200 bytes
a flow) would take most of a gigabyte from a box already in trouble. This one keeps the
aggregates that table keeps, fed the same way, and of each flow only its digest
(:mod:`cttop.table.digest`, 20 to 40 bytes): what an update can change, so an UPDATE or DESTROY moves
the counts from where the flow was counted. A flow's tuple never changes, so the address and
port groups follow from the events' own rows.

Who owns the flows (process, container) is counted the same way, while such a group is shown: the
owner a flow had when first seen goes into its digest, so its end takes it from the owner it was
counted under, whatever the owners have become since (a process that exited).

What it cannot keep: bytes and packets (an event carries no counters to move them by, and the
dump's are not held), so it ranks by entries; and a group it was not counting when the dump was
read, which needs the next dump (:attr:`FlowTally.needs_dump`). The flow list pages from the
kernel instead (live.pager).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter

from cttop.kernel import native
from cttop.model import (
    EV_DESTROY,
    EV_NEW,
    NO_PSTATE,
    R_ID,
    R_MARK,
    R_OPKTS,
    R_PSTATE,
    R_START,
    R_STATUS,
    R_TIMEOUT,
    R_ZONE,
    Row,
)
from cttop.table.aggregates import Aggregates, GroupRow
from cttop.table.digest import Shape, digests
from cttop.table.groups import GroupDef
from cttop.table.packing import FLOW_TUPLE, KEY_HIGH, flow_key, flow_keys, unpack
from cttop.table.store import FlowTable, Loading, Own

_NO_COUNTERS = (None, None, None, None)
_SHAPE = itemgetter(R_PSTATE, R_STATUS, R_MARK, R_ZONE)
_TIMEOUT = itemgetter(R_TIMEOUT)
assert (R_PSTATE, R_STATUS, R_MARK, R_ZONE, R_OPKTS) == (3, 4, 14, 15, 17), "shaped() slices at these"


def uncounted(row: Row) -> Row:
    """``row`` without its counters, as a tally counts it (add_rows(counters=False) reads none)."""
    return row[:R_OPKTS] + _NO_COUNTERS + row[R_START:]


def shaped(row: Row, shape: Shape) -> Row:
    """``row`` as counted under ``shape``: its own tuple, the digest's state, status, mark and zone, no counters
    (kernel/_apply.c's ``shaped`` is this, for the events it applies)."""
    pstate, status, mark, zone = shape[:4]
    return row[:3] + (pstate, status) + row[5:14] + (mark, zone, row[16]) + _NO_COUNTERS + row[R_START:]


class FlowTally(FlowTable):
    """The aggregates of every flow, each flow's digest, and no records: :meth:`records` is empty."""

    bounded = True

    def __init__(self, track: Iterable[str] = (), own: Own | None = None, expect: int = 0,
                 owners: GroupDef | None = None) -> None:
        super().__init__(track, own)
        self._digests = digests(expect)
        self._timeouts: Counter[tuple[int, int]] = Counter()
        self.needs_dump = False  # a group was asked for that only a dump can count
        # The owner group counted (process or container: its key names a row's owner), and the flows by owner.
        self.owners = owners
        self._by_owner: Counter[object] = Counter()

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, key: int) -> bool:
        return self._digests.get(key) is not None

    def records(self) -> Sequence[bytes]:
        return []

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

    def extend(self, rows: Iterable[Row], at: float = 0.0) -> None:
        rows = self._held_apart(rows, at)
        if self.owners is None:
            self._digests.put_many(flow_keys(rows), map(_SHAPE, rows))
        else:
            whose = list(map(self.owners.key, rows))
            self._digests.put_many(flow_keys(rows), [(*shape, who) for shape, who in zip(map(_SHAPE, rows), whose)])
            self._by_owner.update(whose)
        self._timeouts.update(zip(repeat(int(at)), map(_TIMEOUT, rows)))
        self.agg.add_rows(rows, counters=False)
        self.generation += 1

    def loading(self) -> TallyLoading | None:  # type: ignore[override]
        """FlowTable.loading's, for a bounded table: the walk puts each flow's shape into the digests and counts
        its timeout. None where rows are needed: the pure-Python digests, owners counted, or what
        FlowTable._load_counts says."""
        compiled = native.DEFAULT is not None and isinstance(self._digests, native.DEFAULT.Digests)
        counts = self._load_counts() if compiled and self.owners is None else None
        return None if counts is None else TallyLoading(self, counts, self._digests)  # type: ignore[arg-type]

    def owner_top(self, group: GroupDef, n: int) -> list[GroupRow]:
        """The ``n`` owners holding the most flows, by ``group`` (the owners' process or container GroupDef);
        none until a dump has counted that group (:attr:`needs_dump` says one is due)."""
        if self.owners is None or self.owners.name != group.name:
            # The digests hold no such owner: a fresh table counts them, from the next dump (the collector's).
            self.needs_dump = True
            return []
        best = heapq.nlargest(n, self._by_owner.items(), key=itemgetter(1))
        return [GroupRow(k, group.text(k), c, None, None, group.filter(k)) for k, c in best]

    def timeouts(self) -> Counter[tuple[int, int]]:
        """Each dumped flow's (second it was read, timeout left then), counted: the forecast's input. With no
        records to read back, a flow that ended while the dump was read still counts (FlowTable's do not)."""
        return self._timeouts

    def _compiled(self) -> object | None:
        """The compiled digests, where no owner is counted (their keys are Python's to call on each new flow)."""
        compiled = native.BUILT is not None and isinstance(self._digests, native.BUILT.Digests)
        return self._digests if compiled and self.owners is None else None

    def _apply_rows(self, events: Iterable[tuple[int, Row]], seen: int) -> None:
        digests, agg, by_owner = self._digests, self.agg, self._by_owner
        whose = self.owners.key if self.owners is not None else None
        for kind, row in events:
            fid = hash(row[FLOW_TUPLE]) & KEY_HIGH | row[R_ID]
            if kind == EV_DESTROY:
                self.destroyed += 1
                old = digests.pop(fid)
                if old is not None:
                    agg.add(shaped(row, old), -1)
                    if whose is not None:
                        _drop(by_owner, old[4])
                continue
            if kind == EV_NEW:
                self.created += 1
            shape = _SHAPE(row)
            if whose is not None:  # a flow keeps the owner it was counted under
                was = digests.get(fid)
                shape = (*shape, whose(row) if was is None else was[4])
            old = digests.put(fid, shape)
            if old is not None and shape[0] == NO_PSTATE and old[0] != NO_PSTATE:
                # The state an UPDATE left out, kept (FlowTable._apply_rows): put again, which is rare (a TCP or
                # SCTP update whose state did not move), not looked up first for every event (UDP's have none).
                shape = (old[0], *shape[1:])
                digests.put(fid, shape)
            if old is None:
                agg.add(shaped(row, shape), 1)
                if whose is not None:
                    by_owner[shape[4]] += 1
            elif old != shape:
                agg.replace(shaped(row, old), shaped(row, shape))


def _drop(counts: Counter[object], key: object) -> None:
    n = counts[key] - 1
    if n > 0:
        counts[key] = n
    else:
        del counts[key]


class TallyLoading(Loading):
    """Loading for a bounded table (FlowTally.loading): what FlowTally.extend keeps of each flow (its digest, its
    timeout counted, the aggregates without counters), from the walk."""

    counters = False
    table: FlowTally

    def row(self, row: Row) -> None:
        """A row Python decoded, kept and counted as FlowTally.extend keeps and counts one: without counters."""
        self.table._digests.put(flow_key(row), _SHAPE(row))
        self.table._timeouts[(self.seen, row[R_TIMEOUT])] += 1
        self.counts.add_row(uncounted(row))

    def done(self) -> None:
        self.table._timeouts.update(dict(self.counts.timeouts()))
        super().done()
