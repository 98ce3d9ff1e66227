"""The live view on a big real table, holding every flow against bounded (--max-flows): first frame, first list,
memory and CPU, each mode in a child process of its own, alternated round by round on the same table.

Usage: python benchmarks/bench_bounded.py [--flows 1000000] [--max-flows 500000] [--rounds 2] [--steady 10]
         [--decoders compiled,pure] [--old-tree DIR] [--views full,bounded]

The table is `common.realistic_rows` (4,096 sources, a quarter IPv6, TCP in seven states, UDP, ICMP) made
in a throwaway namespace (the global nf_conntrack_max is raised for the run if needed, and put back). Each
child runs the real collector (LiveSource: events subscribed, the dump, the table, the flow list's index or
page) with no screen, and reports:

- live: seconds to the first LIVE frame (the counts, states and heaviest groups of the whole table);
- list: seconds to the first flow list (the index of every flow, or a bounded view's page);
- rss: peak RSS growth over the process after its imports (MB), and per flow in the table;
- cpu: the child's user+sys seconds to the first list, and over the next --steady seconds at rest.

`conntrack -L > /dev/null` is timed in each round, for the ratios. ``--decoders compiled,pure`` runs each
mode with the compiled accelerator and with its pure-Python fallback (CTTOP_PURE_PYTHON=1), alternated too.
``--old-tree DIR`` runs each mode on another checkout's code as well (its src/ first on PYTHONPATH, its
accelerator built there in place), alternated with this tree's, as compare.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import filled_netns


def child(ns: str, most: int, steady: float) -> None:
    from cttop.kernel.netns import NetnsSpec
    from cttop.live.collector import Collector
    from cttop.live.frame import LIVE
    from cttop.sources.live import LiveSource

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = os.times()
    t0 = time.perf_counter()
    live, listed = threading.Event(), threading.Event()
    at: dict[str, float] = {}
    last: dict[str, object] = {}

    def on_frame(f: object) -> None:
        last["frame"] = f
        if getattr(f, "phase", None) == LIVE and not live.is_set():
            at["live"] = time.perf_counter() - t0
            live.set()

    def on_index(ix: object) -> None:
        if not listed.is_set():
            at["list"] = time.perf_counter() - t0
            listed.set()

    c = Collector(LiveSource(NetnsSpec(name=ns)), on_frame=on_frame, on_index=on_index, interval=1.0,
                  max_flows=most or None)
    c.start()
    if not (live.wait(600) and listed.wait(600)):
        raise SystemExit("no first frame or list in 600 s")
    cpu1 = os.times()
    time.sleep(steady)
    cpu2 = os.times()
    c.stop()
    frame = last["frame"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flows = getattr(frame, "flows", 0)
    print(json.dumps({
        "live": at["live"], "list": at["list"], "flows": flows, "bounded": getattr(frame, "bounded", None),
        "rss_mb": (peak - base_rss) / 1024, "bytes_per_flow": (peak - base_rss) * 1024 / max(flows, 1),
        "cpu_to_list": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "steady_cores": ((cpu2.user + cpu2.system) - (cpu1.user + cpu1.system)) / steady,
    }))


def conntrack_l(ns: str) -> float:
    t = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-L"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--flows", type=int, default=1_000_000)
    p.add_argument("--max-flows", type=int, default=500_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steady", type=float, default=10.0)
    p.add_argument("--decoders", default="compiled", help="compiled, pure, or both: compiled,pure")
    p.add_argument("--old-tree", help="another checkout, alternated with this one")
    p.add_argument("--views", default="full,bounded", help="full, bounded, or both: full,bounded")
    p.add_argument("--child", nargs=2, metavar=("NS", "MAX"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]), a.steady)
        return
    decoders, views = a.decoders.split(","), a.views.split(",")
    if not set(decoders) <= {"compiled", "pure"}:
        raise SystemExit(f"--decoders: compiled or pure, not {a.decoders!r}")
    if not set(views) <= {"full", "bounded"}:
        raise SystemExit(f"--views: full or bounded, not {a.views!r}")
    trees = {"": None} if a.old_tree is None else {"old ": os.path.join(a.old_tree, "src"), "new ": None}
    if a.old_tree is not None and not os.path.isdir(trees["old "] or ""):
        raise SystemExit(f"--old-tree: no src/ in {a.old_tree}")
    print(f"filling a namespace with {a.flows:,} realistic entries…", flush=True)
    with filled_netns(a.flows, realistic=True, prefix="cttop-bench-bound-") as ns:
        modes = [(tree + (f"{view} {dec}" if len(decoders) > 1 else view), most, dec, src)
                 for view, most in (("full", 0), ("bounded", a.max_flows)) if view in views
                 for dec in decoders for tree, src in trees.items()]
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _m, _d, _s in modes}
        ref: list[float] = []
        for r in range(a.rounds):
            ref.append(conntrack_l(ns))
            for name, most, dec, src in modes if r % 2 == 0 else modes[::-1]:
                env = {k: v for k, v in os.environ.items() if k not in ("CTTOP_PURE_PYTHON", "PYTHONPATH")}
                if dec == "pure":
                    env["CTTOP_PURE_PYTHON"] = "1"
                if src is not None:
                    env["PYTHONPATH"] = src
                out = subprocess.run([sys.executable, __file__, "--child", ns, str(most), "--steady", str(a.steady)],
                                     capture_output=True, text=True, check=True, env=env)
                got = json.loads(out.stdout)
                results[name].append(got)
                print(f"round {r + 1} {name:<16} " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                           for k, v in got.items()), flush=True)
        lref = statistics.median(ref)
        print(f"\n`conntrack -L > /dev/null`: median {lref:.2f} s over {a.rounds} rounds")
        for name, runs in results.items():
            med = {k: statistics.median(float(x[k]) for x in runs)
                   for k in ("live", "list", "rss_mb", "bytes_per_flow", "cpu_to_list", "steady_cores")}
            print(f"{name:<16} first frame {med['live']:.2f} s ({med['live'] / lref:.2f}× conntrack -L), "
                  f"first list {med['list']:.2f} s, peak RSS growth {med['rss_mb']:.0f} MB "
                  f"({med['bytes_per_flow']:.0f} B a flow), CPU to the list {med['cpu_to_list']:.2f} s, "
                  f"at rest {med['steady_cores']:.3f} cores")


if __name__ == "__main__":
    main()
