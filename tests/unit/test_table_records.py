"""The held store's compiled records (kernel/_records.c) against the dict they replace (table/store.py's reference).

Same answers on random operations (keys that share the conntrack id, records of every layout, with a reply tuple
that mirrors the original, that nearly does, or not, a flow moving between them), a flow's place among the
others kept while it lives, copies handed out, hostile input refused with the store as it was, and the bytes a
flow actually costs (the object's own count, not a timing).
"""

from __future__ import annotations

import random
import struct
import sys
import threading
from collections import Counter
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import native
from cttop.model import (
    AF_INET,
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_ID,
    R_MARK,
    R_OPKTS,
    R_PROTO,
    R_RDPORT,
    R_RDST,
    R_RSPORT,
    R_RSRC,
    R_SPORT,
    R_SRC,
    R_START,
    Row,
)
from cttop.table.packing import (
    LAYOUTS,
    OFFSETS,
    PACK_SPEC,
    SEEN_TIMEOUT_AT,
    SIZES,
    addr_size,
    flow_key,
    pack,
    read_timeouts,
)
from cttop.table.store import LOAD, FlowTable
from tests.unit.test_table import make_row

assert native.BUILT is not None, "the accelerator was not built: scripts/setup.sh builds it"
Records: Any = native.BUILT.Records


def fresh() -> Any:
    return Records(LAYOUTS, 1024, LOAD)


def mirror(rec: bytes, spoil: int = -1) -> bytes:
    """``rec`` with its reply tuple the mirror of its original (no NAT); ``spoil`` 0-3: all but that field."""
    o, a = OFFSETS[addr_size(rec)], addr_size(rec)
    src, dst = rec[o["src"]:o["src"] + a], rec[o["dst"]:o["dst"] + a]
    sport, dport = rec[o["sport"]:o["sport"] + 2], rec[o["dport"]:o["dport"] + 2]
    reply = [dst, src, dport, sport]
    if spoil >= 0:
        reply[spoil] = bytes(b ^ 1 for b in reply[spoil])
    return rec[:o["rsrc"]] + b"".join(reply) + rec[o["rdport"] + 2:]


def record(rnd: random.Random, size: int | None = None) -> bytes:
    """A record of any layout: half with a mirrored reply tuple (cut in the store), some nearly mirrored."""
    rec = rnd.randbytes(size if size is not None else rnd.choice(SIZES))
    way = rnd.random()
    return mirror(rec) if way < 0.5 else mirror(rec, rnd.randrange(4)) if way < 0.7 else rec


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["random", "one-id", "sequential", "extremes"]))
def test_the_records_answer_as_a_dict(seed: int, keys_from: str) -> None:
    rnd = random.Random(seed)
    if keys_from == "random":
        keys = [rnd.getrandbits(64) for _ in range(2000)]
    elif keys_from == "one-id":  # colliding conntrack ids: every key has the same tag and home
        keys = [(i << 32) | 0xDEADBEEF for i in range(1, 300)]
    elif keys_from == "sequential":
        keys = list(range(2000))
    else:
        keys = [0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1, (2**32 - 1) << 32]
    r, model = fresh(), {}
    for _ in range(5000):
        k, op = rnd.choice(keys), rnd.random()
        if op < 0.45:
            rec = record(rnd)  # a flow that changes layout (counters appear) moves to another arena
            r[k] = rec
            model[k] = rec
        elif op < 0.6:
            assert r.pop(k, None) == model.pop(k, None)
        elif op < 0.7:
            if k in model:
                del r[k]
                del model[k]
            else:
                with pytest.raises(KeyError):
                    del r[k]
        elif op < 0.8:
            pairs = [(rnd.choice(keys), record(rnd)) for _ in range(rnd.randrange(20))]
            r.update(iter(pairs))
            model.update(pairs)
        elif op < 0.81:
            r.clear()
            model.clear()
        else:
            assert r.get(k) == model.get(k)
            assert (k in r) == (k in model)
        assert len(r) == len(model)
    assert dict(r.items()) == model
    assert sorted(r.keys()) == sorted(model) == sorted(r)
    assert sorted(r.values()) == sorted(model.values())
    for k in keys:
        assert r.get(k, b"none") == model.get(k, b"none")
        if k in model:
            assert r[k] == model[k]
        else:
            with pytest.raises(KeyError):
                r[k]
            with pytest.raises(KeyError):
                r.pop(k)


