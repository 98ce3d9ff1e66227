"""Text cut at 80 columns says so with an ellipsis, and the words that matter are not the ones cut: the journal's
namespace column (it was clipped by the screen's edge: 'names', 'cttop'), the event screen's scroll keys
('End follows' fell off), and the owners' 'local, no process' in the heaviest panel (cut in its middle)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cttop.model import EV_NEW
from cttop.table.aggregates import GroupRow
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.screens.journal import JournalScreen
from tests.ui.fixed_source import FixedSource, row, v4
from tests.ui.helpers import LAB_NS, app_on, one_flush_journal, open_events, screen_text, wait_for, wait_live


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = one_flush_journal(tmp_path / "state")
    monkeypatch.setenv("CTTOP_STATE_DIR", str(d))
    return d


async def test_the_journal_namespace_column_is_cut_with_an_ellipsis(state: Path) -> None:
    app = app_on()  # no namespace in view, as in a replay: every namespace's changes
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items), "the journal")
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
    header = next(line for line in lines if " status " in line).split("│")[1]
    record = next(line for line in lines if "aaaa0001" in line).split("│")[1]
    # the last column, title and value, ends in an ellipsis where it is cut, and is not clipped by the border
    title = header.split()[-1]
    assert title == "namespace" or title.endswith("…") and "namespace".startswith(title[:-1]), header
    cell = record.split()[-1]
    assert cell.endswith("…") or "…" in cell, record
    assert LAB_NS.startswith(cell.split("…")[0]), record


async def test_with_a_notrack_change_listed_the_journal_keeps_status_and_namespace(state: Path) -> None:
    """The widest kind and status: the namespace had no room at all and the status read "cannot be undo". Now
    the time gives up its year and seconds, the status is whole and the namespace is cut with an ellipsis (the
    detail names it whole). Made wider, the columns are fitted again."""
    with open(state / "journal.jsonl", "a") as f:
        f.write(json.dumps({"id": "aaaa0002", "kind": "notrack-remove", "description": "remove", "commands": [],
                            "netns": LAB_NS, "netns_inode": 4026532999, "undoable": False,
                            "before": {"groups": [{"id": "bbbb0001", "expr": "udp dport 53", "backend": "nft"}]}, "after": {}, "time": 1700000100.0, "user": "root",
                            "uid": 0}) + "\n")
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and len(app.screen.items) == 2,
                       "the journal")
        await pilot.pause(0.2)
        record = next(line for line in screen_text(app).splitlines() if "aaaa0002" in line).split("│")[1]
        assert "notrack-remove" in record and "cannot be undone" in record, record
        cell = record.split()[-1]
        assert "…" in cell and LAB_NS.startswith(cell.split("…")[0]), record  # cut, and saying so
        await pilot.resize_terminal(120, 30)
        await wait_for(pilot, lambda: any(LAB_NS in line for line in screen_text(app).splitlines()),
                       "the whole namespace once there is room")


async def test_the_event_screen_hint_keeps_its_scroll_keys_at_80_columns() -> None:
    src = FixedSource(label=LAB_NS)
    app = app_on(src)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_events(pilot, app)
        src.push([(EV_NEW, row(7001, 17, v4("10.9.0.1"), v4("192.0.2.9"), 5001, 53))])
        await pilot.pause(0.3)
        title = screen_text(app).splitlines()[0]
    assert "End follows" in title and "…" in title.split("End")[0], title  # the label gave up its middle
    assert "cttop-" in title and "router" in title, title


async def test_the_heaviest_panel_cuts_no_owner_words_at_their_end() -> None:
    app = app_on()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("p")  # paused: the frame drawn below stays
        await pilot.pause(0.2)
        frame = app.shown_frame
        assert frame is not None
        top = (GroupRow("local", "local, no process", 120, None, None, None),
               GroupRow("fwd", "forwarded", 60, None, None, None))
        panel = app.main.query_one(HeaviestPanel)
        panel.show(dataclasses.replace(frame, group="container", top=top, ranked_total=180))
        await pilot.pause(0.2)
        text = screen_text(app)
    assert "local,…" not in text and "…process" not in text
    assert "local, no" in text, text
