"""Two cttop trees in one alternating run: snapshot, memory, events and keys, old and new side by side.

Usage: python benchmarks/compare.py --old-tree DIR [--only snapshot,memory,dump,plan,events,keys]
         [--entries 262144] [--runs 5] [--event-rounds 3] [--event-seconds 5]
         [--key-rounds 2] [--key-flows 262144] [--key-presses 100]

Each tree's code runs in a child process of this interpreter with PYTHONPATH set to
that tree's src/ (and, for events and keys, that tree's own copy of the benchmark
script), so both see the same interpreter and libraries. Rounds alternate between
the trees, and the order within a round rotates, so load from other work on the
machine falls on both alike; the load average is printed with each section.

- snapshot: `conntrack -L` and each tree's `cttop snapshot --json` on one namespace
  filled with realistic entries (4096 sources, a quarter IPv6, TCP in a mix of
  states, UDP, ICMP). Wall and CPU (user+sys from the child's rusage) medians,
  each as a ratio to conntrack -L's, and the child's peak RSS.
- memory: each tree dumps that namespace into its FlowTable; bytes per flow held
  (RSS delta), as bench_snapshot.py measures it.
- dump: each tree's dump of that namespace in a process of its own, timed from inside (no interpreter
  start-up), read three ways (bench_snapshot.dump_once): raw chunks, decoded with the reader thread, and
  decoded inline; wall and CPU medians.
- plan: each tree's ``matching_rows`` over that namespace for a filter the kernel cannot narrow
  (``state ESTABLISHED``: what F with a filter, d and n plan from), in a process of its own: flows matched,
  wall, CPU and peak RSS growth (bench_delete.matching_once).
- events: this tree's bench_events.py, run on each tree's code, replaying the same
  recorded bytes (benchmarks/data/events.bin.gz); events per wall and per CPU second, one
  datagram a read and 256 a read (a backlog, as the live view reads one).
- keys: each tree's bench_keys.py (headless app on busy_rows, events arriving).
Needs root for snapshot, memory, dump and plan (a namespace named hb-cmp-* or --netns-prefix*, deleted after).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TypeVar

NEW_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, NEW_TREE)

from benchmarks.common import filled_netns  # noqa: E402

T = TypeVar("T")


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys of the child and its own children it waited for
    maxrss_mb: float
    out: str


def child(cmd: list[str], tree: str | None, capture: bool = False) -> Run:
    """Run cmd to completion; wall from fork to reap, CPU and peak RSS from its rusage."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.path.join(tree, "src")
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    t = time.perf_counter()
    # stderr joins stdout when captured: two pipes read one after the other could deadlock.
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if capture else subprocess.DEVNULL, env=env,
                         text=True)
    text = p.stdout.read() if p.stdout else ""
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} (PYTHONPATH={env.get('PYTHONPATH')}) exited {p.returncode}: {text[-500:]}")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, text)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def rotate(items: list[T], r: int) -> list[T]:
    r %= len(items)
    return items[r:] + items[:r]


def check_trees(trees: dict[str, str]) -> None:
    """Each child must import its own tree's cttop, not the one installed in the venv."""
    for label, tree in trees.items():
        got = child([sys.executable, "-c", "import cttop; print(cttop.__file__)"], tree, capture=True).out.strip()
        want = os.path.join(tree, "src", "cttop", "__init__.py")
        if os.path.realpath(got) != os.path.realpath(want):
            raise SystemExit(f"{label} tree imports {got}, not {want}")
        print(f"{label}: {tree} (git {git_rev(tree)})")


def git_rev(tree: str) -> str:
    return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


# A tree's table, measured by this tree's bench_snapshot (its cttop imports resolve to that tree's src/).
MEMORY = ("import sys; sys.path.insert(0, " + repr(NEW_TREE) + "); "
          "from benchmarks.bench_snapshot import held_bytes_per_flow; print(*held_bytes_per_flow(sys.argv[1]))")

DUMP = ("import sys; sys.path.insert(0, " + repr(NEW_TREE) + "); "
        "from benchmarks.bench_snapshot import dump_once; print(*dump_once(sys.argv[1], sys.argv[2]))")

