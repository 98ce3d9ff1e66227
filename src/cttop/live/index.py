"""The flow list's index: the table's packed records, filtered and sorted, built off the UI thread.

Sorting works on the packed records themselves (:mod:`cttop.table.packing`),
slicing big-endian fields at fixed offsets, so a million flows are ordered
without unpacking them; only filtering has to unpack.

Where the store is compiled, the records are a Frozen copy (kernel/_frozen.c: the records
back to back, not a bytes object each) and it sorts them itself, without the GIL, by a
recipe made here from the same offsets (SortDef.recipe); the key functions are the
recipes' reference (tests/unit/test_index_frozen.py). A list of records (the pure-Python
store, a bounded view's page) is sorted here, in chunks, for two reasons: a newer request
(the next keystroke in the filter) can cancel the build between chunks, and one
``list.sort`` over a million keys would hold the GIL for half a second with no Python code
running, freezing the UI thread; sorted chunks merged by ``heapq.merge`` never hold it for
more than a few milliseconds. Filtering goes in chunks either way.
"""

from __future__ import annotations

import heapq
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any, Final

from cttop.filter import OwnerSource, compile_filter
from cttop.kernel import native
from cttop.table.packing import (
    FAMILY_AT,
    ID,
    O4,
    O6,
    PROTO_AT,
    PSTATE_AT,
    SIZES,
    STATUS_AT,
    V4C,
    V6_MIN,
    V6C,
    key_id,
    record_key,
    unpack,
)
from cttop.table.rates import FlowRate

CHUNK: Final = 16384


@dataclass(frozen=True)
class ViewSpec:
    """What the flow list asks for: validated filter text, sort column, direction."""

    filter: str = ""
    sort: str = "src"
    reverse: bool = False  # against the column's natural direction


# A Frozen's sort key: segments of (op, width, one field a layout in packing.SIZES' order, None where the layout
# has none: zeros). SEG_COPY's field is (offset, length), zero-padded to the width; SEG_MASK's (offset, mask), one
# byte; SEG_SUM's (offset, offset, length): a present byte (1), then the two big-endian numbers' sum in length + 1
# bytes, so an absent field (0, zeros) sorts below every real sum, as _counter's -1 does.
SEG_COPY, SEG_MASK, SEG_SUM = 0, 1, 2
Recipe = tuple[tuple[int, int, tuple[tuple[int, ...] | None, ...]], ...]


@dataclass(frozen=True)
class SortDef:
    name: str
    title: str
    key: Callable[[bytes], Any]
    descending: bool  # natural direction: biggest first for amounts, A→Z for names
    # The key as a recipe for a Frozen's sort (kernel/_frozen.c): segments built alike from every layout.
    recipe: Recipe | None = None
    # A rate between the last two dumps ("bytes" or "packets" of table.rates.FlowRate): the key is then
    # looked up in the rates the index is built with, not read from the record.
    rate: str | None = None


_FAM = slice(FAMILY_AT, FAMILY_AT + 1)
_SRC4, _SRC6 = slice(O4["src"], O4["src"] + 4), slice(O6["src"], O6["src"] + 16)
_DST4, _DST6 = slice(O4["dst"], O4["dst"] + 4), slice(O6["dst"], O6["dst"] + 16)
_SP4, _SP6 = slice(O4["sport"], O4["sport"] + 2), slice(O6["sport"], O6["sport"] + 2)
_DP4, _DP6 = slice(O4["dport"], O4["dport"] + 2), slice(O6["dport"], O6["dport"] + 2)
_TO4, _TO6 = slice(O4["timeout"], O4["timeout"] + 4), slice(O6["timeout"], O6["timeout"] + 4)
_SEEN4, _SEEN6 = slice(O4["seen"], O4["seen"] + 4), slice(O6["seen"], O6["seen"] + 4)
# Mark and zone are adjacent: one slice sorts by mark, then zone.
_MZ4, _MZ6 = slice(O4["mark"], O4["mark"] + 6), slice(O6["mark"], O6["mark"] + 6)
_STATUS_LOW = STATUS_AT + 3  # holds SEEN_REPLY and ASSURED
_from = int.from_bytes


def _src(r: bytes) -> bytes:
    return r[_FAM] + r[_SRC4] + r[_SP4] if len(r) < V6_MIN else r[_FAM] + r[_SRC6] + r[_SP6]


def _dst(r: bytes) -> bytes:
    return r[_FAM] + r[_DST4] + r[_DP4] if len(r) < V6_MIN else r[_FAM] + r[_DST6] + r[_DP6]


def _proto(r: bytes) -> int:
    return r[PROTO_AT]


