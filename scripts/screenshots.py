"""Regenerate screenshots/*.svg: the main screen on a busy table, the filter in use, and help.

Usage: python scripts/screenshots.py

Uses the fixed source from the tests (a deterministic table of 50,000 flows,
83% of its max), so the pictures are reproducible and need no root.
"""

from __future__ import annotations

import asyncio
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cttop.ui.app import CttopApp
from tests.ui.fixed_source import FixedSource, busy_rows
from tests.ui.helpers import wait_live, wait_view

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


async def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    await shoot("main", ["down", "down", "space", "down", "space"])
    await shoot("filter", ["slash", *"udp dport 53 and unreplied"], wait_filter=True)
    await shoot("help", ["question_mark"])


if __name__ == "__main__":
    asyncio.run(main())
