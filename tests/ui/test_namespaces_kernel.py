"""N opens with the cursor on the namespace in view, so Enter there never switches by surprise; and Enter opens the
namespace its row showed, or says it is gone, never another made under its name since."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.screens.namespaces import NamespacesScreen
from tests.conftest import delete_netns, make_netns, sh
from tests.kernel.test_netns_pinned import REFUSED, made_anew
from tests.ui.helpers import said, wait_for, wait_live

pytestmark = pytest.mark.kernel


@pytest.fixture
def two() -> Iterator[tuple[str, str]]:
    a, b = make_netns("cttop-nscursor-a"), make_netns("cttop-nscursor-b")
    try:
        yield a, b
    finally:
        delete_netns(a)
        delete_netns(b)


def inode(ns: str) -> int:
    return int(sh("stat", "-L", "-c", "%i", f"/run/netns/{ns}"))


async def namespaces_listed(pilot: Pilot[None], app: CttopApp) -> NamespacesScreen:
    """N pressed, and its list read."""
    await pilot.press("N")
    screen = app.screen
    assert isinstance(screen, NamespacesScreen)
    await wait_for(pilot, lambda: bool(screen.namespaces), "the namespace list")
    return screen


async def test_N_starts_on_the_namespace_in_view_and_a_reread_keeps_the_row(two: tuple[str, str]) -> None:
    a, b = two
    app = CttopApp(LiveSource(NetnsSpec(name=b)), interval=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_live(pilot, app)
        screen = await namespaces_listed(pilot, app)
        table = screen.query_one(DataTable)
        labels = [ns.label for ns in screen.namespaces]
        assert labels.index(b) > 0  # the initial namespace is listed first: the old cursor's place
        here = screen.namespaces[table.cursor_row]
        assert here.label == b and here.inode == inode(b)

        table.move_cursor(row=labels.index(a))
        await pilot.press("r")  # read again: the row moved to stays
        await wait_for(pilot, lambda: "reading" not in str(screen.query_one("#ns-note").render()), "the re-read")
        assert screen.namespaces[table.cursor_row].label == a

        table.move_cursor(row=labels.index(b))
        await pilot.press("enter")  # on the namespace in view: only closes
        await wait_for(pilot, lambda: app.screen is app.main, "the screen to close")
    assert app.spec == NetnsSpec(name=b)


async def test_enter_on_a_listed_namespace_made_anew_since_is_refused(two: tuple[str, str]) -> None:
    a, b = two
    app = CttopApp(LiveSource(NetnsSpec(name=a)), interval=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_live(pilot, app)
        screen = await namespaces_listed(pilot, app)
        screen.query_one(DataTable).move_cursor(row=[ns.label for ns in screen.namespaces].index(b))
        made_anew(b, 2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(REFUSED in m for m in said(app)), "the refusal")
        assert app.spec == NetnsSpec(name=a)
