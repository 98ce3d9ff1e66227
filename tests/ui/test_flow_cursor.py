"""The flow list's cursor: always on a flow of the list, and a move redraws only the lines it leaves and reaches."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console
from textual.geometry import Region
from textual.pilot import Pilot

from cttop.table.packing import record_key
from cttop.table.rates import FlowRate
from cttop.ui.app import CttopApp
from cttop.ui.flows import FlowList
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import wait_live


def painted(app: CttopApp) -> str:
    """The screen as last painted, styles and all: a line left out of a partial redraw shows its old style."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      color_system="truecolor", legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=True)


async def still(pilot: Pilot[object], app: CttopApp) -> None:
    """No more snapshots: what the list shows changes only by the keys pressed next."""
    app.collector.stop()
    for _ in range(3):
        await pilot.pause()


async def test_the_cursor_stays_on_a_flow_of_the_list() -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await still(pilot, app)
        fl = app.main.flow_list
        n = len(fl.records)
        assert n > 10
        fl.cursor = n + 50
        assert fl.cursor == n - 1
        fl.cursor = -7
        assert fl.cursor == 0
        await pilot.press("up", "home", "up", "pageup")
        assert fl.cursor == 0
        await pilot.press("end", "down", "pagedown")
        assert fl.cursor == n - 1
        await pilot.click(fl, offset=(5, fl.size.height - 1))  # below the last flow, had it been short
        assert 0 <= fl.cursor < n


def spy_redraws(fl: FlowList, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[Region, ...]], Callable[..., object]]:
    """Record the regions of every redraw the flow list asks for; returns them and the real refresh."""
    redraws: list[tuple[Region, ...]] = []
    full_refresh = fl.refresh

    def spy(*regions: Region, **kw: bool) -> object:
        redraws.append(regions)
        return full_refresh(*regions, **kw)

    monkeypatch.setattr(fl, "refresh", spy)
    return redraws, full_refresh


async def painted_as_a_full_redraw(pilot: Pilot[object], app: CttopApp, full_refresh: Callable[..., object]) -> bool:
    """Whether what the partial redraws left on screen is what a redraw of the whole list paints."""
    seen = painted(app)
    full_refresh()
    await pilot.pause()
    return painted(app) == seen


async def test_a_move_redraws_only_the_lines_it_leaves_and_reaches(monkeypatch: pytest.MonkeyPatch) -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await still(pilot, app)
        fl = app.main.flow_list
        assert fl.cursor == 0 and fl.scroll_y == 0 and fl.size.height > 4
        redraws, full_refresh = spy_redraws(fl, monkeypatch)
        await pilot.press("down", "down")
        await pilot.pause()
        assert await painted_as_a_full_redraw(pilot, app, full_refresh)  # no stale cursor left behind
        assert [[(r.y, r.height) for r in regions] for regions in redraws] == [[(0, 1)], [(1, 1)], [(1, 1)], [(2, 1)]]
        # A move that scrolls redraws it all (Textual does, on a scroll), and shows the same as a full redraw.
        await pilot.press("end", "up")
        await pilot.pause()
        assert await painted_as_a_full_redraw(pilot, app, full_refresh)


async def test_a_tag_redraws_only_the_tagged_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await still(pilot, app)
        fl = app.main.flow_list
        assert fl.cursor == 0 and fl.scroll_y == 0 and len(fl.records) > 4
        redraws, full_refresh = spy_redraws(fl, monkeypatch)
        await pilot.press("space")  # tags line 0, then moves down to line 1
        await pilot.pause()
        assert len(fl.tagged) == 1
        assert await painted_as_a_full_redraw(pilot, app, full_refresh)  # the tag shows as a full redraw would
        assert sorted({(r.y, r.height) for regions in redraws for r in regions}) == [(0, 1), (1, 1)]
        assert all(regions for regions in redraws)  # no redraw of the whole list
        redraws.clear()
        fl.tagged = frozenset()  # as a delete or a view switch clears them
        await pilot.pause()
        assert [[(r.y, r.height) for r in regions] for regions in redraws] == [[(0, 1)]]


async def test_new_rates_redraw_the_list_and_equal_ones_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await still(pilot, app)
        fl = app.main.flow_list
        key = record_key(fl.records[0])
        redraws, _full = spy_redraws(fl, monkeypatch)
        fl.rates = {key: FlowRate(1000.0, 10.0)}
        assert redraws == [()]  # every visible line: any may have a rate
        fl.rates = {key: FlowRate(1000.0, 10.0)}  # the next frame's, unchanged
        assert redraws == [()]
