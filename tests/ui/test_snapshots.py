"""Snapshots of the main screen, help and flow detail on the fixed source (textual pinned in pyproject).

Regenerate with `pytest tests/ui/test_snapshots.py --snapshot-update` only after looking at the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from cttop.ui.app import CttopApp
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import wait_live, wait_view

Compare = Callable[..., bool]


def fixed_app() -> CttopApp:
    # A long interval: the one frame after loading is the whole story, so nothing moves mid-screenshot.
    return CttopApp(FixedSource(), interval=60.0)


async def ready(pilot: Pilot[object]) -> None:
    app = pilot.app
    assert isinstance(app, CttopApp)
    await wait_live(pilot, app)


async def bad_filter(pilot: Pilot[object]) -> None:
    """Commit a filter, type one that goes bad at the end, then wait until the committed one's list is on screen."""
    await ready(pilot)
    await pilot.press("slash", *"udp", "enter", "slash", *"udp or port x")
    app = pilot.app
    assert isinstance(app, CttopApp)
    await wait_view(pilot, app)


def test_main_screen_80x24(snap_compare: Compare) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=ready)


def test_main_screen_wide(snap_compare: Compare) -> None:
    assert snap_compare(fixed_app(), terminal_size=(140, 40), run_before=ready)


def test_help_screen(snap_compare: Compare) -> None:
    assert snap_compare(fixed_app(), terminal_size=(100, 30), run_before=ready, press=["question_mark"])


def test_flow_detail(snap_compare: Compare) -> None:
    assert snap_compare(fixed_app(), terminal_size=(100, 30), run_before=ready, press=["down", "down", "down", "enter"])


def test_filter_error(snap_compare: Compare) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=bad_filter)
