"""Remediation from the TUI on a real namespace: every key is checked against the kernel afterwards
(conntrack -L, /proc/sys and nft inside the namespace), never against what cttop reports.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Static

from cttop.kernel.netns import NetnsSpec
from cttop.live import dump_schedule
from cttop.model import R_ID
from cttop.sources.live import LiveSource
from cttop.table.packing import record_key, unpack
from cttop.ui.app import CttopApp
from cttop.ui.commands import COMMENT, CommandBlock
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.keys.remedy import RemedyKeys
from cttop.ui.screens.confirm import ConfirmScreen
from cttop.ui.screens.help import HelpScreen, bindings_of, key_names
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.notrack import NotrackRulesScreen
from cttop.ui.screens.tunables import TunablesScreen
from tests.conftest import delete_netns, make_netns, sh
from tests.ui.helpers import (
    confirm_open,
    confirm_text,
    joined,
    journal_lines,
    said,
    screen_text,
    set_filter,
    wait_for,
    wait_live,
    yes_and_wait,
)

pytestmark = pytest.mark.kernel

UDP_TIMEOUT = "nf_conntrack_udp_timeout"


# --- the kernel, read without cttop ----------------------------------------------------------

def kernel_flows(ns: str) -> dict[int, str]:
    """conntrack id -> the line `conntrack -L -o id` prints for it."""
    out: dict[int, str] = {}
    for line in sh("conntrack", "-L", "-o", "id", netns=ns).splitlines():
        m = re.search(r"\bid=(\d+)", line)
        if m:
            out[int(m.group(1))] = line
    return out


def orig(line: str, key: str) -> str:
    """The first (original-tuple) value of ``key=`` in a conntrack line."""
    m = re.search(rf"\b{key}=(\S+)", line)
    assert m, (key, line)
    return m.group(1)


def proc_sys(ns: str, name: str) -> str:
    return sh("cat", f"/proc/sys/net/netfilter/{name}", netns=ns).strip()


def nft_cttop(ns: str) -> str:
    """cttop's nft table in the namespace, or '' when there is none."""
    return sh("nft", "list", "table", "inet", "cttop", netns=ns, check=False)


def send_udp(ns: str, dst: str, dport: int, sport: int) -> None:
    """One datagram from a fixed source port, over loopback inside the namespace (dst is on lo)."""
    code = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{dst}', {sport})); "
            f"s.sendto(b'x', ('{dst}', {dport}))")
    sh(sys.executable, "-c", code, netns=ns)


def tracked(ns: str, sport: int) -> int:
    """Entries the kernel has for traffic from this source port."""
    out = sh("conntrack", "-L", "-p", "udp", "--sport", str(sport), netns=ns, check=False)
    return sum(1 for line in out.splitlines() if line.startswith("udp"))


