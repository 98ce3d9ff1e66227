"""The flow store and its aggregates: incremental updates equal a rebuild, packing round-trips."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.model import (
    AF_INET,
    AF_INET6,
    EV_DESTROY,
    EV_NEW,
    EV_UPDATE,
    IPS_ASSURED,
    IPS_SEEN_REPLY,
    NO_PSTATE,
    R_OPKTS,
    R_RBYTES,
    R_TIMEOUT,
    Row,
    state_key3,
)
from cttop.table.aggregates import Aggregates
from cttop.table.groups import GROUPS
from cttop.table.history import Rate
from cttop.table.packing import (
    COUNTER_VALUES,
    COUNTERS_AT,
    ID,
    PROTO_AT,
    PSTATE_AT,
    UNREAD,
    flow_key,
    key_id,
    pack,
    read_timeouts,
    record_key,
    record_meta,
    timeout_left,
    unpack,
)
from cttop.table.store import FlowTable
from cttop.table.tally import FlowTally
from cttop.ui.flows import cells, layout
from tests.accelerated import accelerator  # noqa: F401 (autouse: every test with the compiled store and the dict)


def make_row(i: int, rnd: random.Random, acct: bool | None = None) -> Row:
    v6 = rnd.random() < 0.2
    alen = 16 if v6 else 4
    src = bytes(rnd.randrange(4) for _ in range(alen))
    dst = bytes(rnd.randrange(4) for _ in range(alen))
    proto = rnd.choice([6, 17, 1, 132, 47])
    pstate = rnd.randrange(10) if proto in (6, 132) else NO_PSTATE
    status = rnd.choice([0, IPS_SEEN_REPLY, IPS_SEEN_REPLY | IPS_ASSURED]) | 8
    counted = rnd.random() < 0.5 if acct is None else acct
    c = tuple(rnd.randrange(10**6) for _ in range(4)) if counted else (None,) * 4
    sp, dp = rnd.randrange(65536), rnd.choice([53, 80, 443, 8080])
    return (i, AF_INET6 if v6 else AF_INET, proto, pstate, status, src, dst, sp, dp, dst, src, dp, sp,
            rnd.randrange(1000), rnd.choice([0, 1, 0x10]), rnd.choice([0, 0, 7]), 1, *c,
            rnd.choice([0, 1_700_000_000_000_000_000]), rnd.choice([0, 0, 0, 1 << 70]))


def rows(n: int, seed: int = 1) -> list[Row]:
    rnd = random.Random(seed)
    return [make_row(i, rnd) for i in range(n)]


def snapshot_of(agg: Aggregates) -> tuple:
    return (agg.by_proto, agg.by_state, agg.evictable, agg.counted, agg.bytes, agg.packets, agg.groups)


def test_add_rows_equals_add_one_by_one() -> None:
    rs = rows(2000)
    a, b = Aggregates(GROUPS), Aggregates(GROUPS)
    a.add_rows(rs)
    for r in rs:
        b.add(r)
    assert snapshot_of(a) == snapshot_of(b)
    assert a.evictable == sum(1 for r in rs if not r[4] & IPS_ASSURED)
    assert sum(a.by_proto.values()) == 2000


def churn(truth: dict[int, Row], rnd: random.Random, steps: int, new: float = 0.4, update: float = 0.3,
          gone: Callable[[Row], Row] = lambda r: r) -> list[tuple[int, Row]]:
    """NEW, UPDATE and DESTROY events (shares ``new``, ``update``, the rest) over ``truth``, kept up to date. An
    update moves state, status, timeout, mark, zone and counters, never the tuples; as the kernel's, it carries a
    TCP or SCTP state only when the state moved (else NO_PSTATE, and the flow keeps its state). ``gone`` is what
    a DESTROY carries of the flow."""
    events = []
    for step in range(steps):
        op = rnd.random()
        if op < new:
            r = make_row(1000 + step, rnd)
            events.append((EV_NEW, r))
            truth[r[0]] = r
        elif op < new + update and truth:
            fid = rnd.choice(list(truth))
            old = truth[fid]
            r = make_row(fid, rnd, acct=old[17] is not None)
            stateful = old[2] in (6, 132)
            kept = stateful and rnd.random() < 0.3
            pstate = old[3] if kept else rnd.randrange(10) if stateful else NO_PSTATE
            r = old[:3] + (pstate, r[4]) + old[5:13] + r[13:]
            events.append((EV_UPDATE, r[:3] + (NO_PSTATE,) + r[4:] if kept else r))
            truth[fid] = r
        elif truth:
            fid = rnd.choice(list(truth))
            events.append((EV_DESTROY, gone(truth.pop(fid))))
    return events


def test_events_equal_a_fresh_dump() -> None:
    rnd = random.Random(7)
    live = FlowTable(track=GROUPS)
    live.extend(rows(500))
    truth = {r[0]: r for r in rows(500)}
    events = churn(truth, rnd, 3000)
    live.apply_events(events)
    fresh = FlowTable(track=GROUPS)
    fresh.extend(truth.values())
    assert len(live) == len(fresh) == len(truth)
    assert snapshot_of(live.agg) == snapshot_of(fresh.agg)
    assert {r[0]: r for r in live.rows()} == truth
    assert live.created == sum(1 for k, _ in events if k == EV_NEW)


def test_update_without_counters_keeps_the_last_counters() -> None:
    t = FlowTable(track=["src"])
    r = make_row(1, random.Random(3), acct=True)
    t.apply_events([(EV_NEW, r)])
    t.apply_events([(EV_UPDATE, r[:13] + (5,) + r[14:17] + (None,) * 4 + r[21:])])
    got = t.get(flow_key(r))
    assert got is not None and got[17:21] == r[17:21] and got[13] == 5
    assert t.top("src", by="bytes")[0].bytes == r[18] + r[20]


@pytest.mark.parametrize("proto", [6, 132])
def test_an_update_without_the_protocols_state_keeps_the_last_one(proto: int) -> None:
    """The kernel sends a TCP or SCTP flow's state only when it moved: an UPDATE for a new mark, a timeout, the
    ASSURED bit carries none, and must not turn an ESTABLISHED flow into its status ("ASSURED")."""
    for table in (FlowTable(track=["src"]), FlowTally(track=["src"])):
        r = make_row(1, random.Random(3))
        r = r[:2] + (proto, 3) + r[4:]  # ESTABLISHED (TCP) / COOKIE_ECHOED (SCTP)
        table.apply_events([(EV_NEW, r)])
        assured = r[:3] + (NO_PSTATE, r[4] | IPS_ASSURED) + r[5:13] + (431999,) + r[14:]
        table.apply_events([(EV_UPDATE, assured)])
        want = state_key3(proto, 3, r[4] | IPS_ASSURED)
        assert dict(table.agg.by_state) == {want: 1}, type(table)
        if not table.bounded:
            got = table.get(flow_key(r))
            assert got is not None and got[3] == 3 and got[13] == 431999 and got[4] & IPS_ASSURED
        table.apply_events([(EV_UPDATE, r[:3] + (7,) + r[4:])])  # a state it does send: taken
        assert dict(table.agg.by_state) == {state_key3(proto, 7, r[4]): 1}, type(table)


def udp(fid: int, src: bytes, dport: int, acct: tuple[int, int, int, int] | None = None) -> Row:
    dst = bytes([10, 0, 0, 2])
    c = acct or (None, None, None, None)
    return (fid, AF_INET, 17, NO_PSTATE, 8, src, dst, 1000 + fid, dport, dst, src, dport, 1000 + fid,
            30, 0, 0, 1, *c, 0, 0)


def test_top_ranks_and_builds_filters() -> None:
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 9])
    t = FlowTable()
    t.extend([udp(i, a, 53) for i in range(5)] + [udp(10 + i, b, 80) for i in range(2)])
    assert [(g.text, g.entries, g.filter) for g in t.top("dport", 2)] == [
        ("udp/53", 5, "udp dport 53"), ("udp/80", 2, "udp dport 80")]
    assert [(g.text, g.entries) for g in t.top("src", 1)] == [("10.0.0.1", 5)]
    assert t.top("src")[0].bytes is None  # no counters, no byte ranking to show
    t.apply_events([(EV_NEW, udp(99, b, 80, (1, 10**6, 1, 10**6)))])
    by_bytes = t.top("src", 2, by="bytes")
    assert by_bytes[0].text == "10.0.0.9" and by_bytes[0].bytes == 2 * 10**6 and by_bytes[0].entries == 3
    # 10.0.0.1 moved no bytes: ranked after the groups that did, not left out of the list.
    assert [(g.text, g.bytes, g.entries) for g in by_bytes] == [("10.0.0.9", 2 * 10**6, 3), ("10.0.0.1", 0, 5)]
    assert [(g.text, g.packets) for g in t.top("dport", 5, by="packets")] == [("udp/80", 2), ("udp/53", 0)]


def test_top_by_bytes_lists_groups_even_when_none_moved_bytes() -> None:
    t = FlowTable()
    t.extend([udp(i, bytes([10, 0, 0, i % 3]), 53, (0, 0, 0, 0)) for i in range(7)])
    assert [(g.text, g.entries, g.bytes) for g in t.top("src", 10, by="bytes")] == [
        ("10.0.0.0", 3, 0), ("10.0.0.1", 2, 0), ("10.0.0.2", 2, 0)]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 10**6))
def test_pack_round_trips(seed: int, fid: int) -> None:
    r = make_row(fid, random.Random(seed))
    assert unpack(pack(r), r[22]) == r


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 10**6), st.integers(0, 2**32 - 1))
def test_read_timeouts_gives_each_records_read_second_and_timeout(seed: int, fid: int, seen: int) -> None:
    r = make_row(fid, random.Random(seed))  # either family, with or without counters: all four layouts
    assert list(read_timeouts([pack(r, seen)])) == [(seen, r[R_TIMEOUT])]


def test_timeouts_are_the_held_flows_as_they_are_now() -> None:
    """The forecast's input: (second read, timeout left) of every flow held when it is asked, cttop's own
    flows held apart not among them. A flow that a queued event ended after the dump no longer counts (else
    the forecast would count it to end a second time), and one it made does."""
    rnd = random.Random(8)
    first, second = [make_row(i, rnd) for i in range(1, 300)], [make_row(i, rnd) for i in range(300, 500)]
    mine = {r[0] for r in second[:20]}
    own = (lambda r: r[0] in mine, lambda rec: False)
    t = FlowTable(own=own)
    t.extend(first)
    t.extend(second, at=1234.9)
    want = Counter((0, r[R_TIMEOUT]) for r in first) + Counter((1234, r[R_TIMEOUT]) for r in second[20:])
    assert Counter(t.timeouts()) == want and sum(want.values()) == len(t) == 479
    made = make_row(900, rnd)
    t.apply_events([(EV_NEW, made), (EV_DESTROY, first[0])], at=2000.0)
    want += Counter({(2000, made[R_TIMEOUT]): 1})
    want -= Counter({(0, first[0][R_TIMEOUT]): 1})
    assert Counter(t.timeouts()) == want
    t = FlowTable(own=own)  # the next dump, into a table of its own as the collector loads it
    t.extend(second)
    assert Counter(t.timeouts()) == Counter((0, r[R_TIMEOUT]) for r in second[20:])


def test_rate_ignores_counter_resets() -> None:
    r = Rate()
    r.update(0.0, 100)
    assert r.update(2.0, 300) == 100.0
    assert r.update(3.0, 10) == 0.0


def test_colliding_ids_are_two_flows() -> None:
    """Conntrack ids are 32-bit hashes and do collide in big tables: both flows must be held and counted."""
    a = udp(7, bytes([10, 0, 0, 1]), 53)
    b = udp(7, bytes([10, 0, 0, 9]), 53)
    t = FlowTable(track=["src"])
    t.extend([a, b])
    assert len(t) == 2 and t.by_proto == {17: 2}
    assert t.get(flow_key(a)) == a and t.get(flow_key(b)) == b
    assert record_key(pack(a)) == flow_key(a) and record_key(pack(b)) == flow_key(b)
    t.apply_events([(EV_DESTROY, b)])
    assert len(t) == 1 and t.get(flow_key(a)) == a and t.by_proto == {17: 1}
    assert [(g.text, g.entries) for g in t.top("src")] == [("10.0.0.1", 1)]


def test_a_record_keeps_when_it_was_read_and_whether_its_counters_are_unread() -> None:
    row = udp(5, bytes([10, 0, 0, 1]), 53)
    for seen, flags in ((0, 0), (1_767_225_600, UNREAD), (2**32 - 1, 0)):
        rec = pack(row, seen, flags)
        assert unpack(rec) == row and record_meta(rec) == (seen, flags) and record_key(rec) == flow_key(row)


def test_timeouts_count_down_from_when_they_were_read() -> None:
    row = udp(5, bytes([10, 0, 0, 1]), 53)  # 30 s left when read
    assert timeout_left(row, 1000, 1000.9) == 30
    assert timeout_left(row, 1000, 1008.2) == 22
    assert timeout_left(row, 1000, 1100.0) == 0  # ran out: the kernel ends it at its next look
    assert timeout_left(row, 1000, 999.0) == 30  # a clock that went back counts nothing down


def test_counters_an_event_did_not_carry_are_unread_until_a_dump_shows_them() -> None:
    src = bytes([10, 0, 0, 1])
    t = FlowTable()
    t.extend([udp(1, src, 53, (1, 60, 1, 90)), udp(2, src, 53)], at=100.0)  # 2: accounting was off
    t.apply_events([(EV_NEW, udp(3, src, 53)),  # new: has counters the event does not carry
                    (EV_UPDATE, udp(1, src, 53)),  # keeps the counters the dump showed
                    (EV_UPDATE, udp(2, src, 53)),  # still none: the dump said so
                    (EV_UPDATE, udp(4, src, 53))], at=107.0)  # a flow the table had not seen: unknown
    meta = {unpack(r)[0]: record_meta(r) for r in t.records()}
    assert meta == {1: (107, 0), 2: (107, 0), 3: (107, UNREAD), 4: (107, UNREAD)}
    assert unpack(t.record(flow_key(udp(1, src, 53))) or b"")[17:21] == (1, 60, 1, 90)
    t.apply_events([(EV_UPDATE, udp(3, src, 53))], at=109.0)
    assert record_meta(t.record(flow_key(udp(3, src, 53))) or b"") == (109, UNREAD)  # still not read
    fresh = FlowTable()
    fresh.extend(list(map(unpack, t.records())), at=110.0)  # a dump: what it shows is read
    assert {record_meta(r)[1] for r in fresh.records()} == {0}


def test_the_flow_list_shows_unread_counters_as_a_question_mark_and_counts_timeouts_down() -> None:
    columns = layout(80)
    names = [c.name for c in columns]
    row = udp(3, bytes([10, 0, 0, 1]), 53)
    unread = dict(zip(names, (text for text, _ in cells(row, columns, False, None, (100, UNREAD), 107.5))))
    off = dict(zip(names, (text for text, _ in cells(row, columns, False, None, (100, 0), 100.0))))
    assert (unread["bytes"], unread["timeout"]) == ("?", "23s")
    assert (off["bytes"], off["timeout"]) == ("-", "30s")



def test_the_record_offsets_are_the_layouts() -> None:
    """packing's exported offsets read back what pack wrote, in all four layouts (the fast paths slice at them)."""
    for v6 in (False, True):
        for counted in (False, True):
            r = (0xA1B2C3D4, AF_INET6 if v6 else AF_INET, 6, 3, 8, *make_row(0, random.Random(v6), counted)[5:])
            rec = pack(r)
            assert rec[ID] == bytes.fromhex("a1b2c3d4") == key_id(record_key(rec))
            assert (rec[PROTO_AT], rec[PSTATE_AT]) == (6, 3)
            at = COUNTERS_AT.get(len(rec))
            assert (at is not None) == counted
            if at is not None:
                assert COUNTER_VALUES.unpack_from(rec, at) == r[R_OPKTS:R_RBYTES + 1]
