"""The filter in force is exactly what was typed, or the last one committed, labelled as such; an error keeps
its column at any width. On a fixed source (the keys that change the kernel are in test_filter_exact_kernel)."""

from __future__ import annotations

import pytest

from cttop.filter import FilterError, parse
from cttop.ui.app import CttopApp
from cttop.ui.filterbar import PROMPT, FilterBar, error_line
from cttop.ui.flows import FlowsPanel
from cttop.ui.heaviest import HeaviestPanel
from tests.ui.fixed_source import fixed_rows
from tests.ui.helpers import app_on, screen_text, set_filter, wait_for, wait_live, wait_view

ROWS = fixed_rows()
ALL = len(ROWS)
# Long enough that "at column N" fell off the end of the old message at 120 columns.
AND_AFTER_OR = "tcp or udp and port 53"
# The error in the last columns of an 80-column screen: no room after the caret for the message.
FAR_RIGHT = "udp dport 53 and src net 10.0.0.0/8 and not assured and dport 70000"


def error_of(text: str) -> FilterError:
    with pytest.raises(FilterError) as e:
        parse(text)
    return e.value


def filter_lines(app: CttopApp) -> tuple[str, str]:
    """The filter line and the error line under it, as rendered."""
    lines = screen_text(app).splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(PROMPT))
    return lines[i], lines[i + 1]


def flows_title(app: CttopApp) -> str:
    return str(app.main.query_one(FlowsPanel).border_title)


# --- the error line, whatever the width ----------------------------------------------------------

@pytest.mark.parametrize("width", [40, 80, 120, 200])
@pytest.mark.parametrize("caret", [None, 0, 8, 19, 60, 69, 78, 150])
def test_the_error_line_keeps_column_and_caret_and_wraps_the_message(width: int, caret: int | None) -> None:
    message = "'and' after 'or' needs parentheses (tcpdump reads 'a or b and c' as '(a or b) and c')"
    lines = error_line(message, 42, caret, width).plain.split("\n")
    assert len(lines) <= 2 and all(len(line) <= width for line in lines)
    assert "column 42: " in lines[0]
    if caret is not None and caret < width:
        assert lines[0].index("^") == caret
    else:
        assert "^" not in lines[0]  # scrolled out of sight: no caret pointing at the wrong character
    shown = " ".join([lines[0].split("column 42: ", 1)[1].rstrip(" ^"), *(line.strip() for line in lines[1:])])
    assert message.replace(" ", "").startswith(shown.removesuffix("…").replace(" ", ""))
    assert shown == message or shown.endswith("…")
    assert shown == message or width < 80  # two lines hold it from 80 columns on, wherever the caret is


@pytest.mark.parametrize(("size", "text"), [((80, 24), AND_AFTER_OR), ((120, 30), AND_AFTER_OR),
                                            ((80, 24), FAR_RIGHT), ((120, 30), FAR_RIGHT),
                                            ((80, 24), "port 99999")])
async def test_the_rendered_error_keeps_its_column_at_80_and_120_columns(size: tuple[int, int], text: str) -> None:
    error = error_of(text)
    app = app_on()
    async with app.run_test(size=size) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *text)
        await pilot.pause(0.2)
        typed, under = filter_lines(app)
    assert typed.startswith(PROMPT + text)
    assert f"column {error.column}: " in under
    assert under.index("^") == len(PROMPT) + error.column - 1  # under the character the error is at
    assert len(under.rstrip()) <= size[0]


# --- what is in force --------------------------------------------------------------------------

async def test_typing_never_applies_a_prefix_of_the_text() -> None:
    app = app_on()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp dport 53 ")
        await wait_view(pilot, app)
        assert app.view.filter == "udp dport 53 "  # valid: exactly what was typed
        seen = set()
        for ch in "and ((":
            await pilot.press(ch)
            await pilot.pause()
            seen.add(app.view.filter)
        await wait_view(pilot, app)
        assert app.main.query_one(FilterBar).input.value == "udp dport 53 and (("
        # "udp dport 53 and" is an error too: no step applied the "udp dport 53" the text starts with.
        assert seen == {""}
        assert len(app.main.flow_list.records) == ALL
        assert "showing: no filter (the typed filter has an error)" in flows_title(app)
        await pilot.press("enter")  # Enter does not commit an error
        assert app.view.filter == "" and app.main.query_one(FilterBar).committed == ""
        _, under = filter_lines(app)
        assert f"column {error_of('udp dport 53 and ((').column}: " in under  # still shown, back on the list


@pytest.mark.parametrize(("text", "fixed"), [("port 99999", "port 9999"),
                                           ("tcp or udp and port 53", "(tcp or udp) and port 53")])
async def test_a_bad_filter_shows_the_last_committed_one_labelled(text: str, fixed: str) -> None:
    app = app_on()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp", "enter")
        await wait_view(pilot, app)
        udp = sorted(app.main.flow_list.records)
        assert "filter: udp" in flows_title(app) and len(udp) < ALL
        await pilot.press("slash", *text)  # / selects the old text: typing replaces it
        await wait_view(pilot, app)
        assert app.view.filter == "udp" and sorted(app.main.flow_list.records) == udp
        assert "showing: udp (the typed filter has an error)" in flows_title(app)
        assert "showing: udp" in screen_text(app)
        await pilot.press(*["backspace"] * len(text), *fixed)  # valid again: exactly what was typed
        await wait_view(pilot, app)
        assert app.view.filter == fixed and "showing" not in flows_title(app)


async def test_a_heaviest_group_is_committed() -> None:
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("g", "g")  # dport groups
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == "dport", "dport")
        app.main.query_one(HeaviestPanel).focus()
        await pilot.press("enter")
        await wait_view(pilot, app)
        assert app.view.filter == "tcp dport 443"
        await pilot.press("slash", "end", *" and (")
        await wait_view(pilot, app)
        assert app.view.filter == "tcp dport 443"
        assert "showing: tcp dport 443 (the typed filter has an error)" in flows_title(app)


async def test_escape_clears_the_error_and_the_committed_filter() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp", "enter", "slash", *"tcp or")
        await wait_view(pilot, app)
        assert app.view.filter == "udp"
        await pilot.press("escape")
        await wait_view(pilot, app)
        bar = app.main.query_one(FilterBar)
        assert app.view.filter == "" and bar.error is None and bar.committed == "" and not bar.display
        assert len(app.main.flow_list.records) == ALL and "showing" not in flows_title(app)


# --- an empty list says why --------------------------------------------------------------------

async def test_a_filter_matching_nothing_says_so() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp port 9999")
        assert len(app.main.flow_list.records) == 0
        assert "No flow matches udp port 9999" in screen_text(app)
        await pilot.press("escape")
        await wait_view(pilot, app)
        assert "No flow matches" not in screen_text(app)
