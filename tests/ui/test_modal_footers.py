"""The screens opened over the main one (D, N, X, ?, a flow's detail) show a footer of their own keys at 80×24,
not the main screen's (whose Space, /, g, s, r and ? do nothing there, or something else: r watches again in the
doctor); and the doctor names Tab only when there are fix buttons for it to reach."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.screen import Screen

import cttop.ui.screens.doctor as doctor_screen
import cttop.ui.screens.namespaces as ns_screen
from cttop.actions import Journal
from cttop.doctor import Finding, Report
from cttop.kernel.netns import NetnsSpec
from cttop.ui.app import CttopApp
from cttop.ui.detail import DetailScreen
from cttop.ui.screens.doctor import DoctorScreen
from cttop.ui.screens.expect import ExpectScreen
from cttop.ui.screens.help import HelpScreen
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.namespaces import NamespacesScreen
from tests.ui.helpers import app_on, one_flush_journal, screen_text, wait_for, wait_live
from tests.ui.test_doctor_screen import report
from tests.ui.test_host_keys import fake_namespaces

MAIN_KEYS = ("Space Tag", "/ Filter", "g Group", "s Sort", "r Reverse", "? Help")


def footer(app: CttopApp) -> str:
    return screen_text(app).splitlines()[-1]


async def open_and_read_footer(monkeypatch: pytest.MonkeyPatch, key: str, kind: type[Screen[None]],
                               ready: Callable[[CttopApp], bool] = lambda app: True) -> str:
    monkeypatch.setattr(doctor_screen, "diagnose", lambda spec, seconds, **kw: report(initial=False))
    monkeypatch.setattr(ns_screen, "list_namespaces", fake_namespaces)
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        if key == "D":
            await app.push_screen(DoctorScreen(NetnsSpec(name="ns-a"), seconds=1))
        elif key == "N":
            await app.push_screen(NamespacesScreen())
        else:
            await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, kind) and ready(app), f"the {kind.__name__}")
        await pilot.pause(0.2)
        line = footer(app)
        # Esc closes each of them; so does q, as it does the journal, the tunables and X.
        await pilot.press("q")
        await wait_for(pilot, lambda: app.screen is app.main, f"q to close the {kind.__name__}")
        return line


@pytest.mark.parametrize(("key", "kind", "own"), [
    ("D", DoctorScreen, "r Watch again"),
    ("N", NamespacesScreen, "r Read again"),
    ("X", ExpectScreen, "r Read again"),
    ("question_mark", HelpScreen, "Esc Close help"),
    ("enter", DetailScreen, "Esc Close"),
])
async def test_a_screen_over_the_main_one_shows_its_own_keys(
        monkeypatch: pytest.MonkeyPatch, key: str, kind: type[Screen[None]], own: str) -> None:
    def ready(app: CttopApp) -> bool:
        return not isinstance(app.screen, DoctorScreen) or app.screen.report is not None

    line = await open_and_read_footer(monkeypatch, key, kind, ready)
    assert line.startswith(" Esc Close"), line
    assert own in line, line
    assert not any(k in line for k in MAIN_KEYS), line


async def doctor_subtitle(monkeypatch: pytest.MonkeyPatch, result: Report, read_only: bool = False) -> str:
    monkeypatch.setattr(doctor_screen, "diagnose", lambda spec, seconds, **kw: result)
    app = app_on(read_only=read_only)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        screen = DoctorScreen(NetnsSpec(name="ns-a"), seconds=1)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.1)
        box = screen.query_one("#doctor-box")
        assert "Tab" not in footer(app)
        return str(box.border_subtitle)


async def test_the_doctor_names_tab_only_when_there_are_fix_buttons(monkeypatch: pytest.MonkeyPatch) -> None:
    with_fix = report(initial=False)
    assert "Tab reaches the fix buttons" in await doctor_subtitle(monkeypatch, with_fix)
    # read-only: the fixes are commands, no buttons
    assert "Tab" not in await doctor_subtitle(monkeypatch, with_fix, read_only=True)
    # nothing to fix: no buttons either
    fine = Report("ns-a", 1.0, [Finding("fill", "ok", "Fill", "1 of 262144 entries")])
    assert "Tab" not in await doctor_subtitle(monkeypatch, fine)



@pytest.mark.parametrize("records", [True, False], ids=["a change", "none"])
async def test_the_journal_offers_undo_only_with_a_change_to_undo(tmp_path: Path, records: bool) -> None:
    """u (Undo selected) in the footer of an empty journal promised what it could not do; like the border's hint,
    it comes with the items."""
    state = one_flush_journal(tmp_path / "state") if records else tmp_path / "empty"
    state.mkdir(mode=0o700, exist_ok=True)
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        screen = JournalScreen(NetnsSpec(), journal=Journal(str(state)))  # a live host's: undo is offered
        screen.show_all = True  # the record's namespace is a made-up one
        await app.push_screen(screen)
        await wait_for(pilot, lambda: bool(screen.items) if records else "no changes in" in screen_text(app),
                       "the journal read")
        await pilot.pause(0.2)
        line = footer(app)
    assert ("u Undo selected" in line) == records, line
    assert line.startswith(" Esc Close"), line
