"""Owners in a throwaway namespace: real processes holding real sockets, named with their flows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, Owners
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.model import R_DPORT, R_ID, R_PROTO, R_SPORT, R_SRC, addr_text
from tests.conftest import run_cttop, sh
from tests.oracle import conntrack_list
from tests.owners_helpers import owners_top

pytestmark = pytest.mark.kernel

N_TCP = 7
UDP_PORTS = (9001, 9002, 9003)

LISTENER = """
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7000)); s.listen(64)
once = socket.socket(); once.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
once.bind(("127.0.0.1", 7001)); once.listen(1)

def serve_once():
    c, _ = once.accept()
    c.close()
    once.close()

threading.Thread(target=serve_once).start()
print("READY", flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
"""

CLIENT = f"""
import socket, time
held = [socket.create_connection(("127.0.0.1", 7000)) for _ in range({N_TCP})]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in {UDP_PORTS!r}:
    u.sendto(b"x", ("127.0.0.1", port))
# One connection both ends closed, to a port nobody listens on any more: TIME_WAIT lingers in
# conntrack and no process holds any socket of it.
c = socket.create_connection(("127.0.0.1", 7001))
c.recv(1)
c.close()
time.sleep(0.2)
print("READY", flush=True)
time.sleep(120)
"""


def spawn(ns: str, code: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    return p


@pytest.fixture
def busy(netns: str) -> Iterator[tuple[str, int, int]]:
    """(namespace, listener pid, client pid), with the client's flows in place."""
    procs = []
    try:
        procs.append(spawn(netns, LISTENER))
        procs.append(spawn(netns, CLIENT))
        # A flow with no local end at all.
        sh("conntrack", "-I", "-p", "udp", "-s", "10.9.9.9", "-d", "10.9.9.10", "--sport", "1", "--dport", "2",
           "-t", "120", netns=netns)
        yield netns, procs[0].pid, procs[1].pid
    finally:
        for p in procs:
            p.kill()
            p.wait()


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def test_a_process_holding_n_connections_is_named_with_n(busy: tuple[str, int, int]) -> None:
    ns, listener, client = busy
    owners = Owners(NetnsSpec(name=ns))
    index = owners.refresh()
    assert index.sockets > N_TCP
    with Ctnetlink(NetnsSpec(name=ns)) as ct:
        rows = ct.dump()
    kernel = {f["id"]: f for f in conntrack_list(ns)}
    assert {r[R_ID] for r in rows} == set(kernel)

    to_listener = [r for r in rows if r[R_PROTO] == 6 and r[R_DPORT] == 7000]
    assert len(to_listener) == N_TCP  # the kernel holds them (checked against conntrack -L below)
    assert sum(1 for f in kernel.values() if f["proto"] == "tcp" and f["orig"].get("dport") == "7000") == N_TCP

    top = {g.key: g.entries for g in owners_top(owners, rows, "process")}
    by_pid = {k.pid: n for k, n in top.items() if not isinstance(k, str)}
    # The client started the TCP connections and sent the UDP datagrams: it owns them all.
    assert by_pid[client] == N_TCP + len(UDP_PORTS)
    assert listener not in by_pid  # the responder's side counts only when the initiator is not local
    for r in to_listener:
        o = owners.owner_of(r)
        assert o is not None and o.pid == client and o.name == comm(client)
        assert owners.label(r) == f"{comm(client)}[{client}]"
    udp = [r for r in rows if r[R_PROTO] == 17 and r[R_DPORT] in UDP_PORTS]
    assert len(udp) == len(UDP_PORTS) and all(owners.owner_of(r).pid == client for r in udp)  # type: ignore[union-attr]

    forwarded = [r for r in rows if addr_text(r[R_SRC]) == "10.9.9.9"]
    assert len(forwarded) == 1 and owners.owner_of(forwarded[0]) is None
    assert owners.label(forwarded[0]) == FORWARDED
    assert top[FORWARDED] == 1

    time_wait = [r for r in rows if r[R_PROTO] == 6 and r[R_DPORT] == 7001]
    assert len(time_wait) == 1 and kernel[time_wait[0][R_ID]]["state"] == "TIME_WAIT"
    assert owners.label(time_wait[0]) == LOCAL_NO_PROCESS


def test_the_listener_owns_flows_initiated_from_outside(busy: tuple[str, int, int]) -> None:
    ns, listener, _client = busy
    # A peer that is not local reaches the listener: only the responder's end is ours.
    sh("ip", "addr", "add", "10.7.0.1/24", "dev", "lo", netns=ns)
    sh("conntrack", "-I", "-p", "tcp", "-s", "10.7.0.50", "-d", "127.0.0.1", "--sport", "33333", "--dport", "7000",
       "--state", "SYN_RECV", "-t", "120", netns=ns)
    owners = Owners(NetnsSpec(name=ns))
    owners.refresh()
    with Ctnetlink(NetnsSpec(name=ns)) as ct:
        [r] = [r for r in ct.dump() if r[R_SPORT] == 33333]
    o = owners.owner_of(r)
    assert o is not None and o.pid == listener


def test_a_socket_held_from_outside_the_namespace_is_found(busy: tuple[str, int, int]) -> None:
    """Sockets outlive setns(2): this test process (in another namespace) opens one inside."""
    ns, _listener, _client = busy
    sock = run_in(NetnsSpec(name=ns), lambda: socket.create_connection(("127.0.0.1", 7000)))
    try:
        sport = sock.getsockname()[1]
        owners = Owners(NetnsSpec(name=ns))
        owners.refresh()
        with Ctnetlink(NetnsSpec(name=ns)) as ct:
            [r] = [r for r in ct.dump() if r[R_PROTO] == 6 and r[R_SPORT] == sport]
        o = owners.owner_of(r)
        assert o is not None and o.pid == os.getpid()
    finally:
        sock.close()


def client_flow(f: dict[str, object]) -> bool:
    """conntrack -L's view of a flow the CLIENT script made and still holds."""
    orig = f["orig"]
    assert isinstance(orig, dict)
    return (f["proto"] == "tcp" and orig.get("dport") == "7000") or \
        (f["proto"] == "udp" and orig.get("dport") in {str(p) for p in UDP_PORTS})


def test_owner_words_filter_snapshot_and_flush(busy: tuple[str, int, int], tmp_path: Path) -> None:
    ns, _listener, client = busy
    before = conntrack_list(ns)
    mine = {f["id"] for f in before if client_flow(f)}
    assert len(mine) == N_TCP + len(UDP_PORTS)

    r = run_cttop("snapshot", "--netns", ns, "--filter", f"pid {client}", "--flows", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["listed"] == len(before) and doc["matched"] == len(mine)
    assert {f["id"] for f in doc["flows"]} == mine
    r = run_cttop("snapshot", "--netns", ns, "--filter", "forwarded", "--flows", "--json")
    assert [f["src"] for f in json.loads(r.stdout)["flows"]] == ["10.9.9.9"]
    r = run_cttop("snapshot", "--netns", ns, "--filter", f"process {comm(client)} and udp", "--json")
    assert json.loads(r.stdout)["matched"] == len(UDP_PORTS)

    # NOTRACK rules cannot match a process: a one-line error saying why (a rule sees packets, not owners).
    r = run_cttop("notrack", "add", f"udp and pid {client}", "--netns", ns, "--yes", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("cttop: NOTRACK rules cannot match on owners (pid, process, container, ")

    r = run_cttop("flush", "--netns", ns, "--filter", f"pid {client}", "--yes", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    after = conntrack_list(ns)
    assert {f["id"] for f in after} == {f["id"] for f in before} - mine  # exactly the client's, by the kernel
