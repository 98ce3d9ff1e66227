"""Forwarded flows attributed to the host's other namespaces, on a hand-made host map.

A router namespace (10.0.0.1) forwards for three container namespaces: web (a process
holds its socket), api (a pod listening on 53, the backend of a DNAT'd service) and
spray (no socket: a raw sender). The rules: a flow with no local end belongs to the
namespace of its original source, else of its reply source (after DNAT); the process is
looked up among that namespace's sockets; every group's filter selects exactly its flows;
the packed-record ranking agrees with Owners row for row.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from cttop.filter import compile_filter
from cttop.kernel.netns import NetnsError
from cttop.live.owner_top import PackedOwners
from cttop.owners.netmap import HostMap
from cttop.owners.owners import (
    EMPTY_INDEX,
    FORWARDED,
    LOCAL_NO_PROCESS,
    NO_PROCESS,
    Neighbour,
    Owner,
    OwnerIndex,
    Owners,
    owner_filter,
)
from cttop.model import Row
from cttop.table.packing import pack
from tests.owners_helpers import owners_top
from tests.ui.fixed_source import row, v4

UDP, TCP, ICMP = 17, 6, 1
HOST, WEB_A, API_A, SPRAY_A = v4("10.0.0.1"), v4("10.61.0.2"), v4("10.61.0.3"), v4("10.61.0.4")
VIP, FAR, FAR2 = v4("10.96.0.10"), v4("203.0.113.9"), v4("198.51.100.7")
CHRONY = Owner(50, "chronyd", "chrony.service")
CURL = Owner(100, "curl", "docker:web")
DNSD = Owner(200, "dnsd", "pod:api-7d9")


def index(exact: dict | None = None, bound: dict | None = None, local: frozenset[bytes] = frozenset(),  # type: ignore[type-arg]
          hosts: HostMap | None = None) -> OwnerIndex:
    return OwnerIndex(exact or {}, bound or {}, {}, local, 0, 0, 0.0, time.monotonic(), hosts)


WEB = Neighbour(11, "docker:web", "web-ns", index({(UDP, WEB_A, 40000, FAR, 9999): CURL}, local=frozenset({WEB_A})))
API = Neighbour(12, "pod:api-7d9", "api-ns", index(bound={(UDP, API_A, 53): DNSD}, local=frozenset({API_A})))
SPRAY = Neighbour(13, "docker:spray", "spray-ns", EMPTY_INDEX)
HOSTS = HostMap({WEB_A: WEB, API_A: API, SPRAY_A: SPRAY}, 3, 0, frozenset(), 0.0)

ROWS: list[Row] = [
    row(1, UDP, WEB_A, FAR, 40000, 9999, nat_src=HOST),  # web's process, masqueraded out
    row(2, UDP, WEB_A, VIP, 40001, 53, nat_dst=API_A, nat_src=HOST),  # web to the service: its socket is gone
    row(3, UDP, FAR, VIP, 5000, 53, nat_dst=API_A),  # from outside to the service: the backend's
    row(4, UDP, SPRAY_A, FAR, 1234, 9999, nat_src=HOST),  # spray, no socket
    row(5, ICMP, SPRAY_A, FAR, 7, 8 << 8),  # spray's ping: no ports, still spray's
    row(6, UDP, FAR, FAR2, 1, 2),  # passing through, nobody's here
    row(7, UDP, HOST, FAR, 123, 123),  # the router's own chronyd
    row(8, TCP, HOST, FAR, 40500, 443),  # the router's, its socket closed
]


@pytest.fixture
def owners() -> Owners:
    o = Owners()
    o.index = index({(UDP, HOST, 123, FAR, 123): CHRONY}, local=frozenset({HOST}), hosts=HOSTS)
    return o


def test_each_flow_is_attributed_by_its_source_then_its_reply_source(owners: Owners) -> None:
    got = [(owners.label(r), owners.container(r)) for r in ROWS]
    assert got == [
        ("curl[100]", "docker:web"),
        ("docker:web" + NO_PROCESS, "docker:web"),
        ("dnsd[200]", "pod:api-7d9"),
        ("docker:spray" + NO_PROCESS, "docker:spray"),
        ("docker:spray" + NO_PROCESS, "docker:spray"),
        (FORWARDED, FORWARDED),
        ("chronyd[50]", "chrony.service"),
        (LOCAL_NO_PROCESS, LOCAL_NO_PROCESS),
    ]
    # A container's process is named after the namespace it was found in, whatever its own cgroup says.
    assert owners.owner_of(ROWS[0]) == CURL


def test_a_dnat_flow_shows_the_backend_whoever_it_is_attributed_to(owners: Owners) -> None:
    assert [b.label if (b := owners.backend(r)) is not None else None for r in ROWS[:4]] == \
        [None, "pod:api-7d9", "pod:api-7d9", None]
    j = owners.flow_json(ROWS[1])
    assert j["container"] == "docker:web" and j["namespace"] == "web-ns" and j["pid"] is None
    assert j["backend"] == {"service": "10.96.0.10:53", "address": "10.61.0.3:53", "container": "pod:api-7d9",
                            "namespace": "api-ns"}


def test_the_words_know_the_containers(owners: Owners) -> None:
    def ids(text: str) -> list[int]:
        return [r[0] for r in compile_filter(text, owners).select(ROWS)]

    assert ids("container docker:web") == [1, 2]
    assert ids("container docker:spray") == [4, 5]
    assert ids("pid 200") == [3]
    assert ids("owned") == [1, 2, 3, 4, 5, 7]
    assert ids("forwarded") == [6]
    assert ids("not owned and not forwarded") == [8]


def test_without_a_host_map_forwarded_flows_stay_forwarded(owners: Owners) -> None:
    owners.index = index({(UDP, HOST, 123, FAR, 123): CHRONY}, local=frozenset({HOST}))
    assert [owners.container(r) for r in ROWS[:6]] == [FORWARDED] * 6
    assert owners.backend(ROWS[1]) is None


@pytest.mark.parametrize("key", ["process", "container"])
def test_every_group_filter_selects_exactly_its_flows_and_packed_ranking_agrees(owners: Owners, key: str) -> None:
    records = [pack(r) for r in ROWS]
    packed = PackedOwners(owners.index).top(records, key, n=20)
    assert [(g.key, g.text, g.entries, g.filter) for g in packed] == \
        [(g.key, g.text, g.entries, g.filter) for g in owners_top(owners, ROWS, key, n=20)]
    assert sum(g.entries for g in packed) == len(ROWS)
    group_of = owners.process if key == "process" else owners.container
    for g in packed:
        assert g.filter == owner_filter(g.key)
        if g.filter is None:
            assert str(g.key).endswith(NO_PROCESS)  # flows of a container that no process holds: no word says it
            continue
        chosen = compile_filter(g.filter, owners).select(ROWS)
        assert {group_of(r) for r in chosen} == {g.key} and len(chosen) == g.entries, g.text


def test_a_due_refresh_after_the_first_runs_on_a_thread_and_readers_keep_the_last_index(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()

    def build(spec: object) -> OwnerIndex:
        started.set()
        assert release.wait(10)
        return index(local=frozenset({HOST}))

    monkeypatch.setattr("cttop.owners.owners.build_index", build)
    o = Owners(interval=1.0)
    o.index = old = replace(index(), at=time.monotonic() - 3600)  # refreshed long ago
    assert o.refresh_if_due() is False  # returns at once...
    assert started.wait(10)
    assert o.index is old and o.refresh_if_due() is False  # ...the last index stays, and one refresh runs
    release.set()
    assert o._refreshing is not None
    o._refreshing.join(10)
    assert o.index is not old and o.index.local == frozenset({HOST}) and o.error is None


def test_a_failed_background_refresh_keeps_the_index_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(spec: object) -> OwnerIndex:
        raise NetnsError("--netns gone: no such network namespace")

    monkeypatch.setattr("cttop.owners.owners.build_index", build)
    o = Owners(interval=1.0)
    o.index = old = replace(index(), at=time.monotonic() - 3600)
    o.refresh_if_due()
    assert o._refreshing is not None
    o._refreshing.join(10)
    assert o.index is old and o.error == "--netns gone: no such network namespace"
    assert o.refresh_if_due() is False and not o._refreshing.is_alive()  # not retried at once
