"""At 60×20 (a split SSH pane), what the screens say stays on its line: the panels' rows are cut to fit, never
wrapped onto the next row's line; the namespaces' counters stay in sight; a warning or a NOTRACK rule that wraps
goes on under its own text, never on a blank line; and T's hint offers no removal once nothing is left. 80×24
keeps what it showed. On the fixed source, with the rules and namespaces given."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from textual.containers import Vertical
from textual.pilot import Pilot

from cttop.actions import NotrackRule, RuleGroup
from cttop.host.namespaces import Namespace
from cttop.kernel.netns import NetnsSpec
from cttop.live.counters import PRESSURE
from cttop.table.aggregates import GroupRow
from cttop.ui.app import CttopApp
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.screens import namespaces as ns_screen
from cttop.ui.screens import notrack as notrack_screen
from cttop.ui.screens.confirm import ConfirmScreen
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.namespaces import NamespacesScreen
from cttop.ui.screens.notrack import NotrackRulesScreen
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import LAB_NS, one_flush_journal, screen_text, wait_for, wait_live

NARROW = (60, 20)


def boxed(text: str) -> list[str]:
    """Each line's inside of the dialog box drawn over the screen (between its borders, less its padding)."""
    lines = [line for line in text.splitlines() if line.count("│") >= 2]
    return [line[line.index("│") + 2:line.rindex("│")].rstrip() for line in lines]


# --- the panels ---------------------------------------------------------------------------------------------

# As the lab's mixed scenario shows them: three-digit counts with bytes and packets a second, whose row (33
# columns) was wider than the heaviest panel at 60 (29): '105p' wrapped onto the next row's line.
HEAVY = (GroupRow(b"a", "10.77.1.2", 259, 900_000, 12_000, "src 10.77.1.2", bytes_rate=7600.0, packets_rate=105.0),
         GroupRow(b"b", "fd77:1::2", 88, 1000, 20, "src fd77:1::2", bytes_rate=0.0, packets_rate=0.0))


@pytest.mark.parametrize("size", [NARROW, (80, 24)])
async def test_each_heaviest_row_stays_on_its_line_with_its_key_and_figures(size: tuple[int, int]) -> None:
    app = CttopApp(FixedSource(), interval=60.0)  # no frame of the source's own replaces the one shown here
    async with app.run_test(size=size) as pilot:
        await wait_live(pilot, app)
        frame = app.shown_frame
        assert frame is not None
        panel = app.main.query_one(HeaviestPanel)
        panel.show(replace(frame, top=HEAVY, top_by="entries", ranked_total=347, counted=True))
        await pilot.pause()
        lines = screen_text(app).splitlines()
    at = next(i for i, line in enumerate(lines) if re.search(r" 259 +75%", line))
    assert re.search(r"10\.77\.1\.2 +259 +75%", lines[at]), lines[at]
    assert re.search(r"fd77:1::2 +88 +25%", lines[at + 1]), lines[at + 1]  # the next row, not the tail of this one
    # Where the row fits with them, the bytes and packets a second stay, as before (at 80 columns).
    assert ("7.6kB" in lines[at] and "105p/s" in lines[at]) == (size == (80, 24)), lines[at]


async def test_every_pressure_counter_and_the_bucket_ratio_stay_on_their_line() -> None:
    """At 60 columns a counter's total wrapped onto the next line, and three of the six counters were off the
    panel; the max/buckets ratio wrapped too."""
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        await wait_live(pilot, app)
        text = screen_text(app)
    for name in list(PRESSURE)[:6]:  # as many as the panel has lines
        assert re.search(rf"[ !]{name} +\S+ +total \d", text), (name, text)
    assert re.search(r"buckets 65,536 +max/\S+ 4\.0", text), text


# --- namespaces (N) -----------------------------------------------------------------------------------------

OTHER_ROUTER = "cttop-lab-8cc360-router"  # another lab's router beside LAB_NS (cttop-lab-c803c9-router)


def lab_namespaces() -> list[Namespace]:
    """The host and two labs' routers, one of them full: names longer than a 60-column dialog leaves them."""
    return [Namespace(1, initial=True, pids=[1], process="systemd", count=120, max=262144, drop=0, early_drop=0),
            Namespace(2, names=[LAB_NS], pids=[7], process="python", count=489, max=262144, drop=0, early_drop=0),
            Namespace(3, names=[OTHER_ROUTER], pids=[9], process="python", count=262144, max=262144,
                      drop=6794, early_drop=12289)]


