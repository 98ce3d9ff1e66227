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
from cttop.model import AF_INET, IPS_ASSURED, IPS_SEEN_REPLY, NO_PSTATE, Row


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


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@contextmanager
def filled_netns(n: int) -> Iterator[str]:
    """A namespace holding ``n`` entries (raising the global max for the duration if needed)."""
    name = f"cttop-bench-{uuid.uuid4().hex[:8]}"
    max_path = "/proc/sys/net/netfilter/nf_conntrack_max"
    old_max = int(open(max_path).read())
    raise_max = n > old_max
    sh(["ip", "netns", "add", name])
    try:
        if raise_max:
            with open(max_path, "w") as f:
                f.write(str(n + 1024))
        with Ctnetlink(NetnsSpec(name=name)) as ct:
            made = ct.create(synthetic_rows(n))
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
