"""Every command-palette entry of cttop's own says which keys do the same, as the help screen names them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.sources.replay.playback import ReplaySource
from cttop.ui.app import CttopApp
from tests.conftest import delete_netns, make_netns
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import wait_live
from tests.unit.test_replay import DUMP, EVENTS, Builder


def ours(app: CttopApp) -> dict[str, str]:
    """cttop's palette entries (not Textual's own): title -> the keys in its trailing parentheses."""
    titles = {e.title for e in app.main.palette()}
    out = {}
    for cmd in app.get_system_commands(app.screen):
        m = re.fullmatch(r"(.+) \((.+)\)", cmd.title)
        name = m.group(1) if m else cmd.title
        if name in titles:
            out[name] = m.group(2) if m else ""
    assert set(out) == titles
    return out


async def test_every_view_entry_shows_its_keys() -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        keys = ours(app)
    assert all(keys.values()), [t for t, k in keys.items() if not k]
    assert keys["Help"] == "? F1" and keys["Filter flows"] == "/ F3 F4" and keys["Clear filter"] == "Esc"
    assert keys["Longer interval"] == "+" and keys["Shorter interval"] == "-" and keys["Tag flow"] == "Space"
    assert keys["Rank groups by"] == "b" and keys["Journal"] == "J"


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("cttop-palette")
    try:
        yield name
    finally:
        delete_netns(name)


@pytest.mark.kernel
async def test_the_write_entries_show_their_keys_too(ns: str) -> None:
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        keys = ours(app)
    assert all(keys.values()), [t for t, k in keys.items() if not k]
    assert {k: keys[k] for k in ("Delete flows", "Flush flows", "NOTRACK", "NOTRACK rules", "Undo last change",
                                 "Tunables", "Doctor", "Namespaces")} == {
        "Delete flows": "d", "Flush flows": "F", "NOTRACK": "n", "NOTRACK rules": "T", "Undo last change": "u",
        "Tunables": "t", "Doctor": "D", "Namespaces": "N"}


async def test_the_replay_entries_show_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "short.cttop"
    Builder(path).at(0).keyframe(DUMP[:8]).at(1).events(EVENTS[:10]).at(2).close()
    app = CttopApp(ReplaySource(str(path), paused=True), interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        keys = ours(app)
    assert all(keys.values()), [t for t, k in keys.items() if not k]
    assert {k: v for k, v in keys.items() if k.startswith("Replay")} == {
        "Replay: pause / play": "p F5", "Replay: back 10 s": ",", "Replay: forward 10 s": ".",
        "Replay: back 60 s": "<", "Replay: forward 60 s": ">", "Replay: slower": "[", "Replay: faster": "]"}