async def namespaces_open(pilot: Pilot[None], app: CttopApp) -> NamespacesScreen:
    """N's screen on the live view, its list read."""
    await wait_live(pilot, app)
    screen = NamespacesScreen()
    await app.push_screen(screen)
    await wait_for(pilot, lambda: bool(screen.namespaces), "the namespaces")
    return screen


async def test_the_namespaces_counters_stay_in_sight_and_the_names_are_cut_to_fit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ns_screen, "list_namespaces", lab_namespaces)
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        await namespaces_open(pilot, app)
        await pilot.pause(0.1)
        narrow = boxed(screen_text(app))
        shown = {}
        for size in ((120, 40), (80, 24)):  # wider, then narrower again: cut to each width anew
            await pilot.resize_terminal(*size)
            await pilot.pause(0.2)
            shown[size] = screen_text(app)
    assert any(re.search(r"NAMESPACE +ENTRIES +OF MAX +DROP +EARLY_DROP$", line) for line in narrow), narrow
    # Cut where they differ: both read 'cttop…router', the tags that tell the two labs apart cut away.
    assert any(re.search(r" …cc360-router +262144 +100\.0% +6794 +12289$", line) for line in narrow), narrow
    assert any(re.search(r" …803c9-router +489 +0\.2% +0 +0$", line) for line in narrow), narrow
    assert any(re.search(r"init +120 +0\.0% +0 +0$", line) for line in narrow), narrow
    for size, text in shown.items():
        assert re.search(r"cttop-lab-8cc360-router +262144 +100\.0% +6794 +12289 +1 ", text), (size, text)
        assert "…" not in text.split("NAMESPACE")[1].split("TOTAL")[0], (size, text)  # whole names where they fit


