"""The flow store: flows by conntrack id, with aggregates kept up to date as rows come and go.

Every aggregate is adjusted by the row that enters or leaves (``_account`` with
+1/-1), never by rescanning, so an event costs the same on a table of ten flows
or of a million. Group aggregates are only kept for keys someone asked for
(:meth:`FlowTable.track`): keeping all ten costs ~3 µs a row for data nobody reads.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cttop.model import (EV_DESTROY, EV_NEW, IPS_ASSURED, R_ID, R_LABELS, R_OBYTES, R_OPKTS, R_PROTO, R_RBYTES, R_RPKTS,
                         Row, state_key)
from cttop.table.groups import GROUPS
from cttop.table.packing import pack, unpack


@dataclass(frozen=True)
class GroupRow:
    key: object
    text: str
    entries: int
    bytes: int | None
    packets: int | None
    filter: str | None


class FlowTable:
    def __init__(self, track: Iterable[str] = ()) -> None:
        self._flows: dict[int, bytes] = {}
        self._labels: dict[int, int] = {}
        self.by_proto: dict[int, int] = {}
        self.by_state: dict[str, int] = {}
        self.evictable = 0
        self.counted = 0  # flows carrying counters (accounting was on when they were created)
        self._groups: dict[str, dict[object, list[int]]] = {}
        self.created = 0  # NEW events applied since start, for rates
        self.destroyed = 0
        self.generation = 0  # bumped on every change, so views know when to rebuild
        for name in track:
            self.track(name)

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, flow_id: int) -> bool:
        return flow_id in self._flows

    def get(self, flow_id: int) -> Row | None:
        rec = self._flows.get(flow_id)
        return None if rec is None else unpack(rec, self._labels.get(flow_id, 0))

    def rows(self) -> Iterator[Row]:
        labels = self._labels
        for fid, rec in self._flows.items():
            yield unpack(rec, labels.get(fid, 0) if labels else 0)

    def records(self) -> list[bytes]:
        """The packed rows, for views that sort and index without unpacking everything."""
        return list(self._flows.values())

    def track(self, name: str) -> None:
        """Start keeping the ``name`` group aggregate (one scan now, incremental after)."""
        if name in self._groups:
            return
        if name not in GROUPS:
            raise KeyError(name)
        self._groups[name] = {}
        key, agg = GROUPS[name].key, self._groups[name]
        for row in self.rows():
            _add_group(agg, key(row), row, 1)

    def _account(self, row: Row, sign: int) -> None:
        p = row[R_PROTO]
        self.by_proto[p] = n = self.by_proto.get(p, 0) + sign
        if not n:
            del self.by_proto[p]
        s = state_key(row)
        self.by_state[s] = n = self.by_state.get(s, 0) + sign
        if not n:
            del self.by_state[s]
        if not row[4] & IPS_ASSURED:
            self.evictable += sign
        if row[R_OPKTS] is not None:
            self.counted += sign
        for name, agg in self._groups.items():
            _add_group(agg, GROUPS[name].key(row), row, sign)

    def _put(self, row: Row) -> None:
        fid = row[R_ID]
        old = self._flows.get(fid)
        if old is not None:
            old_row = unpack(old, self._labels.get(fid, 0))
            if row[R_OPKTS] is None and old_row[R_OPKTS] is not None:
                # UPDATE events carry no counters; keep the last ones we saw.
                row = row[:17] + old_row[17:21] + row[21:]
            self._account(old_row, -1)
        self._flows[fid] = pack(row)
        if row[R_LABELS]:
            self._labels[fid] = row[R_LABELS]
        self._account(row, 1)

    def _drop(self, fid: int) -> None:
        old = self._flows.pop(fid, None)
        if old is not None:
            self._account(unpack(old, self._labels.pop(fid, 0)), -1)

    def apply_dump(self, rows: Iterable[Row]) -> None:
        """Replace the whole content with a fresh dump (start-up and resync after lost events)."""
        tracked = list(self._groups)
        self._flows.clear()
        self._labels.clear()
        self.by_proto.clear()
        self.by_state.clear()
        self.evictable = self.counted = 0
        self._groups = {name: {} for name in tracked}
        for row in rows:
            self._put(row)
        self.generation += 1

    def apply_events(self, events: Iterable[tuple[int, Row]]) -> None:
        for kind, row in events:
            if kind == EV_DESTROY:
                self._drop(row[R_ID])
                self.destroyed += 1
            else:
                if kind == EV_NEW:
                    self.created += 1
                self._put(row)
        self.generation += 1

    def top(self, name: str, n: int = 10, by: str = "entries") -> list[GroupRow]:
        """The ``n`` heaviest groups of key ``name`` by entries, bytes or packets."""
        self.track(name)
        col = {"entries": 0, "bytes": 1, "packets": 2}[by]
        g = GROUPS[name]
        best = heapq.nlargest(n, self._groups[name].items(), key=lambda kv: kv[1][col])
        have_counters = self.counted > 0
        return [GroupRow(k, g.text(k), v[0], v[1] if have_counters else None,
                         v[2] if have_counters else None, g.filter(k)) for k, v in best if v[0] > 0]


def _add_group(agg: dict[object, list[int]], k: object, row: Row, sign: int) -> None:
    v = agg.get(k)
    if v is None:
        v = agg[k] = [0, 0, 0]
    v[0] += sign
    if row[R_OPKTS] is not None:
        v[1] += sign * (row[R_OBYTES] + row[R_RBYTES])
        v[2] += sign * (row[R_OPKTS] + row[R_RPKTS])
    if not v[0]:
        del agg[k]
