"""Traffic generators the lab runs inside its namespaces: ``python -m cttop.lab.traffic ROLE ...``.

Each one is bounded twice: every role paces itself to a rate, and every process
exits after ``--seconds`` (an alarm backs that up even if a loop gets stuck).
The lab kills them sooner when it stops, and a parent-death signal it sets kills
them if the lab itself is killed. Only the standard library is imported, so each
starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import cast

ECHO_PORT, HTTP_PORT, DNS_PORT = 7, 80, 53
CHURN_PORTS = range(8000, 8016)
HTTP_BODY = b"<html>cttop lab</html>\n" * 20


class Pacer:
    """Keeps a loop at ``rate`` events per second on average (0 means as fast as it can go)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()

    def delay(self, done: int) -> float:
        """Seconds to wait so that ``done`` events so far are not ahead of the rate."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, self.start + done / self.rate - time.monotonic())

    def wait(self, done: int) -> None:
        d = self.delay(done)
        if d > 0:
            time.sleep(d)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# --- the server: every service the clients talk to --------------------------------------------

class _DnsLike(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data[:2] + b"\x81\x80" + data[4:] + b"\x00" * 16, addr)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(HTTP_BODY) + HTTP_BODY)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The client closes first, so the TIME_WAIT side is the client's, as on a busy front end.
    try:
        while await reader.read(4096):
            pass
    except OSError:
        pass
    finally:
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await asyncio.start_server(_echo, None, ECHO_PORT),
        await asyncio.start_server(_http, None, HTTP_PORT, backlog=512),
        # Listening but never accepting: the SYN flood's target, answered by the kernel alone.
        await asyncio.start_server(_until_eof, None, args.syn_port, backlog=16),
    ]
    for port in CHURN_PORTS:
        servers.append(await asyncio.start_server(_until_eof, None, port, backlog=1024))
    # One dual-stack socket answers both families.
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("::", DNS_PORT))
    await loop.create_datagram_endpoint(_DnsLike, sock=udp)
    # A wildcard socket answers from the address routing picks (the primary one); a DNAT target on a
    # secondary address must answer from that address, or its replies would match no entry.
    for addr in args.answer_from:
        own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.bind((addr, DNS_PORT))
        await loop.create_datagram_endpoint(_DnsLike, sock=own)
    await asyncio.sleep(args.seconds)
    for s in servers:
        s.close()


# --- the "normal busy box" client ---------------------------------------------------------------

async def _session(host: str, period: float) -> None:
    """One long TCP session that talks every ``period`` seconds; reconnects if dropped."""
    await asyncio.sleep(random.uniform(0, period))
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, ECHO_PORT)
            while True:
                writer.write(b"ping %f\n" % time.time())
                await writer.drain()
                await reader.readline()
                await asyncio.sleep(period)
        except OSError:
            await asyncio.sleep(1)


async def _http_get(host: str) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, HTTP_PORT), 2)
        writer.write(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 2)
        writer.close()
    except (TimeoutError, OSError):
        pass


def _query() -> bytes:
    """A DNS-like query for ``lab. A`` with a random id, as the server's responder expects."""
    return struct.pack("!HHHHHH", random.getrandbits(16), 0x0100, 1, 0, 0, 0) + b"\x03lab\x00\x00\x01\x00\x01"


async def _dns_query(host: str) -> None:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A fresh socket per query: a new source port, hence a new flow, as resolvers do.
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        query = _query()
        try:
            await loop.sock_sendto(s, query, (host, DNS_PORT))
            await asyncio.wait_for(loop.sock_recv(s, 512), 1)
        except (TimeoutError, OSError):
            pass


def _ping_sockets() -> tuple[socket.socket, socket.socket]:
    v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    for s in (v4, v6):
        s.setblocking(False)
        # Replies are never read; a small buffer just drops them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return v4, v6


async def _pinger(server4: str, server6: str, interval: float) -> None:
    v4, v6 = _ping_sockets()
    ident = random.getrandbits(16)
    seq = 0
    while True:
        seq = (seq + 1) & 0xFFFF
        head = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"cttop-lab"
        echo4 = head[:2] + struct.pack("!H", checksum(head)) + head[4:]
        # The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
        echo6 = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"cttop-lab"
        try:
            v4.sendto(echo4, (server4, 0))
            v6.sendto(echo6, (server6, 0))
        except OSError:
            pass
        await asyncio.sleep(interval)


async def _paced(rate: float, make: Callable[[], asyncio.Future[None] | asyncio.Task[None]], limit: int) -> None:
    """Start ``make()`` ``rate`` times a second, with at most ``limit`` in flight."""
    if rate <= 0:
        return
    pending: set[asyncio.Future[None] | asyncio.Task[None]] = set()
    pacer = Pacer(rate)
    started = 0
    while True:
        pending = {t for t in pending if not t.done()}
        if len(pending) < limit:
            pending.add(make())
        started += 1
        await asyncio.sleep(pacer.delay(started))