def populate(ns: str) -> None:
    def insert(*args: str) -> None:
        sh("conntrack", "-I", *args, netns=ns)

    for i in range(12):
        insert("-p", "tcp", "-s", f"10.0.0.{i % 3 + 1}", "-d", "10.1.0.1", "--sport", str(40000 + i),
               "--dport", "443", "--state", "ESTABLISHED", "-t", "3600", "-u", "SEEN_REPLY,ASSURED")
    for i in range(8):
        insert("-p", "udp", "-s", "10.0.0.9", "-d", "10.1.0.53", "--sport", str(50000 + i), "--dport", "53",
               "-t", "600")
    for i in range(4):
        insert("-p", "udp", "-s", "10.0.0.6", "-d", "10.1.0.54", "--sport", str(51000 + i), "--dport", "4789",
               "-t", "600")


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("cttop-remedy")
    try:
        populate(name)
        yield name
    finally:
        delete_netns(name)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The journal and persisted files go to a temp dir, never /var/lib or /etc."""
    d = tmp_path / "state"
    monkeypatch.setenv("CTTOP_STATE_DIR", str(d))
    monkeypatch.setenv("CTTOP_PERSIST_DIR", str(tmp_path / "etc"))
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    return d


def app_for(ns: str, read_only: bool = False) -> CttopApp:
    return CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2, read_only=read_only)


SIZE = (160, 40)


# --- driving the app -------------------------------------------------------------------------

def cursor_conntrack_id(app: CttopApp) -> int:
    rec = app.main.flow_list.cursor_record()
    assert rec is not None
    row = app.collector.flow(record_key(rec))
    assert row is not None
    return int(row[R_ID])


# --- delete and flush ------------------------------------------------------------------------

async def test_d_deletes_exactly_the_flow_under_the_cursor(ns: str, state: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """And the list loses it. The flows are made again with nf_conntrack_events=0, as flows made before anyone
    listened are, so no DESTROY comes; and no refresh is due for an hour (REFRESH_MIN): only the read cttop asks
    for after its change takes the flow out."""
    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 3600.0)
    sh("conntrack", "-F", netns=ns)
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_events=0", netns=ns)
    populate(ns)
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_events=2", netns=ns)
    before = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("down", "down")
        target = cursor_conntrack_id(app)
        await pilot.press("d")
        screen = await confirm_open(pilot, app)
        assert "cannot be undone" in confirm_text(screen) and "conntrack -D" in confirm_text(screen)
        rec = await yes_and_wait(pilot, app, state)
        await wait_for(pilot, lambda: target not in {unpack(r)[R_ID] for r in app.main.flow_list.records},
                       "the deleted flow out of the list")
        await wait_for(pilot, lambda: f"Flows {len(before) - 1} " in screen_text(app), "the title's count")
    after = kernel_flows(ns)
    assert target in before
    assert set(after) == set(before) - {target}
    assert rec["kind"] == "delete" and rec["undoable"] is False


async def test_d_deletes_exactly_the_tagged_flows(ns: str, state: Path) -> None:
    before = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        tagged = []
        for _ in range(3):
            tagged.append(cursor_conntrack_id(app))
            await pilot.press("space", "down")  # tag, then skip one
        await pilot.press("d")
        screen = await confirm_open(pilot, app)
        assert "Delete 3 selected flows" in confirm_text(screen)
        assert "This deletes these 3 flows, those still in the table." in screen_text(app)
        await yes_and_wait(pilot, app, state)
        await wait_for(pilot, lambda: not app.main.flow_list.tagged, "the deleted flows to be untagged")
    after = kernel_flows(ns)
    assert len(set(tagged)) == 3
    assert set(after) == set(before) - set(tagged)


async def test_d_on_tags_a_filter_now_hides_says_so_and_deletes_exactly_them(ns: str, state: Path) -> None:
    """Tags outlive a filter typed since: the dialog says how many of the flows it deletes the list behind it
    does not show, and deletes exactly the tagged ones."""
    before = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        tagged = await tag_flows(pilot, app, "udp dport 53", 2)
        await set_filter(pilot, app, "tcp")
        await pilot.press("d")
        screen = await confirm_open(pilot, app)
        assert screen.title_text == "Delete 2 tagged flows (2 not in the filtered list)"
        await yes_and_wait(pilot, app, state)
    assert set(kernel_flows(ns)) == set(before) - set(tagged)


async def test_F_with_a_filter_flushes_exactly_the_matching_flows(ns: str, state: Path) -> None:
    before = kernel_flows(ns)
    dns = {i for i, line in before.items() if line.startswith("udp") and orig(line, "dport") == "53"}
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp dport 53")
        await pilot.press("F")
        screen = await confirm_open(pilot, app)
        text = confirm_text(screen)
        assert "Flush the flows matching 'udp dport 53'" in text and ", 8 now" in text
        # What it takes is what matches on yes, not a list of 8: said so, not "exactly 8".
        assert "This deletes every flow the filter matches when you confirm: 8 flows now" in text
        assert "conntrack -D -p udp --dport 53" in text
        rec = await yes_and_wait(pilot, app, state)
    after = kernel_flows(ns)
    assert len(dns) == 8
    assert set(after) == set(before) - dns
    assert rec["kind"] == "flush"


async def test_F_without_a_filter_warns_with_the_count_and_No_changes_nothing(ns: str, state: Path) -> None:
    before = kernel_flows(ns)
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await pilot.press("F")
        screen = await confirm_open(pilot, app)
        text = confirm_text(screen)
        assert f"ALL {len(before)} flows" in text and "NAT'd sessions will break" in text
        assert "conntrack -F" in text
        await pilot.press("escape")  # Esc: no
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("F")
        await confirm_open(pilot, app)
        await pilot.press("enter")  # the focus is on No
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("d")
        await confirm_open(pilot, app)
        await pilot.press("enter")
        await pilot.press("d")
        await confirm_open(pilot, app)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert not [w for w in app.workers if w.group == "apply"]
    assert set(kernel_flows(ns)) == set(before)
    assert journal_lines(state) == []


async def test_F_names_the_kernel_count_and_reports_what_the_kernel_lost(ns: str, state: Path) -> None:
    udp = {i for i, line in kernel_flows(ns).items() if line.startswith("udp")}
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp")
        await pilot.press("F")
        await confirm_open(pilot, app)
        headline = f"This deletes every flow the filter matches when you confirm: {len(udp)} flows now, counted in the kernel."
        assert headline in screen_text(app)
        # The table moves while the dialog is open: the report says what the kernel did, and that it differs.
        for sport in (52000, 52001):
            sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.7", "-d", "10.1.0.53", "--sport", str(sport),
               "--dport", "53", "-t", "600", netns=ns)
        before = kernel_flows(ns)
        await yes_and_wait(pilot, app, state)
        await wait_for(pilot, lambda: any("kernel confirms" in n for n in said(app)), "the report")
    lost = len(before) - len(kernel_flows(ns))
    report = next(n for n in said(app) if "kernel confirms" in n)
    m = re.search(r"kernel confirms: flushed (\d+) flows matching 'udp'", report)
    assert m, report
    assert len(udp) == 12 and int(m.group(1)) == lost == 14
    assert "the confirmation named 12: the table changed in between" in report


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_n_on_a_group_with_four_rules_shows_the_four_and_End_reaches_the_last(ns: str, state: Path,
                                                                                    size: tuple[int, int]) -> None:
    app = app_for(ns)
    async with app.run_test(size=size) as pilot:
        await wait_live(pilot, app)
        heaviest = app.main.query_one(HeaviestPanel)
        await wait_for(pilot, lambda: bool(heaviest.rows), "the heaviest groups")
        heaviest.focus()
        await pilot.pause()
        assert heaviest.rows[heaviest.cursor].filter == "src 10.0.0.9"  # 8 flows: the heaviest source
        await pilot.press("n")
        confirm = await confirm_open(pilot, app)
        await pilot.pause()
        lines = confirm.query_one(CommandBlock).lines()
        rules = [c for c in joined(lines) if " 'add rule inet cttop " in c]
        assert len(rules) == 4
        last = lines[-1].text
        if size == (80, 24):
            assert last not in screen_text(app)  # below: the dialog says so and scrolls
            assert "more below" in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert last in screen_text(app) and confirm.focused is not None and confirm.focused.id == "no"
        await yes_and_wait(pilot, app, state)
    # What was shown is what the kernel got: each shown rule, and no other.
    ruleset = nft_cttop(ns)
    assert ruleset.count("notrack") == 4
    for cmd in rules:
        chain, rule = re.fullmatch(r".* 'add rule inet cttop (\w+) (.*)'", cmd).groups()  # type: ignore[union-attr]
        assert rule.replace('"', "") in ruleset.replace('"', ""), (chain, rule)


# --- tunables, undo, drift, journal ----------------------------------------------------------

async def open_tunables(pilot: Pilot[object], app: CttopApp) -> TunablesScreen:
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(app.screen, TunablesScreen) and bool(app.screen.items),
                   "the tunables")
    screen = app.screen
    assert isinstance(screen, TunablesScreen)
    return screen


async def edit(pilot: Pilot[object], screen: TunablesScreen, name: str, value: str) -> None:
    """Move to ``name``, open the edit line with e, type ``value`` over the old one, Enter."""
    names = [s.name for s in screen.items]
    table = screen.query_one(DataTable)
    await pilot.press(*["up"] * len(names), *["down"] * names.index(name))
    assert screen.items[table.cursor_row].name == name
    await pilot.press("e")
    field = screen.query_one("#tunables-input", Input)
    assert field.has_focus
    await pilot.press(*["backspace"] * (len(field.value) + 1), *value, "enter")


async def set_from_tunables(pilot: Pilot[object], app: CttopApp, ns: str, state: Path, name: str,
                            value: str) -> dict[str, object]:
    """t, edit ``name`` to ``value``, y: the change is in the kernel and journaled; returns its record."""
    screen = await open_tunables(pilot, app)
    await edit(pilot, screen, name, value)
    await confirm_open(pilot, app)
    rec = await yes_and_wait(pilot, app, state)
    assert proc_sys(ns, name) == value
    return rec


async def test_t_sets_a_timeout_u_undoes_it_and_drift_shows(ns: str, state: Path) -> None:
    old = proc_sys(ns, UDP_TIMEOUT)
    assert old == "30"
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        screen = await open_tunables(pilot, app)
        await edit(pilot, screen, UDP_TIMEOUT, "17")
        confirm = await confirm_open(pilot, app)
        assert "nf_conntrack_udp_timeout: 30 -> 17" in confirm_text(confirm)
        assert "sysctl -w net.netfilter.nf_conntrack_udp_timeout=17" in confirm_text(confirm)
        await yes_and_wait(pilot, app, state)
        assert proc_sys(ns, UDP_TIMEOUT) == "17"
        await wait_for(pilot, lambda: isinstance(app.screen, TunablesScreen)
                       and any(s.name == UDP_TIMEOUT and s.value == "17" for s in app.screen.items),
                       "the tunables screen to show the new value")

        # Someone else changes it: the tunables screen and the status line say so.
        sh("sysctl", "-qw", f"net.netfilter.{UDP_TIMEOUT}=25", netns=ns)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, TunablesScreen) and "drift!" in screen_text(app),
                       "the drift marker on the tunables screen")
        await pilot.press("escape")
        assert app.screen is app.main
        app.main.group(RemedyKeys).check_drift()
        await wait_for(pilot, lambda: "drift: 1 value changed since cttop set them" in screen_text(app),
                       "the drift note in the status line")

        await pilot.press("u")
        confirm = await confirm_open(pilot, app)
        assert "nf_conntrack_udp_timeout: 25 -> 30" in confirm_text(confirm)
        rec = await yes_and_wait(pilot, app, state)
        assert proc_sys(ns, UDP_TIMEOUT) == "30"
        app.main.group(RemedyKeys).check_drift()
        await wait_for(pilot, lambda: app.main.query_one(StatusLine).drift == 0, "the drift note to go")
        assert "drift:" not in screen_text(app)

        # The journal screen lists both changes, the set marked as undone by the undo.
        lines = journal_lines(state)
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and bool(app.screen.items),
                       "the journal screen")
        text = screen_text(app)
    assert [x["kind"] for x in lines] == ["sysctl", "sysctl"]
    assert rec["undoes"] == lines[0]["id"]
    assert f"undone by {lines[1]['id']}" in text and f"undo of {lines[0]['id']}" in text
    assert str(lines[0]["id"]) in text and "root (0)" in text


async def test_t_bad_value_is_refused_where_typed_and_changes_nothing(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        screen = await open_tunables(pilot, app)
        await edit(pilot, screen, UDP_TIMEOUT, "abc")
        await pilot.pause(0.2)
        assert isinstance(app.screen, TunablesScreen)  # no confirmation for a bad value
        assert "not an integer" in screen_text(app)
        await pilot.press(*["backspace"] * 3, *"-5", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, TunablesScreen)
        assert "out of range" in screen_text(app)
    assert proc_sys(ns, UDP_TIMEOUT) == "30"
    assert journal_lines(state) == []


async def test_t_globals_are_read_only_in_a_namespace_with_the_reason(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        screen = await open_tunables(pilot, app)
        names = [s.name for s in screen.items]
        await pilot.press(*["up"] * len(names), *["down"] * names.index("nf_conntrack_max"))
        text = screen_text(app)
        assert "read-only here: global setting: writable only from the initial namespace" in text
        await pilot.press("e")
        assert not screen.query_one("#tunables-edit").display  # refused, with the reason as a toast
        assert any("writable only from the initial namespace" in m for m in said(app))
    assert journal_lines(state) == []


async def test_t_persist_writes_the_sysctl_file_and_undo_takes_it_back(ns: str, state: Path,
                                                                      tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "sysctl.d" / "90-cttop.conf"  # CTTOP_PERSIST_DIR is tmp_path/etc
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        screen = await open_tunables(pilot, app)
        names = [s.name for s in screen.items]
        await pilot.press(*["up"] * len(names), *["down"] * names.index(UDP_TIMEOUT), "e")
        field = screen.query_one("#tunables-input", Input)
        await pilot.press(*["backspace"] * (len(field.value) + 1), *"21", "tab", "space", "shift+tab", "enter")
        confirm = await confirm_open(pilot, app)
        assert f"persist in {conf}" in confirm_text(confirm)
        await yes_and_wait(pilot, app, state)
        assert proc_sys(ns, UDP_TIMEOUT) == "21"
        assert "net.netfilter.nf_conntrack_udp_timeout = 21" in conf.read_text()
        await pilot.press("escape", "u")
        await confirm_open(pilot, app)
        await yes_and_wait(pilot, app, state)
    assert proc_sys(ns, UDP_TIMEOUT) == "30"
    assert not conf.exists()  # cttop's own file held only that line


async def test_a_failed_apply_shows_the_error_and_changes_nothing(ns: str, state: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        screen = await open_tunables(pilot, app)
        # From now on the journal cannot be kept, so applying must refuse (plans journal or do nothing).
        monkeypatch.setenv("CTTOP_STATE_DIR", str(blocker / "state"))
        await edit(pilot, screen, UDP_TIMEOUT, "12")
        await confirm_open(pilot, app)
        await pilot.press("y")
        await wait_for(pilot, lambda: any("failed, nothing changed" in m for m in said(app)), "the error")
        assert any("journal directory" in m and "Not a directory" in m for m in said(app))
    assert proc_sys(ns, UDP_TIMEOUT) == "30"


# --- NOTRACK ---------------------------------------------------------------------------------

async def test_n_on_a_flow_adds_notrack_rules_and_the_rules_screen_removes_them(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp dport 53")
        await pilot.press("n")
        confirm = await confirm_open(pilot, app)
        text = confirm_text(confirm)
        assert "Stop tracking 'udp dst 10.1.0.53 dport 53'" in text
        assert "ct state untracked" in text and "lose NAT" in text
        rec = await yes_and_wait(pilot, app, state)
        ruleset = nft_cttop(ns)
        # Both directions, in both raw-priority chains.
        assert re.search(r'ip daddr 10\.1\.0\.53 udp dport 53 notrack comment "cttop:' + str(rec["id"]), ruleset)
        assert re.search(r"ip saddr 10\.1\.0\.53 udp sport 53 notrack", ruleset)
        assert "hook prerouting priority raw" in ruleset and "hook output priority raw" in ruleset
        # New traffic to the service goes untracked; other traffic is still tracked.
        sh("ip", "addr", "add", "10.1.0.53/32", "dev", "lo", netns=ns)
        send_udp(ns, "10.1.0.53", 53, 33001)
        send_udp(ns, "10.1.0.53", 5353, 33002)
        assert tracked(ns, 33001) == 0 and tracked(ns, 33002) == 1

        await pilot.press("T")
        await wait_for(pilot, lambda: isinstance(app.screen, NotrackRulesScreen) and bool(app.screen.items),
                       "the NOTRACK rules screen")
        assert "udp dst 10.1.0.53 dport 53" in screen_text(app)
        await pilot.press("x")
        confirm = await confirm_open(pilot, app)
        assert "tracked again" in confirm_text(confirm)
        await yes_and_wait(pilot, app, state)
        await wait_for(pilot, lambda: isinstance(app.screen, NotrackRulesScreen) and not app.screen.items,
                       "the rules screen to show none left")
    assert nft_cttop(ns) == ""
    assert "notrack" not in sh("nft", "list", "ruleset", netns=ns)
    send_udp(ns, "10.1.0.53", 53, 33003)
    assert tracked(ns, 33003) == 1  # tracked again


async def test_n_on_a_heaviest_group_then_remove_all(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        heaviest = app.main.query_one(HeaviestPanel)
        await wait_for(pilot, lambda: bool(heaviest.rows), "the heaviest groups")
        heaviest.focus()
        await pilot.pause()
        group = heaviest.rows[heaviest.cursor]
        assert group.filter is not None
        await pilot.press("n")
        confirm = await confirm_open(pilot, app)
        assert f"Stop tracking '{group.filter}'" in confirm_text(confirm)
        await yes_and_wait(pilot, app, state)
        src = group.filter.split()[-1]  # the src group: "src ADDR"
        assert group.filter.startswith("src ")
        ruleset = nft_cttop(ns)
        assert f"ip saddr {src} notrack" in ruleset and f"ip daddr {src} notrack" in ruleset

        await pilot.press("T")
        await wait_for(pilot, lambda: isinstance(app.screen, NotrackRulesScreen) and bool(app.screen.items),
                       "the NOTRACK rules screen")
        await pilot.press("X")
        await confirm_open(pilot, app)
        await yes_and_wait(pilot, app, state)
    assert nft_cttop(ns) == ""


async def tag_flows(pilot: Pilot[object], app: CttopApp, filter_text: str, n: int) -> list[int]:
    """Tag the first ``n`` flows the filter shows (Space tags and moves down); tags outlive the filter."""
    await set_filter(pilot, app, filter_text)
    ids = []
    for _ in range(n):
        ids.append(cursor_conntrack_id(app))
        await pilot.press("space")
    return ids


async def test_n_on_tagged_flows_is_one_change_for_all_of_them_and_u_takes_it_back(ns: str, state: Path,
                                                                                   tmp_path: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        tagged = await tag_flows(pilot, app, "udp dport 53", 2) + await tag_flows(pilot, app, "udp dport 4789", 1)
        assert len(set(tagged)) == 3 and len(app.main.flow_list.tagged) == 3
        await set_filter(pilot, app, "tcp")  # the cursor is on a flow of neither service: the tags win
        await pilot.press("n")
        confirm = await confirm_open(pilot, app)
        assert confirm.title_text == "NOTRACK 3 tagged flows (2 services)"
        text = confirm_text(confirm)
        assert "Stop tracking 'udp dst 10.1.0.53 dport 53 or udp dst 10.1.0.54 dport 4789'" in text
        assert "8 rules in nft table inet cttop" in text
        rec = await yes_and_wait(pilot, app, state)
        assert rec["kind"] == "notrack-add" and len(rec["after"]["rules"]) == 8  # type: ignore[index,arg-type]
        ruleset = nft_cttop(ns)
        tag = f'notrack comment "cttop:{rec["id"]}"'
        for match in ("ip daddr 10.1.0.53 udp dport 53", "ip saddr 10.1.0.53 udp sport 53",
                      "ip daddr 10.1.0.54 udp dport 4789", "ip saddr 10.1.0.54 udp sport 4789"):
            assert ruleset.count(f"{match} {tag}") == 2, match  # chains pre and out
        assert ruleset.count("notrack") == 8
        sh("ip", "addr", "add", "10.1.0.53/32", "dev", "lo", netns=ns)
        sh("ip", "addr", "add", "10.1.0.54/32", "dev", "lo", netns=ns)
        send_udp(ns, "10.1.0.53", 53, 33011)
        send_udp(ns, "10.1.0.54", 4789, 33012)
        send_udp(ns, "10.1.0.53", 5353, 33013)
        assert tracked(ns, 33011) == 0 and tracked(ns, 33012) == 0 and tracked(ns, 33013) == 1

        await pilot.press("u")
        confirm = await confirm_open(pilot, app)
        assert f"Undo change {rec['id']}: remove" in confirm_text(confirm)
        undo = await yes_and_wait(pilot, app, state)
    assert undo["undoes"] == rec["id"]
    assert nft_cttop(ns) == ""
    send_udp(ns, "10.1.0.53", 53, 33014)
    send_udp(ns, "10.1.0.54", 4789, 33015)
    assert tracked(ns, 33014) == 1 and tracked(ns, 33015) == 1
    assert not (tmp_path / "etc" / "nftables.d" / "cttop.nft").exists()  # not persisted unless ticked


async def test_n_persist_writes_the_nft_file_and_undo_takes_the_rules_back_out(ns: str, state: Path,
                                                                               tmp_path: Path) -> None:
    nft_file = tmp_path / "etc" / "nftables.d" / "cttop.nft"  # CTTOP_PERSIST_DIR is tmp_path/etc
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await tag_flows(pilot, app, "udp dport 53", 1)
        await tag_flows(pilot, app, "udp dport 4789", 1)
        await pilot.press("n")
        confirm = await confirm_open(pilot, app)
        box = confirm.query_one("#confirm-persist", Checkbox)
        assert str(box.label) == "also persist (p)" and not box.value
        what = str(confirm.query_one("#confirm-persist-what", Static).render())
        assert what == f"write cttop's nft table to {nft_file}, read at boot"
        assert "persist in" not in confirm_text(confirm)
        await pilot.press("p")
        text = confirm_text(confirm)
        assert confirm.persist and f"persist in {nft_file}" in text
        comments = " ".join(line.text.removeprefix("#").strip() for line in
                            confirm.query_one(CommandBlock).lines() if line.kind == COMMENT)
        assert f"then {nft_file} is written: cttop's nft rules" in comments, comments
        assert f'include "{nft_file}"' in text  # it loads at boot only if included
        assert "a persisted file is loaded at boot into the initial namespace" in text  # ns is not the host's
        assert confirm.focused is not None and confirm.focused.id == "no"  # ticking never moves off No
        rec = await yes_and_wait(pilot, app, state)
        assert rec["after"]["persist_file"] == str(nft_file)  # type: ignore[index]
        written = nft_file.read_text()
        assert written.startswith("#!/usr/sbin/nft -f\n")
        for match in ("ip daddr 10.1.0.53 udp dport 53", "ip daddr 10.1.0.54 udp dport 4789"):
            assert f'{match} notrack comment "cttop:{rec["id"]}"' in written
        assert written.count("notrack comment") == nft_cttop(ns).count("notrack comment") == 8

        await pilot.press("u")
        confirm = await confirm_open(pilot, app)
        assert str(nft_file) in confirm_text(confirm)
        await yes_and_wait(pilot, app, state)
    assert nft_cttop(ns) == ""
    assert not nft_file.exists()  # cttop's file held only those rules


# --- every destructive key asks first, and No (Enter on the default focus, or Esc) changes nothing ----

async def answer_no_both_ways(pilot: Pilot[object], app: CttopApp, key: str, expect: str) -> None:
    """Press ``key`` twice; decline once with Enter (the focus starts on No), once with Esc."""
    for no in ("enter", "escape"):
        await pilot.press(key)
        confirm = await confirm_open(pilot, app)
        assert expect in confirm_text(confirm)
        assert confirm.focused is not None and confirm.focused.id == "no"
        await pilot.press(no)
        assert not isinstance(app.screen, ConfirmScreen), no
    await pilot.pause(0.3)
    assert not [w for w in app.workers if w.group == "apply"]


async def test_n_No_adds_no_nft_table(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp dport 53")
        await answer_no_both_ways(pilot, app, "n", "Stop tracking 'udp dst 10.1.0.53 dport 53'")
        assert app.screen is app.main
    assert nft_cttop(ns) == ""
    assert "notrack" not in sh("nft", "list", "ruleset", netns=ns)
    assert journal_lines(state) == []


async def test_t_edit_No_leaves_the_sysctl(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        screen = await open_tunables(pilot, app)
        for no in ("enter", "escape"):
            await edit(pilot, screen, UDP_TIMEOUT, "12")
            confirm = await confirm_open(pilot, app)
            assert "nf_conntrack_udp_timeout: 30 -> 12" in confirm_text(confirm)
            await pilot.press(no)
            assert app.screen is screen, no
        await pilot.pause(0.3)
        assert not [w for w in app.workers if w.group == "apply"]
    assert proc_sys(ns, UDP_TIMEOUT) == "30"
    assert journal_lines(state) == []


async def test_u_No_keeps_the_change(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        rec = await set_from_tunables(pilot, app, ns, state, UDP_TIMEOUT, "17")
        await pilot.press("escape")
        assert app.screen is app.main
        await answer_no_both_ways(pilot, app, "u", "nf_conntrack_udp_timeout: 17 -> 30")
    assert proc_sys(ns, UDP_TIMEOUT) == "17"  # still the change's value
    assert [x["id"] for x in journal_lines(state)] == [rec["id"]]


async def test_T_x_No_keeps_the_rules(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        await set_filter(pilot, app, "udp dport 53")
        await pilot.press("n")
        await confirm_open(pilot, app)
        rec = await yes_and_wait(pilot, app, state)
        before = nft_cttop(ns)
        assert before.count(f'notrack comment "cttop:{rec["id"]}"') == 4
        await pilot.press("T")
        await wait_for(pilot, lambda: isinstance(app.screen, NotrackRulesScreen) and bool(app.screen.items),
                       "the NOTRACK rules screen")
        rules = app.screen
        await answer_no_both_ways(pilot, app, "x", "tracked again")
        assert app.screen is rules and len(rules.items) == 1
    assert nft_cttop(ns) == before
    assert [x["id"] for x in journal_lines(state)] == [rec["id"]]


# --- read-only -------------------------------------------------------------------------------

WRITE_KEYS = {"d": "Delete", "F": "Flush", "n": "NOTRACK", "u": "Undo"}


async def footer_line(pilot: Pilot[object], app: CttopApp) -> str:
    """The footer once it has rendered: right after the first frame it may still be blank."""
    await wait_for(pilot, lambda: "Help" in screen_text(app).splitlines()[-1], "the footer")
    return screen_text(app).splitlines()[-1]


def help_lines() -> dict[str, str]:
    """Each remediation key's line as the help screen writes it."""
    return {b.key: f"{key_names(b.key):<16}{b.description}" for b in bindings_of(RemedyKeys)}


