"""A deterministic Source for UI tests, snapshots, screenshots and benchmarks: fixed rows, fixed clock.

It implements cttop.sources.live.Source exactly as LiveSource does, so the collector and
the app run unchanged on it; only the kernel is replaced. Events can be queued with
``push`` (and a loss with ``lose``) to drive the collector from a test.
"""

from __future__ import annotations

import queue
import random
import socket
from collections.abc import Iterator

from cttop.kernel.ctnetlink import Stats
from cttop.kernel.events import EventBatch
from cttop.model import (
    AF_INET,
    AF_INET6,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DST_NAT,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
    NO_PSTATE,
    Row,
)

FIXED_TIME = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
ASSURED = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED
REPLIED = IPS_CONFIRMED | IPS_SEEN_REPLY
UNREPLIED = IPS_CONFIRMED


def v4(text: str) -> bytes:
    return socket.inet_pton(AF_INET, text)


def v6(text: str) -> bytes:
    return socket.inet_pton(AF_INET6, text)


def row(fid: int, proto: int, src: bytes, dst: bytes, sport: int, dport: int, *, pstate: int = NO_PSTATE,
        status: int = ASSURED, timeout: int = 120, mark: int = 0, zone: int = 0, nat_src: bytes | None = None,
        nat_dst: bytes | None = None, counters: tuple[int, int, int, int] | None = None,
        start: int = 0, labels: int = 0) -> Row:
    """One flow; ``nat_src`` is the address SNAT rewrote the source to, ``nat_dst`` where DNAT sent it."""
    family = AF_INET6 if len(src) == 16 else AF_INET
    if nat_src is not None:
        status |= IPS_SRC_NAT
    if nat_dst is not None:
        status |= IPS_DST_NAT
    rsrc = nat_dst if nat_dst is not None else dst
    rdst = nat_src if nat_src is not None else src
    c = counters if counters is not None else (None, None, None, None)
    return (fid, family, proto, pstate, status, src, dst, sport, dport, rsrc, rdst, dport, sport,
            timeout, mark, zone, 1, *c, start, labels)


def fixed_rows() -> list[Row]:
    """A small, varied table: every TCP state of interest, UDP/ICMP at each stage, IPv6, NAT, marks, zones."""
    c1, c2, c3 = v4("10.0.1.10"), v4("10.0.1.11"), v4("10.0.2.20")
    web, dns, db = v4("192.0.2.80"), v4("192.0.2.53"), v4("198.51.100.5")
    rows = [
        row(1001, 6, c1, web, 40001, 443, pstate=3, timeout=431999, counters=(12, 5400, 10, 81000)),
        row(1002, 6, c1, web, 40002, 443, pstate=3, timeout=431990, counters=(8, 1200, 6, 9000)),
        row(1003, 6, c1, web, 40003, 80, pstate=7, timeout=110, counters=(5, 600, 4, 3000)),
        row(1004, 6, c2, web, 40100, 443, pstate=1, status=UNREPLIED, timeout=118, counters=(1, 60, 0, 0)),
        row(1005, 6, c2, web, 40101, 443, pstate=1, status=UNREPLIED, timeout=117, counters=(1, 60, 0, 0)),
        row(1006, 6, c2, db, 40200, 5432, pstate=3, timeout=432000, mark=0x10, counters=(900, 120000, 880, 9_500_000)),
        row(1007, 6, c3, db, 40300, 5432, pstate=4, timeout=100, mark=0x10, counters=(20, 2000, 18, 4000)),
        row(1008, 6, c3, web, 40301, 8080, pstate=2, status=REPLIED, timeout=58, counters=(2, 120, 1, 60)),
        row(1009, 6, c3, web, 40302, 443, pstate=5, timeout=55, counters=(40, 4000, 38, 60000)),
        row(1010, 6, c1, web, 40004, 443, pstate=3, timeout=431500, nat_src=v4("203.0.113.1"),
            counters=(300, 30000, 280, 2_400_000)),
        row(1011, 17, c1, dns, 50001, 53, status=REPLIED, timeout=25, counters=(1, 70, 1, 130)),
        row(1012, 17, c1, dns, 50002, 53, status=REPLIED, timeout=24, counters=(1, 70, 1, 130)),
        row(1013, 17, c2, dns, 50003, 53, status=UNREPLIED, timeout=29, counters=(1, 70, 0, 0)),
        row(1014, 17, c2, dns, 50004, 53, status=UNREPLIED, timeout=28, counters=(1, 70, 0, 0)),
        row(1015, 17, c2, dns, 50005, 53, status=UNREPLIED, timeout=27, counters=(1, 70, 0, 0)),
        row(1016, 17, c3, v4("192.0.2.123"), 123, 123, timeout=170, counters=(10, 900, 10, 900)),
        row(1017, 17, c3, v4("10.0.9.9"), 51000, 4789, timeout=160, zone=7, nat_dst=v4("10.9.0.2"),
            counters=(77, 9000, 70, 8000)),
        row(1018, 1, c1, web, 0x1234, 8 << 8, status=REPLIED, timeout=29, counters=(1, 84, 1, 84)),
        row(1019, 1, c2, v4("10.0.9.1"), 0x2222, 8 << 8, status=UNREPLIED, timeout=28, counters=(1, 84, 0, 0)),
        row(1020, 6, v6("2001:db8::10"), v6("2001:db8:1::443"), 41000, 443, pstate=3, timeout=431000,
            counters=(50, 9000, 45, 70000)),
        row(1021, 17, v6("2001:db8::10"), v6("2001:db8:1::53"), 52000, 53, status=REPLIED, timeout=20,
            counters=(1, 90, 1, 150)),
        row(1022, 58, v6("2001:db8::10"), v6("2001:db8:1::1"), 7, 128 << 8, status=REPLIED, timeout=22,
            counters=(1, 104, 1, 104)),
        row(1023, 132, c3, db, 3868, 3868, pstate=4, timeout=200, counters=(30, 3000, 30, 3000)),
        row(1024, 47, c1, v4("198.51.100.77"), 0, 0, timeout=590, counters=(6, 600, 6, 600)),
        row(1025, 6, c2, web, 40150, 443, pstate=3, timeout=431800, labels=0b101, start=1_767_225_000_000_000_000,
            counters=(14, 1400, 12, 24000)),
    ]
    return rows


