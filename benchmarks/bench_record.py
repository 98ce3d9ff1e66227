"""What recording costs: a keyframe dump recorded vs decoded vs `conntrack -L`, file bytes per flow and
per event, the recorder's CPU per event under churn, and what opening and seeking a replay costs.

Usage: python benchmarks/bench_record.py [--entries N] [--runs R] [--churn E]
Needs root. Works in namespaces it creates and deletes; raises the global
nf_conntrack_max only if N exceeds it, and restores it.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import alternate, filled_netns, synthetic_rows
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.sources.record import Clock, Recorder, RecordingWriter
from cttop.sources.replay.playback import ReplaySource

CTTOP = os.path.join(os.path.dirname(sys.executable), "cttop")


def keyframes(n: int, runs: int, tmp: str) -> None:
    with filled_netns(n) as ns:
        spec = NetnsSpec(name=ns)
        ct = Ctnetlink(spec)
        sizes: dict[int, tuple[int, int]] = {}

        def record_dump(level: int) -> None:
            path = os.path.join(tmp, f"k{level}.cttop")
            w = RecordingWriter(path, {"start": 0.0, "stats_names": []}, Clock(), level)
            w.keyframe()
            Recorder(spec, path)._dump(ct, w)
            w.close()
            sizes[level] = (w.raw_bytes, os.path.getsize(path))

        med = alternate(
            runs,
            conntrack_L=lambda: subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-L"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True),
            cttop_dump_decode=ct.dump,
            record_dump_gzip1=lambda: record_dump(1),
            record_dump_gzip6=lambda: record_dump(6),
        )
        path = os.path.join(tmp, "k6.cttop")
        t = time.perf_counter()
        src = ReplaySource(path, paused=True)
        opened = time.perf_counter() - t
        t = time.perf_counter()
        rows = src.dump()
        dumped = time.perf_counter() - t
        # conntrack ids are 32-bit hashes: on big tables a few collide; the replay must still hold every entry.
        kernel = ct.dump()
        shared = len(kernel) - len({r[0] for r in kernel})
        assert len(rows) == len(kernel), (len(rows), len(kernel))
        ct.close()
    base = med["conntrack_L"]
    print(f"\none keyframe dump of {n} entries, medians of {runs} alternating runs (ratio = time / conntrack -L):")
    print(f"{'what':<22} {'seconds':>8} {'ratio':>6}")
    for k, v in med.items():
        print(f"{k:<22} {v:>8.3f} {v / base:>6.2f}")
    for level, (raw, out) in sorted(sizes.items()):
        print(f"gzip level {level}: {raw / n:.0f} raw bytes/flow -> {out / n:.1f} file bytes/flow "
              f"({raw / out:.1f}x)")
    print(f"replay of that file: open (scan, index, decode the first keyframe) {opened:.3f} s, "
          f"dump() of {len(rows)} rows {dumped:.3f} s (all held, though {shared} conntrack ids are shared by two "
          f"entries)")


def recorder_cpu(ns: str, path: str, work: Callable[[], None]) -> tuple[float, str]:
    """CPU seconds of a `cttop record` process while ``work`` runs, and its last line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([CTTOP, "record", "--netns", ns, "-o", path, "--dump-interval", "10m"],
                            stderr=subprocess.PIPE, text=True)
    while not os.path.exists(path):
        time.sleep(0.01)
    work()
    time.sleep(1.0)  # let the recorder drain what is queued
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    # The recorder is the only child reaped in between.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, err.strip().splitlines()[-1]


def churn(events: int, tmp: str) -> None:
    """Entries created and deleted as fast as ctnetlink takes them, while `cttop record` runs."""
    path = os.path.join(tmp, "churn.cttop")
    with filled_netns(1) as ns:
        idle, _ = recorder_cpu(ns, os.path.join(tmp, "idle.cttop"), lambda: time.sleep(1.5))
        rows = list(synthetic_rows(events // 2 + 1))[1:]  # the namespace already holds the first
        took = 0.0

        def make_and_flush() -> None:
            nonlocal took
            t0 = time.perf_counter()
            with Ctnetlink(NetnsSpec(name=ns)) as ct:
                for i in range(0, len(rows), 10_000):
                    made = ct.create(rows[i:i + 10_000])
                    assert made == len(rows[i:i + 10_000])
                    ct.flush()
            took = time.perf_counter() - t0

        busy, last = recorder_cpu(ns, path, make_and_flush)
    src = ReplaySource(path, paused=True)
    rec = src.recording
    cpu = busy - idle
    print(f"\nchurn: {events} events made in {took:.2f} s ({events / took:,.0f}/s); recorder got {rec.events} "
          f"events, {rec.lost} losses")
    print(f"recorder CPU beyond an idle run of it ({idle:.2f} s): {cpu:.2f} s = "
          f"{cpu / max(rec.events, 1) * 1e6:.1f} us/event; file {rec.size / max(rec.events, 1):.1f} bytes/event")
    print(last)
    t = time.perf_counter()
    src.seek(src.duration)
    src.dump()  # a seek is carried out by the next data call
    print(f"replay: seek to the end through {rec.events} events {time.perf_counter() - t:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=262_144)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--churn", type=int, default=200_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keyframes(a.entries, a.runs, tmp)
        churn(a.churn, tmp)


if __name__ == "__main__":
    main()
