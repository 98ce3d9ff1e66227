"""Shared benchmark plumbing: a throwaway namespace filled with N synthetic entries, and timing."""

from __future__ import annotations

import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, AF_INET6, IPS_ASSURED, IPS_SEEN_REPLY, NO_PSTATE, Row


def synthetic_rows(n: int, acct: bool = False) -> Iterator[Row]:
    """UDP entries with unique tuples, a mix of unreplied and assured, over 16 sources and 64 ports."""
    for i in range(n):
        src = bytes([10, 1, i % 16, 1])
        dst = bytes([10, 2, (i >> 16) & 0xFF, (i >> 8) & 0xFF])
        sport, dport = 1024 + (i & 0xFF) * 200 + (i >> 24), 5000 + i % 64
        status = IPS_ASSURED | IPS_SEEN_REPLY if i % 3 == 0 else 0
        counters = (0, 0, 0, 0) if acct else (None, None, None, None)
        yield (0, AF_INET, 17, NO_PSTATE, status, src, dst, sport, dport, dst, src, dport, sport,
               3600, i % 4, 0, 0, *counters, 0, 0)


# (proto, dport, share out of 16): web, DNS, a database, QUIC and ping, as a busy node's table looks.
_SERVICES = ((6, 443, 6), (6, 80, 2), (17, 53, 4), (6, 5432, 1), (17, 443, 2), (1, 8 << 8, 1))
_SERVICE_OF = [svc for svc in _SERVICES for _ in range(svc[2])]
# TCP states weighted toward ESTABLISHED and TIME_WAIT, with some SYN_SENT (unreplied) and closing ones.
_TCP_STATES = (3, 3, 3, 3, 3, 7, 7, 1, 2, 4, 5)
_SOURCES = 4096


def realistic_rows(n: int) -> Iterator[Row]:
    """Unique entries shaped like a busy node: 4096 sources (a quarter IPv6), TCP in a mix of
    states, UDP and ICMP, 64 servers; tuples stay unique up to 4096 * 60000 entries."""
    for i in range(n):
        s = i % _SOURCES
        proto, dport, _ = _SERVICE_OF[(i * 7 + i // _SOURCES) % 16]
        v6 = s % 4 == 0
        if v6:
            src = bytes([0x20, 0x01, 0x0d, 0xb8, 0, 1] + [0] * 8 + [s >> 8, s & 0xFF])
            dst = bytes([0x20, 0x01, 0x0d, 0xb8, 0, 2] + [0] * 9 + [i % 64])
        else:
            src = bytes([10, 1 + (s >> 8), s & 0xFF, 1 + (i >> 12) % 2])
            dst = bytes([192, 0, 2, i % 64])
        sport = 1024 + (i // _SOURCES) % 60000
        if proto == 6:
            pstate = _TCP_STATES[(i // 3) % len(_TCP_STATES)]
            status = 0 if pstate == 1 else IPS_SEEN_REPLY if pstate == 2 else IPS_ASSURED | IPS_SEEN_REPLY
            rdport = sport
        elif proto == 1:
            if v6:  # ICMPv6 echo request 128, reply 129
                proto, dport = 58, 128 << 8
            pstate, status = NO_PSTATE, IPS_SEEN_REPLY
            rdport = 0 if proto == 1 else 129 << 8
        else:
            pstate, status = NO_PSTATE, (0, IPS_SEEN_REPLY, IPS_ASSURED | IPS_SEEN_REPLY)[i % 3]
            rdport = sport
        rsport = sport if proto in (1, 58) else dport
        yield (0, AF_INET6 if v6 else AF_INET, proto, pstate, status, src, dst, sport, dport,
               dst, src, rsport, rdport, 3600, 0, 0, 0, None, None, None, None, 0, 0)


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@contextmanager
def filled_netns(n: int, realistic: bool = False, prefix: str = "cttop-bench-") -> Iterator[str]:
    """A namespace holding ``n`` entries (raising the global max for the duration if needed)."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    max_path = "/proc/sys/net/netfilter/nf_conntrack_max"
    old_max = int(open(max_path).read())
    raise_max = n > old_max
    sh(["ip", "netns", "add", name])
    try:
        if raise_max:
            with open(max_path, "w") as f:
                f.write(str(n + 1024))
        with Ctnetlink(NetnsSpec(name=name)) as ct:
            made = ct.create(realistic_rows(n) if realistic else synthetic_rows(n))
        if made != n:
            raise RuntimeError(f"only {made} of {n} entries were created")
        yield name
    finally:
        sh(["ip", "netns", "del", name])
        if raise_max:  # only what this raised: a value someone else set meanwhile is theirs
            with open(max_path, "w") as f:
                f.write(str(old_max))


def median_time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(runs: int, **fns: Callable[[], object]) -> dict[str, float]:
    """Median seconds of each function, run alternately so drift hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            times[k].append(median_time(fn))
    return {k: statistics.median(v) for k, v in times.items()}