def busy_rows(n: int, seed: int = 7, counters: bool = True) -> list[Row]:
    """``n`` plausible flows: a few heavy sources, web and DNS traffic, some NAT; reproducible."""
    rnd = random.Random(seed)
    out: list[Row] = []
    heavy = [v4(f"10.0.{i}.{i * 7 % 250 + 2}") for i in range(1, 5)]
    servers = [(v4("192.0.2.80"), 6, 443), (v4("192.0.2.80"), 6, 80), (v4("192.0.2.53"), 17, 53),
               (v4("198.51.100.5"), 6, 5432), (v4("203.0.113.9"), 17, 443)]
    for i in range(n):
        src = heavy[rnd.randrange(4)] if rnd.random() < 0.6 else v4(f"10.{rnd.randrange(1, 4)}."
                                                                        f"{rnd.randrange(256)}.{rnd.randrange(1, 255)}")
        dst, proto, dport = servers[rnd.randrange(len(servers))]
        sport = rnd.randrange(1024, 65535)
        if proto == 6:
            pstate = rnd.choice((3, 3, 3, 3, 1, 7, 7, 2, 5))
            status = UNREPLIED if pstate == 1 else REPLIED if pstate == 2 else ASSURED
            timeout = 432000 - rnd.randrange(1000) if pstate == 3 else rnd.randrange(1, 120)
        else:
            pstate, status = NO_PSTATE, rnd.choice((UNREPLIED, REPLIED, ASSURED))
            timeout = rnd.randrange(1, 180)
        c = None
        if counters:
            op = rnd.randrange(1, 50)
            rp = rnd.randrange(0, op + 1) if status != UNREPLIED else 0
            c = (op, op * rnd.randrange(60, 1500), rp, rp * rnd.randrange(60, 1500))
        nat = v4("203.0.113.1") if rnd.random() < 0.1 else None
        out.append(row(10_000 + i, proto, src, dst, sport, dport, pstate=pstate, status=status, timeout=timeout,
                       mark=0x10 if dport == 5432 else 0, nat_src=nat, counters=c))
    return out


class FixedSource:
    """A Source whose table, counters and clock never change unless a test says so."""

    live = True
    spec = None  # no namespace: no owners, no /proc
    events_overflow = False
    playback = None

    def __init__(self, rows: list[Row] | None = None, *, label: str = "fixed", maximum: int = 262144,
                 buckets: int = 65536, now: float = FIXED_TIME, per_cpu: list[dict[str, int]] | None = None) -> None:
        self.label = label
        self.rows = list(fixed_rows() if rows is None else rows)
        self.maximum = maximum
        self.buckets = buckets
        self.clock = now
        self.per_cpu = per_cpu if per_cpu is not None else [
            {"drop": 0, "early_drop": 0, "insert_failed": 0, "clash_resolve": 3, "chaintoolong": 0,
             "search_restart": 12, "found": 0, "invalid": 0, "error": 0}]
        self.subscribed = False
        self.dumps = 0
        self.closed = False
        self._events: queue.SimpleQueue[EventBatch] = queue.SimpleQueue()

    def push(self, events: list[tuple[int, Row]]) -> None:
        self._events.put(EventBatch(events=events))

    def lose(self) -> None:
        """Report an event loss (ENOBUFS) on the next read."""
        self._events.put(EventBatch(lost=True))

    def subscribe(self) -> None:
        self.subscribed = True

    def dump(self) -> list[Row]:
        self.dumps += 1
        return list(self.rows)

    def dump_chunks(self) -> Iterator[list[Row]]:
        rows = self.dump()
        for i in range(0, len(rows), 7):  # small chunks, as the kernel's arrive
            yield rows[i:i + 7]

    def events(self, timeout: float) -> EventBatch:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return EventBatch()

    def stats(self) -> Stats:
        return Stats(len(self.rows), self.maximum)

    def stats_cpu(self) -> list[dict[str, int]]:
        return [dict(d) for d in self.per_cpu]

    def sysctls(self) -> dict[str, str]:
        return {"nf_conntrack_count": str(len(self.rows)), "nf_conntrack_max": str(self.maximum),
                "nf_conntrack_buckets": str(self.buckets), "hashsize": str(self.buckets),
                "nf_conntrack_acct": "1"}

    def now(self) -> float:
        return self.clock

    def close(self) -> None:
        self.closed = True
