"""Under a flood of new flows, the count the screen shows agrees with the kernel's, frame by frame.

The real app runs on a namespace where unanswered UDP flows arrive at FLOOD_RATE a second and expire
after a 5 s timeout, so the table churns: thousands of NEWs a second, and the kernel's GC ends expired
entries in bursts of thousands of DESTROYs. Each time a frame goes on screen, the kernel's count is
read right then on a socket of the test's own (CT_GET_STATS), and compared with the flow list's
"Flows N" as drawn. (benchmarks/bench_flood_truth.py measures the same at 10k flows/s, with timing.)
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.live.frame import LIVE
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from tests.conftest import sh
from tests.ui.helpers import frames_on_screen, wait_live

pytestmark = pytest.mark.kernel

FLOOD_RATE = 4000
FLOOD_SECONDS = 20
UDP_TIMEOUT = 5
SHARE = 0.95  # of the frames in the steady state, within 1 % of the kernel's count (the bar)
# A frame shown this soon after it was built may be held to the kernel's count read with its table (Frame.count):
# the kernel's gc ends expired entries in bursts (here ~15,000, 40 % of the table, in a few ms), and a burst
# between the two readings moved the kernel under a frame that was true (measured: built with 37,482 against the
# kernel's 37,482, shown 6 ms later against 36,927; the next frame, 21,678 against 21,686).
BUILD_TO_SCREEN = 0.05


# Held in full, and bounded (--max-flows under the flood's table: counted from digests, the list paged).
@pytest.mark.parametrize("max_flows", [None, 2000], ids=["held", "bounded"])
async def test_the_flow_count_on_screen_is_the_kernels_frame_by_frame(netns: str, max_flows: int | None) -> None:
    sh("sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout={UDP_TIMEOUT}", netns=netns)
    counts = Ctnetlink(NetnsSpec(name=netns))
    flood = None
    try:
        with frames_on_screen(lambda: counts.stats().count) as shown:
            app = CttopApp(LiveSource(NetnsSpec(name=netns)), interval=0.5, max_flows=max_flows)
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_live(pilot, app)
                flood = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                    ["ip", "netns", "exec", netns, sys.executable, "-m", "cttop.lab.traffic", "udp-flood",
                     "--seconds", str(FLOOD_SECONDS), "--dst-net", "127.5.0.0/16", "--port", "9",
                     "--rate", str(FLOOD_RATE)])
                steady_from = time.monotonic() + UDP_TIMEOUT + 1  # one timeout in, entries expire as new come
                while flood.poll() is None:  # it ends itself after FLOOD_SECONDS (an alarm backs that up)
                    await pilot.pause(0.1)
                ended = time.monotonic()
    finally:
        if flood is not None:
            flood.kill()
            flood.wait()
        counts.close()
    steady = [s for s in shown if steady_from <= s.at <= ended and s.frame.phase == LIVE and s.listed is not None]
    assert len(steady) >= 10, [(s.listed, s.kernel) for s in shown]
    assert max(s.kernel for s in steady) > FLOOD_RATE * UDP_TIMEOUT / 2  # a flood was on: the table churned
    if max_flows is not None:  # the view was bounded, not held, through the flood
        assert all(s.frame.bounded == max_flows for s in steady)
    def near(kernel: int | None, listed: int) -> bool:
        return kernel is not None and abs(listed - kernel) <= 0.01 * kernel

    off = [(s.frame.seq, s.listed, s.kernel, s.frame.count, round(s.late, 3)) for s in steady
           if s.listed is not None and not near(s.kernel, s.listed)
           and not (s.late <= BUILD_TO_SCREEN and near(s.frame.count, s.listed))]
    assert len(off) <= (1 - SHARE) * len(steady), (len(steady), off)
