"""While the filter's text has an error, F, d and n act on nothing, on a real namespace: no confirmation
opens, the refusal names the column, and the kernel's table (conntrack -L) and ruleset (nft list ruleset)
are what they were. Once the text is fixed, F offers exactly the typed filter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from cttop.filter import FilterError, parse
from cttop.ui.app import CttopApp
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.screens.confirm import ConfirmScreen
from tests.conftest import sh
from tests.ui.helpers import confirm_open, confirm_text, journal_lines, said, screen_text, wait_live, wait_view
from tests.ui.test_remedy_kernel import (  # noqa: F401 - ns and state are fixtures
    app_for,
    kernel_flows,
    ns,
    state,
)

pytestmark = pytest.mark.kernel

SIZE = (120, 40)
# Each once widened what F acted on: the longest valid prefix of the text was in force.
UNFINISHED = ["udp dport 53 and ((", "port 99999", "tcp or udp and port 53"]


def column_of(text: str) -> int:
    with pytest.raises(FilterError) as e:
        parse(text)
    return e.value.column


def ruleset(ns: str) -> str:
    return sh("nft", "list", "ruleset", netns=ns)


async def refused(pilot: Pilot[object], app: CttopApp, key: str, column: int) -> None:
    """``key`` raises the refusal naming ``column`` and opens nothing, not even a plan being prepared."""
    before = len(said(app))
    await pilot.press(key)
    await pilot.pause(0.3)
    assert not isinstance(app.screen, ConfirmScreen)
    assert not [w for w in app.workers if w.group in ("remedy-plan", "apply")]
    new = said(app)[before:]
    assert any(f"the filter has an error at column {column}" in n for n in new), (key, new)


@pytest.mark.parametrize("text", UNFINISHED)
async def test_F_d_n_refuse_while_the_filter_has_an_error(ns: str, state: Path, text: str) -> None:
    flows, rules = kernel_flows(ns), ruleset(ns)
    column = column_of(text)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *text, "enter")  # Enter goes back to the list; the error stays
        await wait_view(pilot, app)
        assert app.view.filter == ""  # nothing committed: the whole table, and said so
        assert "showing: no filter (the typed filter has an error)" in screen_text(app)
        assert f"column {column}: " in screen_text(app)
        for key in ("F", "d", "n"):
            await refused(pilot, app, key, column)
        app.main.query_one(HeaviestPanel).focus()  # n on a group refuses too
        await refused(pilot, app, "n", column)
    assert set(kernel_flows(ns)) == set(flows) and len(flows) == 24  # conntrack ids
    assert ruleset(ns) == rules
    assert journal_lines(state) == []


async def test_F_refuses_with_a_committed_filter_shown_then_offers_exactly_the_fixed_text(
        ns: str, state: Path) -> None:
    flows = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp", "enter")
        await wait_view(pilot, app)
        await pilot.press("slash", "end", *" dport 53 and ((", "enter")
        await wait_view(pilot, app)
        assert app.view.filter == "udp"  # the committed filter, not the "udp dport 53" prefix
        assert "showing: udp (the typed filter has an error)" in screen_text(app)
        await refused(pilot, app, "F", column_of("udp dport 53 and (("))
        await pilot.press("slash", "end", *["backspace"] * len(" and (("), "enter")
        await wait_view(pilot, app)
        assert app.view.filter == "udp dport 53"
        await pilot.press("F")
        screen = await confirm_open(pilot, app)
        assert "Flush the flows matching 'udp dport 53'" in confirm_text(screen)
        assert ", 8 now" in confirm_text(screen)
        await pilot.press("escape")  # No
    assert set(kernel_flows(ns)) == set(flows)
    assert journal_lines(state) == []
