"""Who owns a flow: the local process holding its socket, and that process's container or unit.

A refresh costs what the namespace holds, not what the table holds: one
sock_diag dump of the namespace's sockets, one ``readlink`` per descriptor of
the processes living in the namespace (others are scanned only if some socket
is still unaccounted for), and one cgroup read per owning process. After that
``owner_of`` is a few dict lookups, so attributing the rows on screen is free,
and ranking a whole table is one pass in the caller's worker thread.

A flow is matched from its initiator's side first (the original tuple seen
from a local socket), then from the responder's (the reply tuple, which is
what a local server's socket sees after DNAT), first against connected
sockets, then against bound or listening ones. So flows to a local listening
port belong to the listener even once their connection is closed (TIME_WAIT):
that service is what made them.

A flow with no local end (routed through, as on a Docker host or a Kubernetes
node) is attributed by address to the namespace it comes from, or goes to after
DNAT (:mod:`cttop.owners.netmap`), when the Owners were given a way to map the
host's namespaces; the process is then found among that namespace's sockets.
"""

from __future__ import annotations

import heapq
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import psutil

from cttop.errors import CttopError
from cttop.filter.lexer import WORD
from cttop.owners.cgroup import placement_of
from cttop.kernel.sockets import InetSocket, list_sockets
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.model import (
    R_DPORT,
    R_DST,
    R_OBYTES,
    R_OPKTS,
    R_PROTO,
    R_RBYTES,
    R_RDPORT,
    R_RDST,
    R_RPKTS,
    R_RSPORT,
    R_RSRC,
    R_SPORT,
    R_SRC,
    PORTED_PROTOS,
    Row,
    addr_text,
)
from cttop.table.groups import GroupDef
from cttop.table.store import GroupRow

if TYPE_CHECKING:
    from cttop.owners.netmap import HostMap

FORWARDED: Final = "forwarded"  # neither end is an address of this namespace: routed through (NAT'd or not)
LOCAL_NO_PROCESS: Final = "local, no process"  # e.g. TIME_WAIT: the socket is closed, the flow lingers
NO_CONTAINER: Final = "(none)"
# A forwarded flow of a known namespace whose socket no process there holds (closed, or a raw sender).
NO_PROCESS: Final = ", no process"
OWNED_PROTOS: Final = frozenset({socket.IPPROTO_TCP, socket.IPPROTO_UDP})
DEFAULT_INTERVAL: Final = 5.0
# Refresh no more often than this many times what the last one cost: a host of many containers
# costs a sock_diag dump and a descriptor scan per namespace.
REFRESH_DUTY: Final = 10


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    name: str
    container: str | None  # "docker:web", "pod:api-7d9", "ssh.service"...; None if the cgroup says nothing

    def text(self) -> str:
        return f"{self.name}[{self.pid}]"


_Exact = tuple[int, bytes, int, bytes, int]
_Bound = tuple[int, bytes, int]


@dataclass(frozen=True)
class OwnerIndex:
    """One refresh's result; replaced whole, so readers on other threads never see half of one."""

    exact: dict[_Exact, Owner | None]  # connected sockets by (proto, laddr, lport, raddr, rport)
    bound: dict[_Bound, Owner]  # listening / unconnected sockets by (proto, laddr, lport)
    wild: dict[tuple[int, int], Owner]  # the same bound to the any-address, by (proto, lport)
    local: frozenset[bytes]  # addresses of the namespace
    sockets: int
    processes: int
    took: float  # seconds the refresh cost
    at: float  # time.monotonic() of the refresh
    hosts: HostMap | None = None  # the host's other namespaces by address, when asked for


@dataclass(frozen=True)
class Neighbour:
    """Another namespace of the host: what owns it, and its sockets."""

    inode: int
    label: str  # the container key: "docker:web", "pod:api-7d9", "netns:NAME", a unit, "host"
    netns: str  # its name as `ip netns` shows it, or pid:N
    index: OwnerIndex


EMPTY_INDEX = OwnerIndex({}, {}, {}, frozenset(), 0, 0, 0.0, float("-inf"))
_ANY: Final = (b"\0" * 4, b"\0" * 16)


def _local_addresses() -> frozenset[bytes]:
    out = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                out.add(socket.inet_pton(a.family, a.address.split("%", 1)[0]))
    return frozenset(out)


