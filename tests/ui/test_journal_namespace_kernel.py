"""J lists the changes made in the namespace in view, and `a` toggles every namespace's: on a real journal
holding changes made by `cttop set` in two throwaway namespaces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.containers import Vertical

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.screens.journal import JournalScreen
from tests.conftest import delete_netns, make_netns, run_cttop, sh
from tests.ui.helpers import screen_text, wait_for, wait_live

pytestmark = pytest.mark.kernel
UDP = "net.netfilter.nf_conntrack_udp_timeout"


@pytest.fixture
def two_ns() -> Iterator[tuple[str, str]]:
    a = make_netns("cttop-jns")
    try:
        b = make_netns("cttop-jns")
        try:
            yield a, b
        finally:
            delete_netns(b)
    finally:
        delete_netns(a)


def set_udp_timeout(ns: str, value: int, state: Path) -> str:
    """Change the namespace's UDP timeout with the CLI; the id of the journaled change."""
    r = run_cttop("set", f"udp_timeout={value}", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    assert sh("sysctl", "-n", UDP, netns=ns).strip() == str(value)
    return str(json.loads(run_cttop("journal", "--json", "--state-dir", str(state)).stdout)[-1]["id"])


def shown(app: CttopApp) -> list[str]:
    screen = app.screen
    assert isinstance(screen, JournalScreen)
    return [r.id for r in screen.items]


def title(app: CttopApp) -> str:
    return str(app.screen.query_one("#journal-box", Vertical).border_title)


async def test_J_shows_the_namespace_in_view_and_a_toggles_all(two_ns: tuple[str, str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = two_ns
    state = tmp_path / "state"
    mine = [set_udp_timeout(here, 11, state), set_udp_timeout(here, 12, state)]
    theirs = set_udp_timeout(there, 13, state)
    monkeypatch.setenv("CTTOP_STATE_DIR", str(state))
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    app = CttopApp(LiveSource(NetnsSpec(name=here)), interval=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items),
                       "the journal screen")
        assert shown(app) == mine[::-1]  # newest first
        assert title(app).startswith(f"Journal · namespace {here} · ")
        text = screen_text(app)
        assert theirs not in text and there not in text and "a All namespaces" in text

        await pilot.press("a")
        await wait_for(pilot, lambda: len(shown(app)) == 3, "every namespace's changes")
        assert shown(app) == [theirs, *mine[::-1]]
        assert title(app).startswith("Journal · all namespaces · ")
        text = screen_text(app)
        assert theirs in text and there in text and "a This namespace" in text

        await pilot.press("a")
        await wait_for(pilot, lambda: len(shown(app)) == 2, "the namespace's own changes again")
        assert shown(app) == mine[::-1] and title(app).startswith(f"Journal · namespace {here} · ")


async def test_J_in_a_namespace_with_no_changes_says_so_and_a_finds_the_others(
        two_ns: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = two_ns
    state = tmp_path / "state"
    theirs = set_udp_timeout(there, 13, state)
    monkeypatch.setenv("CTTOP_STATE_DIR", str(state))
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    app = CttopApp(LiveSource(NetnsSpec(name=here)), interval=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen)
                       and f"no changes in namespace {here} journaled in" in screen_text(app),
                       "the empty journal screen")
        assert shown(app) == []
        await pilot.press("a")
        await wait_for(pilot, lambda: shown(app) == [theirs], "the other namespace's change")
