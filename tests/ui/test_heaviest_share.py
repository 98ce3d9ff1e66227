"""The heaviest panel's % is the share of the measure the groups are ranked by: entries, bytes or packets."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.table.aggregates import GroupRow
from cttop.table.store import FlowTable
from cttop.ui import fmt
from cttop.ui.app import CttopApp
from cttop.ui.heaviest import HeaviestPanel
from tests.conftest import delete_netns, make_netns, sh
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import screen_text, wait_for, wait_live
from tests.unit.test_table import rows

# Bytes each source sends (one datagram each way, IP + UDP headers and payload).
SENDERS = {"10.2.0.1": 9000, "10.2.0.2": 3000, "10.2.0.3": 600}
PEER = "10.2.0.100"


def test_the_table_keeps_byte_and_packet_totals_of_every_counted_flow() -> None:
    t = FlowTable()
    t.extend(rows(3000))  # half of them with counters
    counted = [r for r in t.rows() if r[17] is not None]
    assert 0 < len(counted) < 3000
    assert t.agg.bytes == sum(r[18] + r[20] for r in counted)
    assert t.agg.packets == sum(r[17] + r[19] for r in counted)


def kernel_bytes(ns: str) -> dict[str, int]:
    """Bytes per source of the UDP flows to PEER, both directions, from `conntrack -L`."""
    out: dict[str, int] = {}
    for line in sh("conntrack", "-L", "-p", "udp", "-d", PEER, netns=ns).splitlines():
        src = re.search(r"\bsrc=(\S+)", line)
        counts = [int(b) for b in re.findall(r"\bbytes=(\d+)", line)]
        if src and counts:
            out[src.group(1)] = out.get(src.group(1), 0) + sum(counts)
    return out


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("cttop-share")
    try:
        sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", netns=name)  # per namespace
        for addr in [*SENDERS, PEER]:
            sh("ip", "addr", "add", f"{addr}/32", "dev", "lo", netns=name)
        code = "import socket\n" + "".join(
            f"s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{src}', 0))\n"
            f"for _ in range(3): s.sendto(b'x' * {size}, ('{PEER}', 9))\n" for src, size in SENDERS.items())
        sh(sys.executable, "-c", code, netns=name)
        yield name
    finally:
        delete_netns(name)


def heaviest_lines(app: CttopApp) -> dict[str, int]:
    """Each group's % as the panel draws it."""
    out = {}
    for part in heaviest_text(app):
        m = re.match(r"(\S+)\s+\d+\s+(\d+)%", part)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def heaviest_text(app: CttopApp) -> list[str]:
    """The panel's lines as drawn."""
    panel = app.main.query_one(HeaviestPanel)
    lines = screen_text(app).splitlines()[panel.content_region.y:panel.content_region.bottom]
    return [line[panel.content_region.x:panel.content_region.right] for line in lines if line.strip()]


@pytest.mark.kernel
async def test_ranked_by_bytes_the_share_is_of_the_kernels_bytes(ns: str) -> None:
    kernel = kernel_bytes(ns)
    assert set(kernel) == set(SENDERS) and len(set(kernel.values())) == 3
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_live(pilot, app)
        for by in ("entries", "bytes", "packets"):
            if app.top_by != by:
                await pilot.press("b")
            await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.top_by == by
                           and len(heaviest_lines(app)) == 3, f"the groups ranked by {by}")
            shares = heaviest_lines(app)
            if by == "bytes":
                total = sum(kernel.values())
                assert shares == {src: round(n / total * 100) for src, n in kernel.items()}, (shares, kernel)
                # What they are ranked by is on each row: the totals, not the rates (0 B/s: these flows idle).
                rows = {line.split()[0]: line for line in heaviest_text(app)}
                for src, n in kernel.items():
                    assert f" {fmt.si(n, 'B')} " in rows[src] and "/s" not in rows[src], rows[src]
            else:  # each source has one flow of three packets each way: a third each
                assert shares == {src: 33 for src in SENDERS}, (by, shares)
            assert 99 <= sum(shares.values()) <= 101


@pytest.mark.parametrize(("by", "shown"), [("entries", "/s"), ("bytes", "12.0kB"), ("packets", "90p")])
async def test_ranked_by_bytes_or_packets_the_rows_show_the_totals_not_the_rates(by: str, shown: str) -> None:
    """With rates known, a ranking by entries shows them; one by bytes or packets shows the totals it ranks by
    (a top row of 0B 0p/s above one of 5.1kB 71p/s read as the rank)."""
    app = CttopApp(FixedSource(), interval=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_live(pilot, app)
        frame = app.shown_frame
        assert frame is not None and frame.counted
        rows = (GroupRow(b"a", "10.0.0.1", 5, 12_000, 90, "src 10.0.0.1", bytes_rate=0.0, packets_rate=0.0),
                GroupRow(b"b", "10.0.0.2", 3, 5_100, 71, "src 10.0.0.2", bytes_rate=5100.0, packets_rate=71.0))
        text = app.main.query_one(HeaviestPanel).draw(replace(frame, top=rows, top_by=by, ranked_total=17_100),
                                                     60, 5).plain
    first = text.splitlines()[0]
    assert first.startswith("10.0.0.1") and shown in first, text
    assert ("/s" in text) == (by == "entries"), text
