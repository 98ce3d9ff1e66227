"""The flood check: under ~10k new flows/s, does the collector's table stay within 1% of the kernel's count,
and are event losses (ENOBUFS) seen and recovered?

Usage: python benchmarks/bench_flood.py [--rate 10000] [--seconds 30] [--small-buffer]

Needs root. Creates a namespace, shortens its UDP timeout (a per-namespace
sysctl) so the table reaches a steady state instead of the global max, and
runs a UDP blaster inside it: every datagram goes to a new (address, port), so
each one is a new conntrack entry. The collector runs exactly as in the TUI,
minus the screen. Each frame carries the kernel's count (CT_GET_STATS) and the
table's size taken at the same moment; they are compared frame by frame, and
`conntrack -C` is sampled independently as a cross-check. With --small-buffer
the event socket starts at 64 KiB so losses happen and the resync path is
exercised (the buffer grows on each loss, as in real use).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cttop.kernel import nlconst as C
from cttop.kernel.netns import NetnsSpec
from cttop.live.collector import Collector
from cttop.live.frame import LIVE, Frame
from cttop.live.index import FlowIndex
from cttop.sources.live import LiveSource

BLASTER = r"""
import socket, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + seconds
sent, t0, i = 0, time.monotonic(), 0
while time.monotonic() < end:
    due = int((time.monotonic() - t0) * rate)
    while sent < due:
        i += 1
        try:
            s.sendto(b"x", ("127.0.%d.%d" % ((i >> 16) & 255, (i >> 8) & 255 or 1), 1024 + i % 60000))
        except OSError:
            pass  # ICMP port unreachable reported back: expected, nobody listens
        sent += 1
    time.sleep(0.001)
print(sent / (time.monotonic() - t0))
"""


def sh(ns: str, *cmd: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True).stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--udp-timeout", type=int, default=5)
    p.add_argument("--small-buffer", action="store_true")
    a = p.parse_args()
    with flood_netns(a.udp_timeout) as ns:
        run(ns, a)


@contextmanager
def flood_netns(udp_timeout: int) -> Iterator[str]:
    """A throwaway namespace that tracks its own traffic, its UDP timeout shortened (a per-namespace sysctl)
    so a flood's table reaches a steady state; deleted on the way out."""
    ns = f"cttop-flood-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        sh(ns, "ip", "link", "set", "lo", "up")
        sh(ns, "nft", "add table inet f; add chain inet f o { type filter hook output priority 0; }; "
                      "add rule inet f o ct state new counter")
        sh(ns, "sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={udp_timeout}")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def run(ns: str, a: argparse.Namespace) -> None:
    frames: list[Frame] = []
    cv = threading.Condition()

    def on_frame(f: Frame) -> None:
        with cv:
            frames.append(f)
            cv.notify_all()

    def on_index(_: FlowIndex) -> None:
        pass

    source = LiveSource(NetnsSpec(name=ns))
    source.subscribe()
    assert source.ev is not None
    if a.small_buffer:
        source.ev.rcvbuf = 64 << 10
        source.ev.sock.setsockopt(socket.SOL_SOCKET, C.SO_RCVBUFFORCE, source.ev.rcvbuf)
    collector = Collector(source, on_frame=on_frame, on_index=on_index, interval=0.5)
    collector.start()
    with cv:
        cv.wait_for(lambda: any(f.phase == LIVE for f in frames), 30)
    blaster = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", BLASTER, str(a.rate),
                                str(a.seconds)], stdout=subprocess.PIPE, text=True)
    cross: list[tuple[float, int]] = []  # (when, conntrack -C)
    while blaster.poll() is None:
        time.sleep(1.0)
        cross.append((time.time(), int(sh(ns, "conntrack", "-C"))))
    sent_rate = float(blaster.stdout.read().strip() or 0) if blaster.stdout else 0.0
    time.sleep(1.5)
    collector.stop(timeout=5)
    warm = [f for f in frames if f.phase == LIVE and f.count and f.count > 1000]
    steady = warm[len(warm) // 4:]  # after the table has filled up to its steady state
    diffs = [abs(f.flows - f.count) / f.count for f in steady if f.count]
    last = frames[-1]
    print(f"blaster: {sent_rate:,.0f} new flows/s for {a.seconds:g} s (UDP timeout {a.udp_timeout} s)")
    print(f"collector: new {max(f.new_rate for f in steady):,.0f}/s at most, "
          f"{statistics.median(f.new_rate for f in steady):,.0f}/s median; kernel count "
          f"{statistics.median(f.count or 0 for f in steady):,.0f} median")
    print(f"frames compared: {len(diffs)}; |table - kernel| / kernel: median {statistics.median(diffs):.3%}, "
          f"p95 {sorted(diffs)[int(len(diffs) * 0.95)]:.3%}, max {max(diffs):.3%}")
    within = sum(1 for d in diffs if d <= 0.01)
    print(f"frames within 1%: {within}/{len(diffs)}; worst: " + ", ".join(
        f"#{f.seq} table {f.flows:,} kernel {f.count:,}" for f in sorted(
            steady, key=lambda f: -abs(f.flows - (f.count or 0)))[:3]))
    print(f"events lost and resynced: {last.lost}; undecodable: {last.bad}; "
          f"event buffer grew to {source.ev.rcvbuf >> 10} KiB")
    xd = []
    for when, k in cross[len(cross) // 4:]:
        nearest = min(steady, key=lambda f: abs(f.time - when))
        xd.append(abs(nearest.flows - k) / k)
    print(f"cross-check against `conntrack -C` (each against the frame nearest in time): "
          f"median {statistics.median(xd):.2%}, max {max(xd):.2%}")


if __name__ == "__main__":
    main()
