"""The main screen's keys are composed from key groups: each key reaches the group that declares it, the
help lists every one, and two groups cannot claim one action."""

from __future__ import annotations

from typing import ClassVar

import pytest
from textual.binding import Binding, BindingType

from cttop.ui.app import CttopApp, MainScreen, help_sections
from cttop.ui.keys.base import KeyedScreen, KeyGroup
from cttop.ui.keys.remedy import RemedyKeys
from cttop.ui.keys.replay import ReplayKeys
from cttop.ui.keys.view import ViewKeys
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import wait_live


def test_the_screens_bindings_are_its_groups_in_footer_order() -> None:
    assert MainScreen.BINDINGS == [b for g in MainScreen.GROUPS for b in g.BINDINGS]
    assert MainScreen.GROUPS[:2] == (ReplayKeys, ViewKeys)  # a replay's keys lead the footer, then the view's


def test_the_help_lists_every_key_of_every_group() -> None:
    """So a new group cannot be left out of the help screen."""
    listed = {b.key for replay in (False, True) for _, bindings in help_sections(replay=replay) for b in bindings}
    missing = [(g.__name__, b.key) for g in MainScreen.GROUPS for b in g.BINDINGS
               if isinstance(b, Binding) and b.key not in listed]
    assert missing == []


class Twice(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("z", "undo", "Another undo")]

    def action_undo(self) -> None:
        pass


class Clashing(KeyedScreen):
    GROUPS = (RemedyKeys, Twice)


def test_two_groups_cannot_claim_one_action() -> None:
    with pytest.raises(TypeError, match="Twice: the action 'undo'"):
        Clashing()


async def test_a_key_runs_its_groups_action_on_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[object] = []
    monkeypatch.setattr(ViewKeys, "action_interval", lambda self, step: ran.append((self, step)))
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("plus", "minus")
    assert ran == [(app.main.group(ViewKeys), 1), (app.main.group(ViewKeys), -1)]
