"""A flow whose timeout counted down to nothing while the flow is still held shows "?", not "0s": traffic
renewed its timer since the last dump (packets do, with no event), or the kernel has yet to reap it."""

from __future__ import annotations

from cttop.ui.app import CttopApp
from cttop.ui.detail import DetailScreen
from tests.ui.fixed_source import FixedSource, row, v4
from tests.ui.helpers import screen_text, wait_for, wait_frame_after, wait_live

CLIENT, SERVER = v4("10.9.0.1"), v4("192.0.2.99")


def line_of(app: CttopApp, sport: int) -> list[str]:
    lines = [ln for ln in screen_text(app).splitlines() if f"10.9.0.1:{sport} " in ln]
    assert len(lines) == 1, screen_text(app)
    return lines[0].split()


async def test_a_countdown_that_ran_out_shows_a_question_mark() -> None:
    src = FixedSource([row(7001, 17, CLIENT, SERVER, 5001, 53, timeout=5),
                       row(7002, 17, CLIENT, SERVER, 5002, 53, timeout=600)])
    app = CttopApp(src, interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        assert line_of(app, 5001)[-2] == "5s"  # the line ends: timeout, bytes
        assert app.shown_frame is not None
        seq = app.shown_frame.seq
        src.clock += 10  # ten seconds on, no dump and no event: the kernel still holds both
        await wait_frame_after(pilot, app, seq)
        await wait_for(pilot, lambda: line_of(app, 5001)[-2] == "?", "the ran-out timeout as ?")
        assert line_of(app, 5002)[-2] == "9m50"  # a countdown with time left still counts down
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        if "5001" not in screen_text(app):
            await pilot.press("escape", "down", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        text = screen_text(app)
        assert "? (5 s read 10s ago ran out" in " ".join(text.split()), text
