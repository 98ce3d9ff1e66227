"""Opt-in reverse DNS for the addresses on screen: asynchronous, cached, never blocking a frame.

:meth:`Resolver.name` answers from a TTL cache at once; an address not known yet is put
on a bounded queue (dropped, and asked again later, when the queue is full) for a small
pool of worker threads, and shows as a number until its answer arrives.

cttop must not feed the table it is watching (iptstate's ``-l`` lesson): every lookup is
a UDP flow to a nameserver, and a view that resolves its own resolver's flows makes more
of them. So the queries are made here rather than by glibc (``gethostbyaddr`` picks a
fresh source port per query and may read /etc/hosts, mDNS, LDAP…): each worker keeps one
UDP socket per family, bound once to a port of its own for its whole life. cttop's own
lookups are then exactly the flows from one of those local ports to a nameserver of
/etc/resolv.conf, port 53, in the namespace the sockets live in (cttop's own, by default);
:meth:`Resolver.own_record` and :meth:`Resolver.own_flow` recognise them, and the flow
table holds them apart (table.store: in no aggregate, row or record) and the event log
drops them. sock_diag says the same from the other side: those sockets' owner is cttop's
pid for as long as the resolver runs, so the owners view attributes them to cttop.
"""

from __future__ import annotations

import queue
import random
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from cttop.kernel.netns import NetnsSpec, run_in
from cttop.model import AF_INET6, R_DPORT, R_DST, R_PROTO, R_SPORT, Row
from cttop.table.packing import O4, O6, PROTO_AT, V6_MIN

RESOLV_CONF: Final = "/etc/resolv.conf"
DNS_PORT: Final = 53
UDP: Final = 17
TTL_MAX: Final = 3600.0  # answers are kept no longer than this, whatever their TTL says
NEGATIVE_TTL: Final = 300.0  # no name (NXDOMAIN, no PTR, no answer): asked again after this
CACHE_MAX: Final = 20_000  # addresses remembered; the least recently asked are forgotten first
QUEUE_MAX: Final = 256  # lookups waiting; more are dropped and asked again on a later frame
WORKERS: Final = 2
TIMEOUT: Final = 1.0  # seconds a nameserver gets before the next is asked
_HEADER = struct.Struct(">HHHHHH")
_RR = struct.Struct(">HHIH")
PTR: Final = 12


def nameservers(path: str = RESOLV_CONF) -> list[str]:
    """The nameservers of resolv.conf (at most three, as glibc reads them); glibc's default without any."""
    out: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and len(out) < 3:
                    addr = parts[1].split("%", 1)[0]  # an IPv6 zone index names the interface only
                    try:
                        socket.inet_pton(AF_INET6 if ":" in addr else socket.AF_INET, addr)
                    except OSError:
                        continue
                    out.append(addr)
    except OSError:
        pass
    return out or ["127.0.0.1"]


def ptr_name(addr: bytes) -> str:
    """The in-addr.arpa / ip6.arpa name a reverse lookup asks for."""
    if len(addr) == 4:
        return ".".join(str(b) for b in reversed(addr)) + ".in-addr.arpa"
    return ".".join(reversed(addr.hex())) + ".ip6.arpa"