def test_many_records_across_chunks_and_growth_then_all_gone() -> None:
    rnd = random.Random(7)
    r, model = fresh(), {}
    for i in range(60_000):  # past the first index's load many times over, and 4,096-record chunks
        k = rnd.getrandbits(64)
        model[k] = r[k] = rnd.randbytes(SIZES[i % 4])
    assert dict(r.items()) == model
    size = r.__sizeof__()
    for k in list(model)[::2]:
        assert r.pop(k) == model.pop(k)
    for k, rec in model.items():
        assert r[k] == rec
    for i in range(30_000):  # the freed slots (layouts 0 and 2, every other) are used again: nothing grows
        k = rnd.getrandbits(64)
        model[k] = r[k] = rnd.randbytes(SIZES[2 * i % 4])
    assert r.__sizeof__() == size
    assert dict(r.items()) == model
    for k in list(model):
        del r[k]
    assert len(r) == 0 and list(r.items()) == []
    r.clear()
    assert r.__sizeof__() < 20_000, "clear gives the arenas back"


def test_a_flow_keeps_its_place_among_the_others_while_it_lives() -> None:
    """The flow list's order among equal sort keys is the store's: growing, or others going, moves no one."""
    rnd = random.Random(3)
    r = fresh()
    first = [rnd.getrandbits(64) for _ in range(5000)]
    for k in first:
        r[k] = rnd.randbytes(SIZES[0])
    gone = set(rnd.sample(first, 2000))
    for k in gone:
        del r[k]
    for _ in range(20_000):  # new flows: the freed places first, then new ones; the index doubles twice
        r[rnd.getrandbits(64)] = rnd.randbytes(SIZES[0])
    for k in first[:100]:
        if k not in gone:
            r[k] = rnd.randbytes(SIZES[0])  # changed in place: the same layout, whole
    order = [k for k in r if k in set(first)]
    assert order == [k for k in first if k not in gone]


def test_what_is_handed_out_is_a_copy() -> None:
    r = fresh()
    a = bytes(SIZES[0])
    r[1] = a
    got = r[1]
    r[1] = b"\xff" * SIZES[0]
    assert got == a and r[1] == b"\xff" * SIZES[0]
    pairs = list(r.items())
    del r[1]
    assert pairs == [(1, b"\xff" * SIZES[0])]


def test_iterating_while_flows_come_or_go_stops_with_an_error() -> None:
    r = fresh()
    for k in range(10):
        r[k] = bytes(SIZES[0])
    it = r.values()
    next(it)
    r[3] = b"\x01" * SIZES[0]  # in place, the same layout: as a dict's value, allowed
    assert len(list(it)) == 9
    for change in (lambda: r.__setitem__(99, bytes(SIZES[0])), lambda: r.pop(5),
                   lambda: r.__setitem__(4, bytes(SIZES[1])), r.clear):
        it = iter(r)
        next(it)
        change()
        with pytest.raises(RuntimeError, match="changed during iteration"):
            next(it)
    it = r.items()
    assert len(list(it)) == len(r)
    r[100] = bytes(SIZES[0])  # an exhausted iterator stays exhausted, whatever came since
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize(("key", "rec", "error"), [
    (1, b"x" * (SIZES[0] + 1), ValueError),  # no layout has this length
    (1, b"", ValueError),
    (1, bytearray(SIZES[0]), TypeError),
    (1, "x" * SIZES[0], TypeError),
    (-1, bytes(SIZES[0]), OverflowError),
    (2**64, bytes(SIZES[0]), OverflowError),
    ("1", bytes(SIZES[0]), TypeError),
    (1.0, bytes(SIZES[0]), TypeError),
], ids=["long", "empty", "bytearray", "str", "negative", "2**64", "str-key", "float-key"])
def test_bad_keys_and_records_are_refused_and_nothing_changes(key: object, rec: object,
                                                               error: type[Exception]) -> None:
    r = fresh()
    r[7] = bytes(SIZES[2])
    before = (dict(r.items()), r.__sizeof__())
    with pytest.raises(error):
        r[key] = rec
    assert (dict(r.items()), r.__sizeof__()) == before
    with pytest.raises(error):
        r.update([(7, b"\x01" * SIZES[2]), (key, rec)])  # the first pair stored, then the bad one refused
    assert dict(r.items()) == {7: b"\x01" * SIZES[2]}
    with pytest.raises(TypeError):
        r.update([(7,)])
    with pytest.raises(TypeError):
        r.get()
    with pytest.raises(TypeError):
        r.pop(1, 2, 3)


