"""Remediation keys without a kernel: the NOTRACK expression for a flow, what help lists in read-only mode,
that a source with no namespace (a replay, the fixed source) offers no change at all, and the
confirmation's persist checkbox.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.widgets import Checkbox, Static
from textual.widgets._toast import Toast

from cttop.filter import compile_filter
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, AF_INET6, NO_PSTATE, Row
from cttop.termsafe import safe_line
from cttop.ui.app import CttopApp, help_sections
from cttop.ui.keys.remedy import RemedyKeys, notrack_expr, remedy_help
from cttop.ui.screens import notrack as notrack_screen
from cttop.ui.screens.confirm import NOTHING_TO_PERSIST, ConfirmScreen
from cttop.ui.screens.help import bindings_of
from cttop.ui.screens.journal import JournalScreen
from tests.hostile import OSC_TITLE, RAW_CONTROL, RED
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import screen_text, wait_for, wait_live


def row(proto: int, dst: str, dport: int, family: int = AF_INET) -> Row:
    src_b = socket.inet_pton(family, "10.0.0.1" if family == AF_INET else "fd00::1")
    dst_b = socket.inet_pton(family, dst)
    return (1, family, proto, NO_PSTATE, 0, src_b, dst_b, 40000, dport, dst_b, src_b, dport, 40000,
            30, 0, 0, 1, None, None, None, None, 0, 0)


def test_notrack_expr_names_the_service_and_parses() -> None:
    cases = {
        row(17, "10.1.0.53", 53): "udp dst 10.1.0.53 dport 53",
        row(6, "10.1.0.1", 443): "tcp dst 10.1.0.1 dport 443",
        row(132, "10.1.0.2", 3868): "sctp dst 10.1.0.2 dport 3868",
        row(1, "10.1.0.1", 8 << 8): "icmp dst 10.1.0.1",
        row(58, "fd00::2", 128 << 8, AF_INET6): "icmpv6 dst fd00::2",
        row(17, "fd00::53", 53, AF_INET6): "udp dst fd00::53 dport 53",
        row(47, "10.1.0.9", 0): "gre dst 10.1.0.9",
        row(33, "10.1.0.9", 5004): "dccp dst 10.1.0.9",  # NOTRACK cannot match dccp ports
        row(99, "10.1.0.9", 0): "proto 99 dst 10.1.0.9",
    }
    for r, expr in cases.items():
        assert notrack_expr(r) == expr
        assert compile_filter(expr).select([r]) == [r], expr  # the flow itself is among what it exempts


def test_help_leaves_out_the_write_keys_only_in_read_only() -> None:
    everything = {b.key for b in remedy_help(False)}
    looking = {b.key for b in remedy_help(True)}
    assert everything == {"d", "F", "t", "n", "T", "u", "J"} == {b.key for b in bindings_of(RemedyKeys)}
    assert looking == {"t", "T", "J"}
    sections = dict(help_sections(True))
    assert {b.key for b in sections["Remediation (changes hidden with --read-only)"]} == looking


async def test_a_source_without_a_namespace_offers_no_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    app = CttopApp(FixedSource(), interval=0.1)
    assert app.spec is None and not app.read_only
    async with app.run_test(size=(200, 30), notifications=True) as pilot:
        await wait_live(pilot, app)
        active = app.screen.active_bindings
        for key in ("d", "F", "n", "u", "t", "T"):
            assert key not in active
        assert "J" in active
        titles = {c.title.split(" (")[0] for c in app.get_system_commands(app.screen)}  # less the keys
        assert "Journal" in titles and not titles & {"Delete flows", "Flush flows", "Tunables", "NOTRACK"}
        before = app.screen
        for key in ("d", "F", "n", "u", "t", "T"):
            await pilot.press(key)
        assert app.screen is before
        # Pressed, each says why it does nothing: silence reads as a hang.
        said = [n.message for n in app._notifications]
        assert len(said) == 6 and all(m.endswith(": only on a live namespace (a replay has none to change)")
                                      for m in said), said
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen), "the journal screen")
        assert "u" not in app.screen.active_bindings  # nothing to undo in
        assert "Journal" in screen_text(app)


@dataclass
class FakePlan:
    text: str

    def describe(self) -> str:
        return self.text

    def commands(self) -> list[str]:
        return [f"do {self.text}"]

    def warnings(self) -> list[str]:
        return []


@pytest.mark.parametrize("keys, answer, persist", [
    (["y"], True, False),
    (["p", "y"], True, True),
    (["p", "p", "y"], True, False),
    (["p", "enter"], False, True),  # ticking leaves the focus on No
    (["p", "escape"], False, True),
    (["tab", "tab", "space", "y"], True, True),  # from No: Yes, then the checkbox (the text scrolls by keys)
])
async def test_the_persist_checkbox_picks_the_plan_and_keeps_no_the_default(
        keys: list[str], answer: bool, persist: bool) -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    results: list[bool | None] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        screen = ConfirmScreen(FakePlan("plain"), "NOTRACK", FakePlan("persisted"), "in /x")
        app.push_screen(screen, results.append)
        await pilot.pause()
        box = screen.query_one("#confirm-persist", Checkbox)
        assert str(box.label) == "also persist (p)" and not box.value
        assert str(screen.query_one("#confirm-persist-what", Static).render()) == "in /x"
        assert "do plain" in screen.text()
        await pilot.press(*keys[:-1])
        await pilot.pause()
        assert screen.persist == persist
        shown = "persisted" if persist else "plain"
        assert f"do {shown}" in screen.text()
        assert screen.shown.describe() == shown
        await pilot.press(keys[-1])
        await pilot.pause()
    assert results == [answer]


@pytest.mark.parametrize("why, said", [
    ("p: not offered in namespace lab: the nft file is the host's boot ruleset", "not offered in namespace lab"),
    ("", NOTHING_TO_PERSIST),  # a change that has no file (a delete)
])
async def test_without_a_persisted_plan_there_is_no_checkbox_and_p_says_why(why: str, said: str) -> None:
    """p once did nothing and said nothing where persisting is not offered (the README promises it for NOTRACK)."""
    app = CttopApp(FixedSource(), interval=0.1)
    results: list[bool | None] = []
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_live(pilot, app)
        screen = ConfirmScreen(FakePlan("plain"), "NOTRACK", persist_label=why)
        app.push_screen(screen, results.append)
        await pilot.pause()
        assert not screen.query("#confirm-persist") and said not in screen_text(app)
        await pilot.press("p")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert said in text and "No" in text and "Yes" in text and not app.screen.query(Toast)
        await pilot.press("enter")
        await pilot.pause()
    assert results == [False] and not screen.persist


def detail_text(screen: notrack_screen.NotrackRulesScreen) -> str:
    found = screen.query("#notrack-detail")
    return str(found.first(Static).render()) if found else ""


async def test_the_empty_notrack_screen_escapes_the_namespace_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no rules the detail names the namespace: a name is anyone's (``ip netns add``), so its control
    characters are escaped there as in the title, never drawn raw."""
    monkeypatch.setattr(notrack_screen, "rule_groups", lambda spec: [])
    name = f"lab{OSC_TITLE}{RED}\nTOTAL"
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_live(pilot, app)
        screen = notrack_screen.NotrackRulesScreen(NetnsSpec(name=name))
        app.push_screen(screen)
        await wait_for(pilot, lambda: "no cttop NOTRACK rules" in detail_text(screen), "the empty rules' detail")
        shown = detail_text(screen)
        assert RAW_CONTROL.search(shown) is None, repr(shown)
        assert shown == f"no cttop NOTRACK rules in namespace {safe_line(name)}"


async def test_a_worker_result_arriving_as_the_app_closes_is_dropped_not_raised() -> None:
    """The drift check and the datapath look end on worker threads and post their result, and the loading tick is
    a timer; closing, the status line was gone by then, and query_one's NoMatches ended the app with a traceback
    (a CI run's shutdown)."""
    from cttop.host.datapath import Findings
    from cttop.ui.header import StatusLine

    app = CttopApp(FixedSource(), interval=60.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await app.main.query_one(StatusLine).remove()
        app.main.group(RemedyKeys)._show_drift(3, None)
        app.main._show_host(Findings())
        app.main._tick_loading()  # its timer fires every 0.5 s: with the line gone, it failed 1 run in 3
        await pilot.pause()
        assert app.is_running
