"""The Fill panel's forecast on real tables: a lab that levels off, a steady one, one that drains, one that fills.

The collector runs on the namespace as the TUI runs it, and every frame's forecast is
kept with the kernel's count at that moment. The oracle is where the table actually
goes: each test waits for the table to settle (or to fill) and asserts the direction
the forecast gave while it was still on its way, and that the level (or the time to
full) it named is within 20 % of what happened.

Where a table settles is counted by listing it (``conntrack -L``), not by the kernel's
count: the count keeps entries whose timeout ran out until the conntrack GC worker (or
a dump, or a listing) reaps them, so on a steady table it saw-tooths 20-60 % above
the live entries, by when the host's GC last scanned, not by what the table holds. A
listing skips (and evicts) expired entries: it is the live entries, what the flow
model's level is. Frames are watched by the count, which leaves the sawtooth alone
(a listing every frame would reap it and hide what the forecast must see through).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.lab.scenarios import LEVEL_TIMEOUT
from cttop.live.collector import Collector
from cttop.live.frame import LIVE, Frame
from cttop.model import AF_INET, IPS_ASSURED, IPS_SEEN_REPLY, NO_PSTATE, Row
from cttop.sources.live import LiveSource
from tests.conftest import sh
from tests.kernel.test_lab import global_max, lab_running

pytestmark = pytest.mark.kernel

WITHIN = 0.20
_LEVEL = re.compile(r"(?:levels off near|draining to) ([0-9.]+)([kM]?)")
_FULL_IN = re.compile(r"full in (?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def level_of(text: str) -> float:
    m = _LEVEL.match(text)
    assert m, text
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6}[m.group(2)]


def seconds_of(text: str) -> float:
    m = _FULL_IN.fullmatch(text)
    assert m, text
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


@dataclass
class Seen:
    """A frame's forecast beside the kernel's count when it was drawn."""

    t: float
    forecast: str
    kernel: int


@dataclass
class Watch:
    ns: str
    seen: list[Seen] = field(default_factory=list)

    def frame(self, f: Frame) -> None:
        if f.phase == LIVE:
            self.seen.append(Seen(time.monotonic(), f.forecast, kernel_count(self.ns)))

    def known(self) -> list[Seen]:
        return [s for s in self.seen if s.forecast != "unknown"]


def kernel_count(ns: str) -> int:
    return int(sh("cat", "/proc/sys/net/netfilter/nf_conntrack_count", netns=ns))


def live_count(ns: str) -> int:
    """Entries a listing shows: the live ones (see the module docstring)."""
    return sum(len(sh("conntrack", "-L", "-f", fam, netns=ns).splitlines()) for fam in ("ipv4", "ipv6"))


def settled_live(ns: str) -> float:
    """Where a settled table is: three listings a second apart, averaged."""
    counts = []
    for _ in range(3):
        counts.append(live_count(ns))
        time.sleep(1)
    return sum(counts) / len(counts)


@contextmanager
def watching(ns: str) -> Iterator[Watch]:
    w = Watch(ns)
    c = Collector(LiveSource(NetnsSpec(name=ns)), on_frame=w.frame, on_index=lambda _: None, interval=0.5)
    c.start()
    try:
        yield w
    finally:
        c.stop()


@contextmanager
def udp_flow(ns: str, net: str, rate: float, seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """New unanswered UDP flows at ``rate`` a second to addresses of ``net`` (on loopback: nobody answers)."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "cttop.lab.traffic", "udp-flood",
                             "--seconds", str(seconds), "--dst-net", net, "--port", "9", "--rate", str(rate)])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def udp_entries(n: int, left: list[int], status: int) -> list[Row]:
    rows = []
    for i in range(n):
        src, dst = bytes([10, 55, i >> 8 & 255, i & 255]), bytes([10, 66, 0, 1 + (i >> 16)])
        rows.append((0, AF_INET, 17, NO_PSTATE, status, src, dst, 20000, 5000, dst, src, 5000, 20000,
                     left[i], 0, 0, 0, None, None, None, None, 0, 0))
    return rows


def within(level: float, actual: float) -> bool:
    return abs(level - actual) <= WITHIN * actual


@dataclass
class Levels:
    seen: list[Seen]  # every frame from the lab's start
    settle_at: float  # from then on the table is steady
    settled: float  # its live entries then (listed after the last frame, while the flood goes on)