async def test_with_more_namespaces_than_lines_the_last_counter_stays_clear_of_the_scrollbar(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A host's 16 namespaces at 60x20: the table scrolls, its scrollbar takes two columns, and the names held
    to NETNS_MIN pushed EARLY_DROP under it (its title 'EARLY_DRO', its values out of sight). The names give up
    the room instead, still apart."""
    many = lab_namespaces() + [Namespace(10 + i, names=[f"cttop-lab-{i:06x}-client"], pids=[20 + i], process="python",
                                         count=i, max=262144, drop=0, early_drop=100 + i) for i in range(13)]
    monkeypatch.setattr(ns_screen, "list_namespaces", lambda: many)
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        screen = await namespaces_open(pilot, app)
        screen._show(many, 3)  # as in a lab: its router is the namespace in view, marked ▶ (a column of 1)
        await pilot.pause(0.1)
        lines = [line for line in boxed(screen_text(app)) if line.startswith(" ") and re.search(r"\d%|EARLY", line)]
    assert re.search(r"NAMESPACE +ENTRIES +OF MAX +DROP +EARLY_DROP\b", lines[0]), lines
    rows = lines[1:]
    assert len(rows) >= 5, lines  # a scrolling table: as many rows as fit
    for line in rows:
        assert re.search(r"%  +\d+ +\d+ *[^\w ]*$", line), lines  # DROP, then EARLY_DROP, then the scrollbar
    names = [line.split()[0] for line in rows]
    assert len(set(names)) == len(names), names


def journal_with(tmp_path: Path, more: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> Path:
    """A state dir whose journal holds one flush and then ``more(first)``'s records, each the first's with
    those fields changed."""
    state = one_flush_journal(tmp_path / "state")
    first = json.loads((state / "journal.jsonl").read_text())
    with open(state / "journal.jsonl", "a") as f:
        for changed in more(first):
            f.write(json.dumps(first | changed) + "\n")
    return state


async def journal_open(pilot: Pilot[None], app: CttopApp, records: int) -> None:
    """J pressed on the live view, and its ``records`` listed."""
    await wait_live(pilot, app)
    await pilot.press("J")
    await wait_for(pilot, lambda: isinstance(app.screen, JournalScreen) and len(app.screen.items) == records,
                   "the journal")


async def test_the_journal_fits_its_columns_again_when_made_narrower(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened at 120 columns, then 80: the time column kept its whole time's width (the DataTable narrows no
    column), and the namespace was clipped by the edge again ('names', 'cttop')."""
    monkeypatch.setenv("CTTOP_STATE_DIR", str(one_flush_journal(tmp_path / "state")))
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await journal_open(pilot, app, 1)
        await pilot.pause(0.1)
        assert LAB_NS in screen_text(app)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        record = next(line for line in boxed(screen_text(app)) if "aaaa0001" in line)
    short_time = r"\d\d-\d\d \d\d:\d\d"  # without its year and seconds, for the namespace's room
    assert re.fullmatch(rf"{short_time} +aaaa0001 +flush +root \(0\) +cannot be undone +cttop\S*…\S*router",
                        record.strip()), record


async def test_at_60_columns_the_journal_shows_each_namespace_apart_and_nothing_off_the_edge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 60 columns the namespace column was off the right edge (and 'cannot be undone' cut by it): the time
    goes short, who goes (the detail names the user), the status is cut, and the namespaces of two labs' routers
    are cut where they differ. Wider again, who and the whole status come back."""
    state = journal_with(tmp_path, lambda first: [{"id": "bbbb0002", "netns": OTHER_ROUTER,
                                                   "time": first["time"] + 60}])
    monkeypatch.setenv("CTTOP_STATE_DIR", str(state))
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        await journal_open(pilot, app, 2)
        await pilot.pause(0.1)
        narrow = boxed(screen_text(app))
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        wider = boxed(screen_text(app))
    short_time = r"\d\d-\d\d \d\d:\d\d"
    assert any(re.fullmatch(r" +time +id +what +status +namespace", line) for line in narrow), narrow
    assert any(re.fullmatch(rf" +{short_time} +bbbb0002 +flush +cannot… +…c360-router", line) for line in narrow), narrow
    assert any(re.fullmatch(rf" +{short_time} +aaaa0001 +flush +cannot… +…03c9-router", line) for line in narrow), narrow
    assert any(re.fullmatch(rf" +{short_time} +aaaa0001 +flush +root \(0\) +cannot be undone +…03c9-router", line)
               for line in wider), wider


async def test_a_journal_whose_detail_makes_it_scroll_is_fitted_again_clear_of_the_scrollbar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The columns were fitted before the detail took its lines; a tall one gave the table a scrollbar, which
    then clipped the namespace ('…c360-route'), since only a resize of the screen fitted them again."""
    state = journal_with(tmp_path, lambda first: [
        {"id": f"cccc000{i}", "netns": OTHER_ROUTER, "time": first["time"] + 60,
         "commands": [f"cttop flush --netns {OTHER_ROUTER}"] * 6} for i in range(8)])
    monkeypatch.setenv("CTTOP_STATE_DIR", str(state))
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        await journal_open(pilot, app, 9)
        await pilot.pause(0.2)
        lines = boxed(screen_text(app))
    records = [line for line in lines if re.match(r" +\d\d-\d\d ", line)]
    assert 2 < len(records) < 9, lines  # the table scrolls
    for line in records:
        assert re.fullmatch(r" +\S+ \S+ +cccc000\d +flush +cannot… +…\S*60-router *[^\w ]*", line), lines


# --- the NOTRACK rules (T) ----------------------------------------------------------------------------------

async def notrack_open(pilot: object, app: CttopApp, groups: list[RuleGroup],
                       monkeypatch: pytest.MonkeyPatch) -> NotrackRulesScreen:
    monkeypatch.setattr(notrack_screen, "rule_groups", lambda spec: list(groups))
    await wait_live(pilot, app)  # type: ignore[arg-type]
    screen = NotrackRulesScreen(NetnsSpec(name=LAB_NS))
    await app.push_screen(screen)
    await wait_for(pilot, lambda: len(screen.items) == len(groups), "the rules listed")  # type: ignore[arg-type]
    return screen


def rules(change: str, *texts: str) -> RuleGroup:
    return RuleGroup(change, "udp dport 53", tuple(NotrackRule(change, "nft", chain, t)
                                                   for chain, t in zip(("pre", "out"), texts)))


async def test_the_rules_hint_offers_no_removal_once_the_last_rule_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = [rules("0123abcd", 'udp dport 53 notrack comment "cttop:0123abcd"')]
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await notrack_open(pilot, app, groups, monkeypatch)
        box = screen.query_one("#notrack-box", Vertical)
        assert box.border_subtitle == "x removes · X removes all · Esc closes"
        await pilot.pause()
        assert "x Remove selected" in screen_text(app) and "X Remove all" in screen_text(app)  # the footer too
        groups.clear()  # removed (x, then y): the list is read again
        screen.refresh_after()
        await wait_for(pilot, lambda: not screen.items, "the empty list")
        await pilot.pause()
        text = screen_text(app)
    assert box.border_subtitle == "Esc closes"
    assert "removes" not in text and "no cttop NOTRACK rules in namespace" in text, text
    assert "Remove" not in text, text  # nor the footer's x and X, with nothing to remove


async def test_with_a_notice_and_a_long_detail_the_rules_table_keeps_a_row_in_sight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a removal at 60x20, the notice (up to 4 lines) and the detail (up to 8) left the table its header
    alone: no rule in sight to move the cursor over. The detail gives up lines first; the notice stays whole."""
    long = [f"ip saddr 10.77.{i}.0/24 ip daddr 10.77.2.0/24 udp dport 53 notrack comment \"cttop:0123abc{i}\""
            for i in range(3)]
    groups = [RuleGroup(f"0123abc{i}", "udp dport 53", tuple(NotrackRule(f"0123abc{i}", "nft", "pre", t) for t in long))
              for i in range(3)]
    notice = ("removed NOTRACK change 0123abc9 (udp dport 53, both directions): 2 rules from nft table inet cttop; "
              "journal id 1234abcd (undo with u); persisted in /etc/nftables.d/cttop.nft")
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        screen = await notrack_open(pilot, app, groups, monkeypatch)
        screen.say_notice(notice)
        await pilot.pause(0.2)
        await pilot.press("down")
        await pilot.pause(0.2)
        lines = boxed(screen_text(app))
    assert any(re.match(r" +change +untracked traffic +rules +backend\b", line) for line in lines), lines
    assert any(re.match(r" +0123abc1 +udp dport 53 +3 +nft\b", line) for line in lines), lines  # the cursor's row
    assert any(line.startswith("change 0123abc1") for line in lines), lines  # its detail, cut short
    said = " ".join(line.strip() for line in lines[next(i for i, x in enumerate(lines) if x.startswith("removed")):])
    assert said == notice, said


async def test_a_wrapped_rule_goes_on_under_its_text_and_never_on_a_blank_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Textual's wrap left a blank line after a word it folded at the right edge (a word twice the dialog's
    width, then one wider than it), and wrapped lines started at its left edge, where they read as the next rule."""
    width = 53  # the detail's, at 60 columns
    first, second = ("2001:db8:aaaa:" * 9)[:2 * width], ("fd00:77:" * 9)[:width + 2]
    groups = [rules("0123abcd", f"ip6 saddr {first} {second} notrack comment \"cttop:0123abcd\"",
                    'udp sport 53 notrack comment "cttop:0123abcd"')]
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=NARROW) as pilot:
        screen = await notrack_open(pilot, app, groups, monkeypatch)
        await pilot.pause(0.1)
        assert screen.query_one("#notrack-detail").content_region.width == width
        lines = boxed(screen_text(app))
    top = next(i for i, line in enumerate(lines) if line.startswith("change 0123abcd"))
    last = next(i for i, line in enumerate(lines) if line.startswith("  [nft out]"))
    detail = lines[top:last + 1]
    assert all(line.strip() for line in detail), detail
    for line in detail[2:-1]:  # the first rule's lines after its first: under its text, after "  [nft pre] "
        assert re.match(r" {12}\S", line), detail
    said = "".join("".join(line.split()) for line in detail[1:-1])
    assert said == "".join(("[nft pre] " + groups[0].rules[0].rule).split())  # all of it, in order