def _state(r: bytes) -> int:
    return r[PROTO_AT] << 16 | r[PSTATE_AT] << 8 | r[_STATUS_LOW] & 6


def _timeout(r: bytes) -> int:
    """When the timeout runs out: rows read at different times compare by what is left, not what was."""
    if len(r) < V6_MIN:
        return _from(r[_TO4]) + _from(r[_SEEN4])
    return _from(r[_TO6]) + _from(r[_SEEN6])


def _mark(r: bytes) -> bytes:
    return r[_MZ4] if len(r) < V6_MIN else r[_MZ6]


def _counter(first: str) -> Callable[[bytes], int]:
    """Both directions of one counter summed; -1 (below every real value) without accounting."""
    second = "r" + first[1:]
    o4a, o4b, o6a, o6b = O4[first], O4[second], O6[first], O6[second]
    n4, n6 = V4C.size, V6C.size

    def key(r: bytes) -> int:
        n = len(r)
        if n == n4:
            return _from(r[o4a:o4a + 8]) + _from(r[o4b:o4b + 8])
        if n == n6:
            return _from(r[o6a:o6a + 8]) + _from(r[o6b:o6b + 8])
        return -1

    return key


def _by_rate(r: bytes) -> int:
    """Never called: a rate sort reads the rates the index is built with (see _rate_order)."""
    raise AssertionError("rate sorts have no record key")


def _each(field: Callable[[dict[str, int], int], tuple[int, ...] | None],
          only: frozenset[int] | None = None) -> tuple[tuple[int, ...] | None, ...]:
    """A recipe segment's field in every layout: ``field(offsets, address size)``, in packing.SIZES' order; None
    in a layout not among ``only`` (its records lack the field)."""
    return tuple(field(O6 if n >= V6_MIN else O4, 16 if n >= V6_MIN else 4) if only is None or n in only else None
                 for n in SIZES)


def _endpoint(addr: str, port: str) -> Recipe:
    """_src and _dst: the family, the address (an IPv4 one padded to 16 bytes: families never tie), the port."""
    return ((SEG_COPY, 1, _each(lambda o, a: (FAMILY_AT, 1))), (SEG_COPY, 16, _each(lambda o, a: (o[addr], a))),
            (SEG_COPY, 2, _each(lambda o, a: (o[port], 2))))


def _counter_recipe(first: str) -> Recipe:
    """Both directions' counter (``first``: "obytes" or "opkts"), summed; in the layouts that carry counters."""
    second = "r" + first[1:]
    return ((SEG_SUM, 10, _each(lambda o, a: (o[first], o[second], 8), frozenset({V4C.size, V6C.size}))),)


SORTS: Final[dict[str, SortDef]] = {s.name: s for s in (
    SortDef("src", "source", _src, False, _endpoint("src", "sport")),
    SortDef("dst", "destination", _dst, False, _endpoint("dst", "dport")),
    SortDef("proto", "protocol", _proto, False, ((SEG_COPY, 1, _each(lambda o, a: (PROTO_AT, 1))),)),
    SortDef("state", "state", _state, False, ((SEG_COPY, 1, _each(lambda o, a: (PROTO_AT, 1))),
                                              (SEG_COPY, 1, _each(lambda o, a: (PSTATE_AT, 1))),
                                              (SEG_MASK, 1, _each(lambda o, a: (_STATUS_LOW, 6))))),
    SortDef("timeout", "timeout", _timeout, True, ((SEG_SUM, 6, _each(lambda o, a: (o["timeout"], o["seen"], 4))),)),
    SortDef("mark", "mark/zone", _mark, False, ((SEG_COPY, 6, _each(lambda o, a: (o["mark"], 6))),)),
    SortDef("bytes", "bytes", _counter("obytes"), True, _counter_recipe("obytes")),
    SortDef("packets", "packets", _counter("opkts"), True, _counter_recipe("opkts")),
    SortDef("bytes-rate", "bytes/s", _by_rate, True, rate="bytes"),
    SortDef("packets-rate", "packets/s", _by_rate, True, rate="packets"),
)}


@dataclass(frozen=True)
class FlowIndex:
    """One built view of the flows: what the virtual list scrolls through."""

    spec: ViewSpec
    records: Sequence[bytes]  # matching flows in display order: a tuple, or a view of a Frozen copy
    total: int  # flows looked at (the table's size when the snapshot was taken)
    generation: int  # the table generation the snapshot came from
    anchor: int | None  # the flow id the cursor was on when the build was asked for
    anchor_pos: int | None  # where that flow is now, if it still matches
    seconds: float  # how long the build took
    # A bounded view's list (live.pager) holds only the first matching flows: how many matched in the kernel's
    # table. None: the list holds every match.
    paged: int | None = None
    paged_at: float | None = None  # and when that page's dump began

    @property
    def descending(self) -> bool:
        return SORTS[self.spec.sort].descending != self.spec.reverse