PLAN = ("import sys; sys.path.insert(0, " + repr(NEW_TREE) + "); "
        "from benchmarks.bench_delete import matching_once; print(*matching_once(sys.argv[1], sys.argv[2]))")
PLAN_FILTER = "state ESTABLISHED"


def snapshot_and_memory(trees: dict[str, str], entries: int, runs: int, parts: set[str], prefix: str) -> None:
    with filled_netns(entries, realistic=True, prefix=prefix) as ns:
        print(f"\nfilled {ns} with {entries:,} realistic entries; {load()}")
        if "snapshot" in parts:
            cmds = {"conntrack -L": (["ip", "netns", "exec", ns, "conntrack", "-L"], None)}
            for label, tree in trees.items():
                cmds[f"{label} snapshot --json"] = ([sys.executable, "-m", "cttop", "snapshot", "--netns", ns,
                                                     "--json"], tree)
            got: dict[str, list[Run]] = {k: [] for k in cmds}
            for r in range(runs):
                for k in rotate(list(cmds), r):
                    got[k].append(child(*cmds[k]))
                print(f"  round {r + 1}/{runs} done; {load()}")
            base_w = statistics.median(x.wall for x in got["conntrack -L"])
            base_c = statistics.median(x.cpu for x in got["conntrack -L"])
            print(f"\nsnapshot, {entries:,} entries, medians of {runs} alternating rounds "
                  "(ratio = this / conntrack -L):")
            print(f"{'what':<28} {'wall s':>7} {'ratio':>6} {'CPU s':>7} {'ratio':>6} {'peak RSS MB':>12}")
            for k, xs in got.items():
                w = statistics.median(x.wall for x in xs)
                c = statistics.median(x.cpu for x in xs)
                m = statistics.median(x.maxrss_mb for x in xs)
                print(f"{k:<28} {w:>7.3f} {w / base_w:>6.2f} {c:>7.3f} {c / base_c:>6.2f} {m:>12.0f}")
        if "dump" in parts:
            dumps(trees, ns, runs)
        if "plan" in parts:
            plans(trees, ns, runs)
        if "memory" in parts:
            per: dict[str, list[float]] = {k: [] for k in trees}
            for r in range(2):
                for label in rotate(list(trees), r):
                    n, b = child([sys.executable, "-c", MEMORY, ns], trees[label], capture=True).out.split()
                    per[label].append(float(b))
            print(f"\nmemory, {int(n):,} flows held in FlowTable (RSS delta, 2 alternating rounds):")
            for label, bs in per.items():
                print(f"  {label}: {' '.join(f'{b:.0f}' for b in bs)} bytes per flow")
        print(f"({load()})")


def dumps(trees: dict[str, str], ns: str, runs: int) -> None:
    from benchmarks.bench_snapshot import DUMP_WAYS

    kinds = [(label, way) for way in DUMP_WAYS for label in trees]
    got: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in kinds}
    for r in range(runs):
        for label, way in rotate(kinds, r):
            wall, cpu = child([sys.executable, "-c", DUMP, ns, way], trees[label], capture=True).out.split()
            got[(label, way)].append((float(wall), float(cpu)))
        print(f"  dump round {r + 1}/{runs} done; {load()}")
    print(f"\nthe dump alone, in-process, medians of {runs} alternating rounds (wall s / CPU s):")
    for way in DUMP_WAYS:
        row = []
        for label in trees:
            xs = got[(label, way)]
            row.append(f"{label} {statistics.median(w for w, _ in xs):.3f} / {statistics.median(c for _, c in xs):.3f}")
        print(f"  {way:<7} " + "   ".join(row))


def plans(trees: dict[str, str], ns: str, runs: int) -> None:
    got: dict[str, list[list[float]]] = {k: [] for k in trees}
    for r in range(runs):
        for label in rotate(list(trees), r):
            out = child([sys.executable, "-c", PLAN, ns, PLAN_FILTER], trees[label], capture=True).out.split()
            got[label].append([float(x) for x in out])
        print(f"  plan round {r + 1}/{runs} done; {load()}")
    print(f"\nmatching_rows({PLAN_FILTER!r}), medians of {runs} alternating rounds:")
    for label, xs in got.items():
        n, wall, cpu, rss = (statistics.median(x[i] for x in xs) for i in range(4))
        print(f"  {label}: {n:,.0f} flows matched, {wall:.3f} s wall, {cpu:.3f} s CPU, peak RSS +{rss:.0f} MB")