# --- the confirmation ---------------------------------------------------------------------------------------

@dataclass
class WarnedPlan:
    warned: tuple[str, ...]

    def describe(self) -> str:
        return "Stop tracking 'udp dport 53' in namespace cttop-lab-c803c9-router, both directions"

    def commands(self) -> list[str]:
        return ["nft add rule inet cttop pre udp dport 53 notrack"]

    def warnings(self) -> list[str]:
        return list(self.warned)


WARNINGS = ("287 flows tracked now that these rules match are NAT'd: exempting them breaks them",
            "a stateful filter must accept `ct state untracked` (iptables: -m conntrack --ctstate UNTRACKED), "
            "or it drops these packets")


@pytest.mark.parametrize("size", [NARROW, (80, 24)])
async def test_a_warning_goes_on_under_its_text_not_under_its_mark(size: tuple[int, int]) -> None:
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=size) as pilot:
        await wait_live(pilot, app)
        app.push_screen(ConfirmScreen(WarnedPlan(WARNINGS), "NOTRACK"))
        await pilot.pause()
        await pilot.pause()
        lines = boxed(screen_text(app))
    marks = [i for i, line in enumerate(lines) if line.startswith("  ! ")]
    assert len(marks) == len(WARNINGS), lines
    for warning, at, end in zip(WARNINGS, marks, [*marks[1:], None]):
        said = lines[at:end]
        said = said[:next((i for i, line in enumerate(said) if not line.strip()), len(said))]
        assert len(said) > 1, said  # long enough to wrap at both sizes
        for line in said[1:]:
            assert re.match(r" {4}\S", line), said  # under the text after "  ! ", not at the box's edge
        assert " ".join(line.strip() for line in said) == "! " + warning
