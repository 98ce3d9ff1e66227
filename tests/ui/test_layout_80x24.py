"""At 80×24, an SSH session's terminal: what the screens say keeps its meaning (the cursor row in sight, the
sorted column shown, each cut text with its point whole). On the fixed source; the tunables from a fixed list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from textual.pilot import Pilot

from cttop.actions import tunables
from cttop.actions.tunables import TunableState
from cttop.kernel.netns import NetnsSpec
from cttop.model import EV_DESTROY, EV_NEW
from cttop.ui.app import CttopApp
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.remedy_base import PERSIST_DIR_ENV
from cttop.ui.screens.tunables import TunablesScreen, short_name
from tests.ui.fixed_source import FixedSource, row, v4
from tests.ui.helpers import app_on, open_events, screen_text, wait_for, wait_live, wait_view

SIZE = (80, 24)
CLIENT, SERVER = v4("10.9.0.1"), v4("192.0.2.99")


def fixed_tunables() -> list[TunableState]:
    """Forty timeouts, every other one read-only with a reason that wraps: the detail under the list is two
    lines, then four, as the cursor goes down."""
    why = "a reason long enough to take a second line and a third one in the detail under the list, at 80 columns"
    out = []
    for i in range(40):
        t = tunables.catalogue_entry(f"nf_conntrack_t{i:02d}_timeout")
        assert t is not None
        out.append(TunableState(t, "30", i % 2 == 0, "" if i % 2 == 0 else why, None))
    return out


async def tunables_open(pilot: Pilot[None], app: CttopApp, states: list[TunableState],
                        monkeypatch: pytest.MonkeyPatch) -> TunablesScreen:
    """The tunables screen over the live view, listing ``states``."""
    monkeypatch.setattr(tunables, "states", lambda spec: states)
    await wait_live(pilot, app)
    screen = TunablesScreen(NetnsSpec())
    await app.push_screen(screen)
    await wait_for(pilot, lambda: len(screen.items) == len(states), "the tunables listed")
    return screen


async def test_the_tunables_cursor_row_stays_in_sight_above_the_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    states = fixed_tunables()
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await tunables_open(pilot, app, states, monkeypatch)
        for i in range(len(states)):
            if i:
                await pilot.press("down")
            await pilot.pause()
            name = short_name(states[i].name)
            # The list's row (the detail names it in full: nf_conntrack_tNN_timeout).
            assert re.search(rf"│\s+{name}\s+30\b", screen_text(app)), f"row {i} ({name}) hidden:\n{screen_text(app)}"


def flow_lines(app: CttopApp) -> tuple[str, list[str]]:
    """The flow list's header and its flows' lines, as drawn."""
    lines = screen_text(app).splitlines()
    at = next(i for i, line in enumerate(lines) if "proto state" in line)
    return lines[at], [line for line in lines[at + 1:] if re.match(r"\s+(tcp|udp|icmp)", line)]


@pytest.mark.parametrize(("sort", "reverse", "header", "first"), [
    ("packets", False, "pkts▼", "1.8k"),  # flow 1006: 900 + 880 packets
    ("mark", True, "mark/zone▼", "0x10/0"),
])
async def test_the_sorted_column_shows_with_its_arrow(sort: str, reverse: bool, header: str, first: str) -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        while app.view.sort != sort:
            await pilot.press("s")
        if reverse:
            await pilot.press("r")
        await wait_view(pilot, app)
        await pilot.press("home")  # the cursor kept its flow, wherever that went: to the top
        await pilot.pause()
        top, flows = flow_lines(app)
        assert header in top, top
        assert first in flows[0].split(), flows[0]
        assert " bytes " not in top + " "  # its place, the least needed column at 80


@pytest.mark.parametrize("group", ["pair", "src-dport"])
async def test_a_pair_group_shows_both_ends_and_the_arrow(group: str) -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        while app.group != group:
            await pilot.press("g")
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == group
                       and bool(app.shown_frame.top), f"a frame ranked by {group}")
        await pilot.pause()
        assert app.shown_frame is not None
        shown = app.shown_frame.top[:3]  # the panel's rows at 80×24
        assert any(len(g.text) >= 19 for g in shown)  # 10.0.1.10 → tcp/443, 10.0.2.20 → 198.51.100.5: cut before
        text = screen_text(app)
        for g in shown:
            assert f" {g.text} " in text, f"{g.text} cut:\n{text}"
        # The title names the right-hand columns only where they are drawn.
        panel = app.main.query_one(HeaviestPanel)
        title = str(panel.border_title)
        assert (" · total B p" in title) == (panel.columns(app.shown_frame) is not None), title
        if group == "pair":
            assert panel.columns(app.shown_frame) is None and "B p" not in title and "B/s" not in title


@pytest.mark.parametrize(("text", "point"), [
    ("src net 10.77.1.2/8", "(the network is 10.0.0.0/8)"),
    ("tcp and udp or host 10.77.1.2/24", "for a network use 'net 10.77.1.0/24'"),
])
async def test_a_filter_errors_suggestion_is_on_screen(text: str, point: str) -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *text)
        await wait_for(pilot, lambda: "column " in screen_text(app), "the error line")
        lines = screen_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("filter: "))
        under = " ".join(line.strip() for line in lines[at + 1:at + 3])  # the error and where it goes on
        assert point in under, "\n".join(lines[at:])


async def test_the_event_rate_line_says_what_the_filter_found_in_full() -> None:
    src = FixedSource()
    app = app_on(src)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot, app)
        src.push([(EV_NEW, row(7001, 17, CLIENT, SERVER, 5001, 53)),
                  (EV_NEW, row(7002, 6, CLIENT, SERVER, 5002, 443, pstate=3)),
                  (EV_DESTROY, row(7001, 17, CLIENT, SERVER, 5001, 53))])
        await wait_for(pilot, lambda: "10.9.0.1:5002" in screen_text(app), "the events")
        await pilot.press("slash", *"udp and dst 192.0.2.99 and dport 53", "enter")
        await wait_for(pilot, lambda: "10.9.0.1:5002" not in screen_text(app), "the filter applied")
        await pilot.press("p")  # paused, the line is longest
        lines = screen_text(app).splitlines()
        rates = next(i for i, line in enumerate(lines) if "PAUSED" in line)
        assert lines[rates].rstrip().endswith("lost 0"), lines[rates]
        assert lines[rates + 1].rstrip() == "2 of the last 3 events match", lines[rates + 1]


async def test_the_journal_shows_both_ends_of_a_lab_namespace_and_the_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netns = "cttop-lab-0a1b2c-router"
    record = {"id": "0a1b2c3d", "kind": "sysctl", "description": "set nf_conntrack_udp_timeout=31", "commands": [],
              "netns": netns, "netns_inode": 4026532000, "undoable": True, "user": "root", "uid": 0,
              "before": {"values": {"nf_conntrack_udp_timeout": "30"}},
              "after": {"values": {"nf_conntrack_udp_timeout": "31"}}}
    tmp_path.chmod(0o700)
    (tmp_path / "journal.jsonl").write_text(json.dumps(record) + "\n")
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items),
                       "the journal listed")
        await pilot.pause()
        line = next(ln for ln in screen_text(app).splitlines() if "0a1b2c3d  sysctl" in ln)
        # Both ends, after the status, in the room the other columns leave (11 here: a 12th column overflowed the
        # table by one, which then scrolled sideways); never clipped by the edge with no ellipsis.
        assert re.search(r"undoable\s+cttop\S*…\S*outer\s", line), line


async def test_the_status_line_keeps_the_drift_count_when_paused() -> None:
    app = app_on(FixedSource(label="cttop-lab-0a1b2c-router"), title="cttop lab: udp-storm")  # as the lab
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        app.main.query_one(StatusLine).drift = 2  # as the drift check finds it (keys/remedy.py)
        await pilot.press("p")
        await pilot.pause()
        status = screen_text(app).splitlines()[0]
        assert "PAUSED every 0.1s · drift: 2 " in status, status  # the old line ended at "drift:"
        assert re.search(r" · cttop-\S*…\S*-router · PAUSED", status), status  # the namespace, both ends


@pytest.mark.parametrize(("name", "file"), [("nf_conntrack_udp_timeout", "/etc/sysctl.d/90-cttop.conf"),
                                            ("hashsize", "/etc/modprobe.d/cttop.conf")])
async def test_the_persist_box_names_the_edited_values_file_whole(
        name: str, file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PERSIST_DIR_ENV, raising=False)  # the real paths, the longest: nothing is applied here
    t = tunables.catalogue_entry(name)
    assert t is not None
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        screen = await tunables_open(pilot, app, [TunableState(t, "30", True, "", None)], monkeypatch)
        await pilot.press("e")
        await wait_for(pilot, lambda: screen.editing is not None, "the edit line")
        await pilot.press("tab", "space")
        await wait_for(pilot, lambda: "persist: YES" in screen_text(app), "persist ticked")
        assert re.search(rf"persist: YES, in {file}\s+│", screen_text(app)), screen_text(app)  # whole, alone


async def test_the_heaviest_title_is_never_cut() -> None:
    # At 80 columns "Heaviest destination by entries · total B p" had no room: it read "· tot…"; and "Heaviest
    # source → destination by entr…".
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        groups = []
        while app.group not in groups:
            groups.append(app.group)
            await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == app.group,
                           f"a frame of {app.group}")
            await pilot.pause()
            [line] = [ln for ln in screen_text(app).splitlines() if " by entries" in ln]
            title = line[line.index("─", 40) + 1:].split("─")[0]  # the right-hand panel's
            assert "…" not in title, title
            assert title.endswith(("entries", " · total B p", " · B/s p/s")), title
            await pilot.press("g")
        assert {"dst", "dport"} <= set(groups)


async def test_a_paused_heaviest_title_keeps_its_reason_whole() -> None:
    """Paused, a new group or ranking waits for the resume: said whole ("(resume to updat…" was cut at 80)."""
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("p")
        for key in ("g", "g", "g", "b"):
            await pilot.press(key)
            await pilot.pause()
            [line] = [ln for ln in screen_text(app).splitlines() if " by " in ln and "─" in ln[40:]]
            title = line[line.index("─", 40) + 1:].split("─")[0]
            assert "…" not in title and title.endswith((" (resume to update)", " (paused)")), title