@pytest.fixture(scope="module")
def levels_lab() -> Iterator[Levels]:
    """The levels-off lab watched from its start until a good while after it settled."""
    with lab_running("levels-off", LEVEL_TIMEOUT + 35) as lab:
        with watching(lab.router) as w:
            # One timeout in, the first entries expire as new ones come; a few seconds more for the rate window.
            settle_at = time.monotonic() + LEVEL_TIMEOUT + 8
            lab.sample(lambda _ns: None, lambda _v: time.monotonic() > settle_at + 15)
        yield Levels(list(w.seen), settle_at, settled_live(lab.router))


def test_a_rising_table_is_forecast_to_level_off_where_it_settles(levels_lab: Levels) -> None:
    seen, settled = levels_lab.seen, levels_lab.settled
    # Before one timeout has passed nothing has expired: the kernel's count is the live entries.
    rising = [s for s in seen if s.kernel < 0.6 * settled and s.forecast != "unknown"]
    assert rising, [(s.kernel, s.forecast) for s in seen[:20]]
    for s in rising:
        assert s.forecast.startswith("levels off near "), (s.kernel, s.forecast)
        assert within(level_of(s.forecast), settled), (s.kernel, s.forecast, settled)


def test_a_steady_table_is_forecast_to_stay_where_it_is(levels_lab: Levels) -> None:
    # Every frame once settled, whatever the kernel's count does meanwhile (it keeps the expired entries until
    # they are reaped): the level the table holds, within 20 % of its live entries.
    steady = [s for s in levels_lab.seen if s.t > levels_lab.settle_at]
    assert len(steady) >= 10, [(s.kernel, s.forecast) for s in levels_lab.seen]
    for s in steady:
        assert s.forecast.startswith("levels off near "), (s.kernel, s.forecast, levels_lab.settled)
        assert within(level_of(s.forecast), levels_lab.settled), (s.kernel, s.forecast, levels_lab.settled)


def test_a_table_whose_storm_stopped_is_forecast_to_drain_to_what_stays(netns: str) -> None:
    # A storm's table as it stood when the storm stopped (entries' ends spread over the 30 s timeout), and the
    # 60 new flows a second that go on: it drains to about 60 × 30.
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=30", netns=netns)
    storm = 18000
    with Ctnetlink(NetnsSpec(name=netns)) as ct:
        assert ct.create(udp_entries(storm, [5 + i * 25 // storm for i in range(storm)], 0)) == storm
    made = time.monotonic()
    with udp_flow(netns, "127.3.0.0/16", 60, 60), watching(netns) as w:
        end = time.monotonic() + 36
        while time.monotonic() < end:
            time.sleep(0.5)
        settled = settled_live(netns)
    # Still draining: by their timeouts, in the first 20 s at least 40 % of the storm's entries (7200, four
    # times what stays) are live. (The kernel's count, which keeps expired ones until reaped, cannot tell.)
    draining = [s for s in w.known() if s.t < made + 20]
    assert draining, [(s.kernel, s.forecast) for s in w.seen[:20]]
    for s in draining:
        assert s.forecast.startswith("draining to "), (s.kernel, s.forecast)
        assert within(level_of(s.forecast), settled), (s.kernel, s.forecast, settled)
    assert settled < 0.2 * storm


def test_a_table_filling_past_the_max_is_forecast_full_when_it_is(netns: str) -> None:
    # 85 % of the max held 600 s (ASSURED, not evictable), then 2000 unanswered flows a second under a 600 s
    # udp_timeout: the table can only fill. The forecast must say so, and about when.
    for name in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
        sh("sysctl", "-qw", f"net.netfilter.{name}=600", netns=netns)
    maximum = global_max()
    held = int(maximum * 0.85)
    with Ctnetlink(NetnsSpec(name=netns)) as ct:
        assert ct.create(udp_entries(held, [600] * held, IPS_ASSURED | IPS_SEEN_REPLY)) == held
    full_at: list[float] = []
    # The flow first, so every frame's window sees it: the forecast is about a table filling, not one at rest.
    with udp_flow(netns, "127.4.0.0/16", 2000, 90), watching(netns) as w:
        end = time.monotonic() + 90
        while time.monotonic() < end:
            if kernel_count(netns) >= maximum:
                full_at.append(time.monotonic())
                break
            time.sleep(0.25)
    assert full_at, f"the table did not fill: {kernel_count(netns)} of {maximum}"
    before = [s for s in w.known() if s.t < full_at[0] and s.kernel < maximum - 2000]
    assert before, [(s.kernel, s.forecast) for s in w.seen[-20:]]
    for s in before:
        assert s.forecast.startswith("full in "), (s.kernel, s.forecast)
    # The first time it says when: the table was full within 20 % of that (and of a second, for rounding).
    first = before[0]
    took = full_at[0] - first.t
    assert abs(seconds_of(first.forecast) - took) <= WITHIN * took + 1, (first.forecast, took)
