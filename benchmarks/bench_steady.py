"""What the live view costs on a quiet table: CPU time of the real `cttop` in a terminal, per second of wall.

Usage: python benchmarks/bench_steady.py [--entries 262144] [--seconds 60] [--size 80x24] [--max-flows N]
                                        [--settle 2]

Needs root and tmux. A throwaway namespace holds ``--entries`` entries shaped like a busy node
(benchmarks/common.realistic_rows: 4096 sources, a state mix; hour-long timeouts, so nothing
expires and no event arrives: the table is at rest). `cttop --netns NS` runs in a detached tmux
pane of ``--size``, as over SSH. Once its first full frame is on screen, the process's CPU time
(utime + stime of all its threads, from /proc/PID/stat) is read at the start and end of
``--seconds``: what a view left open costs a box that is already busy. The goal (issue 17) is
0.02 cores at 262k entries. Its RSS is read then too, now and at its peak (VmRSS, VmHWM): the goal is
200 MB at a million entries. ``--max-flows`` is passed to cttop (by default, its own default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import filled_netns

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of the line)


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def cttop_pid(pane_pid: int) -> int:
    """The cttop process in the pane: the pane's shell execs it, or it is the shell's child."""
    out = subprocess.run(["pgrep", "-P", str(pane_pid)], capture_output=True, text=True, check=False).stdout.split()
    return int(out[0]) if out else pane_pid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=262144)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--size", default="80x24")
    p.add_argument("--max-flows", type=int, default=None)
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds after the first full frame before measuring (a bounded view's first list page is a "
                        "second dump: seconds at a million flows)")
    a = p.parse_args()
    bound = "" if a.max_flows is None else f" --max-flows {a.max_flows}"
    width, height = a.size.split("x")
    cttop = os.path.join(os.path.dirname(sys.executable), "cttop")
    session = f"cttop-steady-{uuid.uuid4().hex[:6]}"
    with filled_netns(a.entries, realistic=True) as ns:
        tmux("new-session", "-d", "-s", session, "-x", width, "-y", height, f"exec {cttop} --netns {ns}{bound}")
        try:
            pid = cttop_pid(int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip()))
            start = time.monotonic()
            while f"Flows {a.entries:,}" not in tmux("capture-pane", "-p", "-t", session):
                if time.monotonic() - start > 120:
                    raise SystemExit("bench_steady: the first full frame did not come within 120 s")
                time.sleep(0.2)
            loaded = time.monotonic() - start
            time.sleep(a.settle)  # the first index (or page) and owner scans settle
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(a.seconds)
            c1, t1 = cpu_seconds(pid), time.monotonic()
            status = open(f"/proc/{pid}/status").read()
            rss, peak = (int(status.split(f"{k}:")[1].split()[0]) // 1024 for k in ("VmRSS", "VmHWM"))
        finally:
            tmux("kill-session", "-t", session)
    print(f"{a.entries:,} entries at rest, cttop{bound} in a {a.size} tmux pane: first full frame after "
          f"{loaded:.1f} s; {c1 - c0:.2f} s CPU in {t1 - t0:.1f} s wall = {(c1 - c0) / (t1 - t0):.3f} cores; "
          f"RSS {rss} MB, peak {peak} MB")


if __name__ == "__main__":
    main()