async def mixed(args: argparse.Namespace) -> None:
    tasks = [asyncio.create_task(_session(args.server6 if i % 4 == 3 else args.server4, args.session_period))
             for i in range(args.sessions)]

    def host() -> str:
        return str(args.server6 if random.random() < 0.25 else args.server4)

    tasks.append(asyncio.create_task(_paced(args.http_rate, lambda: asyncio.ensure_future(_http_get(host())), 64)))
    tasks.append(asyncio.create_task(_paced(args.dns_rate, lambda: asyncio.ensure_future(_dns_query(host())), 64)))
    tasks.append(asyncio.create_task(_pinger(args.server4, args.server6, args.ping_interval)))
    await asyncio.sleep(args.seconds)
    for t in tasks:
        t.cancel()


# --- the pressure makers ------------------------------------------------------------------------

async def _stream(host: str, port: int, gap: float) -> None:
    """One short UDP stream: a query and its answer, another after ``gap`` s, then silence.

    The kernel marks a UDP entry ASSURED (and moves it to udp_timeout_stream) when it
    sees traffic again more than 2 s after it began with a reply seen: the second
    exchange does that, and the entry then waits out the stream timeout idle.
    """
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        try:
            for i in range(2):
                if i:
                    await asyncio.sleep(gap)
                query = _query()
                await loop.sock_sendto(s, query, (host, port))
                await asyncio.wait_for(loop.sock_recv(s, 512), 1)
        except (TimeoutError, OSError):
            pass


async def udp_streams(args: argparse.Namespace) -> None:
    """``--rate`` new short UDP streams a second (see :func:`_stream`), each from a socket of its own."""
    limit = int(args.rate * (args.gap + 3)) + 16
    task = asyncio.create_task(_paced(args.rate, lambda: asyncio.ensure_future(
        _stream(args.dst, args.port, args.gap)), limit))
    await asyncio.sleep(args.seconds)
    task.cancel()


async def _keep_asking(host: str, port: int, period: float) -> None:
    """A resolver that keeps one socket: the same source port, hence one conntrack entry, for its whole life."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        while True:
            query = _query()
            try:
                await loop.sock_sendto(s, query, (host, port))
            except OSError:
                pass
            await asyncio.sleep(period)


async def resolvers(args: argparse.Namespace) -> None:
    """``--keep`` long-lived resolver sockets asking every ``--period`` s, and one-shot lookups at ``--rate``.

    Started before a DNAT target changes, the long-lived ones keep their entries (and
    the old target) as long as they keep asking; the one-shot ones take the rule as it is.
    """
    tasks = [asyncio.create_task(_keep_asking(args.dst, args.port, args.period)) for _ in range(args.keep)]
    tasks.append(asyncio.create_task(_paced(args.rate, lambda: asyncio.ensure_future(_dns_query(args.dst)), 64)))
    await asyncio.sleep(args.seconds)
    for t in tasks:
        t.cancel()


def retarget(args: argparse.Namespace) -> None:
    """After ``--after`` s, point the router's DNAT of ``--vip``:``--port`` at ``--to`` (one nft transaction)."""
    time.sleep(args.after)
    rules = (f"flush chain inet cttop-lab dstnat\n"
             f"add rule inet cttop-lab dstnat ip daddr {args.vip} udp dport {args.port} dnat ip to {args.to}\n")
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    time.sleep(max(args.seconds - args.after, 0))


