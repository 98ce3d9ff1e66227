"""Ranking by owner on packed records gives what owners.owners gives on rows, flow for flow."""

from __future__ import annotations

import random
import time

import pytest

from cttop.live.owner_top import PackedOwners
from cttop.model import Row
from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, Owner, OwnerIndex, Owners
from cttop.table.packing import pack
from tests.owners_helpers import owners_top
from tests.ui.fixed_source import row, v4, v6

TCP, UDP, ICMP = 6, 17, 1
HOST = v4("10.0.0.1")
HOST6 = v6("fd00::1")
LO = v4("127.0.0.1")
PEER = v4("192.0.2.9")
WEB = Owner(100, "nginx", "docker:web")
CURL = Owner(200, "curl", None)
DNS = Owner(300, "unbound", "unbound.service")
API = Owner(400, "api", "pod:api-7d9")


def index() -> OwnerIndex:
    exact: dict[tuple[int, bytes, int, bytes, int], Owner | None] = {
        (TCP, HOST, 40000, PEER, 443): CURL,  # an outgoing connection
        (TCP, LO, 41000, LO, 8080): CURL,  # both ends local: the initiator's socket...
        (TCP, LO, 8080, LO, 41000): API,  # ...and the server's
        (TCP, HOST, 40001, PEER, 443): None,  # a socket whose holder is gone
        (TCP, HOST6, 40002, v6("2001:db8::9"), 443): CURL,
        (UDP, HOST, 5353, PEER, 5353): DNS,
    }
    bound = {(UDP, HOST, 53): DNS}
    wild = {(TCP, 80): WEB, (TCP, 8443): API}
    return OwnerIndex(exact, bound, wild, frozenset({HOST, HOST6}), 9, 4, 0.0, time.monotonic())


def rows() -> list[Row]:
    out = [
        row(1, TCP, HOST, PEER, 40000, 443, pstate=3, counters=(5, 500, 4, 4000)),
        row(2, TCP, LO, LO, 41000, 8080, pstate=3),
        row(3, TCP, HOST, PEER, 40001, 443, pstate=3, counters=(1, 60, 0, 0)),  # holder gone, port unbound
        row(4, TCP, HOST6, v6("2001:db8::9"), 40002, 443, pstate=3),
        row(5, UDP, HOST, PEER, 5353, 5353),
        row(6, UDP, PEER, HOST, 999, 53, counters=(1, 70, 1, 130)),  # to the bound DNS server
        row(7, TCP, PEER, HOST, 50000, 80, pstate=3),  # to the wildcard listener
        row(8, TCP, PEER, v4("203.0.113.7"), 50001, 8443, pstate=3, nat_dst=HOST),  # DNAT to a local listener
        row(9, TCP, PEER, v4("198.51.100.2"), 50002, 443, pstate=3),  # forwarded
        row(10, ICMP, HOST, PEER, 7, 8 << 8),  # local, but no process owns ICMP
        row(11, ICMP, PEER, v4("198.51.100.3"), 7, 8 << 8),  # forwarded ICMP
        row(12, TCP, HOST, PEER, 40009, 22, pstate=7),  # TIME_WAIT of a closed socket
        row(13, TCP, LO, LO, 41001, 9999, pstate=7),  # loopback counts as local even if unlisted
    ]
    rnd = random.Random(5)
    for i in range(300):
        src = rnd.choice((HOST, PEER, LO, v4("198.51.100.4")))
        dst = rnd.choice((HOST, PEER, v4("203.0.113.9")))
        proto = rnd.choice((TCP, UDP))
        out.append(row(100 + i, proto, src, dst, rnd.choice((40000, 41000, 999, 5353)),
                       rnd.choice((80, 443, 53, 8443, 8080)), pstate=3 if proto == TCP else 255,
                       counters=(rnd.randrange(9), rnd.randrange(999), 1, 1) if i % 3 else None))
    return out


@pytest.fixture
def both() -> tuple[Owners, PackedOwners]:
    owners = Owners()
    owners.index = index()
    return owners, PackedOwners(owners.index)


def test_every_record_gets_the_rows_owner(both: tuple[Owners, PackedOwners]) -> None:
    owners, packed = both
    for r in rows():
        # One record's group is its owner, or where it is when no process holds it.
        [group] = packed.top([pack(r)], "process", 1)
        assert group.key == (owners.owner_of(r) or owners.where(r)), r
    named = {r[0]: owners.label(r) for r in rows()[:13]}
    assert named == {1: "curl[200]", 2: "curl[200]", 3: LOCAL_NO_PROCESS, 4: "curl[200]", 5: "unbound[300]",
                     6: "unbound[300]", 7: "nginx[100]", 8: "api[400]", 9: FORWARDED, 10: LOCAL_NO_PROCESS,
                     11: FORWARDED, 12: LOCAL_NO_PROCESS, 13: LOCAL_NO_PROCESS}


@pytest.mark.parametrize("key", ["process", "container"])
@pytest.mark.parametrize("by", ["entries", "bytes", "packets"])
def test_top_equals_owners_top(both: tuple[Owners, PackedOwners], key: str, by: str) -> None:
    owners, packed = both
    rs = rows()
    want = owners_top(owners, rs, key, 100, by)
    got = packed.top([pack(r) for r in rs], key, 100, by)
    assert len(want) > 4
    assert sorted(got, key=repr) == sorted(want, key=repr)
    assert [g.entries if by == "entries" else g.bytes if by == "bytes" else g.packets for g in got] == \
        [g.entries if by == "entries" else g.bytes if by == "bytes" else g.packets for g in want]


def test_without_counters_bytes_are_unknown(both: tuple[Owners, PackedOwners]) -> None:
    _owners, packed = both
    top = packed.top([pack(row(1, TCP, HOST, PEER, 40000, 443, pstate=3))], "process")
    assert [(g.text, g.entries, g.bytes, g.packets) for g in top] == [("curl[200]", 1, None, None)]
