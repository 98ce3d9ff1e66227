"""Toasts never cover the filter line or its error line."""

from __future__ import annotations

from textual.widgets._toast import Toast

from cttop.ui.app import CttopApp
from cttop.ui.filterbar import FilterBar
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import screen_text, wait_for, wait_live


async def test_a_toast_stands_above_the_filter_bar_and_its_error() -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp dport", "space", "(")  # unfinished: the error line shows too
        bar = app.main.query_one(FilterBar)
        await wait_for(pilot, lambda: bar.region.height >= 2, "the filter's error line")
        for i in range(3):
            app.notify(f"toast number {i} with enough words to take two lines in a toast", timeout=30)
        await wait_for(pilot, lambda: len(app.screen.query(Toast)) >= 3, "the toasts")
        await pilot.pause(0.2)
        toasts = list(app.screen.query(Toast))
        for toast in toasts:
            assert toast.region.bottom <= bar.region.y, (toast.region, bar.region)
        typed = screen_text(app).splitlines()[bar.region.y]
        assert "udp dport (" in typed
