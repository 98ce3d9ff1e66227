"""What attributing flows to processes costs: one refresh (sockets + descriptors + cgroups), one lookup
per row, and ranking a whole table by process, against `conntrack -L` on the same table.

Then what the TUI pays (cttop.live.owner_top): ranking a table of --rank-rows flows by
process from the packed records, against a Tally (cttop.owners.owners) on unpacked rows. That table is the
namespace's real entries padded with synthetic forwarded ones, so its size needs no
change to the global nf_conntrack_max.

Usage: python benchmarks/bench_owners.py [--entries N] [--connections S] [--runs R] [--rank-rows M]
Needs root. Works in a namespace it creates and deletes (N synthetic entries, plus S real
loopback TCP connections held by a client and a server process); raises the global
nf_conntrack_max only if N exceeds it, and restores it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import alternate, filled_netns, synthetic_rows
from cttop.owners.owners import Owners, Tally, build_index
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.live.owner_top import PackedOwners
from cttop.model import Row
from cttop.table.aggregates import GroupRow
from cttop.table.store import FlowTable

TRACK = ("add table inet b; add chain inet b o { type filter hook output priority 0; }; "
         "add rule inet b o ct state new counter")
HOLDER = """
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
n = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 7000)); srv.listen(4096)
import threading
held = []
def accept():
    while True:
        held.append(srv.accept()[0])
threading.Thread(target=accept, daemon=True).start()
print("READY", flush=True)
time.sleep(3600)
"""
CLIENT = """
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
held = [socket.create_connection(("127.0.0.1", 7000)) for _ in range(int(sys.argv[1]))]
print("READY", flush=True)
time.sleep(3600)
"""


def tally_top(owners: Owners, rows: Iterable[Row]) -> list[GroupRow]:
    """The heaviest processes over unpacked rows, as the snapshot ranks them (a Tally)."""
    t = Tally(owners, "process")
    t.add(rows)
    return t.top()


def spawn(ns: str, code: str, n: int) -> subprocess.Popen[str]:
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, str(n)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    return p


def per_call(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    # Room under the default nf_conntrack_max (262144) for the real connections' entries.
    ap.add_argument("--entries", type=int, default=250_000)
    ap.add_argument("--connections", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rank-rows", type=int, default=1_000_000)
    a = ap.parse_args()
    with filled_netns(a.entries) as ns:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", TRACK], check=True)
        procs = [spawn(ns, HOLDER, a.connections)]
        procs.append(spawn(ns, CLIENT, a.connections))
        try:
            spec = NetnsSpec(name=ns)
            with Ctnetlink(spec) as ct:
                rows = ct.dump()
            owners = Owners(spec)
            index = owners.refresh()
            ns_only = per_call(lambda: build_index(spec), a.runs)
            # A socket of this (outside) process in the namespace forces the host-wide descriptor scan.
            outside = run_in(spec, lambda: socket.create_connection(("127.0.0.1", 7000)))
            host_wide = per_call(lambda: build_index(spec), a.runs)
            outside.close()
            owned = [r for r in rows if owners.owner_of(r) is not None]
            table = FlowTable()
            table.extend(rows)
            med = alternate(
                a.runs,
                conntrack_L=lambda: subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-L"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True),
                owner_of_every_row=lambda: [owners.owner_of(r) for r in rows],
                label_every_row=lambda: [owners.label(r) for r in rows],
                top_process_rows=lambda: tally_top(owners, rows),
                top_process_table=lambda: tally_top(owners, table.rows()),
            )
            big = FlowTable()
            big.extend(rows + padding(a.rank_rows - len(rows), taken={r[0] for r in rows}))
            records = big.records()
            rank = alternate(
                a.runs,
                owners_top_unpacked=lambda: tally_top(owners, big.rows()),
                packed_rekey=lambda: PackedOwners(owners.index),
                packed_top_process=lambda: PackedOwners(owners.index).top(records, "process"),
                packed_top_container=lambda: PackedOwners(owners.index).top(records, "container"),
                label_screenful=lambda: [owners.label(r) for r in rows[:60]],
            )
        finally:
            for p in procs:
                p.kill()
                p.wait()
    n = len(rows)
    print(f"\n{n} entries ({len(owned)} with a local owner), {index.sockets} sockets, "
          f"{index.processes} owning processes; medians of {a.runs} runs")
    print(f"refresh (sock_diag + fds of the namespace's processes + cgroups): {ns_only * 1e3:.1f} ms")
    print(f"refresh when a socket is held from outside (host-wide fd scan, {len(os.listdir('/proc'))} /proc "
          f"entries): {host_wide * 1e3:.1f} ms")
    base = med["conntrack_L"]
    print(f"{'what':<22} {'seconds':>8} {'us/row':>7} {'ratio':>6}")
    for k, v in med.items():
        print(f"{k:<22} {v:>8.3f} {v / n * 1e6:>7.2f} {v / base:>6.2f}")
    m = len(big)
    print(f"\nthe TUI's ranking, {m} flows ({n} real + {m - n} synthetic forwarded); medians of {a.runs} runs")
    print(f"{'what':<22} {'seconds':>8} {'us/row':>7}")
    for k, v in rank.items():
        print(f"{k:<22} {v:>8.3f} {v / m * 1e6:>7.2f}")


def padding(n: int, taken: set[int]) -> list[Row]:
    """``n`` synthetic forwarded flows (10.x addresses, not the namespace's), with ids none of ``taken``."""
    ids = (i for i in itertools.count(1) if i not in taken)
    return [(next(ids), *r[1:]) for r in synthetic_rows(n, acct=True)]


if __name__ == "__main__":
    main()
