"""NO_COLOR: the view runs, monochrome, on an empty table and a full one (it crashed once a list note showed: a padding
segment without a style broke Textual's monochrome filter)."""

from __future__ import annotations

import pytest

from cttop.ui.app import CttopApp
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import screen_text, set_filter, wait_live


@pytest.mark.parametrize("rows", ["empty", "rows"])
async def test_the_view_runs_without_colour(monkeypatch: pytest.MonkeyPatch, rows: str) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # read by Textual when the app is made
    app = CttopApp(FixedSource([] if rows == "empty" else None), interval=0.1)  # type: ignore[arg-type]
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.pause(0.3)  # frames drawn through the filter
        if rows == "rows":
            await set_filter(pilot, app, "dport 1")  # a list left empty by a filter: its note, padded
            await pilot.pause(0.3)
        text = screen_text(app)
        assert "Flows" in text and "Fill" in text, text
        if rows == "rows":
            assert "No flow matches dport 1" in text, text
