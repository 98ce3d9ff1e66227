"""The flow list over a Frozen copy (kernel/_frozen.c) against the same over a list of the same records.

The compiled store hands the flow list a Frozen copy, which selects and sorts itself by recipes; the pure-Python
path sorts a list with live/index.py's key functions. Both must give the same list: the same records in the same
order (ties included) for every sort, direction, filter and anchor.
"""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import native
from cttop.live.index import CHUNK, SORTS, ViewSpec, _sorted, build_index
from cttop.model import AF_INET, AF_INET6, NO_PSTATE, Row
from cttop.table.packing import SIZES, flow_key, pack, unpack
from cttop.table.rates import FlowRate
from cttop.table.store import FlowTable

assert native.BUILT is not None, "the accelerator was not built: scripts/setup.sh builds it"


@pytest.fixture(autouse=True)
def compiled_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables here are the compiled store's, whatever CTTOP_PURE_PYTHON says: a Frozen is what is tested,
    the list of its records (the pure path's sort) its reference."""
    monkeypatch.setattr(native, "DEFAULT", native.BUILT)


def any_row(i: int, rnd: random.Random, few: bool) -> Row:
    """A flow of any layout; ``few`` draws every field from a handful of values, so sort keys tie often."""
    v6 = rnd.random() < 0.3
    n = 16 if v6 else 4
    pick = (lambda k: rnd.randrange(2)) if few else (lambda k: rnd.randrange(k))
    src = bytes([pick(256) for _ in range(n)])
    dst = bytes([pick(256) for _ in range(n)])
    proto = rnd.choice([6, 17, 1] if few else [6, 17, 1, 58, 132, 47])
    counted = rnd.random() < 0.5
    counters = tuple(pick(2**64) if rnd.random() < 0.1 else pick(10**6) for _ in range(4)) if counted \
        else (None,) * 4
    sport, dport = pick(65536), pick(65536)
    # Half without NAT (the reply mirrors the original: the compiled store cuts it), half with.
    reply = (dst, src, dport, sport) if rnd.random() < 0.5 else (pick(256).to_bytes() * n, src, pick(65536), sport)
    return (i + 1, AF_INET6 if v6 else AF_INET, proto, pick(10) if proto == 6 else NO_PSTATE,
            rnd.choice([0, 1, 2, 3, 4, 6, 7, 8, 14, 15]), src, dst, sport, dport, *reply,
            pick(2**32), pick(2**32), pick(65536), 1, *counters, 0, 0)


def tables(rows: list[Row], rnd: random.Random) -> Any:
    """A compiled table holding ``rows`` (read at random seconds), its Frozen copy, and the copy as a list."""
    table = FlowTable()
    assert type(table._flows) is native.BUILT.Records
    stored = {flow_key(r): pack(r, rnd.choice([0, 5, 2**32 - 1]) if rnd.random() < 0.5 else 1000) for r in rows}
    table._flows.update(stored.items())
    frozen = table.records()
    assert isinstance(frozen, native.BUILT.Frozen)
    listed = list(frozen)
    # The copy is what was stored, whole (a mirrored reply tuple made again), each under its own key.
    assert sorted(listed) == sorted(stored.values())
    assert all(stored[frozen.key(i)] == rec for i, rec in enumerate(listed))
    return table, frozen, listed


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.integers(0, 3000))
def test_a_frozen_sorts_as_the_key_functions_do(seed: int, few: bool, n: int) -> None:
    rnd = random.Random(seed)
    _t, frozen, listed = tables([any_row(i, rnd, few) for i in range(n)], rnd)
    for sort in SORTS.values():
        if sort.rate is not None:
            continue
        for desc in (False, True):
            want = _sorted(listed, sort.key, desc, lambda: False)
            assert want is not None
            assert list(frozen.sorted(sort.recipe, desc)) == list(want), (sort.name, desc)


FILTERS = ["", "proto tcp", "not proto udp", "state established or state time_wait", "dport 1-30000",
           "ipv6", "bytes > 1000"]


