"""Counts by protocol and state, the evictable count, and group totals over a set of rows.

Three ways in, with the same result: :meth:`Aggregates.add` for one row at a time
(events), :meth:`Aggregates.add_rows` for a whole dump chunk, which counts with
``Counter`` over C-level ``map``/``zip`` so a 262k-row dump aggregates in a
fraction of the time a Python loop takes, and :meth:`Aggregates.add_counts` for a
dump the compiled accelerator counted without making rows (``snapshot``).

Events reach these dicts a fourth way where the accelerator is built: kernel/_apply.c's ``agg_add``,
``agg_replace`` and ``regroup`` are :meth:`Aggregates.add`, :meth:`Aggregates.replace` and ``_regroup`` in
C, step for step (tests/unit/test_apply_events.py holds them together): a change to one is a change to both.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_not, itemgetter
from typing import TYPE_CHECKING, TypeVar

from cttop.model import (
    IPS_ASSURED,
    R_MARK,
    R_OBYTES,
    R_OPKTS,
    R_PROTO,
    R_PSTATE,
    R_RBYTES,
    R_RPKTS,
    R_STATUS,
    R_ZONE,
    STATE_BITS,
    STATE_KEYS,
    Row,
    state_key3,
)
from cttop.table.groups import GROUPS

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts

K = TypeVar("K")
_STATE_FIELDS = itemgetter(R_PROTO, R_PSTATE, R_STATUS)  # what a row's state key and evictability read
_OPKTS = itemgetter(R_OPKTS)  # None: accounting was off when the flow was made

@dataclass(frozen=True)
class GroupRow:
    key: object
    text: str
    entries: int
    bytes: int | None
    packets: int | None
    filter: str | None  # the filter expression that selects exactly this group
    # A second, where measured (table.rates): new flows, and bytes and packets moved between two dumps.
    new_rate: float | None = None
    bytes_rate: float | None = None
    packets_rate: float | None = None


class Entries(Counter[object]):
    """A tracked group's flow count per key, knowing the group's key function: the per-event
    paths read it here rather than look the group up by name, a measurable share of an event."""

    __slots__ = ("key",)

    def __init__(self, key: Callable[[Row], object]) -> None:
        super().__init__()
        self.key = key


def _bump(d: dict[K, int], k: K, by: int) -> None:
    n = d.get(k, 0) + by
    if n:
        d[k] = n
    else:
        d.pop(k, None)


class Aggregates:
    def __init__(self, track: Iterable[str] = ()) -> None:
        self.by_proto: dict[int, int] = {}
        self.by_state: dict[str, int] = {}
        self.evictable = 0  # not ASSURED: what early_drop may reclaim
        self.counted = 0  # rows carrying counters (accounting was on when they were created)
        # Their bytes and packets, both directions: what a group's share is of, when ranked by them.
        self.bytes = 0
        self.packets = 0
        # Per tracked group: its entries, bytes and packets by key.
        self.groups: dict[str, tuple[Entries, dict[object, int], dict[object, int]]] = {}
        for name in track:
            if name not in GROUPS:
                raise KeyError(name)
            # Entries a Counter: add_rows counts a chunk's keys into it with Counter.update's C loop.
            self.groups[name] = (Entries(GROUPS[name].key), {}, {})

    def add(self, row: Row, sign: int = 1) -> None:
        # _bump inlined for the counts every event touches: this runs once or twice per event.
        by_proto, proto, status = self.by_proto, row[R_PROTO], row[R_STATUS]
        n = by_proto.get(proto, 0) + sign
        if n:
            by_proto[proto] = n
        else:
            del by_proto[proto]
        # state_key3's memo read inline: a call per event is a measurable share of its cost.
        pstate = row[R_PSTATE]
        by_state = self.by_state
        state = STATE_KEYS.get((proto, pstate, status & STATE_BITS)) or state_key3(proto, pstate, status)
        n = by_state.get(state, 0) + sign
        if n:
            by_state[state] = n
        else:
            del by_state[state]
        if not status & IPS_ASSURED:
            self.evictable += sign
        counted = row[R_OPKTS] is not None
        if counted:
            self.counted += sign
            self.bytes += sign * (row[R_OBYTES] + row[R_RBYTES])
            self.packets += sign * (row[R_OPKTS] + row[R_RPKTS])
        for entries, nbytes, npkts in self.groups.values():
            k = entries.key(row)
            n = entries.get(k, 0) + sign
            if n:
                entries[k] = n
            else:
                entries.pop(k, None)
            if counted:
                _bump(nbytes, k, sign * (row[R_OBYTES] + row[R_RBYTES]))
                _bump(npkts, k, sign * (row[R_OPKTS] + row[R_RPKTS]))

    def replace(self, old: Row, new: Row) -> None:
        """``add(old, -1); add(new)`` for an update of one flow, touching only what changed.

        An update keeps the flow's tuples, so its protocol and address/port groups stay;
        most updates change only the state, or nothing counted here at all.
        """
        old_status, new_status = old[R_STATUS], new[R_STATUS]
        state_changed = old[R_PSTATE] != new[R_PSTATE] or old_status != new_status
        if state_changed:
            proto, was_p, now_p = old[R_PROTO], old[R_PSTATE], new[R_PSTATE]
            was = STATE_KEYS.get((proto, was_p, old_status & STATE_BITS)) or state_key3(proto, was_p, old_status)
            now = STATE_KEYS.get((proto, now_p, new_status & STATE_BITS)) or state_key3(proto, now_p, new_status)
            if was != now:
                # _bump inlined, as in add: this runs on most updates.
                by_state = self.by_state
                n = by_state.get(was, 0) - 1
                if n:
                    by_state[was] = n
                else:
                    del by_state[was]
                n = by_state.get(now, 0) + 1
                if n:
                    by_state[now] = n
                else:
                    del by_state[now]
            self.evictable += (not new_status & IPS_ASSURED) - (not old_status & IPS_ASSURED)
        # Group keys read the tuples (unchanged), the state, mark and zone; totals read the counters.
        if state_changed or old[R_MARK] != new[R_MARK] or old[R_ZONE] != new[R_ZONE] \
                or old[R_OPKTS] != new[R_OPKTS] or old[R_OBYTES] != new[R_OBYTES] \
                or old[R_RPKTS] != new[R_RPKTS] or old[R_RBYTES] != new[R_RBYTES]:
            self._regroup(old, new)

    def _regroup(self, old: Row, new: Row) -> None:
        """The group totals and counted rows for an update whose state, counters, mark or zone changed."""
        old_counted, new_counted = old[R_OPKTS] is not None, new[R_OPKTS] is not None
        if not (old_counted or new_counted):
            # Most updates: a state change, no counters on either side (accounting off, or not read yet).
            # Only entries move, and mostly not at all: the key reads the tuples, which an update keeps.
            for entries, _nbytes, _npkts in self.groups.values():
                key = entries.key
                was, now = key(old), key(new)
                if was != now:
                    _bump(entries, was, -1)
                    _bump(entries, now, 1)
                elif entries.get(was) == 1:
                    # What out-then-in does to a key of one flow: it goes last in the dict's order.
                    # (pop, not del: Counter's __delitem__ is Python.)
                    entries[was] = entries.pop(was)
            return
        self.counted += new_counted - old_counted
        for row, sign, counted in ((old, -1, old_counted), (new, 1, new_counted)):
            if counted:
                self.bytes += sign * (row[R_OBYTES] + row[R_RBYTES])
                self.packets += sign * (row[R_OPKTS] + row[R_RPKTS])
        # Out with the old row, in with the new, in that order: the dicts' order breaks ties in top().
        for entries, nbytes, npkts in self.groups.values():
            key = entries.key
            for row, sign, counted in ((old, -1, old_counted), (new, 1, new_counted)):
                k = key(row)
                _bump(entries, k, sign)
                if counted:
                    _bump(nbytes, k, sign * (row[R_OBYTES] + row[R_RBYTES]))
                    _bump(npkts, k, sign * (row[R_OPKTS] + row[R_RPKTS]))

    def add_rows(self, rows: Sequence[Row], counters: bool = True) -> None:
        """Add many rows at once (same result as :meth:`add` on each, dicts in the same order); without
        ``counters``, as if they carried none (a bounded view, table.tally, cannot keep byte totals).

        Every per-row step is C (itemgetter, Counter.update, compress): a dump chunk holds a
        hundred-odd rows over as many groups, so the per-key work is kept to the few distinct
        states, and the group counts go straight into the totals rather than through a Counter
        and a Python loop over its keys.
        """
        self._add_states(Counter(map(_STATE_FIELDS, rows)).items())
        counted = list(compress(rows, map(is_not, map(_OPKTS, rows), repeat(None)))) if counters else []
        self.counted += len(counted)
        self.bytes += sum(r[R_OBYTES] + r[R_RBYTES] for r in counted)
        self.packets += sum(r[R_OPKTS] + r[R_RPKTS] for r in counted)
        for entries, nbytes, npkts in self.groups.values():
            key = entries.key
            entries.update(map(key, rows))  # counts only grow here, so no key reaches zero
            for r in counted:
                k = key(r)
                _bump(nbytes, k, r[R_OBYTES] + r[R_RBYTES])
                _bump(npkts, k, r[R_OPKTS] + r[R_RPKTS])

    def _add_states(self, triples: Iterable[tuple[tuple[int, int, int], int]]) -> None:
        """Flows counted by (protocol, protocol state, status), in the order first seen."""
        for (proto, pstate, status), n in triples:
            _bump(self.by_proto, proto, n)
            _bump(self.by_state, state_key3(proto, pstate, status), n)
            if not status & IPS_ASSURED:
                self.evictable += n

    def add_counts(self, counts: Counts, counters: bool = True) -> None:
        """What :meth:`add_rows` gives for the rows ``counts`` counted (kernel/_counts.c), the dicts in the same
        order, from its raw counts: each group's key is called once for each distinct set of the fields it reads
        (``GroupDef.reads``); ``counts`` was made with the tracked groups' reads, in their order. ``counters`` as
        add_rows's."""
        if counts.ngroups() != len(self.groups):
            raise ValueError(f"Aggregates.add_counts: counts of {counts.ngroups()} groups for {len(self.groups)}")
        self._add_states(counts.states())
        _flows, counted, nbytes, npkts = counts.totals() if counters else (0, 0, 0, 0)
        self.counted += counted
        self.bytes += nbytes
        self.packets += npkts
        for i, (entries, group_bytes, group_pkts) in enumerate(self.groups.values()):
            groups = counts.groups(i)
            keys = list(map(entries.key, map(itemgetter(0), groups)))
            if not entries and len(set(keys)) == len(keys):
                # Each key its own (src, pair…) into an empty count: dict's own update, in C.
                dict.update(entries, zip(keys, map(itemgetter(1), groups)))
            else:
                for k, g in zip(keys, groups):
                    entries[k] = entries.get(k, 0) + g[1]
            if not counted:
                continue
            # Where a key's bytes (packets) first went above zero, and their sum: add_rows's _bump inserts a
            # key then, so the keys go in in that order.
            for totals, sums in ((group_bytes, [(g[2], g[3]) for g in groups]),
                                 (group_pkts, [(g[4], g[5]) for g in groups])):
                firsts: dict[object, list[int]] = {}
                for k, (total, at) in zip(keys, sums):
                    if total:
                        seen = firsts.setdefault(k, [at, 0])
                        seen[0] = min(seen[0], at)
                        seen[1] += total
                for k, (_at, total) in sorted(firsts.items(), key=lambda kv: kv[1][0]):
                    _bump(totals, k, total)

    def top(self, name: str, n: int = 10, by: str = "entries") -> list[GroupRow]:
        """The ``n`` heaviest groups of a tracked key, by entries, bytes or packets."""
        entries, nbytes, npkts = self.groups[name]
        col = {"entries": entries, "bytes": nbytes, "packets": npkts}[by]
        g = GROUPS[name]
        have = self.counted > 0
        best = [k for k, _ in heapq.nlargest(n, col.items(), key=itemgetter(1))]
        if len(best) < n and col is not entries:
            # Groups that moved no bytes yet are held out of the totals (zeros are dropped): rank them
            # after the rest, by entries, rather than leave the list short or empty.
            idle = ((k, c) for k, c in entries.items() if k not in col)
            best += [k for k, _ in heapq.nlargest(n - len(best), idle, key=itemgetter(1))]
        return [GroupRow(k, g.text(k), entries.get(k, 0), nbytes.get(k, 0) if have else None,
                         npkts.get(k, 0) if have else None, g.filter(k)) for k in best]
