"""A table at rest redraws nothing that stands still: a frame that would draw a panel or the status line as it
is replaces the last without a render, and one that changes them renders them."""

from __future__ import annotations

import pytest

from cttop.model import EV_NEW
from cttop.ui.fill import FillPanel
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.panel import Panel
from cttop.ui.pressure import PressurePanel
from cttop.ui.states import StatesPanel
from tests.ui.fixed_source import FixedSource, row, v4
from tests.ui.helpers import app_on, wait_for, wait_frame_after, wait_live

STILL = (StatusLine, PressurePanel, StatesPanel, HeaviestPanel)


async def test_frames_at_rest_render_no_panel_and_a_change_renders_it(monkeypatch: pytest.MonkeyPatch) -> None:
    renders: dict[str, int] = {}

    def counting(cls: type) -> None:
        real = cls.render

        def render(self):  # type: ignore[no-untyped-def]
            renders[type(self).__name__] = renders.get(type(self).__name__, 0) + 1
            return real(self)

        monkeypatch.setattr(cls, "render", render)

    counting(Panel)
    counting(StatusLine)
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.pause(0.5)  # the first frames' changes (rates from their second reading) drawn
        assert app.shown_frame is not None
        seq = app.shown_frame.seq
        before = dict(renders)
        for _ in range(5):
            assert app.shown_frame is not None
            await wait_frame_after(pilot, app, app.shown_frame.seq)
        assert app.shown_frame.seq >= seq + 5
        assert {n: renders.get(n, 0) - before.get(n, 0) for n in (c.__name__ for c in STILL)} == \
            {c.__name__: 0 for c in STILL}
        assert app.main.query_one(StatesPanel).frame is app.shown_frame  # kept, though not drawn again

        new = row(5000, 17, v4("10.9.9.9"), v4("10.8.8.8"), 1000, 53)
        src.rows.append(new)
        src.push([(EV_NEW, new)])
        states = renders.get("StatesPanel", 0)
        await wait_for(pilot, lambda: renders.get("StatesPanel", 0) > states, "the states panel drawn again")
        await wait_for(pilot, lambda: "26" in str(app.main.query_one(FillPanel).render()), "26 flows in the fill")
