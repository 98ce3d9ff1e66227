"""The host map: every namespace's addresses over rtnetlink, and which namespace an address shared by
several names (the one a veth of the viewed namespace leads to, or none).

The oracle is `ip -o addr` in each namespace.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from cttop.host.containers import host_map
from cttop.kernel import rtnl
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.lab.containers import cgroup_root, enter_cgroup
from cttop.owners.netmap import NsRef, build_map
from tests.conftest import add_netns, delete_netns, make_netns, run_cttop, sh

pytestmark = pytest.mark.kernel

SHARED, UNIQUE, CONTESTED = "10.250.7.2", "10.250.8.5", "10.250.9.9"


def kernel_addresses(ns: str) -> set[str]:
    """Global- and site-scoped addresses, as `ip` shows them."""
    out = set()
    for line in sh("ip", "-o", "addr", "show", netns=ns).splitlines():
        f = line.split()
        if "scope" in f and f[f.index("scope") + 1] not in ("host", "link"):
            out.add(f[3].split("/")[0])
    return out


def text(a: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(a) == 4 else socket.AF_INET6, a)


@pytest.fixture
def world() -> Iterator[dict[str, str]]:
    names: dict[str, str] = {}
    try:
        for role in ("viewed", "linked", "twin", "alone", "d1", "d2"):
            names[role] = make_netns()
        sh("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", names["linked"],
           netns=names["viewed"])
        sh("ip", "addr", "add", f"{SHARED}/24", "dev", "v1", netns=names["linked"])
        sh("ip", "addr", "add", "fd00:250::2/64", "dev", "v1", "nodad", netns=names["linked"])
        sh("ip", "link", "set", "v1", "up", netns=names["linked"])
        for role, addr in (("twin", SHARED), ("alone", UNIQUE), ("d1", CONTESTED), ("d2", CONTESTED)):
            sh("ip", "addr", "add", f"{addr}/32", "dev", "lo", netns=names[role])  # global scope, on no link
        yield names
    finally:
        for ns in names.values():
            delete_netns(ns)


def test_addresses_are_what_ip_shows(world: dict[str, str]) -> None:
    for ns in world.values():
        got = {text(a) for a in run_in(NetnsSpec(name=ns), rtnl.addresses)}
        assert got == kernel_addresses(ns), ns
    assert kernel_addresses(world["linked"]) == {SHARED, "fd00:250::2"}


def test_a_shared_address_names_the_linked_namespace_and_a_contested_one_none(world: dict[str, str]) -> None:
    viewed = NetnsSpec(name=world["viewed"])
    refs = [NsRef(NetnsSpec(name=ns).inode(), NetnsSpec(name=ns), (), role, ns) for role, ns in world.items()]
    m = build_map(viewed, refs)
    by_text = {text(a): n.label for a, n in m.addrs.items()}
    assert by_text == {SHARED: "linked", "fd00:250::2": "linked", UNIQUE: "alone"}
    assert {text(a) for a in m.ambiguous} == {CONTESTED}
    assert m.namespaces == len(world) - 1  # every one but the viewed
    # Seen from a namespace linked to neither twin, the shared address is contested too.
    m = build_map(NetnsSpec(name=world["alone"]), refs)
    assert {text(a) for a in m.ambiguous} == {SHARED, CONTESTED}


def test_the_hosts_map_finds_them_among_every_namespace(world: dict[str, str]) -> None:
    m = host_map(NetnsSpec(name=world["viewed"]))
    by_text = {text(a): n for a, n in m.addrs.items()}
    assert by_text[SHARED].netns == world["linked"] and by_text[SHARED].label == f"netns:{world['linked']}"
    assert by_text[UNIQUE].netns == world["alone"]


def test_names_that_are_no_utf8_do_not_stop_the_map() -> None:
    """A namespace and a cgroup named with bytes that are no UTF-8 (anyone may make them): the map and
    `snapshot --group-by container` still work, and show the name with U+FFFD."""
    bad = os.fsdecode(b"cttop-test-\xff" + uuid.uuid4().hex[:6].encode())
    cgroup = os.path.join(cgroup_root(), os.fsdecode(b"cttop-test-\xfe") + uuid.uuid4().hex[:6])
    proc = None
    add_netns(bad)
    try:
        os.mkdir(cgroup)
        proc = subprocess.Popen(["ip", "netns", "exec", bad, "sleep", "600"], preexec_fn=enter_cgroup(cgroup))
        end = time.monotonic() + 10
        while not os.path.exists(f"/proc/{proc.pid}/ns/net") or \
                os.stat(f"/proc/{proc.pid}/ns/net").st_ino != NetnsSpec(name=bad).inode():
            assert time.monotonic() < end
            time.sleep(0.02)
        with open(f"/proc/{proc.pid}/cgroup", "rb") as f:
            assert os.fsencode(os.path.basename(cgroup)) in f.read()
        m = host_map(NetnsSpec())
        assert m.namespaces >= 1
        r = run_cttop("snapshot", "--group-by", "container", "--json")
        assert r.returncode == 0, r.stderr
        r = run_cttop("namespaces", "--json")
        assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        delete_netns(bad)
        for _ in range(100):
            try:
                os.rmdir(cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