def query(qid: int, name: str) -> bytes:
    """A DNS query for ``name``'s PTR record, recursion desired."""
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split(".")) + b"\0"
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", PTR, 1)


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``pos``: the name and where the field after it starts."""
    labels: list[str] = []
    end = None
    for _ in range(128):  # a loop of pointers is a broken answer, not a reason to spin
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = (n & 0x3F) << 8 | msg[pos + 1]
            continue
        if n == 0:
            return ".".join(labels), end if end is not None else pos + 1
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "backslashreplace"))
        pos += 1 + n
    raise ValueError("name compression loops")


def parse_answer(msg: bytes, qid: int) -> tuple[str | None, float] | None:
    """(the PTR name or None for "no name", its TTL) from an answer to query ``qid``; None if it is not one."""
    if len(msg) < _HEADER.size:
        return None
    rid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(msg)
    if rid != qid or not flags & 0x8000:
        return None
    if flags & 0x000F:  # NXDOMAIN, SERVFAIL...: no name, for now
        return None, NEGATIVE_TTL
    pos = _HEADER.size
    for _ in range(qd):
        _name, pos = _read_name(msg, pos)
        pos += 4
    for _ in range(an):
        _name, pos = _read_name(msg, pos)
        typ, _cls, ttl, rdlen = _RR.unpack_from(msg, pos)
        pos += _RR.size
        if typ == PTR:
            name, _ = _read_name(msg, pos)
            return name, min(float(ttl), TTL_MAX)
        pos += rdlen
    return None, NEGATIVE_TTL


class Resolver:
    """Reverse lookups on worker threads; answers through :meth:`name`, from the cache only."""

    def __init__(self, servers: list[str] | None = None, *, spec: NetnsSpec = NetnsSpec(), workers: int = WORKERS,
                 port: int = DNS_PORT, timeout: float = TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.servers = servers if servers is not None else nameservers()
        self._server_addrs = {socket.inet_pton(AF_INET6 if ":" in s else socket.AF_INET, s) for s in self.servers}
        self.port, self.timeout, self.clock = port, timeout, clock
        self.spec = spec
        self.netns = spec.inode()  # own lookups are hidden only in a view of this namespace
        self._closed = False
        self._cache: OrderedDict[bytes, tuple[str | None, float]] = OrderedDict()
        self._pending: set[bytes] = set()
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_MAX)
        self._lock = threading.Lock()
        self.dropped = 0  # lookups not queued because the queue was full
        self.answers = 0  # answers cached so far: a view redraws its names when this moves
        # Each worker's sockets, made before it starts so their ports are known from the first query on.
        self._socks = [self._sockets() for _ in range(workers)]
        self.own_ports: frozenset[int] = frozenset(s.getsockname()[1] for socks in self._socks for s in socks.values())
        self._threads = [threading.Thread(target=self._work, args=(socks,), name=f"cttop-resolve-{i}", daemon=True)
                         for i, socks in enumerate(self._socks)]
        for t in self._threads:
            t.start()

    def _sockets(self) -> dict[int, socket.socket]:
        """One UDP socket per family a nameserver has, bound now, in the resolver's namespace."""
        def make() -> dict[int, socket.socket]:
            out: dict[int, socket.socket] = {}
            for fam in {AF_INET6 if ":" in s else socket.AF_INET for s in self.servers}:
                s = socket.socket(fam, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                s.bind(("::" if fam == AF_INET6 else "0.0.0.0", 0))
                s.settimeout(self.timeout)
                out[fam] = s
            return out
        return run_in(self.spec, make)

    # --- the views' side (any thread) -----------------------------------------------------

    def name(self, addr: bytes) -> str | None:
        """The name of ``addr`` if known (cached and fresh); else None, and a lookup is queued."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(addr)
            if hit is not None and hit[1] > now:
                self._cache.move_to_end(addr)
                return hit[0]
            if addr in self._pending:
                return None
            try:
                self._queue.put_nowait(addr)
            except queue.Full:
                self.dropped += 1
                return None
            self._pending.add(addr)
        return None

    def own_flow(self, row: Row) -> bool:
        """Whether ``row`` is one of cttop's own lookups (see the module's docstring)."""
        return (row[R_PROTO] == UDP and row[R_DPORT] == self.port and row[R_SPORT] in self.own_ports
                and row[R_DST] in self._server_addrs)

    def own_record(self, rec: bytes) -> bool:
        """:meth:`own_flow` of a packed record, reading only the bytes it needs (the flow list's index
        runs it over every record)."""
        if rec[PROTO_AT] != UDP:
            return False
        o = O6 if len(rec) >= V6_MIN else O4
        size = 16 if len(rec) >= V6_MIN else 4
        return (int.from_bytes(rec[o["dport"]:o["dport"] + 2]) == self.port
                and int.from_bytes(rec[o["sport"]:o["sport"] + 2]) in self.own_ports
                and rec[o["dst"]:o["dst"] + size] in self._server_addrs)

    def close(self) -> None:
        """Stop the workers (each finishes the lookup it is in, at most a timeout per nameserver)."""
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(self.timeout * len(self.servers) + 1)
        for socks in self._socks:
            for s in socks.values():
                s.close()

    # --- the workers ----------------------------------------------------------------------

    def _work(self, socks: dict[int, socket.socket]) -> None:
        while (addr := self._queue.get()) is not None and not self._closed:
            name, ttl = self._lookup(socks, addr)
            with self._lock:
                self._pending.discard(addr)
                self._cache[addr] = (name, self.clock() + ttl)
                self._cache.move_to_end(addr)
                self.answers += 1
                while len(self._cache) > CACHE_MAX:
                    self._cache.popitem(last=False)

    def _lookup(self, socks: dict[int, socket.socket], addr: bytes) -> tuple[str | None, float]:
        qname = ptr_name(addr)
        for server in self.servers:
            s = socks[AF_INET6 if ":" in server else socket.AF_INET]
            qid = random.getrandbits(16)
            try:
                s.sendto(query(qid, qname), (server, self.port))
            except OSError:  # no route, refused...: the next nameserver
                continue
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    msg, peer = s.recvfrom(4096)
                except OSError:  # a timeout, or an ICMP error reported on the socket
                    break
                if peer[1] != self.port or socket.inet_pton(s.family, peer[0]) not in self._server_addrs:
                    continue  # not from a nameserver we asked: spoofed or stray
                try:
                    answer = parse_answer(msg, qid)
                except (ValueError, IndexError, struct.error):
                    answer = None
                if answer is not None:
                    return answer
        return None, NEGATIVE_TTL

