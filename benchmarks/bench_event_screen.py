"""The event screen's cost at 50,000 events a second: CPU time (getrusage) and wall, with and without it open.

Usage: python benchmarks/bench_event_screen.py [--rate 50000] [--seconds 10] [--flows 20000] [--filter EXPR]

The app runs headless (120×40) on a fixed source holding N synthetic flows, through the real collector
(table, aggregates, index, frames every 0.25 s). A feeder thread pushes NEW then DESTROY of short-lived
flows at ``--rate`` events a second, in 20 ms batches, paced by the wall clock. The same run is made twice,
alternating, a few times: with the main screen only, and with E open (the collector then keeps the log,
every frame carries a view of it, and the screen formats the lines that fit). The difference in process
CPU per wall second is what the event screen costs; the events the collector applied per second show the
rate was held. With ``--filter`` the screen's filter is set too (it runs over the log each frame).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cttop.live.frame import Frame
from cttop.model import EV_DESTROY, EV_NEW, Row
from cttop.ui.app import CttopApp
from cttop.live.eventlog import EventLog
from cttop.ui.screens.events import EventsScreen, EventStream
from tests.ui.fixed_source import FixedSource, busy_rows
from tests.ui.helpers import wait_for, wait_live

BATCH = 0.02  # seconds of events per push


def feeder(src: FixedSource, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """NEW then DESTROY of short-lived flows at ``rate`` events a second, caught up to the wall clock."""
    fresh: list[Row] = busy_rows(20000, seed=99)
    i = 0
    start = time.monotonic()
    while not stop.wait(BATCH):
        due = int((time.monotonic() - start) * rate) - sent[0]
        batch = []
        for _ in range(due // 2):
            r = (5_000_000 + i,) + fresh[i % len(fresh)][1:]
            batch += [(EV_NEW, r), (EV_DESTROY, r)]
            i += 1
        src.clock = time.time()  # the collector's rates need a moving clock
        src.push(batch)
        sent[0] += len(batch)


class Timed:
    """Thread CPU time spent in some methods (each wrapped while a run lasts), by name."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, label: str) -> None:
        real = getattr(owner, name)

        def timed(*args: object, **kw: object) -> object:
            t0 = time.thread_time()
            try:
                return real(*args, **kw)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.thread_time() - t0

        self._undo.append((owner, name, real))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, real in reversed(self._undo):
            setattr(owner, name, real)
        self._undo.clear()


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def run(a: argparse.Namespace, screen: bool) -> tuple[float, float, float, dict[str, float]]:
    """(CPU seconds per wall second, events applied per second, frames drawn per second, the screen's parts'
    thread CPU per wall second) over one run."""
    src = FixedSource(busy_rows(a.flows))
    app = CttopApp(src, interval=0.25)  # type: ignore[arg-type]
    stop = threading.Event()
    sent = [0]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        if screen:
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), "the event screen")
            if a.filter:
                app.collector.set_event_filter(a.filter)
        feed = threading.Thread(target=feeder, args=(src, a.rate, stop, sent), daemon=True)
        feed.start()
        await pilot.pause(1.0)  # into the steady state
        timed = Timed()
        if screen:
            timed.wrap(EventLog, "add", "log: add (collector thread)")
            timed.wrap(EventLog, "view", "log: view per frame (collector thread)")
            timed.wrap(EventsScreen, "show_frame", "screen: take the frame (UI thread)")
            timed.wrap(EventStream, "render", "screen: format the lines (UI thread)")
        drawn = [0]
        shown_on = app.screen
        if isinstance(shown_on, EventsScreen):
            real = shown_on.show_frame

            def counted(frame: Frame) -> None:
                drawn[0] += 1
                real(frame)

            shown_on.show_frame = counted  # type: ignore[method-assign]
        seq0, applied0 = app.shown_frame.seq if app.shown_frame else 0, app.collector.table.created
        c0, w0 = cpu(), time.monotonic()
        try:
            await pilot.pause(a.seconds)
        finally:
            c1, w1 = cpu(), time.monotonic()
            timed.restore()
        applied = (app.collector.table.created - applied0) * 2  # NEW and its DESTROY
        frames = drawn[0] if screen else (app.shown_frame.seq if app.shown_frame else 0) - seq0
        if screen:
            assert isinstance(app.screen, EventsScreen) and app.screen.view is not None
        stop.set()
        feed.join()
    wall = w1 - w0
    return (c1 - c0) / wall, applied / wall, frames / wall, {k: v / wall for k, v in timed.spent.items()}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=50_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--flows", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--filter", default="")
    a = p.parse_args()
    results: dict[bool, list[tuple[float, float, float, dict[str, float]]]] = {False: [], True: []}
    for i in range(a.runs):
        for screen in (False, True) if i % 2 == 0 else (True, False):
            results[screen].append(await run(a, screen))
            cpu_s, ev, fr, _parts = results[screen][-1]
            print(f"run {i + 1} {'E open ' if screen else 'main   '}: CPU {cpu_s:.2f} s per s, "
                  f"{ev:,.0f} events/s applied, {fr:.1f} frames/s")
    base = statistics.median(r[0] for r in results[False])
    with_e = statistics.median(r[0] for r in results[True])
    print(f"\nat {a.rate:,.0f} events/s offered ({a.flows:,} flows held{', filter ' + a.filter if a.filter else ''}):")
    print(f"  main screen only : {base:.2f} CPU-s per s, {statistics.median(r[1] for r in results[False]):,.0f} "
          f"events/s applied")
    print(f"  E open           : {with_e:.2f} CPU-s per s, {statistics.median(r[1] for r in results[True]):,.0f} "
          f"events/s applied")
    print(f"  difference       : {with_e - base:+.2f} CPU-s per s (whole process, getrusage; noisy on a shared "
          f"machine)")
    parts = [r[3] for r in results[True]]
    total = statistics.median(sum(p.values()) for p in parts)
    print(f"  the event screen's own code: {total * 1000:.1f} ms CPU per s ({total / a.rate * 1e6:.2f} µs per event; "
          f"thread CPU, medians):")
    for name in parts[0]:
        print(f"    {name:<42} {statistics.median(p.get(name, 0.0) for p in parts) * 1000:7.1f} ms per s")


if __name__ == "__main__":
    asyncio.run(main())
