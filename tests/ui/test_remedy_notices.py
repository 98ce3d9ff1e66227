"""Toasts never cover the journal (J) and the NOTRACK rules (T): a result toast still up when J opens (a flush's,
for 8 s) is said on a line inside the dialog instead, and so is a notice raised while it is open; the commands
and the hint saying what u undoes stay in view."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets._toast import Toast

import cttop.ui.screens.notrack as notrack_screen
from cttop.kernel.netns import NetnsSpec
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.notrack import NotrackRulesScreen
from tests.ui.helpers import LAB_NS, app_on, one_flush_journal, screen_text, wait_for, wait_live

RESULT = "flushed 3 flows; cannot be undone (journal aaaa0001)"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = one_flush_journal(tmp_path / "state")
    monkeypatch.setenv("CTTOP_STATE_DIR", str(d))
    return d


def toasts(app: object) -> list[Toast]:
    return [t for t in app.screen.query(Toast) if t.display]  # type: ignore[attr-defined]


async def test_a_result_toast_is_said_inside_the_journal_not_over_it(state: Path) -> None:
    app = app_on()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        app.notify(RESULT, timeout=8, markup=False)  # as apply.py says a flush's result
        await wait_for(pilot, lambda: bool(toasts(app)), "the result's toast")
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items), "the journal")
        await pilot.pause(0.3)
        assert not toasts(app)
        text = screen_text(app)
        assert RESULT in " ".join(text.replace("│", " ").split()), text  # said inside, not lost
        assert "Esc closes" in text and "$ cttop flush --netns" in text
        app.notify("journal: line 9 left out: not JSON", severity="warning", timeout=10, markup=False)
        await pilot.pause(0.3)
        assert not toasts(app)
        assert "line 9 left out" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back")
        app.notify("back on the main screen", timeout=5)  # the main screen's toasts are as they were
        await wait_for(pilot, lambda: bool(toasts(app)), "a toast on the main screen")


async def test_the_notrack_rules_screen_says_its_notices_inside(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notrack_screen, "rule_groups", lambda spec: [])  # no ruleset to read here
    app = app_on()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        app.notify("added the NOTRACK rule; undo with u (journal bbbb0002)", timeout=8, markup=False)
        await wait_for(pilot, lambda: bool(toasts(app)), "the result's toast")
        await app.push_screen(NotrackRulesScreen(NetnsSpec(name=LAB_NS)))
        await pilot.pause(0.5)
        assert not toasts(app)
        assert "journal bbbb0002" in " ".join(screen_text(app).replace("│", " ").split())
        app.notify("no rule selected", severity="warning")  # as x says on an empty list
        await pilot.pause(0.3)
        assert not toasts(app)
        assert "no rule selected" in screen_text(app)
