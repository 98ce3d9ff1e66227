"""A bounded view (--max-flows) on a real table: counts, states and groups equal `conntrack -L`'s while no flow is
held as a record, the list is the first flows of the kernel's table in the list's order, and a table that crosses
the line is read again the other way."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from benchmarks.common import realistic_rows
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.live.index import SORTS
from cttop.model import R_DST, R_ID, R_RDST, R_SRC
from cttop.sources.live import LiveSource
from cttop.table.packing import unpack
from cttop.table.tally import FlowTally
from cttop.ui.app import CttopApp
from tests.conftest import netns_holding, sh
from tests.ui.helpers import screen_text, wait_for, wait_live, wait_view
from tests.ui.test_app_kernel import KFlow, kernel_count, kernel_flows

pytestmark = pytest.mark.kernel

ENTRIES = 3000
MOST = 1000


@pytest.fixture
def ns() -> Iterator[str]:
    with netns_holding(realistic_rows(ENTRIES), "cttop-bound") as name:
        yield name


def app_for(ns: str, most: int = MOST) -> CttopApp:
    return CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2, max_flows=most)


def states_of(flows: list[KFlow]) -> Counter[str]:
    return Counter(f.state if f.proto == "tcp" else f"{f.proto} {f.state}" for f in flows)


def assert_states_shown(text: str, flows: list[KFlow]) -> None:
    for label, n in states_of(flows).items():
        assert re.search(rf"(?:tcp )?{label}\s+{n:,}\b", text), (label, n)


def src_order(f: KFlow, sport: int) -> tuple[int, bytes, int]:
    """The list's source order, from the kernel's text: family, address, port."""
    addr = ipaddress.ip_address(f.src)
    return (addr.version, addr.packed, sport)


def kernel_sports(ns: str) -> dict[int, int]:
    """conntrack id -> original source port, from `conntrack -L -o id` (ICMP: its echo id)."""
    out = {}
    for line in sh("conntrack", "-L", "-o", "id", netns=ns).splitlines():
        m = re.search(r"(?:sport|id)=(\d+) .*\bid=(\d+)$", line)
        if m:
            out[int(m.group(2))] = int(m.group(1))
    return out


async def test_a_bounded_view_counts_every_flow_and_lists_the_first(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        kflows = kernel_flows(ns)
        assert len(kflows) == kernel_count(ns) == ENTRIES
        table = app.collector.table
        assert isinstance(table, FlowTally) and table.records() == [] and len(table) == ENTRIES
        text = screen_text(app)
        assert "bounded at 1.0k" in text and f"{ENTRIES:,} / " in text
        assert_states_shown(text, kflows)
        evictable = sum("[ASSURED]" not in line for line in sh("conntrack", "-L", netns=ns).splitlines())
        assert f"evictable {evictable:,} " in text
        top = {g.text: g.entries for g in app.shown_frame.top}
        for src, n in Counter(f.src for f in kflows).most_common(3):
            assert top.get(src) == n, (src, n)

        # The list: the first MOST flows in source order, of all the kernel holds.
        shown = app.main.flow_list.records
        assert len(shown) == MOST and f"Flows {ENTRIES:,} · first {MOST:,}" in screen_text(app)
        assert re.search(r"by source ▲ · read (just now|\d+s ago)", screen_text(app))  # the page's own dump
        sports, by_id = kernel_sports(ns), {f.id: f for f in kflows}
        want = sorted(src_order(f, sports[f.id]) for f in kflows)[:MOST]
        got = sorted(src_order(by_id[unpack(r)[R_ID]], sports[unpack(r)[R_ID]]) for r in shown)
        assert got == want

        # A filter is narrowed by the kernel and counted whole: every UDP flow to port 53, all on the list.
        await pilot.press("slash", *"udp dport 53", "enter")
        await wait_view(pilot, app)
        udp53 = kernel_flows(ns, "-p", "udp", "--dport", "53")
        assert 0 < len(udp53) < MOST
        assert sorted(unpack(r)[R_ID] for r in app.main.flow_list.records) == sorted(f.id for f in udp53)
        assert f"Flows {len(udp53):,} of {ENTRIES:,}" in screen_text(app)


async def test_updates_and_ends_move_the_counts_of_flows_it_does_not_hold(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        table = app.collector.table
        assert isinstance(table, FlowTally)
        # Made after the view subscribed, so the kernel tells their ends too (an entry made before any listener
        # carries no event cache: it ends silently, and only a resync would see it). One is moved through
        # states by UPDATE events, two of three others ended by DESTROY events.
        sh("conntrack", "-I", "-p", "tcp", "-s", "10.250.0.1", "-d", "10.250.0.2", "--sport", "4000", "--dport",
           "22", "--state", "SYN_SENT", "-t", "300", netns=ns)
        sh("conntrack", "-U", "-p", "tcp", "-s", "10.250.0.1", "--sport", "4000", "--state", "ESTABLISHED",
           "-u", "SEEN_REPLY,ASSURED", netns=ns)
        sh("conntrack", "-U", "-p", "tcp", "-s", "10.250.0.1", "--sport", "4000", "--state", "TIME_WAIT", netns=ns)
        for sport in (5000, 5001, 5002):
            sh("conntrack", "-I", "-p", "udp", "-s", "10.250.0.3", "-d", "10.250.0.4", "--sport", str(sport),
               "--dport", "53", "-t", "300", netns=ns)
        sh("conntrack", "-D", "-p", "udp", "-s", "10.250.0.3", "--sport", "5000", netns=ns)
        sh("conntrack", "-D", "-p", "udp", "-s", "10.250.0.3", "--sport", "5001", netns=ns)
        kflows = kernel_flows(ns)
        count = len(kflows)
        assert count == ENTRIES + 2
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.flows == count
                       and app.shown_frame.count == count, "the frame after the changes")
        assert app.collector.table is table  # moved by the events: no dump since
        assert_states_shown(screen_text(app), kflows)


async def test_a_table_crossing_the_line_is_read_again_the_other_way(ns: str) -> None:
    app = app_for(ns, most=ENTRIES + 500)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        assert not app.collector.table.bounded and app.shown_frame.bounded is None
        assert len(app.collector.table.records()) == ENTRIES
        v4 = [r for r in realistic_rows(2000) if len(r[R_SRC]) == 4][:1000]
        with Ctnetlink(NetnsSpec(name=ns)) as ct:  # 1,000 more, from sources the first 3,000 do not use
            made = ct.create(r[:R_SRC] + (bytes([10, 200, i >> 8, i & 255]),) + r[R_DST:R_RDST]
                             + (bytes([10, 200, i >> 8, i & 255]),) + r[R_RDST + 1:] for i, r in enumerate(v4))
        assert made == 1000
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.bounded == ENTRIES + 500,
                       "the bounded view")
        assert app.collector.table.records() == [] and len(app.collector.table) == kernel_count(ns) == ENTRIES + 1000
        assert "bounded at 3.5k" in screen_text(app)
        sh("conntrack", "-D", "-s", "10.200.0.0/16", netns=ns)
        # Under the line by more than the slack (10 %): every flow held again.
        sh("conntrack", "-D", "-p", "udp", netns=ns)
        count = kernel_count(ns)
        assert count < (ENTRIES + 500) * 0.9
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.bounded is None
                       and len(app.collector.table.records()) == count, "every flow held again")
        assert sorted(unpack(r)[R_ID] for r in app.collector.table.records()) == sorted(f.id for f in kernel_flows(ns))
        assert "bounded" not in screen_text(app)


async def test_keys_skip_what_a_bounded_view_cannot_rank_or_sort_by_and_say_why(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("b")  # entries -> (bytes, packets skipped) new flows a second
        assert app.top_by == "new-rate"
        toasts = [n.message for n in app._notifications]
        assert any("the view is bounded (over 1,000 flows" in m and "ranked by entries or new flows" in m
                   for m in toasts), toasts
        sorts = []
        for _ in range(len(SORTS)):
            await pilot.press("s")
            sorts.append(app.view.sort)
        assert "bytes" in sorts and not {"bytes-rate", "packets-rate"} & set(sorts)
        await wait_view(pilot, app)
        assert len(app.main.flow_list.records) == MOST  # each sort's page read afresh from the kernel


async def test_a_page_that_cannot_be_read_keeps_the_list_and_the_next_is_read(ns: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.kernel.ctnetlink import KernelError
    from cttop.live.pager import Pager

    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        shown = app.main.flow_list.records
        real, failed = Pager.read, []

        def broken(self: Pager, *a: object, **kw: object) -> None:
            failed.append(True)
            raise KernelError("conntrack dump: the table changed during the dump (NLM_F_DUMP_INTR)")

        monkeypatch.setattr(Pager, "read", broken)
        await pilot.press("slash", *"udp", "enter")
        await wait_for(pilot, lambda: bool(failed), "a page read that fails")
        await pilot.pause(0.3)
        assert app.main.flow_list.records == shown  # the last page stays
        monkeypatch.setattr(Pager, "read", real)
        await pilot.press("slash", "end", *" dport 53", "enter")  # the next view is read: the indexer lives on
        await wait_view(pilot, app)
        assert sorted(unpack(r)[R_ID] for r in app.main.flow_list.records) == sorted(
            f.id for f in kernel_flows(ns, "-p", "udp", "--dport", "53"))
