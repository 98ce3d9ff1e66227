"""Keys that arrive in one read (fast typing, a laggy SSH link) take effect in the order typed, each where the
one before it left the focus: the filter line gets exactly what was typed, and letters meant for it never run
as commands on the flow list (``/dst y…`` once ran Delete, then its Yes).

The bytes are fed through Textual's own terminal parser and every event is posted before any is handled, as
the driver does with one read().
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual._xterm_parser import XTermParser
from textual.pilot import Pilot

from cttop.ui.app import CttopApp
from cttop.ui.filterbar import FilterBar
from cttop.ui.keys.order import KeysInOrder
from tests.ui.helpers import app_on, confirm_open, journal_lines, screen_text, wait_for, wait_live, wait_view
from tests.ui.test_remedy_kernel import (  # noqa: F401 - ns and state are fixtures
    SIZE,
    app_for,
    kernel_flows,
    ns,
    state,
)


async def one_read(pilot: Pilot[object], app: CttopApp, data: str) -> None:
    """Post every event the terminal's bytes ``data`` make at once, then wait until the last has settled."""
    for event in XTermParser().feed(data):
        app.post_message(event)
    await wait_for(pilot, lambda: not app._typed and app._unsettled is None, f"the keys of {data!r} to settle")
    await pilot.pause(0.1)


def typed(app: CttopApp) -> str:
    return app.main.query_one(FilterBar).input.value


async def test_editing_keys_keep_their_place_among_letters() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash")
        await one_read(pilot, app, "abc\x7fd")  # Backspace was run after the d: "abc"
        assert typed(app) == "abd"
        await one_read(pilot, app, "\x15udp")  # Ctrl+U after the letters: ""
        assert typed(app) == "udp"
        await one_read(pilot, app, " dport 54\x1b[Dx\x17")  # Left, x, Ctrl+W: a word left of the caret
        assert typed(app) == "udp dport 4"
        await one_read(pilot, app, "\x05\x15tcp\r")  # End first: Ctrl+U deletes left of the caret
        await wait_view(pilot, app)
        assert app.view.filter == "tcp" and app.focused is app.main.flow_list


async def test_a_filter_typed_in_one_read_is_not_run_as_commands() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        sort, reverse = app.view.sort, app.view.reverse
        # From the flow list: / opens the filter line; s, r, p, g, space and t are keys there.
        await one_read(pilot, app, "/tcp and (dst 192.0.2.80 or sport 40001) and not gre\r")
        await wait_view(pilot, app)
        assert app.view.filter == "tcp and (dst 192.0.2.80 or sport 40001) and not gre"
        assert (app.view.sort, app.view.reverse, app.paused, app.group) == (sort, reverse, False, "src")
        assert app.screen is app.main and not app.main.flow_list.tagged
        assert "Flows " in screen_text(app)


async def test_a_paste_right_after_slash_lands_in_the_filter_line() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await one_read(pilot, app, "/\x1b[200~udp and dport 53\x1b[201~")  # bracketed paste
        assert typed(app) == "udp and dport 53"


@pytest.mark.kernel
async def test_delete_and_its_yes_typed_into_the_filter_delete_nothing(ns: str, state: Path) -> None:  # noqa: F811
    """``/dy`` in one read: before, ``d`` opened Delete on the selected flow and ``y`` confirmed it."""
    before = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await one_read(pilot, app, "/dy")
        assert typed(app) == "dy" and app.screen is app.main
        await pilot.pause(0.5)
    assert kernel_flows(ns).keys() == before.keys()
    assert journal_lines(state) == []


async def test_a_lost_barrier_delays_the_next_key_only_so_long() -> None:
    """A key whose barrier never comes back (its widget went with its screen) does not make the app deaf."""

    class Swallowing(KeysInOrder):
        def on_key_settled(self, message: object) -> None:  # every barrier lost
            pass

    app = Swallowing()
    async with app.run_test() as pilot:
        for event in XTermParser().feed("ab"):
            app.post_message(event)
        await wait_for(pilot, lambda: app._sent == 2 and not app._typed, "both keys sent, one SETTLE_MAX apart")


@pytest.mark.kernel
async def test_a_yes_typed_before_the_confirmation_was_drawn_answers_nothing(ns: str, state: Path) -> None:  # noqa: F811
    """Keys read before the dialog was drawn (here: parsed, so stamped, before d was pressed) are dropped when
    they reach it: y, and Tab then Enter (Yes). A y pressed once it is on screen deletes the flow."""
    before = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        ahead = list(XTermParser().feed("y\t\r"))
        await pilot.press("d")
        screen = await confirm_open(pilot, app)
        for event in ahead:
            app.post_message(event)
        await wait_for(pilot, lambda: not app._typed and app._unsettled is None, "the keys read ahead to settle")
        assert screen.typed_ahead == 3 and app.screen is screen
        assert "typed before this dialog was on screen was ignored" in screen_text(app)  # in it, not a toast on it
        assert kernel_flows(ns).keys() == before.keys() and journal_lines(state) == []
        await pilot.press("y")
        await wait_for(pilot, lambda: len(journal_lines(state)) == 1, "the delete's record")
    gone = before.keys() - kernel_flows(ns).keys()
    assert len(gone) == 1 and journal_lines(state)[0]["kind"] == "delete"


async def test_an_app_never_quiet_still_takes_keys_where_they_were_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy box: some queue is never empty. Each key goes SETTLE_MAX after the one before, at the barrier's next
    turn of the app's queue, after what the last key queued there (the focus move of /)."""
    monkeypatch.setattr(KeysInOrder, "_quiet", lambda self: False)
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await one_read(pilot, app, "/dy")
        assert typed(app) == "dy" and app.screen is app.main