@pytest.mark.parametrize("how", ["--read-only", "CTTOP_READ_ONLY=1"])
async def test_read_only_hides_and_refuses_every_write(ns: str, state: Path, monkeypatch: pytest.MonkeyPatch,
                                                       how: str) -> None:
    before = kernel_flows(ns)
    if how.startswith("CTTOP_READ_ONLY"):
        monkeypatch.setenv("CTTOP_READ_ONLY", "1")  # the environment alone, as the CLI honours it
    app = app_for(ns, read_only=how == "--read-only")
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        assert app.read_only
        footer = await footer_line(pilot, app)
        active = app.screen.active_bindings
        assert "· read-only" in screen_text(app).splitlines()[0]  # the status line says why the keys are gone
        for key, word in WRITE_KEYS.items():
            assert key not in active
            assert word not in footer
        titles = {c.title.split(" (")[0] for c in app.get_system_commands(app.screen)}  # less the keys
        assert "Delete flows" not in titles and "Flush flows" not in titles and "Tunables" in titles
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-text").render())
        lines = help_lines()
        for key in ("t", "T", "J"):
            assert lines[key] in help_text
        for key in WRITE_KEYS:
            assert lines[key] not in help_text
        await pilot.press("escape")

        for key in WRITE_KEYS:
            await pilot.press(key, "y")
            await pilot.pause(0.2)
            assert app.screen is app.main
        # The screens open to look, without their write keys.
        screen = await open_tunables(pilot, app)
        assert "e" not in screen.active_bindings
        await pilot.press("e", "enter")
        assert not screen.query_one("#tunables-edit").display
        await pilot.press("escape", "T")
        await wait_for(pilot, lambda: isinstance(app.screen, NotrackRulesScreen), "the rules screen")
        assert "x" not in app.screen.active_bindings and "X" not in app.screen.active_bindings
        await pilot.press("escape")
        assert not [w for w in app.workers if w.group in ("apply", "remedy-plan")]
    assert set(kernel_flows(ns)) == set(before)
    assert proc_sys(ns, UDP_TIMEOUT) == "30"
    assert journal_lines(state) == []


async def test_write_keys_are_in_the_footer_and_help_when_not_read_only(ns: str, state: Path) -> None:
    app = app_for(ns)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_live(pilot, app)
        footer = await footer_line(pilot, app)
        active = app.screen.active_bindings
        assert "read-only" not in screen_text(app).splitlines()[0]
        for key, word in WRITE_KEYS.items():
            assert key in active
        for word in ("Delete", "Flush", "Undo"):
            assert word in footer
        await pilot.press("question_mark")
        help_text = str(app.screen.query_one("#help-text").render())
        for line in help_lines().values():
            assert line in help_text
