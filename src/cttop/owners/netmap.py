"""The other namespaces of the host by address: who a forwarded flow comes from, or goes to after DNAT.

On a Docker host or a Kubernetes node the host's table is mostly containers'
traffic routed through it: the socket is in the container's namespace, so the
host's own sockets know nothing of it. Every other namespace's addresses (one
rtnetlink dump in each) map to that namespace's owner (its container, pod or unit,
named by the caller from its processes' cgroups), and the namespace's own sockets
(sock_diag in it) name the process, as :mod:`cttop.owners.owners` does locally.

An address held by more than one namespace (two labs, two kind clusters) names the
one a link of the viewed namespace leads to (the host end of a container's veth
carries the id of the container's namespace), or none: a guess would put flows under
the wrong container.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cttop.errors import CttopError
from cttop.kernel import rtnl
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.kernel.sockets import InetSocket, list_sockets
from cttop.owners.owners import EMPTY_INDEX, Neighbour, index_of

# Namespaces with more processes than this get no socket index: that is the host itself
# (or a machine container), whose descriptors would cost more to scan than every container's.
SCAN_LIMIT = 500


@dataclass(frozen=True)
class NsRef:
    """One namespace as the caller found it: how to enter it, its processes, and what to call it."""

    inode: int
    spec: NetnsSpec
    pids: tuple[int, ...]
    label: str  # its owner: "docker:web", "pod:api-7d9", "netns:lab-outside", "host"...
    netns: str  # how `ip netns` or nsenter name it: its name, or pid:N


@dataclass(frozen=True)
class HostMap:
    """Every other namespace's addresses -> that namespace; replaced whole on refresh."""

    addrs: dict[bytes, Neighbour]
    namespaces: int  # read
    failed: int  # gone or refused while read
    ambiguous: frozenset[bytes]  # held by several namespaces, none of them linked to the viewed one
    took: float


def _read() -> tuple[list[InetSocket], list[bytes]]:
    return list_sockets(), rtnl.addresses()


def neighbour(ref: NsRef) -> tuple[Neighbour, list[bytes]]:
    """One namespace's entry and its addresses; raises CttopError if it cannot be read."""
    if len(ref.pids) > SCAN_LIMIT:
        addrs = run_in(ref.spec, rtnl.addresses)
        return Neighbour(ref.inode, ref.label, ref.netns, EMPTY_INDEX), addrs
    socks, addrs = run_in(ref.spec, _read)
    return Neighbour(ref.inode, ref.label, ref.netns, index_of(socks, frozenset(addrs), ref.pids, ref.label)), addrs


def build_map(viewed: NetnsSpec, refs: Iterable[NsRef]) -> HostMap:
    """The map seen from ``viewed``: every namespace in ``refs`` but that one."""
    t0 = time.perf_counter()
    own = viewed.inode()
    holders: dict[bytes, list[Neighbour]] = {}
    specs: dict[int, NetnsSpec] = {}
    read = failed = 0
    for ref in refs:
        if ref.inode == own:
            continue
        try:
            n, n_addrs = neighbour(ref)
        except (CttopError, OSError):
            failed += 1  # it went away, or it is not ours to enter
            continue
        read += 1
        specs[ref.inode] = ref.spec
        for a in n_addrs:
            holders.setdefault(a, []).append(n)
    addrs = {a: ns[0] for a, ns in holders.items() if len(ns) == 1}
    shared = {a: ns for a, ns in holders.items() if len(ns) > 1}
    ambiguous: set[bytes] = set()
    if shared:
        near = _linked(viewed, {n.inode for ns in shared.values() for n in ns}, specs)
        for a, ns in shared.items():
            linked = [n for n in ns if n.inode in near]
            if len(linked) == 1:
                addrs[a] = linked[0]
            else:
                ambiguous.add(a)
    return HostMap(addrs, read, failed, frozenset(ambiguous), time.perf_counter() - t0)


def _linked(viewed: NetnsSpec, inodes: set[int], specs: dict[int, NetnsSpec]) -> set[int]:
    """Of ``inodes``, the namespaces a link of ``viewed`` leads to."""
    fds: dict[int, int] = {}
    try:
        for ino in inodes:
            try:
                fd = specs[ino].open_fd()
            except CttopError:
                continue
            if fd is None:  # cttop's own namespace: the fd to name it by
                fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            fds[ino] = fd
        return run_in(viewed, lambda: rtnl.linked(fds))
    except CttopError:
        return set()
    finally:
        for fd in fds.values():
            os.close(fd)
