"""A damaged journal in the TUI: it starts and stays up, J lists the damaged record as such (not its
text) and names the lines left out, and u refuses the damaged record."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.keys.remedy import RemedyKeys
from cttop.ui.screens.journal import JournalScreen
from tests.conftest import delete_netns, make_netns, sh
from tests.ui.helpers import said, screen_text, wait_for, wait_live

pytestmark = pytest.mark.kernel
UDP = "nf_conntrack_udp_timeout"


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("hj-tui")
    try:
        yield name
    finally:
        delete_netns(name)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str) -> Path:
    """A journal with a line that is a list, one that is not UTF-8, and a record whose value is out of range
    (with a terminal escape in its text, which a damaged record never shows)."""
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    forged = {"id": "aaaa0001", "kind": "sysctl", "description": "\x1b]0;pwned\x07", "commands": ["\x1b[31mx"],
              "netns": ns, "netns_inode": os.stat(f"/run/netns/{ns}").st_ino, "undoable": True,
              "before": {"values": {UDP: "-7"}}, "after": {"values": {UDP: "30"}}}
    (d / "journal.jsonl").write_bytes(b"[1,2,3]\n\xff\xfe\n" + json.dumps(forged).encode() + b"\n")
    monkeypatch.setenv("CTTOP_STATE_DIR", str(d))
    monkeypatch.setenv("CTTOP_PERSIST_DIR", str(tmp_path / "etc"))
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    return d


async def test_the_tui_starts_on_a_damaged_journal_and_j_shows_what_is_damaged(ns: str, state: Path) -> None:
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_live(pilot, app)
        app.main.group(RemedyKeys).check_drift()  # reads the journal, as at start
        await pilot.pause(0.3)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items),
                       "the journal screen")
        text = screen_text(app)
        assert "aaaa0001" in text and "damaged: " in text and "is not an integer in" in text
        assert "pwned" not in text
        await wait_for(pilot, lambda: sum("left out" in m for m in said(app)) == 2, "the lines left out")
        assert any("line 1 is not a JSON object" in m for m in said(app))
        assert any("line 2 is not UTF-8 text" in m for m in said(app))
        await pilot.press("u")
        await wait_for(pilot, lambda: any("is damaged in the journal" in m for m in said(app)), "the refusal")
        assert app.is_running
    assert sh("sysctl", "-n", f"net.netfilter.{UDP}", netns=ns).strip() == "30"
    assert len((state / "journal.jsonl").read_bytes().splitlines()) == 3  # nothing appended


async def test_the_lines_left_out_are_shown_at_start_once(ns: str, state: Path) -> None:
    """The view reads the journal as it starts (for drift): the lines it leaves out are said then, as toasts
    (stderr is not the person's screen under the TUI), and once, however often the journal is read again."""
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_live(pilot, app)
        await wait_for(pilot, lambda: sum("left out" in m for m in said(app)) == 2, "the lines left out")
        assert any(f"journal {state}/journal.jsonl: line 1 is not a JSON object" in m for m in said(app))
        assert any("line 2 is not UTF-8 text" in m for m in said(app))
        app.main.group(RemedyKeys).check_drift()  # read again
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items),
                       "the journal screen")
        await pilot.pause(0.3)
        assert sum("left out" in m for m in said(app)) == 2, said(app)
