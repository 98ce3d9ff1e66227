"""The screen under a flood: does what the TUI shows agree with the kernel at the moment it is shown,
and do frames keep their interval?

Usage: python benchmarks/bench_flood_truth.py [--rate 10000] [--seconds 30] [--interval 1.0] [--udp-timeout 5]

Needs root. A throwaway namespace, its UDP timeout shortened (a per-namespace
sysctl) so the table reaches a steady state, and a UDP blaster inside it making
`--rate` new flows a second (each datagram to a new address and port). The real
app runs headless (App.run_test) on the namespace, exactly as `cttop --netns`
would, minus the terminal. Every time a frame is put on screen (the UI thread
applies it), the kernel's count is read right then on a socket of this script's
own (CT_GET_STATS), and `conntrack -C` is run off the UI thread as an
independent check. Compared with it:

- the flow list's title, "Flows N", as drawn (the collector's table at the frame's instant);
- the Fill panel's count (the kernel's, read by the collector when it built the frame);
and "Flows N" against that count too (the table and the kernel at the frame's own instant: the
kernel's garbage collector ends expired entries in bursts, so tens of milliseconds later the two
can differ by a few percent).

It reports how many frames are within 1% of the kernel, the interval between
frames put on screen (p50 / p99 / max), and the process's CPU time (rusage, the
blaster excluded) against the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_flood import BLASTER, flood_netns, sh
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.live.frame import LIVE
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from tests.ui.helpers import frames_on_screen, wait_live


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * p))]


def within(a: int, b: int) -> bool:
    return abs(a - b) <= 0.01 * max(b, 1)


async def flood(ns: str, a: argparse.Namespace) -> None:
    cross: list[tuple[int, int, int]] = []  # (frame seq, on-screen Flows N, `conntrack -C` just after)
    counts = Ctnetlink(NetnsSpec(name=ns))
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=a.interval)
    with frames_on_screen(lambda: counts.stats().count) as shown:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_live(pilot, app)
            argv = ["ip", "netns", "exec", ns, sys.executable, "-c", BLASTER, str(a.rate), str(a.seconds)]
            blaster = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - returns at once
            t0, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
            checked = 0
            while blaster.poll() is None:
                await pilot.pause(0.1)
                # An independent check, off the UI thread: `conntrack -C` just after each new frame went on screen.
                for s in shown[checked:]:
                    if s.listed is not None:
                        kernel = await asyncio.to_thread(sh, ns, "conntrack", "-C")
                        cross.append((s.frame.seq, s.listed, int(kernel)))
                checked = len(shown)
            t1, ru1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
            sent = float(blaster.stdout.read().strip() or 0) if blaster.stdout else 0.0
    counts.close()

    # Steady state: from one UDP timeout (and a second) after the flood began, to its end.
    steady = [s for s in shown if t0 + a.udp_timeout + 1 <= s.at <= t1 and s.frame.phase == LIVE]
    gaps = [b.at - a_.at for a_, b in itertools.pairwise(shown) if t0 <= a_.at and b.at <= t1]
    wall, cpu = t1 - t0, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    last = shown[-1].frame
    print(f"blaster: {sent:,.0f} new flows/s for {a.seconds:g} s (UDP timeout {a.udp_timeout} s); "
          f"refresh interval {a.interval:g} s")
    print(f"kernel count in the steady state: median {statistics.median(s.kernel for s in steady):,.0f}")
    for label, values in (
            ("\"Flows N\" vs the kernel's count as the frame goes on screen",
             [(s.listed, s.kernel) for s in steady if s.listed is not None]),
            ("Fill panel count vs the same", [(s.frame.count or 0, s.kernel) for s in steady]),
            ("\"Flows N\" vs the kernel's count read as the frame was built",
             [(s.listed, s.frame.count or 0) for s in steady if s.listed is not None])):
        ok = sum(within(x, k) for x, k in values)
        rel = [abs(x - k) / k for x, k in values if k]
        print(f"{label}: {ok}/{len(values)} frames ({ok / len(values):.0%}) within 1%; "
              f"|diff|/kernel median {statistics.median(rel):.3%}, max {max(rel):.3%}")
    worst = sorted((s for s in steady if s.listed is not None), key=lambda s: -abs(s.listed - s.kernel) / s.kernel)
    print("worst frames: " + "; ".join(
        f"#{s.frame.seq} Flows {s.listed:,} (count {s.frame.count:,} when built, {s.late * 1000:.0f} ms before) "
        f"kernel {s.kernel:,}{' [' + s.frame.note + ']' if s.frame.note else ''}" for s in worst[:3]))
    seqs = {s.frame.seq for s in steady}
    xs = [(n, k) for seq, n, k in cross if seq in seqs]
    ok = sum(within(n, k) for n, k in xs)
    print(f"\"Flows N\" against `conntrack -C` run just after: {ok}/{len(xs)} within 1%")
    late = [s.late for s in shown if t0 <= s.at <= t1]
    print(f"frame built to frame on screen: p50 {statistics.median(late) * 1000:.0f} ms, "
          f"max {max(late) * 1000:.0f} ms")
    print(f"frame interval on screen ({len(gaps)} gaps): p50 {statistics.median(gaps):.3f} s, "
          f"p99 {pct(gaps, 0.99):.3f} s, max {max(gaps):.3f} s")
    print(f"CPU (this process: UI, collector, indexer; not the blaster): {cpu:.1f} s in {wall:.1f} s wall "
          f"= {cpu / wall:.0%} of one core")
    print(f"events lost and resynced: {last.lost}; undecodable: {last.bad}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--udp-timeout", type=int, default=5)
    a = p.parse_args()
    with flood_netns(a.udp_timeout) as ns:
        asyncio.run(flood(ns, a))


if __name__ == "__main__":
    main()
