"""Reading the screen as text, and waiting for the app to reach a state (with a generous cap, never asserted on)."""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

from cttop.actions.journal import COMPLETE, Journal
from cttop.live.frame import LIVE, Frame
from cttop.ui.app import CttopApp, MainScreen
from cttop.ui.commands import COMMENT, INDENT, CommandBlock, ShellLine
from cttop.ui.flows import FlowsPanel
from cttop.ui.screens.confirm import ConfirmScreen
from tests.ui.fixed_source import FixedSource

WAIT_CAP = 20.0  # seconds before giving up on a state that should arrive in well under one


def app_on(source: FixedSource | None = None, **kw: object) -> CttopApp:
    """The app on a fixed source (a fresh one by default), refreshing every 0.1 s."""
    return CttopApp(source or FixedSource(), interval=0.1, **kw)  # type: ignore[arg-type]


def screen_text(app: App[object]) -> str:
    """What the terminal shows now, as plain text (the same render a screenshot takes)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      color_system=None, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(pilot: Pilot[object], cond: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT_CAP
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for: {what}")
        await pilot.pause(0.02)
    await pilot.pause()


async def wait_live(pilot: Pilot[object], app: CttopApp) -> None:
    """Until a live frame and a built index are on screen."""
    await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.phase == LIVE
                   and app.shown_index is not None, "the first live frame and flow index")


async def open_events(pilot: Pilot[object], app: CttopApp) -> None:
    """The live view up, then E: the event screen open."""
    from cttop.ui.screens.events import EventsScreen

    await wait_live(pilot, app)
    await pilot.press("E")
    await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), "the event screen")


async def wait_view(pilot: Pilot[object], app: CttopApp) -> None:
    """Until the index on screen is the one for the view last asked for."""
    await wait_for(pilot, lambda: app.shown_index is not None and app.shown_index.spec == app.view,
                   f"the flow index for {app.view}")


async def wait_frame_after(pilot: Pilot[object], app: CttopApp, seq: int) -> None:
    await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.seq > seq, f"a frame after #{seq}")


def journal_lines(state: Path) -> list[dict[str, object]]:
    """The completed changes in the journal, as `cttop journal --json` lists them (a change is written as
    its intent, then its completion once the kernel took it)."""
    return [r.to_json() for r in Journal(str(state)).records() if r.state == COMPLETE]


async def set_filter(pilot: Pilot[object], app: CttopApp, text: str) -> None:
    """Type ``text`` in the filter line, commit it, and wait until the list shows it."""
    await pilot.press("slash", *text, "enter")
    await wait_view(pilot, app)


def confirm_shown(app: CttopApp) -> bool:
    """A confirmation is on the terminal: drawn, so it takes keys (one read before that answers nothing)."""
    return isinstance(app.screen, ConfirmScreen) and app.screen.shown_at < math.inf


async def confirm_open(pilot: Pilot[object], app: CttopApp) -> ConfirmScreen:
    await wait_for(pilot, lambda: confirm_shown(app), "the confirmation")
    screen = app.screen
    assert isinstance(screen, ConfirmScreen)
    return screen


def confirm_text(screen: ConfirmScreen) -> str:
    """Everything the dialog says, with each command joined back to one line as a shell would read it."""
    return screen.text() + "\n" + "\n".join(joined(screen.query_one(CommandBlock).lines()))


def joined(lines: Sequence[ShellLine]) -> list[str]:
    """The commands drawn as ``lines``, each on one line again: a continuation is undone as it was made
    (cttop.ui.commands), comments are left out."""
    text = "\n".join(line.text for line in lines if line.kind != COMMENT)
    return text.replace(" \\\n" + INDENT, " ").replace("'\\\n'", "").replace("\\\n", "").split("\n")


async def yes_and_wait(pilot: Pilot[object], app: CttopApp, state: Path) -> dict[str, object]:
    """Say yes, then wait until the change is journaled (the journal line is written after the change)."""
    before = len(journal_lines(state))
    await pilot.press("y")
    await wait_for(pilot, lambda: len(journal_lines(state)) > before, "the change to be journaled")
    return journal_lines(state)[-1]


@dataclass(frozen=True)
class Shown:
    """A frame as it went on screen: when, the list's "Flows N" as drawn, and the kernel's count right then."""

    at: float  # monotonic, when the UI thread applied the frame
    late: float  # seconds from the frame's making (its time) to then
    frame: Frame
    listed: int | None
    kernel: int


@contextmanager
def frames_on_screen(kernel_count: Callable[[], int]) -> Iterator[list[Shown]]:
    """Every frame the main screen shows, with the kernel's count read (``kernel_count``) the moment it is
    shown: what a person would compare if they ran `conntrack -C` as they looked."""
    shown: list[Shown] = []
    real_show = MainScreen.show_frame

    def spy(screen: MainScreen, frame: Frame) -> None:
        real_show(screen, frame)
        kernel = kernel_count()
        m = re.match(r"Flows ([\d,]+)", str(screen.query_one(FlowsPanel).border_title))
        listed = int(m.group(1).replace(",", "")) if m else None
        shown.append(Shown(time.monotonic(), time.time() - frame.time, frame, listed, kernel))

    MainScreen.show_frame = spy  # type: ignore[method-assign]
    try:
        yield shown
    finally:
        MainScreen.show_frame = real_show  # type: ignore[method-assign]


LAB_NS = "cttop-lab-c803c9-router"  # a lab router's name, long enough to be cut at 80 columns


def one_flush_journal(state: Path) -> Path:
    """``state`` made as a state dir whose journal holds one completed flush in LAB_NS."""
    state.mkdir(mode=0o700)
    rec = {"id": "aaaa0001", "kind": "flush", "description": "flush udp", "commands": [f"cttop flush --netns {LAB_NS}"],
           "netns": LAB_NS, "netns_inode": 4026532999, "undoable": False, "before": {}, "after": {"count": 3},
           "time": 1700000000.0, "user": "root", "uid": 0}
    (state / "journal.jsonl").write_text(json.dumps(rec) + "\n")
    return state


def said(app: CttopApp) -> list[str]:
    """What the app has said and still shows: its toasts, and the lines of the open dialog's notice (a dialog over
    the main screen says its notices there, and takes in the toasts still up when it opens)."""
    out = [str(n.message) for n in app._notifications]
    for line in app.screen.query(".remedy-notice") if app.screen_stack else ():  # (none once the app has ended)
        if line.display:
            out += str(getattr(line, "content", "")).split("\n")
    return out
