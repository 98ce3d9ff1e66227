"""The help's two-column rows (keys, counters, the filter grammar's table) wrap within their column at 80
columns and wider: a meaning's further lines hang under the meaning, never back at the left edge, where
"tuples); an address," read as a term of the grammar."""

from __future__ import annotations

import pytest

from cttop.ui.screens.help import HelpScreen
from tests.ui.helpers import app_on, screen_text, wait_for, wait_live


def box_lines(text: str) -> list[str]:
    """The help box's inside, a line each (the whole help fits in a tall terminal)."""
    return [line.split("│")[1][1:].rstrip() for line in text.splitlines() if line.count("│") >= 2]


@pytest.mark.parametrize("width", [80, 120])
async def test_help_rows_wrap_within_their_column(width: int) -> None:
    app = app_on()
    async with app.run_test(size=(width, 200)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause(0.2)
        lines = box_lines(screen_text(app))
    start = next(i for i, line in enumerate(lines) if line.startswith("    host ADDR"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Combine with"))
    table = lines[start:end]
    # every line of the table is a term's (at 4) or its meaning's (in the column), or blank between rows
    assert all(not line or line.startswith("    ") for line in table), table
    at = next(i for i, line in enumerate(table) if "an address," in line or "(both" in line)
    column = table[0].index("ADDR is")
    for line in table[at + 1:at + 3]:
        if line.strip() and not line.startswith("    src ADDR"):
            assert line.startswith(" " * column), line  # under the meaning, not under the term
    # the keys' rows too: a long meaning (b's) goes on under itself
    keys_end = next(i for i, line in enumerate(lines) if not line)
    assert all(line.startswith("  ") for line in lines[1:keys_end]), lines[:keys_end]