def _in_namespace() -> tuple[int, list[InetSocket], frozenset[bytes]]:
    ino = os.stat("/proc/thread-self/ns/net").st_ino
    return ino, list_sockets(), _local_addresses()


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _socket_inodes(pid: int, wanted: set[int], found: dict[int, int]) -> None:
    """Record ``inode -> pid`` for each wanted socket ``pid`` holds (the lowest pid wins)."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ino = int(target[8:-1])
            if ino in wanted and (ino not in found or found[ino] > pid):
                found[ino] = pid


def _owner(pid: int, container: str | None = None) -> Owner | None:
    try:
        name = psutil.Process(pid).name()
    except psutil.Error:
        return None
    if container is not None:
        return Owner(pid, name, container)
    placement = placement_of(pid)
    return Owner(pid, name, placement.text() if placement is not None else None)


def build_index(spec: NetnsSpec) -> OwnerIndex:
    """Sockets of ``spec``'s namespace mapped to the processes holding them."""
    t0 = time.perf_counter()
    ns_ino, socks, local = run_in(spec, _in_namespace)
    pids = psutil.pids()
    inside = [p for p in pids if _netns_inode(p) == ns_ino]
    ix = index_of(socks, local, inside, others=pids)
    return replace(ix, took=time.perf_counter() - t0)


def index_of(socks: list[InetSocket], local: frozenset[bytes], inside: Iterable[int], container: str | None = None,
             others: Iterable[int] = ()) -> OwnerIndex:
    """Sockets mapped to the processes holding them, from the descriptors of ``inside`` (the namespace's
    processes), then of ``others`` if some socket is still unaccounted for. ``container`` names the
    owners' container instead of their cgroups (a neighbour namespace's owner)."""
    t0 = time.perf_counter()
    wanted = {s.inode for s in socks if s.inode}
    found: dict[int, int] = {}
    inside = list(inside)
    for pid in inside:
        _socket_inodes(pid, wanted, found)
    if len(found) < len(wanted):
        # Sockets outlive setns(2) and travel over unix sockets: a process elsewhere may hold some.
        inside_set = set(inside)
        for pid in others:
            if pid not in inside_set:
                _socket_inodes(pid, wanted, found)
    owners: dict[int, Owner | None] = {pid: _owner(pid, container) for pid in set(found.values())}
    exact: dict[_Exact, Owner | None] = {}
    bound: dict[_Bound, Owner] = {}
    wild: dict[tuple[int, int], Owner] = {}
    for s in socks:
        o = owners.get(found[s.inode]) if s.inode in found else None
        if s.rport:
            key = (s.proto, s.laddr, s.lport, s.raddr, s.rport)
            if o is not None or key not in exact:
                exact[key] = o
        elif o is not None:
            if s.laddr in _ANY:
                wild.setdefault((s.proto, s.lport), o)
            else:
                bound.setdefault((s.proto, s.laddr, s.lport), o)
    return OwnerIndex(exact, bound, wild, local, len(socks), len(owners), time.perf_counter() - t0,
                      time.monotonic())


_WORD = re.compile(WORD)


def owner_filter(key: object) -> str | None:
    """The filter selecting a ``process`` or ``container`` group's flows (Enter in the heaviest panel)."""
    if isinstance(key, Owner):
        return f"pid {key.pid}"
    if key == FORWARDED:
        return "forwarded"
    if key == LOCAL_NO_PROCESS:
        return "not owned and not forwarded"
    if isinstance(key, str) and key != NO_CONTAINER and _WORD.fullmatch(key):
        return f"container {key}"
    # Host processes (no container word fits), a name the filter cannot spell, or a namespace's flows
    # that no process holds ("docker:web, no process"): `container X` would take its held ones too.
    return None


def _is_local(addr: bytes, local: frozenset[bytes]) -> bool:
    return addr in local or (len(addr) == 4 and addr[0] == 127)


def endpoint_text(addr: bytes, port: int | None) -> str:
    """``10.0.0.1:80``, ``[fd00::1]:80``, or the bare address without a port."""
    a = addr_text(addr)
    if port is None:
        return a
    return f"[{a}]:{port}" if len(addr) == 16 else f"{a}:{port}"


def _container(o: Owner | None, n: Neighbour | None) -> str | None:
    """The container, pod or unit of a flow's process, else of the namespace it is attributed to."""
    if o is not None:
        return o.container
    return n.label if n is not None else None


def _text(key: object) -> str:
    return key.text() if isinstance(key, Owner) else str(key)


