"""cttop snapshot vs conntrack -L on the same table, plus the raw-dump floor, the dump decoded into rows and
counted without them (in process), the same snapshot with its words read by typer (`--top 10`: a number needs it;
plain flags and text do not, cli/base.py), what starting the command costs before any dump (the interpreter and
typer alone; `cttop --version`: the interpreter, typer and the modules every command imports), and bytes per flow.

Wall time for everything; CPU time (user + sys from the child's rusage) for the commands.

Usage: python benchmarks/bench_snapshot.py [--entries N] [--runs R] [--memory-entries M] [--synthetic]
         [--memory-shape synthetic|realistic]
Needs root. Works in a namespace it creates and deletes; raises the global
nf_conntrack_max only if N exceeds it, and restores it.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import alternate, filled_netns
from cttop.kernel import native
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.framing import count_messages
from cttop.kernel.netns import NetnsSpec
from cttop.table.groups import GROUPS
from cttop.table.store import FlowTable

# The cttop installed beside this interpreter (e.g. .venv/bin/cttop), not a shim found on PATH.
CTTOP = os.path.join(os.path.dirname(sys.executable), "cttop")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def speed(n: int, runs: int, realistic: bool) -> None:
    cpu: dict[str, list[float]] = {}
    with filled_netns(n, realistic=realistic) as ns:
        ct = Ctnetlink(NetnsSpec(name=ns))

        def raw_floor() -> int:
            # Receive every chunk and count its messages, decode nothing: what Python pays before decoding.
            return sum(map(count_messages, ct.raw_dump()))

        def run(name: str, cmd: list[str]) -> None:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
            if p.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}")
            cpu.setdefault(name, []).append(ru.ru_utime + ru.ru_stime)

        def counted() -> None:
            # What `snapshot` does with the dump where the accelerator is built: counted in C, no rows.
            if native.DEFAULT is not None:
                ct.dump_counts(native.DEFAULT.Counts(GROUPS["src"].reads))

        med = alternate(
            runs,
            conntrack_L=lambda: run("conntrack_L", ["ip", "netns", "exec", ns, "conntrack", "-L"]),
            cttop_snapshot_json=lambda: run("cttop_snapshot_json", [CTTOP, "snapshot", "--netns", ns, "--json"]),
            cttop_snapshot_json_flows=lambda: run("cttop_snapshot_json_flows",
                                                  [CTTOP, "snapshot", "--netns", ns, "--json", "--flows"]),
            # The same snapshot with its words read by typer (a number option does; --top 10 is the default).
            cttop_snapshot_json_typer=lambda: run("cttop_snapshot_json_typer",
                                                  [CTTOP, "snapshot", "--netns", ns, "--json", "--top", "10"]),
            python_raw_dump=raw_floor,
            cttop_dump_decode=ct.dump,
            cttop_dump_counted=counted,
            # The fixed cost a one-shot command pays on any table, in the same alternation.
            python_import_typer=lambda: run("python_import_typer", [sys.executable, "-c", "import typer"]),
            cttop_version=lambda: run("cttop_version", [CTTOP, "--version"]),
        )
        ct.close()
    base = med["conntrack_L"]
    base_cpu = statistics.median(cpu["conntrack_L"])
    shape = "realistic" if realistic else "synthetic"
    print(f"\n{n} {shape} entries, medians of {runs} alternating runs (ratio = this / conntrack -L):")
    print(f"{'what':<32} {'wall s':>8} {'ratio':>6} {'CPU s':>8} {'ratio':>6}")
    for k, v in med.items():
        c = f"{statistics.median(cpu[k]):>8.3f} {statistics.median(cpu[k]) / base_cpu:>6.2f}" if k in cpu else ""
        print(f"{k:<32} {v:>8.3f} {v / base:>6.2f} {c}")


def held_bytes_per_flow(ns: str) -> tuple[int, float]:
    """Dump ``ns`` into a FlowTable: the flows it holds, and the process's RSS growth per flow
    (compare.py runs this on another tree's code too)."""
    with Ctnetlink(NetnsSpec(name=ns)) as ct:
        gc.collect()
        before = rss()
        table = FlowTable()
        for chunk in ct.dump_chunks():
            table.extend(chunk)
        del chunk
        gc.collect()
        return len(table), (rss() - before) / len(table)


DUMP_WAYS = ("raw", "ahead", "inline")


def dump_once(ns: str, way: str) -> tuple[float, float]:
    """One dump of ``ns`` in this process, read one of DUMP_WAYS: raw (chunks received, nothing decoded),
    ahead (decoded and counted into Aggregates while a reader thread receives: a core to spare) or inline
    (the same on one thread: the busy box). Wall and CPU seconds of the dump alone, no interpreter start-up
    (compare.py runs this on another tree's code too)."""
    from cttop.kernel import ctnetlink
    from cttop.table.aggregates import Aggregates

    ctnetlink.core_to_spare = lambda: way == "ahead"  # the choice the load average would make, made here
    with ctnetlink.Ctnetlink(NetnsSpec(name=ns)) as ct:
        cpu0, t0 = time.process_time(), time.perf_counter()
        if way == "raw":
            for _ in ct.raw_dump():
                pass
        else:
            agg = Aggregates(["src"])
            for rows in ct.dump_chunks():
                agg.add_rows(rows)
        return time.perf_counter() - t0, time.process_time() - cpu0


def memory(n: int, realistic: bool) -> None:
    with filled_netns(n, realistic=realistic) as ns:
        flows, per_flow = held_bytes_per_flow(ns)
    shape = "realistic" if realistic else "synthetic"
    print(f"\nmemory: {flows} {shape} flows held, {per_flow:.0f} bytes per flow (RSS delta)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=262_144)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--memory-entries", type=int, default=1_000_000)
    ap.add_argument("--synthetic", action="store_true",
                    help="UDP over 16 sources (the old shape) instead of benchmarks.common.realistic_rows")
    ap.add_argument("--memory-shape", choices=("synthetic", "realistic"), default="synthetic",
                    help="the table the memory figure holds: IPv4 UDP (the figure's old shape), or realistic_rows")
    a = ap.parse_args()
    speed(a.entries, a.runs, realistic=not a.synthetic)
    if a.memory_entries:
        memory(a.memory_entries, a.memory_shape == "realistic")


if __name__ == "__main__":
    main()
