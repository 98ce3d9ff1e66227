"""Flow → owner matching on a hand-made socket index, and container names from cgroup texts."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from cttop.owners import cgroup
from cttop.owners.cgroup import Placement, classify
from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER, Owner, OwnerIndex, Owners
from cttop.model import AF_INET, AF_INET6, IPS_ASSURED, NO_PSTATE, Row
from tests.owners_helpers import owners_top

LO = socket.inet_aton("127.0.0.1")
HOST = socket.inet_aton("10.0.0.1")
PEER = socket.inet_aton("10.0.0.9")
FAR_A, FAR_B = socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2")
V6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
V6_PEER = socket.inet_pton(socket.AF_INET6, "fd00::9")

CLIENT = Owner(100, "curl", "docker:web")
SERVER = Owner(200, "nginx", "nginx.service")
DNS = Owner(300, "resolver", None)
V6_SRV = Owner(400, "sshd", "ssh.service")


def row(proto: int, src: bytes, sport: int, dst: bytes, dport: int, rsrc: bytes | None = None,
        rsport: int | None = None, rdst: bytes | None = None, rdport: int | None = None) -> Row:
    fam = AF_INET6 if len(src) == 16 else AF_INET
    return (1, fam, proto, NO_PSTATE, IPS_ASSURED, src, dst, sport, dport,
            rsrc or dst, rdst or src, rsport or dport, rdport or sport, 60, 0, 0, 1, None, None, None, None, 0, 0)


@pytest.fixture
def owners() -> Owners:
    o = Owners()
    o.index = OwnerIndex(
        exact={(6, HOST, 40000, PEER, 443): CLIENT,  # an outgoing connection
               (6, HOST, 80, PEER, 50000): SERVER,  # an accepted one
               (6, HOST, 40001, PEER, 443): None},  # TIME_WAIT: no process holds it
        bound={(6, HOST, 80): SERVER},
        wild={(17, 53): DNS, (6, 22): V6_SRV},
        local=frozenset({HOST, V6}), sockets=6, processes=4, took=0.0, at=0.0)
    return o


def test_initiator_end(owners: Owners) -> None:
    assert owners.owner_of(row(6, HOST, 40000, PEER, 443)) == CLIENT


def test_responder_end_after_dnat(owners: Owners) -> None:
    # The peer connected to 192.0.2.2:8080, DNAT'd to our 10.0.0.1:80: the reply tuple is what our socket sees.
    r = row(6, PEER, 50000, FAR_B, 8080, rsrc=HOST, rsport=80, rdst=PEER, rdport=50000)
    assert owners.owner_of(r) == SERVER


def test_listener_owns_what_is_not_accepted_yet(owners: Owners) -> None:
    assert owners.owner_of(row(6, PEER, 50001, HOST, 80)) == SERVER


def test_wildcard_bound_udp_on_both_sides(owners: Owners) -> None:
    assert owners.owner_of(row(17, PEER, 999, HOST, 53)) == DNS  # a query to our resolver
    assert owners.owner_of(row(17, HOST, 53, PEER, 53)) == DNS  # a query it sent from its port
    assert owners.owner_of(row(17, LO, 53, LO, 5353)) == DNS  # all of 127/8 is local


def test_wildcard_needs_a_local_address(owners: Owners) -> None:
    # A forwarded flow that happens to use port 53 belongs to nobody here.
    r = row(17, FAR_A, 53, FAR_B, 53)
    assert owners.owner_of(r) is None
    assert owners.label(r) == FORWARDED
    assert owners.container(r) == FORWARDED


def test_v6_rows_find_a_v6_wildcard_listener(owners: Owners) -> None:
    assert owners.owner_of(row(6, V6_PEER, 50000, V6, 22)) == V6_SRV


def test_local_flow_without_a_process(owners: Owners) -> None:
    r = row(6, HOST, 40001, PEER, 443)
    assert owners.owner_of(r) is None
    assert owners.label(r) == LOCAL_NO_PROCESS


def test_icmp_has_no_owner(owners: Owners) -> None:
    assert owners.owner_of(row(1, HOST, 7, PEER, 8 << 8)) is None


def test_labels_and_group_keys(owners: Owners) -> None:
    out = row(6, HOST, 40000, PEER, 443)
    assert owners.label(out) == "curl[100]"
    assert owners.process(out) == CLIENT
    assert owners.container(out) == "docker:web"
    assert owners.container(row(17, PEER, 1, HOST, 53)) == NO_CONTAINER
    defs = owners.group_defs()
    assert defs["process"].text(CLIENT) == "curl[100]" and defs["process"].text(FORWARDED) == FORWARDED


def test_top_counts_owners_over_rows(owners: Owners) -> None:
    rows = [row(6, HOST, 40000, PEER, 443)] * 3 + [row(17, PEER, p, HOST, 53) for p in range(5)] + \
        [row(17, FAR_A, 1, FAR_B, 2)] * 2
    top = owners_top(owners, rows, "process", n=2)
    assert [(g.key, g.entries) for g in top] == [(DNS, 5), (CLIENT, 3)]
    assert top[0].text == "resolver[300]" and top[0].bytes is None
    by_container = {g.key: g.entries for g in owners_top(owners, rows, "container", n=10)}
    assert by_container == {NO_CONTAINER: 5, "docker:web": 3, FORWARDED: 2}


def test_refresh_if_due_honours_the_interval(owners: Owners, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    fresh = owners.index

    def build(spec: object) -> OwnerIndex:
        calls.append(spec)
        return fresh

    monkeypatch.setattr("cttop.owners.owners.build_index", build)
    owners.interval = 3600.0
    owners.index = OwnerIndex({}, {}, {}, frozenset(), 0, 0, 0.0, at=float("-inf"))
    assert owners.refresh_if_due() is True
    monkeypatch.setattr(owners, "index", OwnerIndex({}, {}, {}, frozenset(), 0, 0, 0.0, at=1e18))
    assert owners.refresh_if_due() is False
    assert len(calls) == 1


CID = "3f" * 32
UID = "1b2c3d4e-5f6a-7b8c-9d0e-112233445566"


@pytest.mark.parametrize("text, want", [
    (f"0::/system.slice/docker-{CID}.scope\n", Placement("docker", CID)),
    (f"12:pids:/docker/{CID}\n11:cpu:/docker/{CID}\n", Placement("docker", CID)),
    (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
     f"cri-containerd-{CID}.scope\n", Placement("pod", UID)),
    (f"0::/kubepods/besteffort/pod{UID}/{CID}\n", Placement("pod", UID)),
    (f"0::/system.slice/crio-{CID}.scope\n", Placement("cri-o", CID)),
    (f"0::/machine.slice/libpod-{CID}.scope/container\n", Placement("podman", CID)),
    (f"0::/k8s.io/{CID}\n", Placement("containerd", CID)),
    ("0::/lxc.payload.web1/init.scope\n", Placement("lxc", "web1", "web1")),
    ("0::/machine.slice/machine-debian.scope\n", Placement("machine", "debian", "debian")),
    ("0::/system.slice/nginx.service\n", Placement("unit", "nginx.service")),
    ("0::/user.slice/user-0.slice/session-3.scope\n", Placement("unit", "session-3.scope")),
    # Below a subtree root delegated (a user's manager, an LXC or nspawn container), names are its owner's.
    (f"0::/user.slice/user-1000.slice/user@1000.service/app.slice/docker-{CID}.scope\n",
     Placement("docker", CID, None, "user@1000.service")),
    (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container\n",
     Placement("podman", CID, None, "user@1000.service")),
    (f"0::/user.slice/user-1000.slice/user@1000.service/kubepods-pod{UID}.slice/cri-containerd-{CID}.scope\n",
     Placement("pod", UID, None, "user@1000.service")),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/nginx.service\n",
     Placement("unit", "nginx.service", None, "user@1000.service")),
    ("0::/user.slice/user-1000.slice/user@1000.service\n", Placement("unit", "user@1000.service")),
    (f"0::/lxc.payload.web1/system.slice/docker-{CID}.scope\n", Placement("docker", CID, None, "lxc:web1")),
    (f"0::/machine.slice/machine-deb.scope/payload/docker-{CID}.scope\n",
     Placement("docker", CID, None, "machine:deb")),
    ("9:name=systemd:/\n0::/\n", None),
    ("", None),
])
def test_cgroup_patterns(text: str, want: Placement | None) -> None:
    assert classify(text) == want


def test_placement_text() -> None:
    assert Placement("docker", CID, "web").text() == "docker:web"
    assert Placement("docker", CID).text() == f"docker:{CID[:12]}"
    assert Placement("unit", "nginx.service").text() == "nginx.service"
    assert Placement("docker", CID, None, "user@1000.service").text() == f"user@1000.service/docker:{CID[:12]}"
    assert Placement("unit", "nginx.service", None, "user@1000.service").text() == "user@1000.service/nginx.service"


def test_a_delegated_cgroup_is_not_named_from_the_hosts_runtime(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's name for an id is the host's container's: a user's cgroup that took the id is not named by it."""
    monkeypatch.setattr(cgroup, "DOCKER_CONTAINERS", str(tmp_path))
    (tmp_path / CID).mkdir()
    (tmp_path / CID / "config.v2.json").write_text(json.dumps({"Name": "/web"}))
    texts = {"/proc/1/cgroup": f"0::/system.slice/docker-{CID}.scope\n",
             "/proc/2/cgroup": f"0::/user.slice/user-1000.slice/user@1000.service/app.slice/docker-{CID}.scope\n"}
    real_open = open

    def fake_open(path: str, *args: Any, **kwargs: Any) -> Any:
        return io.StringIO(texts[path]) if path in texts else real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    cgroup._docker_name.cache_clear()
    try:
        host = cgroup.placement_of(1)
        assert host is not None and host.text() == "docker:web"
        user = cgroup.placement_of(2)
        assert user is not None and user.text() == f"user@1000.service/docker:{CID[:12]}"
    finally:
        cgroup._docker_name.cache_clear()


def test_snat_through_this_router_is_forwarded(owners: Owners) -> None:
    # Masqueraded on its way through: only the reply's destination is ours, and no socket here is involved.
    r = row(6, FAR_A, 40000, FAR_B, 443, rsrc=FAR_B, rsport=443, rdst=HOST, rdport=61000)
    assert owners.owner_of(r) is None
    assert owners.label(r) == FORWARDED


def test_an_incoming_flow_without_a_process_is_local(owners: Owners) -> None:
    r = row(6, PEER, 50002, HOST, 8080)  # to a local address, nobody listening (or already closed)
    assert owners.owner_of(r) is None
    assert owners.label(r) == LOCAL_NO_PROCESS
