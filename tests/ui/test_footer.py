"""The footer always keeps ? and q: at any width the keys that do not fit drop from the right, never those."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.screens.tunables import TunablesScreen
from tests.conftest import delete_netns, make_netns
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import screen_text, wait_for, wait_live

ESSENTIAL = ["?", "q"]


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("cttop-footer")
    try:
        yield name
    finally:
        delete_netns(name)


def footer_keys(app: CttopApp) -> list[str]:
    """The keys the footer shows, left to right (each drawn as ' KEY Description')."""
    line = screen_text(app).splitlines()[-1]
    assert line.rstrip().endswith("^p palette"), line  # nothing clipped at the right edge
    return re.findall(r"(?:^|  )(\S+) [A-Z]", line.split("▏")[0])


async def keys_at(app: CttopApp, pilot: Pilot[None], width: int) -> list[str]:
    await pilot.resize_terminal(width, 24)
    await wait_for(pilot, lambda: "Help" in screen_text(app).splitlines()[-1], "the footer")
    await pilot.pause(0.1)
    return footer_keys(app)


async def check_widths(app: CttopApp, pilot: Pilot[None]) -> list[str]:
    full = await keys_at(app, pilot, 250)
    assert full[-2:] == ESSENTIAL
    for width in (60, 80, 100, 120, 160):
        shown = await keys_at(app, pilot, width)
        assert shown[-2:] == ESSENTIAL, (width, shown)
        # What drops is the lowest priority: the rest is the full footer's beginning, in order.
        assert shown[:-2] == full[:len(shown) - 2], (width, shown, full)
        if width == 80:
            assert len(shown) < len(full)  # something had to go
    return full


@pytest.mark.kernel
async def test_the_live_footer_keeps_help_and_quit_at_every_width(ns: str) -> None:
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        full = await check_widths(app, pilot)
        assert {"d", "F", "u"} <= set(full)  # the write keys are there when there is room
        await pilot.resize_terminal(80, 24)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TunablesScreen), "the tunables screen")
        await pilot.pause(0.2)
        line = screen_text(app).splitlines()[-1]
        assert line.startswith(" Esc Close "), line  # a remedy screen's way out comes first


async def test_the_replay_footer_keeps_help_and_quit_at_every_width() -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await check_widths(app, pilot)