def test_membership_of_what_can_be_no_key_is_false() -> None:
    r = fresh()
    r[0] = bytes(SIZES[0])
    assert 0 in r and -1 not in r and 2**64 not in r and "0" not in r and None not in r


@pytest.mark.parametrize("args", [
    (LAYOUTS[:3], 1024, 0.75), ((LAYOUTS[0],) * 2 + LAYOUTS[2:], 1024, 0.75),
    (((12, 0, 4),) + LAYOUTS[1:], 1024, 0.75),  # no room for the two tuples
    (((62, 50, 4),) + LAYOUTS[1:], 1024, 0.75),  # the tuples past the end
    (((62, 9, 0),) + LAYOUTS[1:], 1024, 0.75), (((62, 9, 17),) + LAYOUTS[1:], 1024, 0.75),
    (((62, -1, 4),) + LAYOUTS[1:], 1024, 0.75), (SIZES, 1024, 0.75),
    (LAYOUTS, 1000, 0.75), (LAYOUTS, 1024, 1.0), (LAYOUTS, 1024, 0.0), (LAYOUTS, 1, 0.5),
])
def test_a_store_of_impossible_shape_is_refused(args: tuple[Any, ...]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Records(*args)


def test_a_store_is_read_only_through_its_proxy_as_a_dict_is() -> None:
    """table.rates reads two dumps' stores through MappingProxyType (FlowTable.by_key)."""
    r = fresh()
    r[5] = bytes(SIZES[1])
    p = MappingProxyType(r)
    assert p.get(5) == bytes(SIZES[1]) and p.get(6) is None and 5 in p and len(p) == 1
    assert list(p.items()) == [(5, bytes(SIZES[1]))] and list(p) == [5]
    with pytest.raises(TypeError):
        p[5] = bytes(SIZES[1])  # type: ignore[index]


def v4_row(i: int) -> tuple[Any, ...]:
    src = bytes([10, i >> 16 & 255, i >> 8 & 255, i & 255])
    return (i + 1, AF_INET, 17, 255, 8, src, b"\xc0\x00\x02\x01", 1024 + i % 60000, 53,
            b"\xc0\x00\x02\x01", src, 53, 1024 + i % 60000, 30, 0, 0, 1, None, None, None, None, 0, 0)


def test_a_mirrored_reply_tuple_is_cut_and_made_again() -> None:
    rnd = random.Random(8)
    for size in SIZES:
        cut, near = fresh(), fresh()
        recs = [mirror(rnd.randbytes(size)) for _ in range(5000)]
        nears = [mirror(rnd.randbytes(size), i % 4) for i in range(5000)]
        cut.update(enumerate(recs))
        near.update(enumerate(nears))
        assert list(cut.values()) == recs and list(near.values()) == nears
        saved = (2 * addr_size(recs[0]) + 4) * 5000  # the reply tuple of each
        assert near.__sizeof__() - cut.__sizeof__() >= saved * 0.95, size
        cut[0] = nears[0]  # the flow moves to the whole records, and back
        assert cut[0] == nears[0]
        cut[0] = recs[0]
        assert list(cut.values()) == recs


def test_a_held_flow_costs_under_100_bytes_in_the_compiled_store() -> None:
    """The issue's goal for a flow held, counted by the store itself (index, arenas, their bookkeeping):
    100,000 IPv4 flows without counters (accounting is off by default), as a dump leaves them: without NAT
    (their reply tuples cut) and with (whole)."""
    rows = [v4_row(i) for i in range(100_000)]
    r = fresh()
    r.update((flow_key(row), pack(row)) for row in rows)
    per_flow = r.__sizeof__() / len(r)
    assert per_flow <= 90, per_flow
    natted = fresh()
    natted.update((flow_key(row), pack(row[:9] + (b"\xc6\x33\x64\x01",) + row[10:])) for row in rows)
    assert natted.__sizeof__() / len(natted) <= 100
    d = {flow_key(row): pack(row) for row in rows}
    assert dict(r.items()) == d
    as_dict = (sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items())) / len(d)
    assert as_dict > 1.7 * per_flow, (as_dict, per_flow)