@pytest.mark.parametrize("text", FILTERS)
def test_the_list_built_from_a_frozen_is_the_list_built_from_its_records(text: str) -> None:
    rnd = random.Random(text)
    rows = [any_row(i, rnd, few=True) for i in range(CHUNK + 3000)]  # more than a chunk: the merged sort
    _t, frozen, listed = tables(rows, rnd)
    keys = [frozen.key(i) for i in range(len(frozen))]
    rates = {k: FlowRate(rnd.random() * 100, rnd.randrange(3)) for k in rnd.sample(keys, 500)}
    anchor = keys[len(keys) // 3]
    for name in SORTS:
        for reverse in (False, True):
            spec = ViewSpec(text, name, reverse)
            got = build_index(frozen, spec, anchor=anchor, rates=rates)
            want = build_index(listed, spec, anchor=anchor, rates=rates)
            assert got is not None and want is not None
            assert list(got.records) == list(want.records), (text, name, reverse)
            assert (got.anchor_pos, got.total) == (want.anchor_pos, want.total)
            if got.anchor_pos is not None:
                assert got.records[got.anchor_pos] == listed[keys.index(anchor)]


def test_a_frozen_is_the_store_at_one_moment() -> None:
    rnd = random.Random(1)
    rows = [any_row(i, rnd, few=False) for i in range(5000)]
    table, frozen, listed = tables(rows, rnd)
    view = frozen.sorted(SORTS["src"].recipe, False)
    for r in rows[:2500]:
        del table._flows[flow_key(r)]  # the store goes on changing; what was frozen does not
    table._flows[flow_key(rows[0])] = pack(rows[1])
    del frozen
    assert sorted(view) == sorted(listed) and len(view) == 5000
    assert len(table.records()) == 2501


def test_a_frozen_answers_as_a_sequence() -> None:
    rnd = random.Random(2)
    _t, frozen, listed = tables([any_row(i, rnd, few=False) for i in range(300)], rnd)
    assert len(frozen) == 300 and frozen[-1] == listed[-1] and frozen[0] == listed[0]
    for sl in (slice(None), slice(5, 50), slice(-20, None), slice(None, None, -3), slice(400, 500), slice(7, 3)):
        assert frozen[sl] == listed[sl]
    for bad in (300, -301):
        with pytest.raises(IndexError):
            frozen[bad]
    with pytest.raises(TypeError):
        frozen["0"]
    assert [frozen.key(i) for i in range(300)] == [flow_key(unpack(r)) for r in listed]
    assert frozen.find(frozen.key(123)) == 123 and frozen.find(12345) is None and frozen.find(-1) is None
    picked = frozen.select(array("I", [5, 5, 0, 299]))
    assert list(picked) == [listed[5], listed[5], listed[0], listed[299]]
    assert list(picked.select(array("I", [3, 0]))) == [listed[299], listed[5]]  # a view of a view
    with pytest.raises(IndexError):
        frozen.select(array("I", [300]))
    for bad_positions in ([1, 2], array("H", [1]), array("Q", [1]), b"\x00" * 4):
        with pytest.raises(TypeError):
            frozen.select(bad_positions)


@pytest.mark.parametrize("recipe", [
    (), ((0, 1, (None,) * 4),) * 9, ((3, 1, (None,) * 4),), ((0, 1, (None,) * 3),),
    ((0, 2, ((0, 3),) * 4),),  # a copy wider than its segment
    ((0, 8, ((SIZES[0] - 4, 8),) * 4),),  # past the end of a record
    ((1, 1, ((0, 256),) * 4),),  # a mask of more than a byte
    ((2, 6, ((0, 4, 5),) * 4),),  # a sum's width is its length + 2
    ((2, 11, ((0, 4, 9),) * 4),),  # a sum of more than 8 bytes
    ((0, 65, ((0, 1),) * 4),),  # wider than 64 bytes
    ((0, 1, ((-1, 1),) * 4),),
    "not a recipe",
])
def test_a_bad_recipe_is_refused(recipe: Any) -> None:
    rnd = random.Random(3)
    _t, frozen, _l = tables([any_row(i, rnd, few=False) for i in range(10)], rnd)
    with pytest.raises((ValueError, TypeError)):
        frozen.sorted(recipe, False)


def test_a_frozen_copy_costs_4_bytes_a_flow_until_the_store_writes_its_chunks() -> None:
    """The copy shares the store's chunks (copy on write): a slot a flow, until the store writes a chunk, which it
    copies first; then the copy alone holds the old one, and counts it."""
    rnd = random.Random(4)
    rows = [r for r in (any_row(i, rnd, few=False) for i in range(20_000)) if r[1] == AF_INET and r[17] is None]
    table, frozen, listed = tables(rows, rnd)
    assert len(frozen) * 4 <= frozen.__sizeof__() <= len(frozen) * 4 + 2048
    view = frozen.sorted(SORTS["dst"].recipe, True)
    assert view.__sizeof__() <= len(view) * 4 + 2048  # a view holds its order, not another copy
    mirrored = sum(r[9:13] == (r[6], r[5], r[8], r[7]) for r in rows)
    stored = len(rows) * (len(listed[0]) + 8) - mirrored * 12  # a mirrored reply tuple is cut: 12 bytes
    for r in rows:  # every record written again: every chunk the copy holds is the store's no longer
        table._flows[flow_key(r)] = pack(r, 77)
    assert stored <= frozen.__sizeof__() - len(frozen) * 4 <= stored * 1.5 + 2048
    assert list(frozen) == listed and sorted(view) == sorted(listed)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_copies_taken_between_changes_each_keep_their_moment(seed: int) -> None:
    """Copy on write under every change the store makes: records rewritten in place, moved between a whole and a
    cut arena (NAT appearing, going), removed (their slots linked into the free list) and added in freed slots,
    with copies taken between the changes and dropped in any order."""
    rnd = random.Random(seed)
    rows = [any_row(i, rnd, few=False) for i in range(rnd.randrange(1, 9000))]
    table, frozen, listed = tables(rows, rnd)
    store = table._flows
    copies = [(frozen, dict(zip((frozen.key(i) for i in range(len(frozen))), listed)))]
    for step in range(rnd.randrange(1, 6)):
        for _ in range(rnd.randrange(0, 4000)):
            r, op = rnd.choice(rows), rnd.random()
            key = flow_key(r)
            if op < 0.4:
                store[key] = pack(r, rnd.randrange(100))
            elif op < 0.6:
                natted = r[:9] + (bytes(len(r[5])),) + r[10:]  # the reply tuple no longer mirrors: another arena
                store[key] = pack(natted if rnd.random() < 0.5 else r, step)
            else:
                store.pop(key, None)
        copy = store.freeze()
        copies.append((copy, dict(store.items())))
        if rnd.random() < 0.3:
            copies.pop(rnd.randrange(len(copies)))
    for copy, want in copies:
        assert {copy.key(i): copy[i] for i in range(len(copy))} == want and len(copy) == len(want)