def _lookup(ix: OwnerIndex, row: Row) -> Owner | None:
    """The process of ``ix``'s namespace at either end of a TCP or UDP flow: connected sockets from the
    initiator's side, then the responder's; then bound or listening ones on a local end."""
    proto = row[R_PROTO]
    o = ix.exact.get((proto, row[R_SRC], row[R_SPORT], row[R_DST], row[R_DPORT]))
    if o is not None:
        return o
    o = ix.exact.get((proto, row[R_RSRC], row[R_RSPORT], row[R_RDST], row[R_RDPORT]))
    if o is not None:
        return o
    for addr, port in ((row[R_SRC], row[R_SPORT]), (row[R_RSRC], row[R_RSPORT])):
        if _is_local(addr, ix.local):
            o = ix.bound.get((proto, addr, port)) or ix.wild.get((proto, port))
            if o is not None:
                return o
    return None


HostMapper = Callable[[NetnsSpec], "HostMap"]


class Owners:
    """Flow → owning process for one namespace, cached and refreshed on an interval.

    Refresh from a worker thread (:meth:`refresh_if_due`); :meth:`owner_of` and the
    group keys only read the last index and are safe from any thread. With ``hosts``
    (``cttop.host.containers.host_map``), each refresh also maps the host's other
    namespaces, so forwarded flows are attributed to the container they come from.
    """

    def __init__(self, spec: NetnsSpec = NetnsSpec(), interval: float = DEFAULT_INTERVAL,
                 hosts: HostMapper | None = None) -> None:
        self.spec = spec
        self.interval = interval
        self.hosts = hosts
        self.index = EMPTY_INDEX
        self.error: str | None = None  # why the last background refresh failed
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._retry_at = 0.0

    def refresh(self) -> OwnerIndex:
        with self._lock:
            t0 = time.perf_counter()
            ix = build_index(self.spec)
            if self.hosts is not None:
                ix = replace(ix, hosts=self.hosts(self.spec))
            self.index = replace(ix, took=time.perf_counter() - t0, at=time.monotonic())
        return self.index

    def refresh_if_due(self) -> bool:
        """Refresh if the last one is older than the interval (or REFRESH_DUTY times its cost).

        The first refresh is made here, and True returned. Later ones run on a thread of their
        own, so a slow one (a host of many containers: half a second for a hundred) never holds
        up the caller's frames; readers keep the last index until the new one replaces it.
        """
        ix = self.index
        now = time.monotonic()
        if now - ix.at < max(self.interval, REFRESH_DUTY * ix.took) or now < self._retry_at:
            return False
        if ix.at == float("-inf"):  # never refreshed: the first one, here
            self.refresh()
            return True
        if self._refreshing is None or not self._refreshing.is_alive():
            self._refreshing = threading.Thread(target=self._refresh_quietly, name="cttop-owners", daemon=True)
            self._refreshing.start()
        return False

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
            self.error = None
        except CttopError as e:  # the namespace went away: the view's own reads say so; keep the last index
            self.error = str(e)
            self._retry_at = time.monotonic() + self.interval

    def resolve(self, row: Row) -> tuple[Owner | None, Neighbour | None]:
        """The flow's process, and for a flow with no local end the namespace it is attributed to:
        that of its original source, else of its reply source (the backend after DNAT). One pass,
        which every question below is answered from."""
        ix = self.index
        ported = row[R_PROTO] in OWNED_PROTOS
        if ported:
            o = _lookup(ix, row)
            if o is not None:
                return o, None
        hosts = ix.hosts
        if hosts is None or not hosts.addrs or self._local_end(row):
            return None, None
        n = hosts.addrs.get(row[R_SRC]) or hosts.addrs.get(row[R_RSRC])
        if n is None:
            return None, None
        return (_lookup(n.index, row) if ported else None), n

    def owner_of(self, row: Row) -> Owner | None:
        """The process at either end of the flow, here or (for a forwarded flow) in the namespace it is
        attributed to; None if no socket is known (see :meth:`label` for why)."""
        return self.resolve(row)[0]

    def neighbour(self, row: Row) -> Neighbour | None:
        """The namespace of this host a flow with no local end is attributed to, if any."""
        return self.resolve(row)[1]

    def _local_end(self, row: Row) -> bool:
        """The ends are the original source and destination and the reply's source (a local server
        behind DNAT). The reply's destination is left out: on a SNAT router it is the router's own
        address, yet the flow is only passing through."""
        local = self.index.local
        return _is_local(row[R_SRC], local) or _is_local(row[R_DST], local) or _is_local(row[R_RSRC], local)

    def backend(self, row: Row) -> Neighbour | None:
        """For a DNAT'd flow (a service address), the namespace its reply comes from: the backend."""
        hosts = self.index.hosts
        if hosts is None or row[R_RSRC] == row[R_DST]:
            return None
        return hosts.addrs.get(row[R_RSRC])

    def where(self, row: Row) -> str:
        """Why a flow has no owner: FORWARDED when no end is local, else LOCAL_NO_PROCESS."""
        return LOCAL_NO_PROCESS if self._local_end(row) else FORWARDED

    def owned(self, row: Row) -> bool:
        """A process holds it, or it is a namespace's of this host (the ``owned`` filter word)."""
        o, n = self.resolve(row)
        return o is not None or n is not None

    def forwarded(self, row: Row) -> bool:
        """Only passing through, from and to nothing known on this host (the ``forwarded`` filter word)."""
        o, n = self.resolve(row)
        return o is None and n is None and not self._local_end(row)

    def container_of(self, row: Row) -> str | None:
        """The container, pod or unit of the flow's process, or of the namespace it is attributed to."""
        return _container(*self.resolve(row))

    def label(self, row: Row) -> str:
        """The flow-list column: ``name[pid]``, the namespace's owner, or why there is neither."""
        return _text(self.process(row))

    def process(self, row: Row) -> Owner | str:
        """Group key: the owning process; a known namespace's flows without one, by that namespace;
        else FORWARDED / LOCAL_NO_PROCESS."""
        o, n = self.resolve(row)
        if o is not None:
            return o
        return n.label + NO_PROCESS if n is not None else self.where(row)

    def container(self, row: Row) -> str:
        """Group key: the owner's container, pod or unit (the attributed namespace's, for a forwarded
        flow); NO_CONTAINER for host processes whose cgroup names nothing; FORWARDED / LOCAL_NO_PROCESS
        without either."""
        o, n = self.resolve(row)
        if o is not None:
            return o.container or NO_CONTAINER
        return n.label if n is not None else self.where(row)

    def flow_json(self, row: Row) -> dict[str, Any]:
        """Who a flow belongs to, for its JSON: process, container, the namespace it was attributed to
        and, for a DNAT'd flow, the service address it was sent to and the backend that answers."""
        o, n = self.resolve(row)  # once: container_of would resolve again, a flow listed at a time
        b = self.backend(row)
        ported = row[R_PROTO] in PORTED_PROTOS
        return {
            "process": o.name if o is not None else None, "pid": o.pid if o is not None else None,
            "container": _container(o, n),
            "namespace": n.netns if n is not None else None,
            "backend": None if b is None else {
                "service": endpoint_text(row[R_DST], row[R_DPORT] if ported else None),
                "address": endpoint_text(row[R_RSRC], row[R_RSPORT] if ported else None),
                "container": b.label, "namespace": b.netns},
        }

    def group_defs(self) -> dict[str, GroupDef]:
        """``process`` and ``container`` as heaviest-panel group definitions.

        They cannot be tracked incrementally by FlowTable (a row's owner changes
        when the index does); rank them with a :class:`Tally` at each refresh instead.
        """
        return {
            "process": GroupDef("process", "process", self.process, _text, owner_filter),
            "container": GroupDef("container", "container", self.container, str, owner_filter),
        }


class Tally:
    """Entries, bytes and packets by process or container, added up a chunk of rows at a time."""

    def __init__(self, owners: Owners, key: str) -> None:
        self.group = owners.group_defs()[key]
        self.agg: dict[object, list[int]] = {}
        self.counted = False

    def add(self, rows: Iterable[Row]) -> None:
        key, agg = self.group.key, self.agg
        for row in rows:
            k = key(row)
            v = agg.get(k)
            if v is None:
                v = agg[k] = [0, 0, 0]
            v[0] += 1
            if row[R_OPKTS] is not None:
                self.counted = True
                v[1] += row[R_OBYTES] + row[R_RBYTES]
                v[2] += row[R_OPKTS] + row[R_RPKTS]

    def top(self, n: int = 10, by: str = "entries") -> list[GroupRow]:
        g, counted = self.group, self.counted
        col = {"entries": 0, "bytes": 1, "packets": 2}[by]
        best = heapq.nlargest(n, self.agg.items(), key=lambda kv: kv[1][col])
        return [GroupRow(k, g.text(k), v[0], v[1] if counted else None, v[2] if counted else None, g.filter(k))
                for k, v in best]
