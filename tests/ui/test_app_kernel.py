"""The app on a real namespace: what the screen says is what the kernel says (conntrack -L / -C inside it)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.model import R_ID
from cttop.sources.live import LiveSource
from cttop.table.packing import unpack
from cttop.ui.app import CttopApp
from cttop.ui.fill import FillPanel
from cttop.ui.flows import FlowList, FlowsPanel
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.pressure import PressurePanel
from cttop.ui.screens.help import HelpScreen
from cttop.ui.states import StatesPanel
from tests.conftest import delete_netns, make_netns, sh
from tests.ui.helpers import screen_text, wait_for, wait_live, wait_view

pytestmark = pytest.mark.kernel


@dataclass(frozen=True)
class KFlow:
    """One line of `conntrack -L -o id`, parsed without any cttop code."""

    id: int
    proto: str
    state: str  # TCP state, or UNREPLIED / REPLIED / ASSURED as cttop names them
    src: str
    dst: str
    dport: int | None
    mark: int


def kernel_flows(ns: str, *args: str) -> list[KFlow]:
    out = []
    for line in sh("conntrack", "-L", "-o", "id", *args, netns=ns).splitlines():
        tok = line.split()
        if not tok or "=" in tok[0]:
            continue
        kv: dict[str, str] = {}
        for t in tok:
            k, eq, v = t.partition("=")
            if eq and k not in kv:
                kv[k] = v  # first occurrence: the original tuple
        ct_id = int(next(t for t in reversed(tok) if t.startswith("id=")).split("=")[1])
        flags = set(re.findall(r"\[(\w+)\]", line))
        if tok[0] == "tcp":
            state = tok[3]
        else:
            state = "ASSURED" if "ASSURED" in flags else "UNREPLIED" if "UNREPLIED" in flags else "REPLIED"
        out.append(KFlow(ct_id, tok[0], state, kv["src"], kv["dst"],
                         int(kv["dport"]) if "dport" in kv else None, int(kv.get("mark", "0"))))
    return out


def kernel_count(ns: str) -> int:
    return int(sh("conntrack", "-C", netns=ns).strip())


def insert(ns: str, *args: str) -> None:
    sh("conntrack", "-I", *args, netns=ns)


def populate(ns: str) -> None:
    for i in range(20):
        insert(ns, "-p", "tcp", "-s", f"10.0.0.{i % 4 + 1}", "-d", "10.1.0.1", "--sport", str(40000 + i),
               "--dport", "443", "--state", "ESTABLISHED", "-t", "3600", "-u", "SEEN_REPLY,ASSURED")
    for i in range(6):
        insert(ns, "-p", "tcp", "-s", "10.0.0.5", "-d", "10.1.0.2", "--sport", str(41000 + i), "--dport", "80",
               "--state", "SYN_SENT", "-t", "120")
    for i in range(10):
        insert(ns, "-p", "udp", "-s", "10.0.0.9", "-d", "10.1.0.53", "--sport", str(50000 + i), "--dport", "53",
               "-t", "600")
    for i in range(3):
        insert(ns, "-p", "udp", "-s", "10.0.0.6", "-d", "10.1.0.54", "--sport", str(51000 + i), "--dport", "4789",
               "-t", "600", "-m", "7", "-u", "SEEN_REPLY")
    insert(ns, "-p", "icmp", "-s", "10.0.0.1", "-d", "10.1.0.1", "--icmp-type", "8", "--icmp-code", "0",
           "--icmp-id", "77", "-t", "600")


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    name = make_netns()
    try:
        populate(name)
        yield name
    finally:
        delete_netns(name)


def app_for(ns: str) -> CttopApp:
    return CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)


def ids_on_screen(app: CttopApp) -> list[int]:
    return [unpack(r)[R_ID] for r in app.main.flow_list.records]  # conntrack ids


async def test_numbers_on_screen_equal_the_kernels(ns: str) -> None:
    kflows = kernel_flows(ns)
    count = kernel_count(ns)
    maximum = int(sh("cat", "/proc/sys/net/netfilter/nf_conntrack_max", netns=ns))
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        text = screen_text(app)
        ids = ids_on_screen(app)
    assert count == len(kflows) == 40
    assert f"{count:,} / {maximum:,}" in text
    assert f"Flows {count} " in text
    assert sorted(ids) == sorted(f.id for f in kflows)
    for (proto, state), n in Counter((f.proto, f.state) for f in kflows).items():
        label = state if proto == "tcp" else f"{proto} {state}"
        assert re.search(rf"(?:tcp )?{label}\s+{n}\b", text), (label, n)
    evictable = sum(1 for f in kflows if f.state != "ASSURED" and not (f.proto == "tcp" and f.state == "ESTABLISHED"))
    assert f"evictable {evictable} " in text
    for src, n in Counter(f.src for f in kflows).most_common(3):
        assert re.search(rf"{re.escape(src)}\s+{n}\s", text), (src, n)


async def test_filter_group_sort_tag_on_real_flows(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"udp")
        await wait_view(pilot, app)
        assert sorted(ids_on_screen(app)) == sorted(f.id for f in kernel_flows(ns, "-p", "udp"))
        await pilot.press("enter")
        await pilot.press("g")
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == "dst", "dst groups")
        want = Counter(f.dst for f in kernel_flows(ns))
        assert {g.text: g.entries for g in app.shown_frame.top} == dict(want)
        await pilot.press("s")  # sort by destination
        await wait_view(pilot, app)
        dsts = [unpack(r)[6] for r in app.main.flow_list.records]
        assert dsts == sorted(dsts)
        under_cursor = app.main.flow_list.cursor_flow()
        await pilot.press("space")
        assert under_cursor is not None and app.main.flow_list.tagged == {under_cursor}
        assert "1 tagged" in screen_text(app)


async def test_bad_filter_keeps_the_old_view(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("slash", *"tcp dport 80", "enter")  # committed
        await wait_view(pilot, app)
        want = sorted(f.id for f in kernel_flows(ns, "-p", "tcp", "--dport", "80"))
        assert sorted(ids_on_screen(app)) == want and len(want) == 6
        await pilot.press("slash", "end", *" and src net 10.0.0.0/33")
        await pilot.pause(0.5)
        assert "showing: tcp dport 80" in screen_text(app) and "column" in screen_text(app)
        assert sorted(ids_on_screen(app)) == want


async def test_pause_holds_the_view_and_resume_shows_the_kernel(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(120, 45)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("p")
        assert "PAUSED" in screen_text(app)
        before = sorted(ids_on_screen(app))
        insert(ns, "-p", "udp", "-s", "10.0.0.77", "-d", "10.1.0.53", "--sport", "5555", "--dport", "53", "-t", "600")
        try:
            count = kernel_count(ns)
            await wait_for(pilot, lambda: app._frame is not None and app._frame.count == count, "the collector")
            await pilot.pause(0.5)
            assert sorted(ids_on_screen(app)) == before
            assert f"{count - 1:,} / " in screen_text(app)
            await pilot.press("p")
            await wait_for(pilot, lambda: len(ids_on_screen(app)) == count, "the resumed list")
            assert sorted(ids_on_screen(app)) == sorted(f.id for f in kernel_flows(ns))
            assert f"{count:,} / " in screen_text(app)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
        finally:
            sh("conntrack", "-D", "-s", "10.0.0.77", netns=ns, check=False)


async def test_80x24_keeps_every_panel_with_real_flows(ns: str) -> None:
    app = app_for(ns)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_live(pilot, app)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        for cls in (StatusLine, FillPanel, PressurePanel, StatesPanel, HeaviestPanel, FlowsPanel, FlowList):
            region = app.main.query_one(cls).region
            assert region.width > 0 and region.height > 0 and app.screen.region.contains_region(region), cls
        text = screen_text(app)
        assert f"{kernel_count(ns):,} / " in text
        assert sum(1 for line in text.splitlines() if "10.1.0." in line) >= 5  # flow lines still listed