def build_index(records: Sequence[bytes], spec: ViewSpec, *, generation: int = 0, anchor: int | None = None,
                cancelled: Callable[[], bool] = lambda: False, owners: OwnerSource | None = None,
                rates: Mapping[int, FlowRate] | None = None) -> FlowIndex | None:
    """Filter and sort ``records`` (a list of records, or a Frozen copy); None if ``cancelled()`` turned true.

    ``owners`` answers the filter's owner words (``pid``, ``process``...), where the view has them;
    ``rates`` are the flows' bytes and packets a second, by flow key, for the rate sorts.
    """
    t0 = time.perf_counter()
    flt = compile_filter(spec.filter, owners)
    kept: Sequence[bytes] = records
    if not flt.is_all:
        match = flt.match
        keep = array("I")
        for i in range(0, len(records), CHUNK):
            if cancelled():
                return None
            keep.extend(j for j, r in enumerate(records[i:i + CHUNK], i) if match(unpack(r)))
        kept = _take(records, keep)
    sort = SORTS[spec.sort]
    desc = sort.descending != spec.reverse
    if sort.rate is not None:
        order = _rate_order(kept, rates or {}, sort.rate, desc, cancelled)
        ordered = None if order is None else _take(kept, order)
    elif _frozen(kept):
        ordered = kept.sorted(sort.recipe, desc)  # type: ignore[attr-defined]
    else:
        ordered = _sorted(kept, sort.key, desc, cancelled)
    if ordered is None or cancelled():  # (a Frozen's sort, in C, is not stopped on its way)
        return None
    pos = position(ordered, anchor) if anchor is not None else None
    return FlowIndex(spec, ordered, len(records), generation, anchor, pos, time.perf_counter() - t0)


def _frozen(records: Sequence[bytes]) -> bool:
    """Whether ``records`` is a Frozen copy (kernel/_frozen.c), which selects and sorts itself."""
    return native.BUILT is not None and isinstance(records, native.BUILT.Frozen)


def _take(records: Sequence[bytes], positions: array[int]) -> Sequence[bytes]:
    """The records at ``positions``, in that order."""
    if _frozen(records):
        return records.select(positions)  # type: ignore[attr-defined, no-any-return]
    return tuple(map(records.__getitem__, positions))


def position(records: Sequence[bytes], key: int) -> int | None:
    """Where the record of flow ``key`` is in ``records``, if it is there."""
    if _frozen(records):
        return records.find(key)  # type: ignore[attr-defined, no-any-return]
    want = key_id(key)  # the id settles most, the key the collisions
    return next((i for i, r in enumerate(records) if r[ID] == want and record_key(r) == key), None)


def _rate_order(recs: Sequence[bytes], rates: Mapping[int, FlowRate], field: str, desc: bool,
                cancelled: Callable[[], bool]) -> array[int] | None:
    """Where each record goes, moving flows by their rate, the rest (most of a big table) after them in the
    order they came.

    Only records whose conntrack id (packing.ID) some rate has are keyed, so a million
    idle flows cost a slice and a set lookup each, not a flow key.
    """
    ids = {key_id(k) for k in rates}
    moving: list[tuple[float, int]] = []
    idle = array("I")
    for i in range(0, len(recs), CHUNK):
        if cancelled():
            return None
        for j, r in enumerate(recs[i:i + CHUNK], i):
            rate = rates.get(record_key(r)) if r[ID] in ids else None
            if rate is None:
                idle.append(j)
            else:
                moving.append((getattr(rate, field), j))
    moving.sort(key=itemgetter(0), reverse=desc)
    ordered = array("I", (j for _v, j in moving))
    return ordered + idle if desc else idle + ordered


def _sorted(recs: Sequence[bytes], key: Callable[[bytes], Any], desc: bool,
            cancelled: Callable[[], bool]) -> tuple[bytes, ...] | None:
    if len(recs) <= CHUNK:
        return tuple(sorted(recs, key=key, reverse=desc))
    parts = []
    for i in range(0, len(recs), CHUNK):
        if cancelled():
            return None
        parts.append(sorted(recs[i:i + CHUNK], key=key, reverse=desc))
    merged = heapq.merge(*parts, key=key, reverse=desc)
    out: list[bytes] = []
    while part := list(islice(merged, CHUNK)):
        if cancelled():
            return None
        out += part
    return tuple(out)
