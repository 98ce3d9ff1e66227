"""A bounded view's table (table.tally) against the full one: the same counts, states and groups, no records.

Every test runs twice: with the compiled digest table and flow keys (the accelerator, kernel/_ctdecode.c), and
with their pure-Python references (table/digest.py's Digests, packing.flow_key), which must answer the same.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import native
from cttop.model import R_ID, Row
from cttop.table import packing
from cttop.table.aggregates import Aggregates
from cttop.table.digest import LOAD, Digests, DigestTable, digests
from cttop.table.groups import GROUPS, GroupDef
from cttop.table.store import FlowTable
from cttop.table.tally import FlowTally, uncounted
from tests.accelerated import accelerator  # noqa: F401 (autouse: every test both ways)
from tests.unit.test_table import churn, rows, snapshot_of


def test_each_way_is_the_one_asked_for() -> None:
    compiled = native.DEFAULT is not None
    assert isinstance(digests(), Digests) is not compiled
    assert (type(digests()) is getattr(native.BUILT, "Digests")) is compiled


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["random", "sequential", "one-home"]),
       st.sampled_from(["put", "put_many"]))
def test_the_digests_behave_as_a_dict(seed: int, keys_from: str, putting: str) -> None:
    rnd = random.Random(seed)
    if keys_from == "random":
        keys = [rnd.getrandbits(64) for _ in range(3000)]
    elif keys_from == "sequential":
        keys = list(range(1, 3000))
    else:  # every key starts its probe in the same few slots: long runs to shift back through
        keys = [(i << 32) | i for i in range(1, 3000)]
    d: DigestTable = digests()
    model: dict[int, tuple[int, ...]] = {}
    for _ in range(6000):
        k, op = rnd.choice(keys), rnd.random()
        if op < 0.55:
            shape = (rnd.randrange(4), rnd.randrange(3), rnd.choice([0, 7]), 0)
            if putting == "put":
                assert d.put(k, shape) == model.get(k)
            else:
                d.put_many([k], [shape])
            model[k] = shape
        elif op < 0.85:
            assert d.pop(k) == model.pop(k, None)
        else:
            assert d.get(k) == model.get(k)
        assert len(d) == len(model)
    assert all(d.get(k) == model.get(k) for k in keys)


def test_the_digests_grow_from_the_size_asked_for_and_refuse_what_a_key_cannot_be() -> None:
    d = digests(10_000)
    rnd = random.Random(3)
    keys = list({rnd.getrandbits(64) for _ in range(50_000)})  # 5x what was expected: doubles over LOAD
    d.put_many(keys, [(i % 7,) for i in range(len(keys))])
    assert len(d) == len(keys) and all(d.get(k) == (i % 7,) for i, k in enumerate(keys))
    for bad in (-1, 2**64, "7"):
        with pytest.raises((OverflowError, TypeError)):
            d.put(bad, (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        d.put_many([1, 2], [(1,)])
    with pytest.raises(TypeError):
        d.put(1, ([],))  # a shape is a dict key: unhashable is refused
    assert len(d) == len(keys) + 1 and d.get(1) == (1,)  # what put_many had put before it ran short stays
    assert 0 < LOAD < 1


def random_rows(rnd: random.Random, n: int) -> list[Row]:
    out = []
    for _ in range(n):
        v6 = rnd.random() < 0.3
        src, dst = rnd.randbytes(16 if v6 else 4), rnd.randbytes(16 if v6 else 4)
        sport, dport = rnd.randrange(65536), rnd.randrange(65536)
        out.append((rnd.getrandbits(32), 10 if v6 else 2, rnd.choice([6, 17, 1]), 3, 8, src, dst, sport, dport,
                    dst, src, dport, sport, 30, 0, 0, 1, None, None, None, None, 0, 0))
    return out


def test_flow_keys_are_flow_key_of_each_row() -> None:
    rows = random_rows(random.Random(5), 5000) + [r[:R_ID] + (i,) + r[R_ID + 1:] for i, r in
                                                   enumerate(random_rows(random.Random(6), 8), 2**32 - 8)]
    assert packing.flow_keys(rows) == [packing.flow_key(r) for r in rows]
    assert packing.flow_keys([]) == []
    with pytest.raises(TypeError):
        packing.flow_keys([rows[0][:5] + ([],) + rows[0][6:]])  # an unhashable address, as hash() says


def test_a_tally_counts_what_the_full_table_counts_through_updates_and_ends() -> None:
    rnd = random.Random(11)
    tally, full = FlowTally(track=GROUPS), FlowTable(track=GROUPS)
    start = rows(400)
    tally.extend(start)
    full.extend(start)
    truth = {r[0]: r for r in start}
    # The kernel's DESTROY may carry another state than the one the flow was counted under.
    events = churn(truth, rnd, 4000, update=0.35, gone=lambda r: r[:3] + (rnd.randrange(10), 0) + r[5:])
    for i in range(0, len(events), 97):
        tally.apply_events(events[i:i + 97])
    full.apply_events(events)
    again = Aggregates(GROUPS)
    again.add_rows([uncounted(r) for r in truth.values()])
    assert len(tally) == tally.held == len(truth)
    assert snapshot_of(tally.agg) == snapshot_of(again)
    # What it does not keep: records, bytes.
    assert len(tally.records()) == 0 and tally.counted == 0 and tally.agg.bytes == 0
    assert tally.created == full.created and tally.destroyed == full.destroyed


def test_a_group_not_counted_at_the_dump_waits_for_the_next() -> None:
    tally = FlowTally(track=["src"])
    tally.extend(rows(50))
    assert not tally.needs_dump
    tally.track("dport")
    assert tally.needs_dump and tally.top("dport") == []
    fresh = FlowTally(track=list(tally.agg.groups))
    fresh.extend(rows(50))
    full = FlowTable(track=["dport"])
    full.extend(rows(50))
    assert [(g.key, g.entries) for g in fresh.top("dport")] == [(g.key, g.entries) for g in full.top("dport")]
    assert not fresh.needs_dump


def test_a_tally_counts_the_dumps_timeouts_for_the_forecast() -> None:
    tally, full = FlowTally(), FlowTable()
    first, second = rows(300)[:120], rows(300)[120:]
    for t in (tally, full):
        t.extend(first, 1000.4)
        t.extend(second, 1003.9)
    assert tally.timeouts() == Counter(full.timeouts())


def test_owners_are_counted_under_the_owner_a_flow_was_first_seen_with() -> None:
    rnd = random.Random(5)
    owner_of = {}  # what the owners say now, by source address: it changes as processes come and go

    def whose(r: Row) -> str:
        return owner_of.get(r[5], "forwarded")

    group = GroupDef("process", "process", whose, str, lambda k: None)
    start = rows(300)
    for r in start:
        owner_of[r[5]] = rnd.choice(["nginx[7]", "dns[9]"])
    tally = FlowTally(track=["src"], owners=group)
    tally.extend(start)
    counted = {r[0]: whose(r) for r in start}  # each flow's owner when first seen
    truth = {r[0]: r for r in start}
    events = churn(truth, rnd, 2000)
    for i in range(0, len(events), 50):
        for r in start[:20]:  # the owners change under the flows already counted
            owner_of[r[5]] = rnd.choice(["nginx[7]", "dns[9]", "gone[3]"])
        for kind, r in events[i:i + 50]:
            if r[0] not in counted:
                counted[r[0]] = whose(r)
        tally.apply_events(events[i:i + 50])
    want = Counter(counted[fid] for fid in truth)
    assert {g.key: g.entries for g in tally.owner_top(group, 10)} == dict(want)
    assert sum(want.values()) == len(tally) == len(truth)
    # The next dump, into a tally of its own as the collector loads it, counts the owners as they are now.
    tally = FlowTally(track=["src"], owners=group)
    tally.extend(list(truth.values()))
    assert {g.key: g.entries for g in tally.owner_top(group, 10)} == dict(Counter(map(whose, truth.values())))
    # Another owner group is counted from the next dump, not from digests that hold none of it.
    other = GroupDef("container", "container", lambda r: "docker:web", str, lambda k: None)
    assert tally.owner_top(other, 10) == [] and tally.needs_dump
