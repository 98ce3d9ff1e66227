"""Regenerate screenshots/*.svg: the main screen on a busy table, the filter in use, and help; and with
``--lab``, the live view of each `cttop lab` scenario.

Usage: python scripts/screenshots.py                 # main, filter, help
       sudo python scripts/screenshots.py --lab      # lab-<scenario>.svg for every scenario
       sudo python scripts/screenshots.py --lab udp-storm table-full

The first three use the fixed source from the tests (a deterministic table of
50,000 flows, 83% of its max), so the pictures are reproducible and need no root.
The lab ones are real: each scenario's lab is built headless, the app watches its
router until the scenario's signature shows (or a cap passes), and the lab is
always taken down again. table-full also gets lab-table-full-doctor.svg (D).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cttop.lab.scenarios import SCENARIOS
from cttop.lab.session import LabSession, exits_on_signals, signals_held
from cttop.live.frame import Frame
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.screens.doctor import DoctorScreen
from tests.ui.fixed_source import FixedSource, busy_rows
from tests.ui.helpers import wait_for, wait_live, wait_view

OUT = os.path.join(ROOT, "screenshots")
SIZE = (120, 40)


def busy_source() -> FixedSource:
    per_cpu = [{"drop": 0, "early_drop": 1204, "insert_failed": 3, "clash_resolve": 57, "chaintoolong": 0,
                "search_restart": 310}]
    return FixedSource(busy_rows(50_000), label="web-lb1", maximum=60_000, buckets=16_384, per_cpu=per_cpu)


async def shoot(name: str, keys: list[str], wait_filter: bool = False) -> None:
    app = CttopApp(busy_source(), title="cttop", interval=60.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press(*keys)
        if wait_filter:
            await wait_view(pilot, app)
        await pilot.pause(0.3)
        app.title = f"cttop: {name}"
        print(app.save_screenshot(f"{name}.svg", OUT))


def _state(frame: Frame, *names: str) -> int:
    return sum(s.count for s in frame.states if s.state in names)


def _share(frame: Frame, *names: str) -> float:
    return _state(frame, *names) / frame.flows if frame.flows else 0.0


def _pressure(frame: Frame, *names: str) -> int:
    return sum(p.total for p in frame.pressure if p.name in names)


# What each scenario's picture must show before it is taken: the signature its integration test checks.
SIGNATURES: dict[str, Callable[[Frame], bool]] = {
    "mixed": lambda f: f.flows >= 100 and _state(f, "ESTABLISHED") > 0 and _state(f, "TIME_WAIT") > 0,
    "udp-storm": lambda f: _share(f, "UNREPLIED") > 0.5,
    "syn-flood": lambda f: _share(f, "SYN_SENT", "SYN_RECV") > 0.5,
    "time-wait": lambda f: _share(f, "TIME_WAIT") > 0.5,
    "table-full": lambda f: f.count is not None and f.count == f.maximum and _pressure(f, "drop", "early_drop") > 0,
    "udp-timeouts": lambda f: _share(f, "ASSURED") > 0.5,
    "idle-established": lambda f: _share(f, "ESTABLISHED") > 0.5,
    "stale-nat": lambda f: f.flows >= 200,
    "levels-off": lambda f: f.forecast.startswith("levels off"),
}
LAB_CAP = 90.0  # seconds to wait for a signature before taking the picture anyway (and saying so)
LAB_SETTLE = 3.0  # seconds more, so the rates and the sparkline have something to show
LAB_DOCTOR = ("table-full",)  # also shoot the doctor's verdict on these
LAB_GROUP = "dport"  # the lab's traffic all comes from one client, SNAT'd: ports tell the scenarios apart


def shoot_lab(name: str) -> None:
    # The lab is built outside any event loop (its netlink setup may run one of its own); only the app runs in one.
    session = LabSession(SCENARIOS[name], LAB_CAP + 60)
    try:
        with exits_on_signals():
            session.start()
            print(f"{name}: lab {session.lab.tag} up", flush=True)
            asyncio.run(watch_lab(name, session))
    finally:
        with signals_held():
            session.close(keep=False)


async def watch_lab(name: str, session: LabSession) -> None:
    app = CttopApp(LiveSource(session.router_spec), title=f"cttop lab: {name} ({session.lab.router})")
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        app.set_group(LAB_GROUP, "entries")
        end = time.monotonic() + LAB_CAP
        while time.monotonic() < end:
            frame = app.shown_frame
            if frame is not None and SIGNATURES[name](frame):
                break
            if session.failures():
                raise SystemExit(f"{name}: {'; '.join(session.failures())}")
            await pilot.pause(0.5)
        else:
            print(f"{name}: signature not seen in {LAB_CAP:g} s; taking the picture anyway", flush=True)
        await pilot.pause(LAB_SETTLE)
        print(app.save_screenshot(f"lab-{name}.svg", OUT), flush=True)
        if name in LAB_DOCTOR:
            await pilot.press("D")
            doctor = app.screen
            assert isinstance(doctor, DoctorScreen)
            await wait_for(pilot, lambda: doctor.report is not None or doctor.error is not None, "the doctor")
            await pilot.pause(0.5)
            print(app.save_screenshot(f"lab-{name}-doctor.svg", OUT), flush=True)


async def fixed_screens() -> None:
    await shoot("main", ["down", "down", "space", "down", "space"])
    await shoot("filter", ["slash", *"udp dport 53 and unreplied"], wait_filter=True)
    await shoot("help", ["question_mark"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lab", nargs="*", metavar="SCENARIO", choices=list(SCENARIOS),
                        help="shoot these lab scenarios (default: all) instead of the fixed-source screens; needs root")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.lab is None:
        asyncio.run(fixed_screens())
        return
    for name in args.lab or list(SCENARIOS):
        shoot_lab(name)


if __name__ == "__main__":
    main()
