"""Owners on screen: a process in a throwaway namespace holding N connections is named with N.

One process is both ends: it listens on loopback and connects to itself N times.
Conntrack keeps one entry per connection (the original tuple is the client's
socket, the reply tuple the accepted one), so the process owns N entries, not
2N; `conntrack -L` inside the namespace says how many there are.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.table.packing import record_key
from cttop.ui.app import CttopApp
from cttop.ui.detail import DetailScreen
from cttop.ui.heaviest import HeaviestPanel
from tests.conftest import delete_netns, make_netns, sh
from tests.ui.helpers import confirm_open, confirm_text, screen_text, wait_for, wait_live, yes_and_wait

pytestmark = pytest.mark.kernel

N = 12
PORT = 7100
HOLDER = f"""
import socket, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", {PORT})); srv.listen(64)
held = []
def accept():
    while True:
        held.append(srv.accept()[0])
threading.Thread(target=accept, daemon=True).start()
clients = [socket.create_connection(("127.0.0.1", {PORT})) for _ in range({N})]
while len(held) < {N}:
    time.sleep(0.01)
print("READY", flush=True)
time.sleep(600)
"""


@dataclass(frozen=True)
class Holder:
    ns: str
    pid: int
    comm: str

    @property
    def label(self) -> str:
        return f"{self.comm}[{self.pid}]"


@pytest.fixture(scope="module")
def holder() -> Iterator[Holder]:
    ns = make_netns()
    proc = None
    try:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOLDER], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        with open(f"/proc/{proc.pid}/comm") as f:
            comm = f.read().strip()
        yield Holder(ns, proc.pid, comm)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        delete_netns(ns)


def kernel_lines(ns: str, *args: str) -> list[str]:
    return [line for line in sh("conntrack", "-L", *args, netns=ns).splitlines() if line.strip()]


async def group_to(pilot, app: CttopApp, group: str) -> None:  # type: ignore[no-untyped-def]
    while app.group != group:
        await pilot.press("g")
    await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.group == group
                   and bool(app.shown_frame.top), f"a frame ranked by {group}")


async def test_the_process_holding_n_connections_is_named_with_n(holder: Holder) -> None:
    to_port = kernel_lines(holder.ns, "-p", "tcp", "--dport", str(PORT))
    assert len(to_port) == N  # the kernel: one entry per connection
    total = int(sh("conntrack", "-C", netns=holder.ns))
    app = CttopApp(LiveSource(NetnsSpec(name=holder.ns)), interval=0.2)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_live(pilot, app)
        assert "process" in app.collector.group_order and "container" in app.collector.group_order
        await group_to(pilot, app, "process")
        text = screen_text(app)
        assert "Heaviest process by entries" in text
        assert re.search(rf"{re.escape(holder.label)}\s+{N}\s+\d+%", text), text
        # The flow list's process column, on every line of those flows that is on screen (the
        # list's lines drawn before the first owners refresh are redrawn after it).
        def port_lines() -> list[str]:
            return [ln for ln in screen_text(app).splitlines() if f"127.0.0.1:{PORT}" in ln]

        await wait_for(pilot, lambda: all(holder.label in ln for ln in port_lines()), "the process column")
        assert len(port_lines()) >= 5

        await group_to(pilot, app, "container")
        frame = app.shown_frame
        assert frame is not None
        # Every flow is somebody's (or says whose it is not): the groups add up to the kernel's count.
        assert sum(g.entries for g in frame.top) == total
        # The holder's flows are all this namespace has: its container (or "(none)") holds N of them,
        # and the container column says so on each of their lines.
        top = frame.top[0]
        assert top.entries == N == total
        assert re.search(rf"{re.escape(top.text[:20])}\S*\s+{N}\s+\d+%", screen_text(app))
        assert all(f"{holder.label}" in ln and top.text[:16] in ln for ln in port_lines())

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the flow detail")
        assert re.search(rf"process\s+{re.escape(holder.label)}", screen_text(app))


async def test_80_columns_keep_the_tuples_and_drop_the_process_column(holder: Holder) -> None:
    app = CttopApp(LiveSource(NetnsSpec(name=holder.ns)), interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await group_to(pilot, app, "process")
        text = screen_text(app)
        assert holder.label in text  # in the heaviest panel
        lines = [ln for ln in text.splitlines() if f"127.0.0.1:{PORT}" in ln]
        assert lines and not any(holder.label in ln for ln in lines)


async def test_enter_on_an_owner_group_filters_the_list_and_F_flushes_exactly_it(
        holder: Holder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    # Flows with no local end beside the holder's, so the filters have something to leave out.
    passing = 5
    for i in range(passing):
        sh("conntrack", "-I", "-p", "udp", "-s", "10.9.9.9", "-d", "10.9.9.10", "--sport", str(2000 + i),
           "--dport", "53", "-t", "120", netns=holder.ns)
    try:
        kernel = {line.split("id=")[1].split()[0]: line for line in kernel_lines(holder.ns, "-o", "id")}
        held = {i for i, line in kernel.items() if f"dport={PORT} " in line}
        through = {i for i, line in kernel.items() if "src=10.9.9.9 " in line}
        assert (len(held), len(through)) == (N, passing)
        app = CttopApp(LiveSource(NetnsSpec(name=holder.ns)), interval=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await wait_live(pilot, app)
            await group_to(pilot, app, "process")
            frame = app.shown_frame
            assert frame is not None
            assert [(g.text, g.entries) for g in frame.top] == [(holder.label, N), ("forwarded", passing)]
            heaviest = app.main.query_one(HeaviestPanel)
            for row, (expr, want) in enumerate(((f"pid {holder.pid}", held), ("forwarded", through))):
                heaviest.focus()
                heaviest.cursor = row
                await pilot.press("enter")
                await wait_for(pilot, lambda expr=expr: app.view.filter == expr  # type: ignore[misc]
                               and app.shown_index is not None and app.shown_index.spec.filter == expr,
                               f"the list filtered by {expr}")
                shown = {str(record_key(r) & 0xFFFFFFFF) for r in app.main.flow_list.records}
                assert shown == want, expr
                assert f"Flows {len(want)} of {N + passing}" in screen_text(app)

            # The list stands at "forwarded": F flushes exactly those flows, as the kernel sees it.
            await pilot.press("F")
            confirm = await confirm_open(pilot, app)
            assert "Flush the flows matching 'forwarded'" in confirm_text(confirm)
            assert f", {passing} now" in confirm_text(confirm)
            await yes_and_wait(pilot, app, tmp_path)
        after = {line.split("id=")[1].split()[0] for line in kernel_lines(holder.ns, "-o", "id")}
        assert after == held
    finally:
        sh("conntrack", "-D", "-s", "10.9.9.9", netns=holder.ns, check=False)  # gone already if F worked


async def test_a_bounded_view_ranks_owners_from_its_own_counts(holder: Holder) -> None:
    """Over --max-flows the table holds no records to rank by owner: it counts the flows by owner itself."""
    total = int(sh("conntrack", "-C", netns=holder.ns))
    app = CttopApp(LiveSource(NetnsSpec(name=holder.ns)), interval=0.2, max_flows=N // 2)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_live(pilot, app)
        assert app.collector.table.bounded and app.collector.table.records() == []
        await group_to(pilot, app, "process")
        assert app.shown_frame is not None and app.shown_frame.bounded == N // 2
        top = {g.text: g.entries for g in app.shown_frame.top}
        assert top.get(holder.label) == N and sum(top.values()) == total
        text = screen_text(app)
        assert "Heaviest process by entries" in text and re.search(rf"{re.escape(holder.label)}\s+{N}\s+\d+%", text)
        await group_to(pilot, app, "container")
        assert sum(g.entries for g in app.shown_frame.top) == total
