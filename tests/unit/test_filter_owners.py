"""The owner words of the filter (pid, process, container, owned, forwarded) on a hand-made socket index.

The property that matters for the TUI: Enter on a process or container group sets
``owner_filter(key)``, and that filter selects exactly the flows the group counted.
"""

from __future__ import annotations

import socket

import pytest

from cttop.filter import FilterError, compile_filter, parse
from cttop.filter.ast import And, Not, Owned, Port
from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER, Owner, OwnerIndex, Owners, owner_filter
from cttop.live.owner_top import PackedOwners
from cttop.model import AF_INET, IPS_ASSURED, NO_PSTATE, Row
from cttop.table.packing import pack

HOST = socket.inet_aton("10.0.0.1")
PEER = socket.inet_aton("10.0.0.9")
FAR_A, FAR_B = socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2")

CLIENT = Owner(100, "curl", "docker:web")
SERVER = Owner(200, "nginx", "getty@tty1.service")
DNS = Owner(300, "resolver", None)


def row(proto: int, src: bytes, sport: int, dst: bytes, dport: int, fid: int) -> Row:
    return (fid, AF_INET, proto, NO_PSTATE, IPS_ASSURED, src, dst, sport, dport,
            dst, src, dport, sport, 60, 0, 0, 1, None, None, None, None, 0, 0)


ROWS = [
    row(6, HOST, 40000, PEER, 443, 1),  # curl's connection
    row(6, HOST, 40002, PEER, 443, 2),  # curl's second one
    row(6, PEER, 50000, HOST, 80, 3),  # to nginx's listener
    row(17, HOST, 5353, PEER, 53, 4),  # the resolver's wildcard-bound socket
    row(6, HOST, 40001, PEER, 443, 5),  # TIME_WAIT: local, nobody holds it
    row(17, FAR_A, 1000, FAR_B, 53, 6),  # passing through
    row(1, FAR_A, 7, FAR_B, 0, 7),  # ICMP passing through
]


@pytest.fixture
def owners() -> Owners:
    o = Owners()
    o.index = OwnerIndex(
        exact={(6, HOST, 40000, PEER, 443): CLIENT, (6, HOST, 40002, PEER, 443): CLIENT,
               (6, HOST, 40001, PEER, 443): None},
        bound={(6, HOST, 80): SERVER},
        wild={(17, 5353): DNS},
        local=frozenset({HOST}), sockets=5, processes=3, took=0.0, at=1.0)
    return o


def ids(text: str, owners: Owners) -> list[int]:
    return [r[0] for r in compile_filter(text, owners).select(ROWS)]


def test_each_word_selects_its_flows(owners: Owners) -> None:
    assert ids("pid 100", owners) == [1, 2]
    assert ids("process nginx", owners) == [3]
    assert ids("container docker:web", owners) == [1, 2]
    assert ids("container getty@tty1.service", owners) == [3]
    assert ids("owned", owners) == [1, 2, 3, 4]
    assert ids("forwarded", owners) == [6, 7]
    assert ids("not owned and not forwarded", owners) == [5]


def test_owner_words_combine_with_the_rest(owners: Owners) -> None:
    assert ids("pid 100 or udp dport 53", owners) == [1, 2, 4, 6]
    assert ids("owned and not tcp", owners) == [4]
    assert ids("process curl and sport 40002", owners) == [2]
    assert parse("process curl sport 40002", owners=True) == \
        And((Owned("process", "curl"), Port("sport", 40002, 40002)))
    assert parse("not pid 0x10", owners=True) == Not(Owned("pid", 16))


def test_names_are_case_sensitive_and_nobody_is_no_match(owners: Owners) -> None:
    assert ids("process NGINX", owners) == []
    assert ids("pid 999", owners) == []
    assert compile_filter("pid 100", owners).kernel is None  # nothing for the kernel to narrow by
    assert compile_filter("tcp and pid 100", owners).kernel is not None  # the rest still goes down


def test_the_filter_asks_the_owners_current_index(owners: Owners) -> None:
    flt = compile_filter("pid 100", owners)
    assert [r[0] for r in flt.select(ROWS)] == [1, 2]
    owners.index = OwnerIndex({}, {}, {}, frozenset({HOST}), 0, 0, 0.0, 2.0)  # curl exited
    assert flt.select(ROWS) == []


@pytest.mark.parametrize(("text", "column", "message"), [
    ("pid", 4, "expected a process id after 'pid'"),
    ("pid x", 5, "bad process id 'x'"),
    ("tcp and process", 16, "expected a process name after 'process'"),
    ("container (", 11, "expected a container name after 'container'"),
])
def test_bad_owner_terms_point_at_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(FilterError) as e:
        parse(text, owners=True)
    assert (e.value.column, e.value.message) == (column, message)


@pytest.mark.parametrize("text", ["pid 5", "tcp and process nginx", "not owned", "forwarded or udp"])
def test_without_owners_the_words_are_an_error_at_their_column(text: str) -> None:
    word = next(w for w in ("pid", "process", "owned", "forwarded") if w in text)
    with pytest.raises(FilterError) as e:
        compile_filter(text)
    assert e.value.column == text.index(word) + 1
    assert "needs the flows' owners" in e.value.message


def test_a_group_filter_selects_exactly_that_groups_flows(owners: Owners) -> None:
    packed = PackedOwners(owners.index)
    records = [pack(r) for r in ROWS]
    for key in ("process", "container"):
        groups = packed.top(records, key, n=20)
        assert sum(g.entries for g in groups) == len(ROWS)
        for g in groups:
            assert g.filter == owner_filter(g.key)
            if g.filter is None:
                assert g.key == NO_CONTAINER  # host processes: no container word to say it with
                continue
            chosen = compile_filter(g.filter, owners).select(ROWS)
            assert len(chosen) == g.entries, (key, g.text)
            group_of = owners.process if key == "process" else owners.container
            assert {group_of(r) for r in chosen} == {g.key}


def test_owner_filter_texts() -> None:
    assert owner_filter(CLIENT) == "pid 100"
    assert owner_filter(FORWARDED) == "forwarded"
    assert owner_filter(LOCAL_NO_PROCESS) == "not owned and not forwarded"
    assert owner_filter("pod:api-7d9") == "container pod:api-7d9"
    assert owner_filter(NO_CONTAINER) is None
    assert owner_filter("odd name") is None  # the filter has no way to spell a space
