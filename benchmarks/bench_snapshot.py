"""cttop snapshot vs conntrack -L on the same table, plus the raw-dump floor and bytes per flow.

Usage: python benchmarks/bench_snapshot.py [--entries N] [--runs R] [--memory-entries M]
Needs root. Works in a namespace it creates and deletes; raises the global
nf_conntrack_max only if N exceeds it, and restores it.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import alternate, filled_netns
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.table.store import FlowTable

# The cttop installed beside this interpreter (e.g. .venv/bin/cttop), not a shim found on PATH.
CTTOP = os.path.join(os.path.dirname(sys.executable), "cttop")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def speed(n: int, runs: int) -> None:
    with filled_netns(n) as ns:
        ct = Ctnetlink(NetnsSpec(name=ns))

        def raw_floor() -> int:
            # Receive every message, touch nothing: what Python pays before decoding.
            return sum(1 for _ in ct.dump_buffers())

        def run(cmd: list[str]) -> None:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

        med = alternate(
            runs,
            conntrack_L=lambda: run(["ip", "netns", "exec", ns, "conntrack", "-L"]),
            cttop_snapshot_json=lambda: run([CTTOP, "snapshot", "--netns", ns, "--json"]),
            cttop_snapshot_json_flows=lambda: run([CTTOP, "snapshot", "--netns", ns, "--json", "--flows"]),
            python_raw_dump=raw_floor,
            cttop_dump_decode=ct.dump,
        )
        ct.close()
    base = med["conntrack_L"]
    print(f"\n{n} entries, medians of {runs} alternating runs (ratio = time / conntrack -L):")
    print(f"{'what':<32} {'seconds':>8} {'ratio':>6}")
    for k, v in med.items():
        print(f"{k:<32} {v:>8.3f} {v / base:>6.2f}")


def memory(n: int) -> None:
    with filled_netns(n) as ns:
        with Ctnetlink(NetnsSpec(name=ns)) as ct:
            gc.collect()
            before = rss()
            table = FlowTable()
            for chunk in ct.dump_chunks():
                table.extend(chunk)
            del chunk
            gc.collect()
            after = rss()
    print(f"\nmemory: {len(table)} flows held, {(after - before) / len(table):.0f} bytes per flow (RSS delta)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=262_144)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--memory-entries", type=int, default=1_000_000)
    a = ap.parse_args()
    speed(a.entries, a.runs)
    if a.memory_entries:
        memory(a.memory_entries)


if __name__ == "__main__":
    main()
