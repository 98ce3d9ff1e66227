"""The TUI draws no raw control character from a name, on the real kernel: processes named with escape
sequences hold tracked connections in a namespace and a cgroup named the same way, and the journal holds
a forged record. Every screen that shows them is read back as the terminal would get it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.termsafe import safe_line
from cttop.ui.app import CttopApp
from cttop.ui.detail import DetailScreen
from cttop.ui.screens.confirm import ConfirmScreen
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.namespaces import NamespacesScreen
from tests.hostile import (
    HOSTILE_SUMMARY,
    HOSTILE_USER,
    OSC_TITLE,
    RAW_CONTROL,
    Hostile,
    forge_journal,
    hostile_namespace,
    raw_name,
)
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import confirm_shown, wait_for, wait_live


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    with hostile_namespace() as h:
        yield h


def drawn(app: CttopApp) -> str:
    """Every character of the screen's text as the terminal would receive it: the compositor's segments,
    less Textual's own control segments (cursor moves), read before any console could filter them."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      legacy_windows=False)
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return "".join(seg.text for seg in console.render(update) if not seg.control)


def assert_safe(app: CttopApp, where: str) -> str:
    text = drawn(app)
    m = RAW_CONTROL.search(text)
    assert m is None, f"{where}: {m.group()!r} drawn raw at {m.start()}:\n{text}"
    return text


async def group_to(pilot, app: CttopApp, group: str) -> None:  # type: ignore[no-untyped-def]
    while app.group != group:
        await pilot.press("g")
    await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == group
                   and bool(app.shown_frame.top), f"a frame ranked by {group}")


@pytest.mark.kernel
async def test_the_process_view_and_every_screen_naming_them_draw_escapes(
        hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    forge_journal(state, hostile.netns)
    monkeypatch.setenv("CTTOP_STATE_DIR", str(state))
    labels = [f"{raw_name(pid)}[{pid}]" for pid in hostile.pids]
    app = CttopApp(LiveSource(NetnsSpec(name=hostile.netns)), interval=0.2)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await wait_live(pilot, app)
        # g process: the heaviest panel ranks the two holders by their raw names (the kernel's)...
        await group_to(pilot, app, "process")
        await wait_for(pilot, lambda: app.shown_frame is not None
                       and set(labels) <= {g.text for g in app.shown_frame.top}, "both holders ranked")
        # ...and the screen shows them escaped, whole in the panel, cut to its width in the list's column.
        def named_on_their_lines() -> bool:
            lines = drawn(app).splitlines()
            return all(safe_line(la) in "\n".join(lines) and any(
                f"127.0.0.1:{port}" in ln and safe_line(la)[:12] in ln for ln in lines)
                for la, port in zip(labels, hostile.ports))

        await wait_for(pilot, named_on_their_lines, "both holders named in the heaviest panel and the flow list")
        text = assert_safe(app, "g process")
        assert safe_line(hostile.netns) in text  # the header names the namespace, escaped

        if hostile.cgroup is not None:
            await group_to(pilot, app, "container")
            await wait_for(pilot, lambda: "\\x1b[31mevil\\u202e\\xff.scope" in drawn(app), "the hostile unit")
            assert_safe(app, "g container")

        app.main.flow_list.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the flow detail")
        assert any(safe_line(la) in assert_safe(app, "flow detail") for la in labels)
        await pilot.press("escape")

        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, NamespacesScreen) and bool(app.screen.namespaces),
                       "the namespaces listed")
        screen = app.screen
        assert isinstance(screen, NamespacesScreen)
        row = next(i for i, ns in enumerate(screen.namespaces) if hostile.netns in ns.names)
        screen.query_one(DataTable).move_cursor(row=row)
        await pilot.pause()
        assert safe_line(hostile.netns)[:60] in assert_safe(app, "namespaces")
        await pilot.press("escape")

        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items),
                       "the journal listed")
        await pilot.pause()
        assert safe_line(HOSTILE_USER) in assert_safe(app, "journal")
        # Undo's confirmation is built from the forged record; or it is refused, in a toast.
        await pilot.press("u")
        await wait_for(pilot, lambda: confirm_shown(app) or bool(app._notifications),
                       "the undo's confirmation or its refusal")
        assert_safe(app, "undo of a forged record")


class ForgedPlan:
    """A plan as an undo builds it from a forged record: every string the file's."""

    def describe(self) -> str:
        return f"undo: {HOSTILE_SUMMARY}\r\x08"

    def commands(self) -> list[str]:
        return [f"sysctl -w x={OSC_TITLE}\n rm -rf /"]

    def warnings(self) -> list[str]:
        return [f"by {HOSTILE_USER}"]


async def test_header_confirmation_and_toasts_escape_what_they_quote() -> None:
    label = f"ns{OSC_TITLE}\x9b\u202e"
    app = CttopApp(FixedSource(label=label), interval=0.1)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_live(pilot, app)
        app.push_screen(ConfirmScreen(ForgedPlan(), f"Undo change {OSC_TITLE}[red]"))
        await wait_for(pilot, lambda: confirm_shown(app), "the confirmation")
        app.notify(f"cannot undo {HOSTILE_USER}: [b]x[/b]", severity="error", markup=False)
        await wait_for(pilot, lambda: "cannot undo" in drawn(app), "the toast")
        text = assert_safe(app, "confirmation over the main screen")
    assert safe_line(label) in text  # the header
    assert "undo: set it\\x1b[2J\\x9b\\u202e" in text and "\\x0d\\x08" in text  # BEL, CR, BS shown, not lost
    assert f"sysctl -w x={safe_line(OSC_TITLE)}\\x0a rm -rf /" in text  # the command is one line
    assert f"Undo change {safe_line(OSC_TITLE)}[red]" in text  # the title is text, not markup
    assert f"cannot undo {safe_line(HOSTILE_USER)}: [b]x[/b]" in text  # the toast
