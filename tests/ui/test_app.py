"""The app on a fixed source: every key does what the help says, and the screen shows the snapshot."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from textual.widget import Widget

from cttop.live.counters import FILL, PRESSURE
from cttop.live.resolve import Resolver
from cttop.model import EV_NEW, R_ID, R_OPKTS, state_key
from cttop.table.packing import record_key, unpack
from cttop.ui.app import CttopApp, FrameReady, MainScreen, help_sections
from cttop.ui.detail import DetailScreen
from cttop.ui.fill import FillPanel
from cttop.ui.filterbar import FilterBar
from cttop.ui.flows import FlowList, FlowsPanel
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.pressure import PressurePanel
from cttop.ui.screens.confirm import ConfirmScreen
from cttop.ui.screens.help import HelpScreen, key_names
from cttop.ui.states import StatesPanel
from tests.ui.fixed_source import FixedSource, fixed_rows, row, v4
from tests.ui.helpers import (
    app_on,
    screen_text,
    set_filter,
    wait_for,
    wait_frame_after,
    wait_live,
    wait_view,
)

ROWS = fixed_rows()
UDP = [r for r in ROWS if r[2] == 17]
PANELS = (StatusLine, FillPanel, PressurePanel, StatesPanel, HeaviestPanel, FlowsPanel, FlowList)


def flow_ids(app: CttopApp) -> list[int]:
    fl = app.main.flow_list
    return [unpack(r)[R_ID] for r in fl.records]  # conntrack ids (the list's keys add the tuple)


async def test_main_screen_shows_the_snapshot() -> None:
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        text = screen_text(app)
        ids = flow_ids(app)
    assert "25 / 262,144" in text
    assert "Flows 25 " in text
    assert "buckets 65,536" in text and "max/buckets 4.0" in text
    evictable = sum(1 for r in ROWS if not r[4] & 4)
    assert f"evictable {evictable} ({evictable / 25 * 100:.0f}%)" in text
    # The fixed clock never moves, so no rate can be known: "?", never a made-up 0/s.
    assert re.search(r"clash_resolve\s+\?\s+total 3", text) and "0/s" not in text
    assert sorted(ids) == sorted(r[0] for r in ROWS)
    assert "10.0.1.10:40001" in text and "192.0.2.80:443" in text
    assert "snat" in text  # flow 1010 is source-NATed


async def test_filter_as_you_type_and_escape_clears() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash")
        assert app.focused is app.main.query_one(FilterBar).input
        await pilot.press(*"udp")
        await wait_view(pilot, app)
        assert sorted(flow_ids(app)) == sorted(r[0] for r in UDP)
        assert f"Flows {len(UDP)} of 25" in screen_text(app)
        await pilot.press("escape")
        await wait_view(pilot, app)
        assert app.view.filter == "" and len(flow_ids(app)) == 25
        assert not app.main.query_one(FilterBar).display


async def test_a_filters_count_and_its_total_come_from_one_index() -> None:
    """The frame and the index are built at different moments: "M of T" must not mix them (M > T was seen)."""
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp")
        app.toggle_pause()  # no newer frame redraws the title meanwhile
        assert app.shown_frame is not None
        app.shown_frame = replace(app.shown_frame, flows=len(UDP) - 1)  # a frame from before the index
        app.main.title_flows()
        await pilot.pause()
        assert f"Flows {len(UDP)} of 25 " in screen_text(app)


async def test_bad_filter_shows_its_column_and_keeps_the_view() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp", "enter")  # committed
        await wait_view(pilot, app)
        before = flow_ids(app)
        await pilot.press("slash", "end", *" and dport x")  # / selects the text: End keeps it
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "column 15" in text  # "udp and dport x": the x
        caret_line = next(line for line in text.splitlines() if "column 15" in line)
        assert caret_line.index("^") == len("filter: ") + 14
        assert app.view.filter.strip() == "udp"  # the last filter committed
        assert "showing: udp (the typed filter has an error)" in text
        assert flow_ids(app) == before


async def test_sort_cycles_and_reverses() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("s")  # src -> dst
        await wait_view(pilot, app)
        assert app.view.sort == "dst"
        dsts = [(unpack(r)[1], unpack(r)[6], unpack(r)[8]) for r in app.main.flow_list.records]
        assert dsts == sorted(dsts)
        for _ in range(3):  # dst -> proto -> state -> timeout
            await pilot.press("s")
        await wait_view(pilot, app)
        timeouts = [unpack(r)[13] for r in app.main.flow_list.records]
        assert app.view.sort == "timeout" and timeouts == sorted(timeouts, reverse=True)
        assert "by timeout ▼" in screen_text(app)
        await pilot.press("r")
        await wait_view(pilot, app)
        timeouts = [unpack(r)[13] for r in app.main.flow_list.records]
        assert timeouts == sorted(timeouts)
        assert "by timeout ▲" in screen_text(app)


async def test_group_key_cycles_and_enter_filters_to_the_group() -> None:
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("g", "g")  # src -> dst -> dport
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == "dport", "dport")
        assert "Heaviest dest port by entries" in screen_text(app)
        top = app.shown_frame.top[0]
        assert (top.text, top.entries) == ("tcp/443", sum(1 for r in ROWS if r[2] == 6 and r[8] == 443))
        app.main.query_one(HeaviestPanel).focus()
        await pilot.press("enter")
        await wait_view(pilot, app)
        assert app.view.filter == "tcp dport 443"
        assert len(flow_ids(app)) == top.entries
        assert app.focused is app.main.flow_list


async def test_tab_moves_between_the_list_and_the_heaviest_panel_only() -> None:
    """A committed filter keeps the filter line on screen: Tab went there, selecting its text, and the next key
    replaced the filter ("filter: n"). Tab and shift-Tab reach only the two panels; / reaches the filter."""
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("tab", "enter")  # the heaviest group's filter, committed, and back to the list
        await wait_view(pilot, app)
        bar = app.main.query_one(FilterBar)
        committed = app.view.filter
        assert committed and bar.display
        heaviest, flows = app.main.query_one(HeaviestPanel), app.main.flow_list
        for key, to in (("tab", heaviest), ("tab", flows), ("shift+tab", heaviest), ("shift+tab", flows)):
            await pilot.press(key)
            assert app.focused is to, key
        await pilot.press("tab", "s")  # a key of the view, never a letter of the filter
        await wait_view(pilot, app)
        assert app.view.sort == "dst" and app.view.filter == bar.input.value == committed
        await pilot.press("slash", "tab")  # from the filter line, back to the list
        assert app.focused is flows and app.view.filter == committed


async def test_space_tags_and_x_clears() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        first, second = (record_key(r) for r in app.main.flow_list.records[:2])
        await pilot.press("space", "space")
        assert app.main.flow_list.tagged == {first, second}
        text = screen_text(app)
        assert "2 tagged" in text
        assert sum(1 for line in text.splitlines() if line.lstrip().startswith("*")) >= 1
        await pilot.press("up", "space")
        assert app.main.flow_list.tagged == {first}
        await pilot.press("x")
        assert not app.main.flow_list.tagged and "tagged" not in screen_text(app)


async def test_pause_freezes_the_view_and_resume_catches_up() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("p")
        assert "PAUSED" in screen_text(app)
        shown = app.shown_frame
        new = row(9000, 17, v4("10.7.7.7"), v4("10.6.6.6"), 999, 53)
        src.rows.append(new)
        src.push([(EV_NEW, new)])
        await wait_for(pilot, lambda: app._frame is not None and app._frame.flows == 26, "the collector to see it")
        await pilot.pause(0.3)
        assert app.shown_frame is shown and "25 / 262,144" in screen_text(app)
        assert 9000 not in flow_ids(app)
        await pilot.press("p")
        await wait_for(pilot, lambda: 9000 in flow_ids(app), "the new flow after resume")
        text = screen_text(app)
        assert "PAUSED" not in text and "26 / 262,144" in text


async def test_help_lists_every_key_and_counter() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        for _, bindings in help_sections():
            for b in bindings:
                assert f"{key_names(b.key):<16}{b.description}" in text
        assert "Replay" not in text and "``" not in text and "::" not in text  # no timeline keys, no reST
        for name in list(PRESSURE) + list(FILL):
            assert name in text
        assert "tcp port 80 and not src net" in text  # the filter grammar's examples
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_every_key_has_a_letter_and_the_palette_has_every_action() -> None:
    for _, bindings in help_sections() + help_sections(replay=True):
        for b in bindings:
            keys = b.key.split(",")
            if any(re.fullmatch(r"f\d+", k) for k in keys):
                assert any(not re.fullmatch(r"f\d+", k) for k in keys), f"{b.key}: an F-key needs a letter alias"
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        titles = {c.title for c in app.get_system_commands(app.screen)}
    for wanted in ("Help", "Filter flows", "Clear filter", "Next group key", "Rank groups by", "Next sort column",
                   "Reverse sort", "Pause / resume", "Longer interval", "Shorter interval", "Tag flow", "Clear tags",
                   "Flow detail", "Quit"):
        assert any(t.startswith(wanted) for t in titles), wanted


async def test_enter_opens_the_detail_of_the_flow_under_the_cursor() -> None:
    app = app_on()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        fid = flow_ids(app)[2]
        await pilot.press("down", "down", "enter")
        assert isinstance(app.screen, DetailScreen)
        text = screen_text(app)
        r = next(r for r in ROWS if r[0] == fid)
        assert re.search(rf"\bid\s+{fid}\b", text)
        assert state_key(r).split(":")[1] in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_modal_screens_hold_back_refreshes() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("question_mark")
        shown = app.shown_frame
        new = row(9100, 17, v4("10.7.7.8"), v4("10.6.6.6"), 999, 53)
        src.rows.append(new)
        src.push([(EV_NEW, new)])
        await wait_for(pilot, lambda: app._frame is not None and app._frame.flows == 26, "the collector to see it")
        await pilot.pause(0.3)
        assert app.shown_frame is shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.flows == 26, "catch-up")


async def test_80x24_keeps_every_panel() -> None:
    app = app_on()
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_live(pilot, app)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        screen = app.screen.region
        for cls in PANELS:
            w: Widget = app.main.query_one(cls)
            region = w.region
            assert region.width > 0 and region.height > 0, cls.__name__
            assert screen.contains_region(region), cls.__name__
        assert app.main.flow_list.scrollable_content_region.height >= 5
        text = screen_text(app)
        for title in ("Fill", "Pressure", "States", "Heaviest", "Flows 25"):
            assert title in text


async def test_kernel_strings_are_not_markup() -> None:
    app = app_on(FixedSource(label="[bold red]evil[/]"), title="[link=x]t[/link]")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        text = screen_text(app)
    assert "[bold red]evil[/]" in text and "[link=x]t[/link]" in text


class FakePlan:
    def describe(self) -> str:
        return "delete 3 flows from [red]ns[/]"

    def commands(self) -> list[str]:
        return ["conntrack -D -s 10.0.0.1"]

    def warnings(self) -> list[str]:
        return ["cannot be undone"]


@pytest.mark.parametrize("keys, answer", [(["enter"], False), (["escape"], False), (["n"], False), (["y"], True),
                                          (["tab", "enter"], True)])
async def test_confirmation_defaults_to_no(keys: list[str], answer: bool) -> None:
    app = app_on()
    results: list[bool | None] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        app.push_screen(ConfirmScreen(FakePlan(), "Delete flows"), results.append)
        await wait_for(pilot, lambda: "Delete flows" in screen_text(app), "the confirmation")
        text = screen_text(app)
        # Markup shown as typed; the command alone on its line, to paste.
        assert "delete 3 flows from [red]ns[/]" in text and "│ conntrack -D -s 10.0.0.1   " in text
        assert "cannot be undone" in text
        await pilot.press(*keys)
        await pilot.pause()
    assert results == [answer]


async def test_interval_keys_step_the_refresh() -> None:
    app = CttopApp(FixedSource(), interval=1.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("plus")
        assert app.collector.interval == 2.0
        await pilot.press("minus", "minus")
        assert app.collector.interval == 0.5
        seq = app.shown_frame.seq
        await wait_frame_after(pilot, app, seq)
        assert "every 0.5s" in screen_text(app)


def test_frame_ready_is_a_bare_signal() -> None:
    # The message carries nothing: the newest frame is read from the slot when handled.
    assert not vars(FrameReady())


async def test_notes_printed_before_the_screen_are_said_again_on_it() -> None:
    """The lab prints what the person should know (say, that it names Docker containers by id) just before
    the full screen covers the terminal: the view says it again, as a toast, with no markup read into it."""
    app = app_on(notes=["a [b]note[/b] from the lab"])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        assert [(str(n.message), n.markup) for n in app._notifications] == [("a [b]note[/b] from the lab", False)]


async def test_names_on_from_the_start_show_in_the_header() -> None:
    """--resolve (or resolve = true): the resolver is on before the screen is made, and the header says so."""
    app = app_on()
    app.new_resolver = lambda: Resolver(["127.0.0.1"], port=9)  # no answers needed: the header is the point
    app.set_resolve(True)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_live(pilot, app)
            assert "· names" in screen_text(app).splitlines()[0]
    finally:
        app.set_resolve(False)


async def test_the_heaviest_title_says_whether_its_columns_are_rates_or_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two dumps' counters the right-hand columns are bytes and packets a second, not totals: the title
    says so, so "1.7kB  28p/s" is not read as a total and a rate."""
    from cttop.live import dump_schedule

    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 0.3)  # periodic dumps, so rates, soon
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        title = str(app.main.query_one(HeaviestPanel).border_title)
        assert "B/s" not in title and title.endswith(" · total B p")  # one dump: totals, said so
        src.rows = [r[:R_OPKTS] + tuple(c + 1000 if c is not None else None for c in r[R_OPKTS:R_OPKTS + 4])
                    + r[R_OPKTS + 4:] for r in src.rows]  # every flow moved since...
        src.clock += 5.0  # ...five seconds ago, on the source's clock
        await wait_for(pilot, lambda: str(app.main.query_one(HeaviestPanel).border_title).endswith(" · B/s p/s"),
                       "the rates' title")
        assert app.shown_frame is not None and any(r.bytes_rate for r in app.shown_frame.top)
        # Ranked by bytes, the rows show the totals they are ranked by: the title says totals, not rates.
        await pilot.press("b")
        await wait_for(pilot, lambda: str(app.main.query_one(HeaviestPanel).border_title).startswith(
            "Heaviest source by bytes") and "…" not in str(app.main.query_one(HeaviestPanel).border_title),
            "ranked by bytes")
        assert str(app.main.query_one(HeaviestPanel).border_title).endswith(" · total B p")
