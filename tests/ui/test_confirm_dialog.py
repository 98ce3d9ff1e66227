"""The confirmation shows every command, one per line, paste-safe when wrapped, and scrolls with "No" kept.

The layout is checked against bash itself: the block as drawn, pasted after
``printf '%s\\0'``, must give the very words of the command.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

import pytest
from textual import events
from textual._xterm_parser import XTermParser
from textual.pilot import Pilot
from textual.widgets._toast import Toast

from cttop.ui.app import CttopApp
from cttop.ui.commands import COMMAND, COMMENT, CONTINUED, INDENT, CommandBlock, shell_lines, split_comment
from cttop.ui.keys.order import TYPED_AHEAD
from cttop.ui.screens.confirm import ConfirmScreen
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import confirm_shown, joined, screen_text, wait_for, wait_live

# 300 characters, one of them a single quoted word far wider than any dialog, with double quotes and
# a '#' inside quotes (not a comment), an escaped space and a double-quoted word.
LONG = ("ip netns exec cttop-lab-router nft 'add rule inet cttop pre ip saddr { 10.0.0.1, 10.0.0.2, 10.0.0.3, "
        "10.0.0.4 } ip daddr 192.168.100.200 udp dport { 53, 5353, 853 } notrack comment \"cttop:0123abcd # x\"' "
        "--echo --handle \"a b  c\" plain\\ word " + "x" * 27 + " -- " + "tail " * 5 + "tail").strip()
WIDTHS = (24, 40, 66, 80, 106, 200)


def bash_words(block: str) -> list[str]:
    """The words bash reads from ``block`` pasted after a printf that prints each one."""
    out = subprocess.run(["bash", "-c", "printf '%s\\0' " + block], capture_output=True, text=True, check=True)
    return out.stdout.split("\0")[:-1]


def test_the_long_command_is_300_characters_and_one_command() -> None:
    assert len(LONG) == 300 and split_comment(LONG) == (LONG, "")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_long_command_wraps_with_a_marker_and_joining_the_lines_gives_it_back(width: int) -> None:
    lines = shell_lines([LONG], width)
    assert len(lines) > 1
    assert [line.kind for line in lines] == [COMMAND] + [CONTINUED] * (len(lines) - 1)
    for line in lines:
        assert len(line.text) <= width, line
    for line in lines[:-1]:
        assert line.text.endswith("\\"), line  # the visible continuation
    assert any(line.text.startswith(INDENT) for line in lines[1:])  # between words: indented
    assert joined(lines) == [LONG]
    assert bash_words("\n".join(line.text for line in lines)) == shlex.split(LONG)


@pytest.mark.parametrize("width", [30, 80, 200])
def test_a_command_that_fits_is_one_line_as_it_is(width: int) -> None:
    cmd = "conntrack -D -p udp --dport 53"  # 30 characters
    assert shell_lines([cmd], width) == [(cmd, COMMAND)]


def test_a_comment_goes_on_its_own_line_above_its_command_and_never_runs() -> None:
    cmd = "ip netns exec ns1 nft list table inet cttop > /etc/nftables.d/cttop.nft"
    commands = [f"{cmd}   # with a 'delete table' header at the top of the file, so it loads idempotently",
                "# ... and 12 more like these, one per flow",
                "printf '%s\\n' '# not a comment: quoted' > /tmp/x"]
    for width in (30, 50, 80):
        lines = shell_lines(commands, width)
        kinds = [line.kind for line in lines]
        first_cmd = kinds.index(COMMAND)
        assert first_cmd > 0 and set(kinds[:first_cmd]) == {COMMENT}  # above its command
        for line in lines:
            if line.kind == COMMENT:
                assert line.text.startswith("# ") and "nft" not in line.text and len(line.text) <= width
            else:
                assert not line.text.lstrip().startswith("#")
        assert joined(lines) == [cmd, "printf '%s\\n' '# not a comment: quoted' > /tmp/x"]


@pytest.mark.parametrize("width", (24, 40, 80))
def test_the_block_pasted_into_bash_runs_the_commands_and_no_comment(width: int) -> None:
    commands = ["echo one two   # a long comment that wraps over lines; its tail says: echo TAIL-RAN",
                "# a comment alone: echo COMMENT-RAN",
                "echo 'three # four' " + "five " * 10]
    block = "\n".join(line.text for line in shell_lines(commands, width))
    out = subprocess.run(["bash", "-c", block], capture_output=True, text=True, check=True)
    assert out.stdout == "one two\nthree # four " + " ".join(["five"] * 10) + "\n"


def test_control_characters_are_escaped_and_a_newline_never_makes_a_second_command() -> None:
    (line,) = shell_lines(["echo 'a\x1b[2Jb\x07'"], 80)
    assert line == ("echo 'a\\x1b[2Jb\\x07'", COMMAND)
    # A name with a newline in it (a netns, a journal field) stays inside its one command.
    assert shell_lines(["sysctl -w x=1\nrm -rf /"], 80) == [("sysctl -w x=1\\x0arm -rf /", COMMAND)]
    assert shell_lines(["# why", "echo one"], 80) == [("# why", COMMENT), ("echo one", COMMAND)]


# --- the dialog ------------------------------------------------------------------------------

@dataclass
class ManyCommands:
    n: int

    def describe(self) -> str:
        return f"Run {self.n} commands"

    def warnings(self) -> list[str]:
        return ["a warning long enough to wrap at eighty columns, and then some more words to be sure"] * 3

    def commands(self) -> list[str]:
        return [f"ip netns exec ns1 nft 'add rule inet cttop pre ip saddr 10.0.0.{i} notrack comment "
                f"\"cttop:rule{i:02d}\"'" for i in range(self.n)]


async def open_dialog(pilot: Pilot[None], app: CttopApp, plan: ManyCommands,
                      results: list[bool | None]) -> ConfirmScreen:
    screen = ConfirmScreen(plan, "Run", headline="This deletes exactly 7 flows.")
    app.push_screen(screen, results.append)
    await pilot.pause()
    await pilot.pause()  # the body's height is capped after the first layout
    return screen


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_every_command_is_reachable_by_keys_and_enter_still_means_no(size: tuple[int, int]) -> None:
    plan = ManyCommands(40)
    app = fixed_app()
    results: list[bool | None] = []
    async with app.run_test(size=size) as pilot:
        await wait_live(pilot, app)
        screen = await open_dialog(pilot, app, plan, results)
        assert "This deletes exactly 7 flows." in screen_text(app)
        lines = screen.query_one(CommandBlock).lines()
        assert joined(lines) == plan.commands()  # one per line, all of them
        tail = lines[-1].text
        assert tail not in screen_text(app)  # forty rules do not fit: the end is below
        assert "more below" in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert tail in screen_text(app) and "No" in screen_text(app)
        assert "· end" in screen_text(app)
        await pilot.press("home")
        await pilot.pause()
        assert tail not in screen_text(app) and "Run 40 commands" in screen_text(app)
        top = screen.body.scroll_y
        await pilot.press("down", "pagedown")
        await pilot.pause()
        assert screen.body.scroll_y > top + 1
        await pilot.press("pageup", "up")
        await pilot.pause()
        assert screen.body.scroll_y == top
        assert screen.focused is not None and screen.focused.id == "no"  # scrolling never moved the focus
        await pilot.press("enter")
        await pilot.pause()
    assert results == [False]


async def test_the_mouse_wheel_scrolls_the_commands() -> None:
    app = fixed_app()
    results: list[bool | None] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        screen = await open_dialog(pilot, app, ManyCommands(12), results)
        body = screen.body
        x, y = body.region.x + 2, body.region.y + 2
        for _ in range(3):
            app.post_message(events.MouseScrollDown(None, x, y, 0, 1, 0, False, False, False, screen_x=x, screen_y=y))
        await pilot.pause()
        assert body.scroll_y > 0
        await pilot.press("escape")
        await pilot.pause()
    assert results == [False]


def fixed_app() -> CttopApp:
    return CttopApp(FixedSource(), interval=0.1)


async def test_a_toast_from_before_does_not_cover_the_dialog() -> None:
    """A notification left on screen (an undo with nothing to undo, then d at once) covered the last command and
    the buttons while Yes already worked: the dialog opens over no toast."""
    plan = ManyCommands(3)
    app = fixed_app()
    results: list[bool | None] = []
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        app.notify("cannot undo: nothing to undo in namespace cttop-lab-a4ed9d-router; nothing was changed",
                   severity="warning", timeout=30)
        await wait_for(pilot, lambda: "nothing to undo" in screen_text(app), "the toast")
        await open_dialog(pilot, app, plan, results)
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "nothing to undo" not in text and not app.screen.query(Toast), text
        assert "No" in text and "Yes" in text


@pytest.mark.parametrize("n", [3, 40])  # the text fits; the text is capped to fit (the notice takes from it)
async def test_a_key_typed_ahead_is_said_ignored_in_the_dialog_not_over_its_buttons(n: int) -> None:
    """`d` then `y` in one read: the y was dropped, but the toast saying so covered "No" and "Yes" (and the hint
    line) at 80x24. It is a line of the dialog now, above the buttons, which stay on screen."""
    app = fixed_app()
    results: list[bool | None] = []
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        ahead = list(XTermParser().feed("y"))  # stamped now, before the dialog is drawn
        screen = await open_dialog(pilot, app, ManyCommands(n), results)
        await wait_for(pilot, lambda: confirm_shown(app), "the dialog drawn")
        for event in ahead:
            app.post_message(event)
        await wait_for(pilot, lambda: screen.typed_ahead == 1, "the key typed ahead to be dropped")
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
        assert not app.screen.query(Toast) and results == []
        notice = next(i for i, line in enumerate(lines) if TYPED_AHEAD[:40] in line)
        buttons = screen.query_one("#confirm-buttons").region.y
        assert notice < buttons < len(lines) - 1
        assert "No" in lines[buttons] and "Yes" in lines[buttons]
        assert "y yes · n or Esc no" in lines[buttons + 1] or "scroll" in lines[buttons + 1]  # the box's last line
        await pilot.press("enter")
        await pilot.pause()
    assert results == [False]


async def test_c_says_what_it_copied_in_the_dialog_not_over_its_buttons() -> None:
    app = fixed_app()
    results: list[bool | None] = []
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        screen = await open_dialog(pilot, app, ManyCommands(40), results)
        await wait_for(pilot, lambda: confirm_shown(app), "the dialog drawn")
        await pilot.press("c")
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
        assert not app.screen.query(Toast)
        assert any("copied 40 command lines" in line for line in lines)
        assert "No" in lines[screen.query_one("#confirm-buttons").region.y]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_footer_under_a_confirmation_shows_its_keys_not_the_main_screens(size: tuple[int, int]) -> None:
    """It showed "Space Tag / Filter g Group…", none of which does anything under the dialog."""
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await wait_live(pilot, app)
        await open_dialog(pilot, app, ManyCommands(3), [])
        footer = screen_text(app).splitlines()[-1]
        assert "y Yes" in footer and "n No" in footer, footer
        assert not any(k in footer for k in ("/ Filter", "g Group", "s Sort", "Space Tag")), footer
