"""E, paused: a filter typed then is applied to what the paused screen shows (it was kept for the resume, and the
screen went on showing every event under the new filter's line), and what came after the pause stays out."""

from __future__ import annotations

from cttop.model import EV_NEW
from tests.ui.fixed_source import FixedSource, row, v4
from tests.ui.helpers import app_on, open_events, screen_text, wait_for

CLIENT, SERVER = v4("10.9.0.1"), v4("192.0.2.99")


async def test_a_filter_typed_while_paused_filters_the_paused_view() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot, app)
        src.push([(EV_NEW, row(7001, 17, CLIENT, SERVER, 5001, 53)),
                  (EV_NEW, row(7002, 6, CLIENT, SERVER, 5002, 443, pstate=3)),
                  (EV_NEW, row(7003, 17, CLIENT, SERVER, 5003, 53))])
        await wait_for(pilot, lambda: "10.9.0.1:5003" in screen_text(app), "the three events")
        await pilot.press("p")
        # after the pause: logged underneath, never shown while paused, whatever the filter
        src.push([(EV_NEW, row(7004, 17, CLIENT, SERVER, 5004, 53))])
        await wait_for(pilot, lambda: app.collector._log is not None and app.collector._log.total >= 4,
                       "the collector logged it")
        await pilot.press("slash", *"udp", "enter")
        await wait_for(pilot, lambda: "10.9.0.1:5002" not in screen_text(app), "the filter applied while paused")
        text = screen_text(app)
        assert "10.9.0.1:5001" in text and "10.9.0.1:5003" in text, text
        assert "10.9.0.1:5004" not in text and "PAUSED" in text, text
        assert "2 of the last 3 events match" in text, text
        # cleared, still paused: the three again
        await pilot.press("slash", "ctrl+u", "enter")
        await wait_for(pilot, lambda: "10.9.0.1:5002" in screen_text(app), "the filter cleared while paused")
        assert "10.9.0.1:5004" not in screen_text(app)
        # resumed: the filter goes on, and what came meanwhile shows
        await pilot.press("slash", *"udp", "enter", "p")
        await wait_for(pilot, lambda: "10.9.0.1:5004" in screen_text(app), "the stream after resuming")
        assert "10.9.0.1:5002" not in screen_text(app) and "PAUSED" not in screen_text(app)
