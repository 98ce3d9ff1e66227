"""The fill panel's alarm levels (80 % and 95 %, in words as well as colour) and what it says without events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App, ComposeResult

from cttop.live.frame import LIMITED, LIVE, Frame
from cttop.ui.app import CttopApp
from cttop.ui.fill import FillPanel

MAX = 1000

BASE = Frame(seq=1, time=0.0, label="t", live=True, phase=LIVE, note="", interval=1.0, count=0, maximum=MAX,
             buckets=250, flows=0, evictable=0, counted=0, history=(), forecast="stable", new_rate=3.0,
             gone_rate=2.0, pressure=(), states=(), group="src", top_by="entries", top=(), lost=0, bad=0,
             refreshed=None)


class PanelApp(App[None]):
    CSS_PATH = CttopApp.CSS_PATH  # the panel's colours live in the app's stylesheet

    def compose(self) -> ComposeResult:
        yield FillPanel(id="fill")


@pytest.mark.parametrize(("count", "alarm", "level"), [
    (799, "", "good"), (800, " HIGH", "warn"), (949, " HIGH", "warn"),
    (950, " CRITICAL", "bad"), (999, " CRITICAL", "bad"), (1000, " FULL!", "bad"),
])
async def test_fill_levels_in_words_and_colour(count: int, alarm: str, level: str) -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)):
        panel = app.query_one(FillPanel)
        text = panel.draw(replace(BASE, count=count), 60, 8)
        first = text.plain.splitlines()[0]
        assert first.startswith(f"{count:,} / {MAX:,} {count / MAX * 100:.1f}%{alarm}")
        for word in (" HIGH", " CRITICAL", " FULL!"):
            assert (word in first) == (word == alarm)
        pct_start = len(f"{count:,} / {MAX:,}")
        spans = [s for s in text.spans if s.start == pct_start]
        assert spans and spans[0].style == panel.style(level)
        assert panel.style("good") != panel.style("warn") != panel.style("bad")


async def test_without_events_the_rates_are_unknown_not_zero() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 10)):
        panel = app.query_one(FillPanel)
        live = panel.draw(replace(BASE, count=10), 60, 8).plain
        limited = panel.draw(replace(BASE, count=10, phase=LIMITED, new_rate=0.0, gone_rate=0.0), 60, 8).plain
    assert "new 3.0/s  gone 2.0/s" in live
    assert "new/gone unknown (no events)" in limited and "0/s" not in limited
