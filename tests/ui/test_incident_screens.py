"""E, X, R and b on a fixed source: the event stream (filter, pause, losses where they happened), the
expectation screen in a replay, reverse DNS against a fake nameserver with the resolver's own lookups
hidden (and no frame waiting for one that does not answer), and the heaviest panel ranked by new flows a second."""

from __future__ import annotations

import threading

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.live.resolve import Resolver
from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE
from cttop.table.packing import flow_key
from cttop.ui.screens.events import LOST_TEXT, EventsScreen, EventStream
from cttop.ui.screens.expect import ExpectScreen
from tests.dns_server import FakeDNS
from tests.ui.fixed_source import FixedSource, row, v4
from tests.ui.helpers import app_on, open_events, screen_text, wait_for, wait_live

CLIENT, SERVER = v4("10.9.0.1"), v4("192.0.2.99")


async def test_e_streams_events_with_filter_pause_and_losses() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(120, 30)) as pilot:
        await open_events(pilot, app)
        assert app.collector._log is not None  # the collector keeps a log only while the screen is open
        src.push([(EV_NEW, row(7001, 17, CLIENT, SERVER, 5001, 53)),
                  (EV_UPDATE, row(7002, 6, CLIENT, SERVER, 5002, 443, pstate=3)),
                  (EV_DESTROY, row(7001, 17, CLIENT, SERVER, 5001, 53))])
        await wait_for(pilot, lambda: "10.9.0.1:5002" in screen_text(app), "the three events")
        text = screen_text(app)
        lines = [ln for ln in text.splitlines() if "10.9.0.1:500" in ln]
        assert [ln.split()[1] for ln in lines] == ["NEW", "UPDATE", "DESTROY"]
        assert "udp" in lines[0] and "192.0.2.99:53" in lines[0] and "ESTABLISHED" in lines[1]
        assert "new " in text and "destroy " in text and "lost 0" in text  # the rate line
        # a loss: marked in the stream between what came before and after it
        src.lose()
        src.push([(EV_NEW, row(7003, 17, CLIENT, SERVER, 5003, 53))])
        await wait_for(pilot, lambda: "10.9.0.1:5003" in screen_text(app), "the event after the loss")
        rows = screen_text(app).splitlines()
        at = next(i for i, ln in enumerate(rows) if LOST_TEXT in ln)
        assert at < next(i for i, ln in enumerate(rows) if "10.9.0.1:5003" in ln)
        assert at > next(i for i, ln in enumerate(rows) if "10.9.0.1:5001" in ln)
        assert "lost 1" in screen_text(app)
        # the filter: what is already logged is filtered at once, losses stay
        await pilot.press("slash")
        for ch in "tcp":
            await pilot.press(ch)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "10.9.0.1:5001" not in screen_text(app), "the filter applied")
        text = screen_text(app)
        assert "10.9.0.1:5002" in text and "10.9.0.1:5003" not in text and LOST_TEXT in text
        # pause: nothing new is drawn until resumed
        await pilot.press("p")
        src.push([(EV_NEW, row(7004, 6, CLIENT, SERVER, 5004, 443, pstate=1))])
        await wait_for(pilot, lambda: app.collector._log is not None and app.collector._log.total >= 5,
                       "the collector logged it")
        await pilot.pause(0.3)
        assert "10.9.0.1:5004" not in screen_text(app) and "PAUSED" in screen_text(app)
        await pilot.press("p")
        await wait_for(pilot, lambda: "10.9.0.1:5004" in screen_text(app), "the stream after resuming")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back to the main screen")
        await wait_for(pilot, lambda: app.collector._log is None, "the log dropped")


async def test_e_scrolls_back_and_end_follows() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(100, 20)) as pilot:
        await open_events(pilot, app)
        src.push([(EV_NEW, row(8000 + i, 17, CLIENT, SERVER, 10000 + i, 53)) for i in range(60)])
        await wait_for(pilot, lambda: ":10059 " in screen_text(app), "the newest event at the bottom")
        assert ":10000 " not in screen_text(app)
        stream = app.screen.query_one(EventStream)
        await pilot.press("home")
        await wait_for(pilot, lambda: ":10000 " in screen_text(app), "the oldest event")
        assert stream.back > 0 and ":10059 " not in screen_text(app)
        await pilot.press("end")
        await wait_for(pilot, lambda: ":10059 " in screen_text(app), "following again")


async def test_x_in_a_replay_says_there_are_no_expectations() -> None:
    app = app_on(FixedSource())  # no namespace behind it, as in a replay
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ExpectScreen), "the expectation screen")
        await wait_for(pilot, lambda: "holds no expectations" in screen_text(app), "the note")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back")