def test_the_table_holds_its_flows_in_the_store_each_way_asks_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "DEFAULT", native.BUILT)
    assert type(FlowTable()._flows) is Records
    monkeypatch.setattr(native, "DEFAULT", None)
    assert type(FlowTable()._flows) is dict


def test_a_copy_taken_while_another_thread_writes_is_whole_and_nothing_is_lost() -> None:
    """A write from another thread while copies are taken (each shares the store's chunks, which the store copies
    before writing one): each copy is the store at one moment, never half a write, and nothing is lost."""
    rnd = random.Random(9)
    r = fresh()
    first = {rnd.getrandbits(64): rnd.randbytes(SIZES[i % 4]) for i in range(200_000)}
    r.update(first.items())
    added: dict[int, bytes] = {}
    done = threading.Event()

    def writer() -> None:
        while not done.is_set():
            k, rec = rnd.getrandbits(64), rnd.randbytes(SIZES[0])
            r[k] = rec
            added[k] = rec

    t = threading.Thread(target=writer)
    t.start()
    try:
        copies = [r.freeze() for _ in range(20)]
    finally:
        done.set()
        t.join()
    for f in copies:
        held = {f.key(i): f[i] for i in range(len(f))}
        assert {k: held[k] for k in first} == first
        assert all(added[k] == rec for k, rec in held.items() if k not in first)
    assert dict(r.items()) == first | added and added


# Packing a row in C (Records.put_row, put_rows: packing.PACK_SPEC) against packing.pack, the reference.

def packing() -> Any:
    return Records(LAYOUTS, 1024, LOAD, PACK_SPEC)


def some_rows(n: int, seed: int) -> list[Row]:
    """make_row's rows (both families, counted or not, NAT or none), a tenth with an address cut short or long
    (struct pads and cuts it), and the model's plain ints as the decoder gives them."""
    rnd, out = random.Random(seed), []
    for i in range(n):
        r = list(make_row(i + 1, rnd))
        r[R_FAMILY] = int(r[R_FAMILY])
        if rnd.random() < 0.1:
            r[R_SRC] = r[R_SRC][:rnd.randrange(len(r[R_SRC]))] if rnd.random() < 0.5 else r[R_SRC] + b"\x07\x07"
        if rnd.random() < 0.5:  # no NAT: the store cuts the reply tuple
            r[R_RSRC], r[R_RDST], r[R_RSPORT], r[R_RDPORT] = r[R_DST], r[R_SRC], r[R_DPORT], r[R_SPORT]
        out.append(tuple(r))
    return out


@pytest.mark.parametrize("seen, flags", [(0, 0), (123, 1), (2**32 - 1, 255)])
def test_a_row_packed_in_c_is_the_record_python_packs(seen: int, flags: int) -> None:
    store = packing()
    rows = some_rows(3000, seen + flags)
    for i, r in enumerate(rows):
        assert store.put_row(i, r, seen, flags) is True
    assert [store[i] for i in range(len(rows))] == [pack(r, seen, flags) for r in rows]
    bulk = packing()
    assert bulk.put_rows(list(range(len(rows))), rows, seen, 0) == len(rows)
    assert [bulk[i] for i in range(len(rows))] == [pack(r, seen) for r in rows]  # (flags 0: a dump's rows)


def spoiled(field: int, value: object) -> Row:
    r = list(some_rows(1, 5)[0])
    r[field] = value
    return tuple(r)


BAD_ROWS = [spoiled(R_SPORT, 70000), spoiled(R_MARK, 2**32), spoiled(R_ID, -1), spoiled(R_ID, None),
            spoiled(R_SRC, "10.0.0.1"), spoiled(R_OPKTS, 1), spoiled(R_START, 2**64), spoiled(R_PROTO, 1.0)]


@pytest.mark.parametrize("row", BAD_ROWS)
def test_a_row_c_would_not_pack_is_left_to_python_which_refuses_it(row: Row) -> None:
    """Out of range, of another type, counters half there: put_row stores nothing and says so; pack raises."""
    store = packing()
    assert store.put_row(1, row, 0, 0) is False and len(store) == 0
    with pytest.raises(struct.error):
        pack(row, 0, 0)


