"""The flow store: flows by key (conntrack id and original tuple, see packing.flow_key), packed, with aggregates kept up to date as rows come and go.

Every aggregate is adjusted by the row that enters or leaves, never by rescanning,
so an event costs the same on a table of ten flows or of a million. Group totals
are only kept for keys someone asked for (:meth:`FlowTable.track`): keeping all
ten costs ~3 µs a row for data nobody reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from itertools import repeat
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, cast

from cttop.kernel import native
from cttop.model import (
    EV_DESTROY,
    EV_NEW,
    NO_PSTATE,
    R_ID,
    R_LABELS,
    R_OPKTS,
    R_PSTATE,
    R_START,
    R_STATUS,
    STATE_KEYS,
    Row,
    state_key3,
)
from cttop.table.aggregates import Aggregates, GroupRow
from cttop.table.digest import slots_for
from cttop.table.groups import GROUPS
from cttop.table.packing import (
    COUNTERS,
    FLAGS_AT,
    FLOW_TUPLE,
    KEY_HIGH,
    LAYOUTS,
    PACK_SPEC,
    SEEN_TIMEOUT_AT,
    UNREAD,
    flow_key,
    flow_keys,
    pack,
    read_timeouts,
    unpack,
)

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts, Digests, Records

__all__ = ["FlowTable", "GroupRow", "Loading", "Own"]

LOAD: Final = 0.75  # the most slots of the compiled store's index in use before it doubles
_FIRST_SLOTS: Final = 1024


def _records(expect: int) -> MutableMapping[int, bytes]:
    """Flow key -> packed record: the compiled store where it was built (~80 bytes an IPv4 flow held without
    NAT, against ~190 in a dict: no int key, dict slot or bytes header a flow, no mirrored reply tuple), else a
    dict, its reference (tests/unit/test_table_records.py)."""
    if native.DEFAULT is not None:
        slots = slots_for(expect, LOAD, _FIRST_SLOTS)
        return native.DEFAULT.Records(LAYOUTS, slots, LOAD, PACK_SPEC)  # type: ignore[no-any-return]
    return {}


# Recognisers of cttop's own flows (its DNS lookups, live.resolve), on a row and on a packed record.
Own = tuple[Callable[[Row], bool], Callable[[bytes], bool]]


class FlowTable:
    bounded = False  # holds every flow's record (table.tally's FlowTally holds none)
    needs_dump = False  # every group it may be asked for can be counted from what it holds

    def __init__(self, track: Iterable[str] = (), own: Own | None = None, expect: int = 0) -> None:
        self._flows = _records(expect)  # sized for ``expect`` flows (a dump's count) where the store is compiled
        self._labels: dict[int, int] = {}
        # cttop's own flows, held apart (packed) while ``own`` recognises them: out of every aggregate, row and
        # record, so resolving names cannot feed the view it resolves for, but in :attr:`held`, which the
        # kernel's count includes.
        self.own = own
        self._own: dict[int, bytes] = {}
        self.agg = Aggregates(track)
        self.created = 0  # NEW events applied since start, for rates
        self.destroyed = 0
        self.generation = 0  # bumped on every change, so views know when to rebuild

    # The aggregates, read as attributes of the table.
    @property
    def by_proto(self) -> dict[int, int]:
        return self.agg.by_proto

    @property
    def by_state(self) -> dict[str, int]:
        return self.agg.by_state

    @property
    def evictable(self) -> int:
        return self.agg.evictable

    @property
    def counted(self) -> int:
        return self.agg.counted

    def __len__(self) -> int:
        return len(self._flows)

    @property
    def held(self) -> int:
        """The flows the kernel's count has: the table's and cttop's own held apart."""
        return len(self._flows) + len(self._own)

    def set_own(self, own: Own | None) -> None:
        """Hold apart what ``own`` recognises from now on (None: nothing, and what was held apart comes back)."""
        if own is self.own:
            return
        back, self._own, self.own = self._own, {}, own
        for fid, rec in back.items():
            if own is not None and own[1](rec):
                self._own[fid] = rec
            else:
                self._flows[fid] = rec
                self.agg.add(unpack(rec), 1)
        if own is not None:
            for fid in [fid for fid, rec in self._flows.items() if own[1](rec)]:
                self._own[fid] = rec = self._flows.pop(fid)
                self.agg.add(unpack(rec, self._labels.pop(fid, 0) if self._labels else 0), -1)
        self.generation += 1

    def __contains__(self, key: int) -> bool:
        return key in self._flows

    def get(self, key: int) -> Row | None:
        """The row stored under ``key`` (:func:`flow_key` of a row, :func:`record_key` of a record)."""
        rec = self._flows.get(key)
        return None if rec is None else unpack(rec, self._labels.get(key, 0))

    def record(self, key: int) -> bytes | None:
        """The packed record under ``key``, with when it was read and its flags (packing.record_meta)."""
        return self._flows.get(key)

    def rows(self) -> Iterator[Row]:
        labels = self._labels
        for fid, rec in self._flows.items():
            yield unpack(rec, labels.get(fid, 0) if labels else 0)

    def by_key(self) -> Mapping[int, bytes]:
        """The packed rows by key, read-only: for comparing two dumps' tables (table.rates)."""
        return MappingProxyType(self._flows)

    def records(self) -> Sequence[bytes]:
        """The packed rows as they are now, for views that sort and index without unpacking everything: a Frozen
        copy where the store is compiled (kernel/_frozen.c: the records back to back), else a list."""
        flows = self._flows
        return list(flows.values()) if isinstance(flows, dict) else flows.freeze()  # type: ignore[attr-defined]

    def timeouts(self) -> Counter[tuple[int, int]]:
        """Each flow's (second it was read, timeout left then), counted: the forecast's input, once per dump. Read
        from the records, so a flow that ended or changed while the dump was read (its queued event applied after
        it) counts as it is now: counted as the dump came in, it would be counted to end again. The compiled
        store counts them itself (no bytes object a flow: 0.26 s of CPU at a million read back as bytes, 4 ms so)."""
        flows = self._flows
        if isinstance(flows, dict):
            return Counter(read_timeouts(flows.values()))
        # (_records: a store that is not a dict is a Records; the cast lets the stub check the call)
        return Counter(cast("Records", flows).timeouts(SEEN_TIMEOUT_AT))

    def track(self, name: str) -> None:
        """Start keeping the ``name`` group totals (one scan now, incremental after)."""
        if name in self.agg.groups:
            return
        fresh = Aggregates([name])
        fresh.add_rows(list(self.rows()))
        self.agg.groups[name] = fresh.groups[name]

    def top(self, name: str, n: int = 10, by: str = "entries") -> list[GroupRow]:
        self.track(name)
        return self.agg.top(name, n, by)

    def extend(self, rows: Iterable[Row], at: float = 0.0) -> None:
        """Add a dump chunk of rows the table does not hold yet (batch-counted), read at ``at``."""
        rows = self._held_apart(rows, at)
        keys, seen = flow_keys(rows), int(at)
        put_rows = getattr(self._flows, "put_rows", None)
        if put_rows is None:
            self._flows.update(zip(keys, map(pack, rows, repeat(seen))))
        else:
            # Packed in C (the compiled store, packing.PACK_SPEC); a row it leaves, Python packs, or says what
            # is wrong with it.
            done = 0
            while (done := put_rows(keys, rows, seen, done)) < len(rows):
                self._flows[keys[done]] = pack(rows[done], seen)
                done += 1
        self._labels.update((flow_key(r), r[R_LABELS]) for r in rows if r[R_LABELS])
        self.agg.add_rows(rows)
        self.generation += 1

    def loading(self) -> Loading | None:
        """How to read a dump into this empty table without a row a flow (live.collector): the compiled walk
        packs each flow into the store and counts it (kernel/_counts.c), and the aggregates are made of the
        counts once it is in (:meth:`Loading.done`). None where rows are needed: the pure-Python store, or
        what :meth:`_load_counts` says."""
        counts = None if isinstance(self._flows, dict) else self._load_counts()
        return None if counts is None else Loading(self, counts, self._flows)  # type: ignore[arg-type]

    def _load_counts(self) -> Counts | None:
        """The Counts a walked load of this table counts into; None where the walk cannot load it: a table not
        empty, cttop's own flows to hold apart (recognised on rows), or a group the counts cannot give (one whose
        key reads more than the row)."""
        reads = [GROUPS[name].reads for name in self.agg.groups]
        if native.DEFAULT is None or self.own is not None or len(self) or None in reads:
            return None
        return native.DEFAULT.Counts(*reads)

    def _held_apart(self, rows: Iterable[Row], at: float) -> list[Row]:
        """A dump chunk's rows less cttop's own flows, which are held apart (packed, read at ``at``)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if self.own is not None:
            mine = self.own[0]
            self._own.update((flow_key(r), pack(r, int(at))) for r in rows if mine(r))
            rows = [r for r in rows if not mine(r)]
        return rows

    def apply_events(self, events: Iterable[tuple[int, Row]], at: float = 0.0) -> None:
        """Events received at ``at``. A flow whose counters no event has carried yet is kept UNREAD
        until a dump shows them: NEW and UPDATE events carry none, whether or not the flow counts."""
        seen = int(at)
        if self.own is not None:
            events = self._hold_own(events, seen)
        store = self._compiled()
        if store is None:
            self._apply_rows(events, seen)
        else:
            # kernel/_apply.c does _apply_rows' work (~2.3 µs an event in Python), up to an event it leaves to
            # Python (one it would not store as it is); that one is applied here, in its place.
            events = events if isinstance(events, list) else list(events)
            apply, i = native.BUILT.apply_events, 0  # type: ignore[union-attr]
            while i < len(events):
                i, created, destroyed = apply(store, events, i, seen, self._labels, self.agg, STATE_KEYS, state_key3)
                self.created += created
                self.destroyed += destroyed
                if i < len(events):
                    self._apply_rows(events[i:i + 1], seen)
                    i += 1
        self.generation += 1

    def _compiled(self) -> object | None:
        """The compiled store events are applied to in C (kernel/_apply.c), or None: the dict's are Python's."""
        return None if isinstance(self._flows, dict) else self._flows

    def _apply_rows(self, events: Iterable[tuple[int, Row]], seen: int) -> None:
        """apply_events' work in Python: the pure-Python store's, and the reference of the compiled one's."""
        # The event hot path: flow_key and the store of one row are written out here
        # rather than called, as a call per event is a measurable share of its cost.
        flows, labels, agg = self._flows, self._labels, self.agg
        put_row = getattr(flows, "put_row", None)  # the compiled store packs a row itself (packing.PACK_SPEC)
        for kind, row in events:
            fid = hash(row[FLOW_TUPLE]) & KEY_HIGH | row[R_ID]
            if kind == EV_DESTROY:
                self.destroyed += 1
                old = flows.pop(fid, None)
                if old is not None:
                    agg.add(unpack(old, labels.pop(fid, 0) if labels else 0), -1)
                continue
            if kind == EV_NEW:
                self.created += 1
            old = flows.get(fid)
            if old is None:
                # A label is only ever held for a flow the table holds, so there is none to drop here.
                flags = UNREAD if row[R_OPKTS] is None else 0
                if put_row is None or not put_row(fid, row, seen, flags):
                    flows[fid] = pack(row, seen, flags)
                if row[R_LABELS]:
                    labels[fid] = row[R_LABELS]
                agg.add(row, 1)
                continue
            old_row = unpack(old, labels.get(fid, 0) if labels else 0)
            flags = 0
            if row[R_OPKTS] is None:
                if old_row[R_OPKTS] is not None:
                    # UPDATE events carry no counters; keep the last ones we saw.
                    row = row[:R_OPKTS] + old_row[COUNTERS] + row[R_START:]
                else:
                    flags = old[FLAGS_AT[len(old)]]  # a dump showed none (accounting off), or none read yet
            if row[R_PSTATE] == NO_PSTATE and old_row[R_PSTATE] != NO_PSTATE:
                # An UPDATE carries the protocol's state only when it changed (the kernel's IPCT_PROTOINFO): keep
                # the last one seen, or an established TCP flow reads as its status ("ASSURED") until a dump.
                row = row[:R_PSTATE] + old_row[R_PSTATE:R_STATUS] + row[R_STATUS:]
            if put_row is None or not put_row(fid, row, seen, flags):
                flows[fid] = pack(row, seen, flags)
            if row[R_LABELS]:
                labels[fid] = row[R_LABELS]
            elif labels:
                labels.pop(fid, None)
            agg.replace(old_row, row)

    def _hold_own(self, events: Iterable[tuple[int, Row]], seen: int) -> list[tuple[int, Row]]:
        """Apply the events of cttop's own flows to where they are held apart; the others, to be applied."""
        assert self.own is not None
        mine, held, rest = self.own[0], self._own, []
        for kind, row in events:
            if not mine(row):
                rest.append((kind, row))
            elif kind == EV_DESTROY:
                held.pop(flow_key(row), None)
            else:
                held[flow_key(row)] = pack(row, seen)
        return rest


