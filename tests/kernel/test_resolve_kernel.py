"""cttop's own reverse lookups, as the kernel tracks them: exactly the flows the resolver calls its own.

A namespace runs a tiny DNS server at 127.0.0.53:53; the resolver's sockets live in that namespace,
and another process there sends a query of its own to the same server. conntrack -L lists the UDP
flows to the server; the resolver must claim exactly those from its ports, and sock_diag must show
those ports held by this process (cttop's pid), which is how the owners view attributes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.kernel.sockets import list_sockets
from cttop.live.resolve import Resolver
from cttop.model import flow_dict
from tests.conftest import delete_netns, make_netns, sh
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

SERVER = "127.0.0.53"
FOREIGN_QUERY = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); "
                 "s.sendto(bytes.fromhex('abcd01000001000000000000') + b'\\x017\\x012\\x010\\x03192\\x07in-addr"
                 "\\x04arpa\\x00\\x00\\x0c\\x00\\x01', ('127.0.0.53', 53)); s.recvfrom(512)")


@pytest.fixture
def dns_ns() -> Iterator[str]:
    ns = make_netns()
    server = None
    try:
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.dns_server", SERVER, "53",
                                   "192.0.2.7=web.example."], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "READY"
        yield ns
    finally:
        if server is not None:
            server.kill()
            server.wait()
        delete_netns(ns)


def test_own_lookups_are_exactly_the_resolvers_flows(dns_ns: str) -> None:
    spec = NetnsSpec(name=dns_ns)
    r = Resolver([SERVER], spec=spec)
    try:
        addrs = [bytes([192, 0, 2, i]) for i in (7, 8, 9, 10)]
        for a in addrs:
            r.name(a)
        deadline = time.monotonic() + 10
        while any(r.name(a) is None and a in r._pending for a in addrs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.name(addrs[0]) == "web.example"
        sh(sys.executable, "-c", FOREIGN_QUERY, netns=dns_ns)  # someone else's lookup, same server
        to_server = [f for f in conntrack_list(dns_ns)
                     if f["proto"] == "udp" and f["orig"]["dst"] == SERVER and f["orig"]["dport"] == "53"]
        theirs_own = {f["id"] for f in to_server if int(f["orig"]["sport"]) in r.own_ports}
        assert len(to_server) == len(theirs_own) + 1 and theirs_own  # ours, and the foreign one
        with Ctnetlink(spec) as ct:
            rows = [row for row in ct.dump() if flow_dict(row)["dst"] == SERVER]
        assert {row[0] for row in rows if r.own_flow(row)} == theirs_own
        # sock_diag: the resolver's ports are UDP sockets this process holds
        held = {os.stat(f"/proc/self/fd/{fd}").st_ino for fd in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{fd}")}
        socks = [s for s in list_sockets(spec) if s.proto == 17 and s.lport in r.own_ports]
        assert {s.lport for s in socks} == set(r.own_ports) and all(s.inode in held for s in socks)
    finally:
        r.close()
