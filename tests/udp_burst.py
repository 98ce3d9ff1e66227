"""A burst of unanswered UDP in a test namespace: one UNREPLIED entry per port, dated by start timestamps."""

from __future__ import annotations

import sys

from tests.conftest import sh

SYSCTL = "/proc/sys/net/netfilter"


def unanswered_udp_burst(ns: str, share: float, udp_timeout: int = 300) -> int:
    """Send one datagram to each of ``share`` × nf_conntrack_max ports, under a raised udp_timeout; return how many.

    A veth pair inside the namespace; a permanent neighbour with a MAC no one has makes the far end drop what it
    is sent, after conntrack confirmed it. Start times (nf_conntrack_timestamp) tell doctor these came in one
    burst, not as a steady flow that a shorter timeout keeps.
    """
    sh("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", netns=ns)
    for dev in ("v0", "v1"):
        sh("ip", "link", "set", dev, "up", netns=ns)
    sh("ip", "addr", "add", "10.99.0.1/24", "dev", "v0", netns=ns)
    sh("ip", "neigh", "add", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "v0", "nud", "permanent", netns=ns)
    sh("sh", "-c", f"echo {udp_timeout} > {SYSCTL}/nf_conntrack_udp_timeout", netns=ns)
    sh("sh", "-c", f"echo 1 > {SYSCTL}/nf_conntrack_timestamp", netns=ns)
    n = int(int(sh("cat", f"{SYSCTL}/nf_conntrack_max")) * share) + 1
    assert n < 64000, "one source address has this many ports to spare"
    sh(sys.executable, "-c", "import socket\n"
       "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
       f"for p in range({n}): s.sendto(b'x', ('10.99.0.2', 1024 + p))\n", netns=ns)
    return n