class Loading:
    """A dump being read into an empty FlowTable by the compiled walk (FlowTable.loading, Decoder.count_chunk):
    ``into`` is the table's store, each flow packed into it as read at ``seen`` (the caller moves it on as the dump
    comes in); a flow the walk leaves to Python comes to :meth:`row`. The table's aggregates are those of
    ``add_rows`` over the same rows, dict order included (Aggregates.add_counts), once :meth:`done`."""

    counters = True  # the aggregates keep bytes and packets (a bounded table's cannot: table.tally)

    def __init__(self, table: FlowTable, counts: Counts, into: Records | Digests) -> None:
        self.table, self.counts, self.into = table, counts, into
        self.seen = 0

    def row(self, row: Row) -> None:
        """A row Python decoded, held as FlowTable.extend holds one (pack refuses what it refuses) and counted."""
        key, records = flow_key(row), self.table._flows
        if not records.put_row(key, row, self.seen, 0):  # type: ignore[attr-defined]
            records[key] = pack(row, self.seen)
        if row[R_LABELS]:
            self.table._labels[key] = row[R_LABELS]
        self.counts.add_row(row)

    def done(self) -> None:
        """The dump is in: its counts become the table's aggregates."""
        self.table.agg.add_counts(self.counts, self.counters)
        self.table.generation += 1