def udp_flood(args: argparse.Namespace) -> None:
    """Unique UDP tuples (source socket x destination address) to one port, never answered.

    A burst of ``--burst`` flows as fast as ``--burst-rate`` allows, then ``--rate``
    new flows a second for the rest of the run.
    """
    net = ipaddress.ip_network(args.dst_net)
    addrs = [str(a) for a in net.hosts()]
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(args.sockets)]
    end = time.monotonic() + args.seconds
    i = 0
    for count, rate in ((args.burst, args.burst_rate), (None, args.rate)):
        pacer = Pacer(rate)
        every = min(64, max(1, int(rate) // 1000)) if rate > 0 else 64
        sent = 0
        while (count is None or sent < count) and time.monotonic() < end:
            s = socks[i % len(socks)]
            try:
                s.sendto(b"cttop-lab", (addrs[(i // len(socks)) % len(addrs)], args.port))
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
            i += 1
            sent += 1
            # Checking the clock only every 64 packets keeps a fast burst fast; slow rates check more often,
            # so that their flows come evenly and not 64 at a time.
            if sent % every == 0:
                pacer.wait(sent)


def syn(args: argparse.Namespace) -> None:
    """Half-open TCP: bare SYNs from ever-changing source ports, sent on a raw socket.

    The client's own stack never sees the answers (the lab drops them before it),
    so it neither completes nor resets the handshakes.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    src, dst = socket.inet_aton(args.src), socket.inet_aton(args.dst)
    pacer = Pacer(args.rate)
    end = time.monotonic() + args.seconds
    sport = random.randrange(1024, 65536)
    sent = 0
    while time.monotonic() < end:
        sport = sport + 1 if sport < 65535 else 1024
        seq = random.getrandbits(32)
        head = struct.pack("!HHIIBBHHH", sport, args.port, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(head))
        packet = head[:16] + struct.pack("!H", checksum(pseudo + head)) + head[18:]
        try:
            s.sendto(packet, (args.dst, 0))
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise
        sent += 1
        pacer.wait(sent)


def churn(args: argparse.Namespace) -> None:
    """Short TCP connections the client closes first: each leaves a TIME_WAIT entry behind."""
    pacer = Pacer(args.rate)
    end = time.monotonic() + args.seconds
    done = 0
    while time.monotonic() < end:
        done += 1
        try:
            with socket.create_connection((args.dst, CHURN_PORTS[done % len(CHURN_PORTS)]), timeout=2) as s:
                s.sendall(b"GET /short\r\n\r\n")
        except OSError as e:
            # Out of local ports (the client's own TIME_WAIT sockets): let some expire.
            if e.errno == errno.EADDRNOTAVAIL:
                time.sleep(0.5)
        pacer.wait(done)


# --- the command line ---------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cttop.lab.traffic")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seconds", type=float, required=True, help="exit after this long")
    # Carried only so `ps` shows which lab a generator belongs to.
    common.add_argument("--lab", default="", help="the lab's tag")
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve", parents=[common])
    s.add_argument("--syn-port", type=int, required=True)
    s.add_argument("--answer-from", action="append", default=[], help="also answer DNS from this own address")
    m = sub.add_parser("mixed", parents=[common])
    m.add_argument("--server4", required=True)
    m.add_argument("--server6", required=True)
    m.add_argument("--sessions", type=int, default=24)
    m.add_argument("--session-period", type=float, default=1.0)
    m.add_argument("--http-rate", type=float, default=10)
    m.add_argument("--dns-rate", type=float, default=20)
    m.add_argument("--ping-interval", type=float, default=0.5)
    u = sub.add_parser("udp-flood", parents=[common])
    u.add_argument("--dst-net", required=True)
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--sockets", type=int, default=32)
    u.add_argument("--burst", type=int, default=0)
    u.add_argument("--burst-rate", type=float, default=0)
    u.add_argument("--rate", type=float, required=True)
    y = sub.add_parser("syn", parents=[common])
    y.add_argument("--src", required=True)
    y.add_argument("--dst", required=True)
    y.add_argument("--port", type=int, required=True)
    y.add_argument("--rate", type=float, required=True)
    c = sub.add_parser("churn", parents=[common])
    c.add_argument("--dst", required=True)
    c.add_argument("--rate", type=float, required=True)
    st = sub.add_parser("udp-streams", parents=[common])
    st.add_argument("--dst", required=True)
    st.add_argument("--port", type=int, default=DNS_PORT)
    st.add_argument("--rate", type=float, required=True)
    st.add_argument("--gap", type=float, default=2.5)
    r = sub.add_parser("resolvers", parents=[common])
    r.add_argument("--dst", required=True)
    r.add_argument("--port", type=int, default=DNS_PORT)
    r.add_argument("--keep", type=int, required=True)
    r.add_argument("--period", type=float, default=1.0)
    r.add_argument("--rate", type=float, required=True)
    t = sub.add_parser("retarget", parents=[common])
    t.add_argument("--vip", required=True)
    t.add_argument("--port", type=int, default=DNS_PORT)
    t.add_argument("--to", required=True)
    t.add_argument("--after", type=float, required=True)
    return p


ASYNC_ROLES: dict[str, Callable[[argparse.Namespace], Coroutine[None, None, None]]] = {
    "serve": serve, "mixed": mixed, "udp-streams": udp_streams, "resolvers": resolvers}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # The backstop: SIGALRM's default action ends the process whatever it is doing.
    signal.alarm(int(args.seconds) + 5)
    if args.role in ASYNC_ROLES:
        asyncio.run(ASYNC_ROLES[args.role](args))
    else:
        {"udp-flood": udp_flood, "syn": syn, "churn": churn, "retarget": retarget}[args.role](args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
