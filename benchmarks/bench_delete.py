"""Deleting a filtered 50k out of 1M flows: cttop vs `conntrack -D` with the same filter, on the same table.

Usage: python benchmarks/bench_delete.py [--entries N] [--matching M] [--runs R]

The namespace holds N entries, M of them from one source (10.9.0.1). Each run
deletes those M three ways, refilling them in between, and checks with the
kernel (`conntrack -C`, and a filtered `conntrack -L`) that exactly M went:

- cttop flush: ``FlushFlows(spec, "src 10.9.0.1")``, plan (counts the flows for
  the confirmation) and apply, as the TUI's F and `cttop flush --filter` run it;
- cttop delete: the fallback for kernels without a filtered flush, and what the
  TUI's d does with tagged flows: dump the matching entries, then batched deletes;
- ``conntrack -D -s 10.9.0.1``.

Needs root. Works in a namespace it creates and deletes; raises the global
nf_conntrack_max from the initial namespace for the duration and restores it
(and hashsize, which it never changes, is checked to be as found).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import sh, synthetic_rows
from cttop.actions import DeleteFlows, FlushFlows, Journal
from cttop.actions.flows import matching_rows
from cttop.filter import compile_filter
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, NO_PSTATE, Row

MAX_PATH = "/proc/sys/net/netfilter/nf_conntrack_max"
HASHSIZE_PATH = "/sys/module/nf_conntrack/parameters/hashsize"
VICTIM = "10.9.0.1"
FILTER = f"src {VICTIM}"


def victims(m: int) -> Iterator[Row]:
    """``m`` UDP entries from VICTIM, unique by destination and source port."""
    src = bytes([10, 9, 0, 1])
    for i in range(m):
        dst = bytes([10, 3, (i >> 8) & 0xFF, i & 0xFF])
        sport, dport = 1024 + (i >> 16), 7000
        yield (0, AF_INET, 17, NO_PSTATE, 0, src, dst, sport, dport, dst, src, dport, sport,
               3600, 0, 0, 0, None, None, None, None, 0, 0)


def matching_once(ns: str, text: str) -> tuple[int, float, float, float]:
    """What planning a flush or delete of ``text`` reads in this process (``matching_rows``): the flows it
    matched, wall and CPU seconds, and the peak RSS it grew by in MB (compare.py runs this on another tree's
    code too). A filter the kernel cannot narrow (a state) shows what the table costs to hold while picking."""
    import resource

    flt = compile_filter(text)
    with Ctnetlink(NetnsSpec(name=ns)) as ct:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu0, t0 = time.process_time(), time.perf_counter()
        n = len(matching_rows(ct, flt))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return n, wall, cpu, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024


def read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def write_int(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def count(ns: str) -> int:
    return int(sh(["ip", "netns", "exec", ns, "conntrack", "-C"]).stdout.strip())


def victims_left(ns: str) -> int:
    r = subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-L", "-s", VICTIM], capture_output=True,
                       text=True, check=True)
    return sum(1 for line in r.stdout.splitlines() if line.strip())


def refill(spec: NetnsSpec, m: int) -> None:
    with Ctnetlink(spec) as ct:
        made = ct.create(victims(m))
    if made != m:
        raise RuntimeError(f"refilled only {made} of {m}")


def check_removed(ns: str, n: int, m: int, what: str) -> None:
    left, total = victims_left(ns), count(ns)
    if left or total != n - m:
        raise RuntimeError(f"{what}: {left} matching flows left, table {total}, expected {n - m}")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(n: int, m: int, runs: int) -> None:
    name = f"cttop-bench-{uuid.uuid4().hex[:8]}"
    spec = NetnsSpec(name=name)
    old_max = read_int(MAX_PATH)
    old_hash = read_int(HASHSIZE_PATH)
    state = tempfile.mkdtemp(prefix="cttop-bench-journal-")
    journal = Journal(state)  # never the host's /var/lib/cttop
    times: dict[str, list[float]] = {"cttop flush (plan)": [], "cttop flush (apply)": [], "cttop flush": [],
                                     "cttop delete (dump+deletes)": [], "conntrack -D": []}
    method = ""
    sh(["ip", "netns", "add", name])
    try:
        if n > old_max:
            write_int(MAX_PATH, n + 1024)
        print(f"filling {n} entries ({m} from {VICTIM})...", flush=True)
        with Ctnetlink(spec) as ct:
            made = ct.create(synthetic_rows(n - m)) + ct.create(victims(m))
        if made != n or count(name) != n:
            raise RuntimeError(f"only {made} of {n} entries were created")
        for r in range(runs):
            t0 = time.perf_counter()
            plan = FlushFlows(spec, FILTER, journal=journal)
            t1 = time.perf_counter()
            result = plan.apply()
            t2 = time.perf_counter()
            method = plan.method
            if plan.count != m or result.count != m:
                raise RuntimeError(f"cttop flush: counted {plan.count}, removed {result.count}, expected {m}")
            check_removed(name, n, m, "cttop flush")
            times["cttop flush (plan)"].append(t1 - t0)
            times["cttop flush (apply)"].append(t2 - t1)
            times["cttop flush"].append(t2 - t0)
            refill(spec, m)

            def delete() -> None:
                with Ctnetlink(spec) as ct:
                    rows = matching_rows(ct, compile_filter(FILTER))
                DeleteFlows(spec, rows, journal=journal).apply()

            times["cttop delete (dump+deletes)"].append(timed(delete))
            check_removed(name, n, m, "cttop delete")
            refill(spec, m)

            times["conntrack -D"].append(timed(lambda: subprocess.run(
                ["ip", "netns", "exec", name, "conntrack", "-D", "-s", VICTIM],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)))
            check_removed(name, n, m, "conntrack -D")
            refill(spec, m)
            print(f"run {r + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)
    finally:
        sh(["ip", "netns", "del", name])
        shutil.rmtree(state, ignore_errors=True)
        write_int(MAX_PATH, old_max)
        if read_int(HASHSIZE_PATH) != old_hash:
            write_int(HASHSIZE_PATH, old_hash)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["conntrack -D"]
    print(f"\ndelete {m} of {n} flows matching '{FILTER}' (conntrack -D -s {VICTIM}), "
          f"medians of {runs} runs; cttop flush method: {method}")
    print(f"{'what':<30} {'seconds':>8} {'ratio':>6}")
    for k, v in med.items():
        print(f"{k:<30} {v:>8.3f} {v / base:>6.2f}")
    print(f"\nconntrack -D / cttop flush: {base / med['cttop flush']:.1f}x "
          f"(cttop is {'faster' if med['cttop flush'] < base else 'SLOWER'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--matching", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not 0 < args.matching < args.entries:
        ap.error("need 0 < --matching < --entries")
    run(args.entries, args.matching, args.runs)


if __name__ == "__main__":
    main()