NUM = r"([\d,.]+)"
PER_READ = 256  # bench_events.py's batched figure: datagrams a read, as the live view reads a backlog


def events(trees: dict[str, str], rounds: int, seconds: float) -> None:
    # This tree's bench_events.py for both: it uses only Decoder, decode_events and FlowTable,
    # which both trees have, and it adds the per-CPU-second rate the old copy lacks.
    script = os.path.join(NEW_TREE, "benchmarks", "bench_events.py")
    data = os.path.join(NEW_TREE, "benchmarks", "data", "events.bin.gz")
    got: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
    print(f"\nevents: {load()}")
    for r in range(rounds):
        for label in rotate(list(trees), r):
            run = child([sys.executable, script, "--seconds", str(seconds), "--file", data,
                         "--per-read", str(PER_READ)], trees[label], capture=True)
            for what in ("decode only", "decode + apply", f"decode + apply, {PER_READ} datagrams a read",
                         "bounded table, 1 datagram a read", f"bounded table, {PER_READ} datagrams a read"):
                m = re.search(re.escape(what) + r":\s+" + NUM + r" events/s\s+\(" + NUM + " per CPU second", run.out)
                if not m:
                    raise SystemExit(f"{label}: bench_events.py printed no {what} rate:\n{run.out}")
                got[label].setdefault(what, []).append(float(m.group(1).replace(",", "")))
                got[label].setdefault(what + " per CPU s", []).append(float(m.group(2).replace(",", "")))
        print(f"  round {r + 1}/{rounds} done; {load()}")
    first = next(line for line in run.out.splitlines() if line.startswith("replaying"))
    print(f"\nevents, {first}; {rounds} alternating rounds of {seconds:g} s each, median (min-max):")
    for label, g in got.items():
        print(f"  {label}: " + "; ".join(f"{k} {span(v)}" for k, v in g.items()))


def span(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"


def keys(trees: dict[str, str], rounds: int, flows: int, presses: int) -> None:
    print(f"\nkeys: {load()}")
    for r in range(rounds):
        for label in rotate(list(trees), r):
            tree = trees[label]
            run = child([sys.executable, os.path.join(tree, "benchmarks", "bench_keys.py"), "--flows", str(flows),
                         "--presses", str(presses), "--sorts", "3"], tree, capture=True)
            lines = [ln for ln in run.out.splitlines() if ln.startswith(("navigation", "sort key", "loaded"))]
            print(f"  round {r + 1} {label} (wall {run.wall:.0f} s, CPU {run.cpu:.0f} s, peak RSS "
                  f"{run.maxrss_mb:.0f} MB; {load()}):")
            for ln in lines:
                print(f"    {ln}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old-tree", required=True, help="a checkout of the code to compare against")
    ap.add_argument("--only", default="snapshot,memory,events,keys")
    ap.add_argument("--entries", type=int, default=262_144)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--netns-prefix", default="hb-cmp-", help="name prefix of the namespace it fills")
    ap.add_argument("--event-rounds", type=int, default=3)
    ap.add_argument("--event-seconds", type=float, default=5.0)
    ap.add_argument("--key-rounds", type=int, default=2)
    ap.add_argument("--key-flows", type=int, default=262_144)
    ap.add_argument("--key-presses", type=int, default=100)
    a = ap.parse_args()
    parts = set(a.only.split(","))
    unknown = parts - {"snapshot", "memory", "dump", "plan", "events", "keys"}
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    if not os.path.isdir(os.path.join(a.old_tree, "src", "cttop")):
        raise SystemExit(f"--old-tree: {a.old_tree} has no src/cttop")
    trees = {"old": os.path.abspath(a.old_tree), "new": NEW_TREE}
    check_trees(trees)
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"{os.cpu_count()} CPUs,", load())
    if parts & {"snapshot", "memory", "dump", "plan"}:
        snapshot_and_memory(trees, a.entries, a.runs, parts, a.netns_prefix)
    if "events" in parts:
        events(trees, a.event_rounds, a.event_seconds)
    if "keys" in parts:
        keys(trees, a.key_rounds, a.key_flows, a.key_presses)


if __name__ == "__main__":
    main()