async def test_r_shows_names_and_hides_the_resolvers_own_lookups() -> None:
    dns = FakeDNS({"10.0.1.10": "client-a.example.", "192.0.2.80": "web.example."})
    resolvers: list[Resolver] = []

    def make() -> Resolver:
        resolvers.append(Resolver(["127.0.0.1"], port=dns.port))
        return resolvers[-1]

    src = FixedSource()
    src.spec = NetnsSpec()  # type: ignore[attr-defined]  # the view watches cttop's own namespace, as the resolver
    app = app_on(src)
    app.new_resolver = make
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_live(pilot, app)
            assert "web.example" not in screen_text(app)  # off by default
            assert "· names" not in screen_text(app).splitlines()[0]
            await pilot.press("R")
            await wait_for(pilot, lambda: "web.example" in screen_text(app), "names in the flow list")
            assert "client-a.example" in screen_text(app)
            assert "every 0.1s · names" in screen_text(app).splitlines()[0]  # the header says names are on
            assert "192.0.2.80:443" not in screen_text(app)  # shown by name now
            # one of the resolver's own lookups enters the table: hidden from the list...
            own_port = next(iter(resolvers[0].own_ports))
            own = row(9900, 17, v4("127.0.0.1"), v4("127.0.0.1"), own_port, dns.port)
            other = row(9901, 17, v4("127.0.0.1"), v4("127.0.0.1"), 40999, dns.port)
            src.rows += [own, other]
            src.push([(EV_NEW, own), (EV_NEW, other)])
            app.set_filter("dst 127.0.0.1")  # both would fit on screen
            await wait_for(pilot, lambda: ":40999" in screen_text(app), "another process's lookup")
            assert f":{own_port} " not in screen_text(app)
            # held apart from the table (in no list, state or group), and counted as the kernel counts it
            table = app.collector.table
            assert len(app.main.flow_list.records) == 1 and app.collector.flow(flow_key(own)) is None
            assert table.held == len(table) + 1 and table.get(flow_key(other)) is not None
            # ...and from the event stream
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), "the event screen")
            src.push([(EV_UPDATE, own), (EV_UPDATE, other)])
            await wait_for(pilot, lambda: ":40999" in screen_text(app), "the other lookup's event")
            assert f":{own_port} " not in screen_text(app)
            await pilot.press("escape")
            # R again: off, names gone, the resolver's threads stopped
            await pilot.press("R")
            await wait_for(pilot, lambda: "web.example" not in screen_text(app), "addresses again")
            assert "· names" not in screen_text(app).splitlines()[0]
            assert app.resolver is None and all(not t.is_alive() for t in resolvers[0]._threads)
    finally:
        dns.close()


async def test_resolve_setting_starts_with_names(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDNS({"192.0.2.80": "web.example."})
    monkeypatch.setattr("cttop.ui.app.Resolver", lambda: Resolver(["127.0.0.1"], port=dns.port))
    app = app_on(FixedSource(), resolve=True)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_live(pilot, app)
            await wait_for(pilot, lambda: "web.example" in screen_text(app), "names from the start")
    finally:
        dns.close()


async def test_b_ranks_the_heaviest_by_new_flows_a_second() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        for _ in range(3):  # entries → bytes → packets → new flows a second
            await pilot.press("b")
        assert app.top_by == "new-rate"
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.top_by == "new-rate",
                       "a frame ranked by new flows")
        for i in range(30):  # the fixed clock moves only when told: 30 new flows over 3 seconds
            src.clock += 0.1
            src.push([(EV_NEW, row(6000 + i, 17, CLIENT, SERVER, 20000 + i, 53))])
        await wait_for(pilot, lambda: bool(app.shown_frame and app.shown_frame.top
                                           and app.shown_frame.top[0].key == CLIENT), "the creator first")
        text = screen_text(app)
        assert "Heaviest source by new flows/s" in text and "10.9.0.1" in text and "/s" in text
        assert all(g.new_rate for g in app.shown_frame.top)  # type: ignore[union-attr]
        await pilot.press("b")
        assert app.top_by == "entries"


async def test_r_never_waits_for_a_nameserver_that_does_not_answer() -> None:
    gate = threading.Event()
    dns = FakeDNS({"192.0.2.80": "web.example."}, gate=gate)  # holds every answer until the gate opens
    src = FixedSource()
    src.spec = NetnsSpec()  # type: ignore[attr-defined]
    app = app_on(src)
    # 10 s for each answer, far more than a frame takes: one that waited for an answer would find the lookup
    # over (given up on) once drawn
    app.new_resolver = lambda: Resolver(["127.0.0.1"], port=dns.port, timeout=10)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            try:
                await wait_live(pilot, app)
                await pilot.press("R")
                await wait_for(pilot, lambda: bool(dns.queries), "the first lookup asked, and held")
                # frames go on while no answer comes: a new flow shows, by its address, its lookup still out
                new = row(9950, 17, v4("192.0.2.80"), SERVER, 4000, 53)
                src.rows.append(new)
                src.push([(EV_NEW, new)])
                app.set_filter("sport 4000")
                await wait_for(pilot, lambda: "192.0.2.80:4000" in screen_text(app), "the new flow, by address")
                assert app.resolver is not None and v4("192.0.2.80") in app.resolver._pending
                assert "web.example" not in screen_text(app)
            finally:
                gate.set()  # the answers come, and the workers can stop
            await wait_for(pilot, lambda: "web.example:4000" in screen_text(app), "the name once answered")
    finally:
        dns.close()


async def test_e_at_80_columns_keeps_each_entry_on_one_line() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot, app)
        src.push([(EV_NEW, row(7101, 17, CLIENT, SERVER, 5101, 53))])
        src.lose()
        src.push([(EV_NEW, row(7102, 17, CLIENT, SERVER, 5102, 53))])
        await wait_for(pilot, lambda: "10.9.0.1:5102" in screen_text(app), "the event after the loss")
        rows = screen_text(app).splitlines()
        at = next(i for i, ln in enumerate(rows) if "events lost here" in ln)
        # the loss, cut to the width like the events around it: the next line is the next event
        assert "10.9.0.1:5101" in rows[at - 1] and "10.9.0.1:5102" in rows[at + 1], rows
        assert len(rows[at].rstrip()) <= 80
