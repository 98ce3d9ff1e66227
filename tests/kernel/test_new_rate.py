"""Who creates flows now: the new/s ranking on a namespace where one source opens a known number of flows a second.

An injector inside the namespace runs `conntrack -I` on a clock: 10 flows a second from 10.20.0.1, 2 a
second from 10.20.0.2, while 10.20.0.3 holds the most entries and makes none. Ranked by new/s, .1 must
come first, at its rate within a tolerance, .2 second, .3 not at all; ranked by entries, .3 leads. The
rate is read with events (the default) and from dump deltas (nf_conntrack_events=0 in the namespace),
by `cttop snapshot --by new-rate --seconds S` and by the live view's collector. The injector logs each
flow it made; the kernel's table is checked to hold them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.live.collector import Collector
from cttop.live.frame import LIVE, Frame
from cttop.sources.live import LiveSource
from tests.conftest import delete_netns, make_netns, run_cttop, sh
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

FAST, SLOW, HOLDER = "10.20.0.1", "10.20.0.2", "10.20.0.3"
RATE = 10.0  # flows a second from FAST; SLOW makes one every fifth tick
TOLERANCE = 0.35  # a loaded two-core machine delays conntrack -I spawns; the ranking must not care
HELD = 100  # more than the injector makes in any run here

# Inserts on a clock: tick i is due at start + i / rate, whatever the previous spawn cost. Prints each
# flow's source once made, so the test knows how many were really made and over what time.
INJECTOR = """
import subprocess, sys, time
rate, ticks = float(sys.argv[1]), int(sys.argv[2])
start = time.monotonic()
print("START", flush=True)
for i in range(ticks):
    time.sleep(max(0.0, start + i / rate - time.monotonic()))
    for src in ["10.20.0.1"] + (["10.20.0.2"] if i % 5 == 0 else []):
        subprocess.run(["conntrack", "-I", "-p", "udp", "-s", src, "-d", "10.0.0.1", "--sport", str(1000 + i),
                        "--dport", "53", "-t", "600"], check=True, capture_output=True)
        print(src, time.monotonic() - start, flush=True)
"""


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns()
    try:
        for i in range(HELD):
            sh("conntrack", "-I", "-p", "tcp", "-s", HOLDER, "-d", "10.0.0.9", "--sport", str(2000 + i), "--dport",
               "80", "--state", "ESTABLISHED", "-t", "600", netns=name)
        yield name
    finally:
        delete_netns(name)


class Injector:
    def __init__(self, ns: str, seconds: float) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", INJECTOR, str(RATE),
                                      str(int(seconds * RATE))], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "START"
        self.made: list[tuple[str, float]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            src, t = line.split()
            self.made.append((src, float(t)))

    def finish(self) -> None:
        try:
            assert self.proc.wait(120) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)

    def rate(self, src: str) -> float:
        """The flows a second ``src`` really got, over the run."""
        times = [t for s, t in self.made if s == src]
        return (len(times) - 1) / (times[-1] - times[0])


def check_kernel(ns: str, inj: Injector) -> None:
    """The kernel holds every flow the injector says it made, and the holder's."""
    by_src: dict[str, int] = {}
    for f in conntrack_list(ns):
        by_src[f["orig"]["src"]] = by_src.get(f["orig"]["src"], 0) + 1
    assert by_src == {FAST: sum(s == FAST for s, _ in inj.made), SLOW: sum(s == SLOW for s, _ in inj.made),
                      HOLDER: HELD}


def within(got: float, want: float) -> bool:
    return abs(got - want) <= TOLERANCE * want


@pytest.mark.parametrize("events", [True, False], ids=["events", "dumps"])
def test_snapshot_ranks_by_new_rate(ns: str, events: bool) -> None:
    if not events:  # the kernel sends no events here: new flows must come from dump deltas
        sh("sysctl", "-qw", "net.netfilter.nf_conntrack_events=0", netns=ns)
    inj = Injector(ns, seconds=6)
    try:
        time.sleep(0.5)  # into the steady part of the run
        r = run_cttop("snapshot", "--netns", ns, "--by", "new-rate", "--seconds", "4", "--json")
    finally:
        inj.finish()
    assert r.returncode == 0, r.stderr
    top = json.loads(r.stdout)["top"]
    assert (top["by"], top["rate_source"]) == ("new-rate", "events" if events else "dumps")
    assert 3.5 <= top["seconds"] <= 5.0
    rows = {row["key"]: row for row in top["rows"]}
    assert [row["key"] for row in top["rows"]] == [FAST, SLOW]  # the holder made none: not listed
    assert within(rows[FAST]["new_rate"], inj.rate(FAST)), (rows[FAST], inj.rate(FAST))
    assert within(rows[FAST]["new_rate"], RATE)
    assert within(rows[SLOW]["new_rate"], RATE / 5), rows[SLOW]
    assert rows[FAST]["entries"] > 0
    check_kernel(ns, inj)
    # by entries, the holder leads: the two rankings answer different questions
    r = run_cttop("snapshot", "--netns", ns, "--json")
    assert json.loads(r.stdout)["top"]["rows"][0]["key"] == HOLDER


@pytest.mark.parametrize("events", [True, False], ids=["events", "dumps"])
def test_collector_ranks_by_new_rate(ns: str, events: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.live import dump_schedule

    if not events:
        sh("sysctl", "-qw", "net.netfilter.nf_conntrack_events=0", netns=ns)
        monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 1.0)  # dumps every second, not every ten
    frames: list[Frame] = []
    c = Collector(LiveSource(NetnsSpec(name=ns)), on_frame=frames.append, on_index=lambda _: None, interval=0.25)
    c.set_group("src", "new-rate")
    c.start()
    inj = None
    try:
        deadline = time.monotonic() + 30
        while not any(f.phase == LIVE for f in frames) and time.monotonic() < deadline:
            time.sleep(0.05)
        inj = Injector(ns, seconds=7)
        inj.finish()
        last = frames[-1]
    finally:
        c.stop()
        if inj is not None and inj.proc.poll() is None:
            inj.proc.kill()
    assert last.top_by == "new-rate" and last.new_rate_source == ("events" if events else "dumps")
    assert last.new_rate_seconds >= 3
    assert [g.key for g in last.top][:2] == [bytes(map(int, FAST.split("."))), bytes(map(int, SLOW.split(".")))]
    assert within(last.top[0].new_rate or 0, RATE), last.top[0]
    assert abs(last.ranked_total - sum(g.new_rate or 0 for g in last.top)) < 1e-6
    check_kernel(ns, inj)