@pytest.mark.parametrize("seen, flags", [(-1, 0), (2**32, 0), (0, 256), (0, -1), (2**70, 0), (0, 2**70)])
def test_a_seen_or_flags_out_of_range_is_left_to_python(seen: int, flags: int) -> None:
    store = packing()
    assert store.put_row(1, some_rows(1, 3)[0], seen, flags) is False and len(store) == 0
    if not flags:
        assert store.put_rows([1], some_rows(1, 3), seen, 0) == 0 and len(store) == 0


def test_put_rows_stops_where_python_must_pack_and_goes_on_from_there() -> None:
    rows = some_rows(50, 8)
    rows[20] = BAD_ROWS[0]
    store = packing()
    keys = list(range(50))
    assert store.put_rows(keys, rows, 9, 0) == 20 and len(store) == 20
    assert store.put_rows(keys, rows, 9, 21) == 50 and len(store) == 49 and 20 not in store
    with pytest.raises(TypeError):
        store.put_rows(keys, rows[:-1], 9, 0)


def test_the_table_packs_in_c_and_refuses_a_bad_row_as_before() -> None:
    """FlowTable.extend with the compiled store: the records are pack's; a row pack refuses raises as it did."""
    rows = some_rows(500, 12)
    table, ref = FlowTable(), FlowTable()
    ref._flows = {}  # the dict store, which packs in Python
    table.extend(rows, 42.0)
    ref.extend(rows, 42.0)
    assert sorted(table._flows.items()) == sorted(ref._flows.items())
    with pytest.raises(struct.error):
        table.extend([BAD_ROWS[1]], 43.0)


@pytest.mark.parametrize("spec", [((), ()), (PACK_SPEC[0], ()), (PACK_SPEC[0][:-1], PACK_SPEC[1]),
                                  (PACK_SPEC[0], ((17, 3),) * 4), (((99, 4),) + PACK_SPEC[0][1:], PACK_SPEC[1]),
                                  (((-1, 0),) + PACK_SPEC[0][1:], PACK_SPEC[1]), "spec", (PACK_SPEC[0],)])
def test_a_spec_that_does_not_make_the_layouts_is_refused(spec: object) -> None:
    with pytest.raises(ValueError, match="spec is"):
        Records(LAYOUTS, 1024, LOAD, spec)


def test_a_store_made_without_a_spec_packs_nothing() -> None:
    with pytest.raises(RuntimeError, match="packs no row"):
        fresh().put_row(1, some_rows(1, 1)[0], 0, 0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000))
def test_timeouts_are_counted_as_python_reads_them(seed: int, n: int) -> None:
    """Records.timeouts: each (seen, timeout) pair counted over the records held, whole and cut (the pairs sit
    after the reply tuple a cut record lacks), freed slots left out, as read_timeouts reads the records back."""
    rnd = random.Random(seed)
    r, d = fresh(), {}
    for i in range(n):
        rec = record(rnd)
        if rnd.random() < 0.5:
            rec = mirror(rec)
        # Few distinct pairs, as a real table has, and some past 16 bits.
        o = OFFSETS[addr_size(rec)]
        meta = struct.pack(">I", rnd.choice([0, 7, 2**32 - 1])), struct.pack(">I", rnd.choice([0, 30, 431999, 2**31]))
        rec = rec[:o["timeout"]] + meta[1] + rec[o["timeout"] + 4:o["seen"]] + meta[0] + rec[o["seen"] + 4:]
        key = rnd.randrange(2**64)
        r[key] = d[key] = rec
        if rnd.random() < 0.2:
            gone = rnd.choice(list(d))
            del r[gone], d[gone]
    assert r.timeouts(SEEN_TIMEOUT_AT) == Counter(read_timeouts(d.values()))


@pytest.mark.parametrize("at", [((0, 0),) * 4, (), ((50, 60),) * 3, "x", tuple((s, 10**6) for s, _t in SEEN_TIMEOUT_AT)])
def test_timeouts_offsets_outside_the_records_fields_are_refused(at: object) -> None:
    r = fresh()
    r[1] = record(random.Random(1))
    with pytest.raises((ValueError, TypeError)):
        r.timeouts(at)
