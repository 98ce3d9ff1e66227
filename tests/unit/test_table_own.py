"""cttop's own flows (its DNS lookups) held apart in the flow table: in no aggregate, row or record, so the
heaviest panel and the states cannot show (and resolve) what resolving made; in ``held``, which is what the
kernel's count includes, so they are no drift."""

from __future__ import annotations

from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE, R_DPORT, R_DST, R_PROTO, R_SPORT, Row
from cttop.table.packing import O4, PROTO_AT, flow_key
from cttop.table.store import FlowTable, Own
from tests.ui.fixed_source import fixed_rows, row, v4
from tests.accelerated import accelerator  # noqa: F401 (autouse: every test with the compiled store and the dict)

SERVER = v4("10.9.0.53")
OWN_PORTS = {40053, 40054}


def own_flow(r: Row) -> bool:
    return r[R_PROTO] == 17 and r[R_DPORT] == 53 and r[R_SPORT] in OWN_PORTS and r[R_DST] == SERVER


def own_record(rec: bytes) -> bool:
    return (rec[PROTO_AT] == 17 and int.from_bytes(rec[O4["dport"]:O4["dport"] + 2]) == 53
            and int.from_bytes(rec[O4["sport"]:O4["sport"] + 2]) in OWN_PORTS
            and rec[O4["dst"]:O4["dst"] + 4] == SERVER)


OWN: Own = (own_flow, own_record)
MINE = [row(9001 + i, 17, v4("10.9.0.1"), SERVER, port, 53, status=0, timeout=30) for i, port in
        enumerate(sorted(OWN_PORTS))]
THEIRS = row(9100, 17, v4("10.9.0.1"), SERVER, 51000, 53, status=0, timeout=30)  # someone else's lookup


def summary(t: FlowTable) -> tuple[object, ...]:
    """What the view shows of a table: its rows, states, heaviest destinations and counters."""
    return (len(t), sorted(r[0] for r in t.rows()), sorted(len(r) for r in t.records()), t.by_state,
            t.by_proto, [(g.text, g.entries) for g in t.top("dst", 20)], t.evictable, t.created, t.destroyed)


def plain(rows: list[Row]) -> FlowTable:
    t = FlowTable(track=["dst"])
    t.extend(rows)
    return t


def test_own_flows_from_a_dump_are_held_apart() -> None:
    t = FlowTable(track=["dst"], own=OWN)
    t.extend([*fixed_rows(), *MINE, THEIRS])
    assert summary(t) == summary(plain([*fixed_rows(), THEIRS]))
    assert t.held == len(t) + len(MINE)
    assert all(t.get(flow_key(r)) is None for r in MINE)


def test_own_flows_from_events_are_held_apart_and_go_when_destroyed() -> None:
    t = FlowTable(track=["dst"], own=OWN)
    t.extend(fixed_rows())
    t.apply_events([(EV_NEW, r) for r in [*MINE, THEIRS]])
    t.apply_events([(EV_UPDATE, MINE[0])])
    expect = plain(fixed_rows())
    expect.apply_events([(EV_NEW, THEIRS)])
    assert summary(t) == summary(expect)  # no new/s from them either
    assert t.held == len(t) + 2
    t.apply_events([(EV_DESTROY, MINE[0])])
    assert t.held == len(t) + 1 and summary(t) == summary(expect)


def test_holding_apart_starts_and_stops_on_a_full_table() -> None:
    t = FlowTable(track=["dst"])
    t.extend([*fixed_rows(), *MINE, THEIRS])
    everything = summary(t)
    t.set_own(OWN)  # R pressed: what the table holds already is sorted out at once
    assert summary(t) == summary(plain([*fixed_rows(), THEIRS])) and t.held == len(t) + len(MINE)
    t.set_own(None)  # R again: they are back, as if never held apart
    assert summary(t) == everything and t.held == len(t)
