"""E, X, R and the helper line on real namespaces, against what the kernel says.

E streams the events of entries conntrack -I and -D make, naming the owner `ss -p` names; X lists the
expectations the FTP helper made (tests/kernel/test_expect.py's namespace) as `conntrack -L expect` does,
and the flow detail names the control flow's helper; R names a flow by a nameserver inside the namespace
while conntrack -L shows the resolver's own lookups, which the flow list does not; t shows the expectation
limit and the helpers' module parameters as /proc/sys and /sys/module hold them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from unittest.mock import patch

import pytest
from textual.widgets import DataTable

from cttop.kernel.expect import read_expectations
from cttop.kernel.netns import NetnsSpec
from cttop.live.resolve import Resolver
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.detail import DetailScreen
from cttop.ui.screens.expect import ExpectScreen
from cttop.ui.screens.tunables import TunablesScreen
from tests.conftest import sh
from tests.kernel.test_events import HOLDER
from tests.kernel.test_expect import CLIENTS, conntrack_expect, ftp_ns, parse_expect  # noqa: F401 (a fixture)
from tests.kernel.test_resolve_kernel import FOREIGN_QUERY, SERVER, dns_ns  # noqa: F401 (a fixture)
from tests.kernel.test_tunables_helpers import helper_files
from tests.oracle import conntrack_list
from tests.ui.helpers import open_events, screen_text, wait_for, wait_live
from tests.ui.test_owners_kernel import group_to

pytestmark = pytest.mark.kernel

FLOW = ["-p", "udp", "-s", "10.9.0.1", "-d", "10.9.0.2", "--sport", "4321", "--dport", "53"]


def app_on(ns: str) -> CttopApp:
    return CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.2)


@pytest.fixture
def ns(netns: str) -> str:
    return netns


async def test_e_streams_what_the_kernel_does(ns: str) -> None:
    app = app_on(ns)
    async with app.run_test(size=(120, 30)) as pilot:
        await open_events(pilot, app)
        await wait_for(pilot, lambda: app.collector._log is not None, "the collector's log")
        sh("conntrack", "-I", *FLOW, "-t", "300", netns=ns)
        sh("conntrack", "-D", *FLOW, netns=ns)
        await wait_for(pilot, lambda: "DESTROY" in screen_text(app), "the destroy event")
        lines = [ln for ln in screen_text(app).splitlines() if "10.9.0.1:4321 → 10.9.0.2:53" in ln]
        assert [ln.split()[1] for ln in lines] == ["NEW", "DESTROY"]
        assert conntrack_list(ns) == []  # the kernel agrees it is gone


async def test_e_names_the_owner_where_known(ns: str) -> None:
    holder = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOLDER], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        users = sh("ss", "-Hunap", f"sport = :{port}", netns=ns)  # the kernel's word on who holds the port
        name, pid = re.search(r'users:\(\("([^"]+)",pid=(\d+),', users).groups()  # type: ignore[union-attr]
        held = ["-p", "udp", "-s", "127.0.0.1", "-d", "127.0.0.1", "--sport", str(port), "--dport", "9"]
        app = app_on(ns)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_live(pilot, app)
            await pilot.press("E")
            await wait_for(pilot, lambda: app.collector._log is not None, "the collector's log")
            for flow in (held, FLOW):
                sh("conntrack", "-I", *flow, "-t", "300", netns=ns)
            await wait_for(pilot, lambda: "10.9.0.1:4321" in screen_text(app), "both events")
            lines = [ln for ln in screen_text(app).splitlines() if " NEW " in ln]
            mine = [ln for ln in lines if f"127.0.0.1:{port} → 127.0.0.1:9 " in ln]
            nobodys = [ln for ln in lines if "10.9.0.1:4321 → 10.9.0.2:53 " in ln]
            assert len(mine) == len(nobodys) == 1, lines
            assert mine[0].rstrip().endswith(f"{name}[{pid}]") and "[" not in nobodys[0], lines
    finally:
        holder.kill()
        holder.wait()


async def test_x_lists_the_helpers_expectations_and_the_detail_names_the_helper(ftp_ns: str) -> None:  # noqa: F811
    app = app_on(ftp_ns)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ExpectScreen), "the expectation screen")
        await wait_for(pilot, lambda: f"{len(CLIENTS)} expectations from ftp" in screen_text(app), "the table")
        text = screen_text(app)
        for e in map(parse_expect, conntrack_expect(ftp_ns)):
            port = e["expected"]["dport"]
            master = e["master"]
            row = next(ln for ln in text.splitlines() if ":* → " in ln and f":{port} " in ln)  # any source port
            assert f":{master['sport']} →" in row and f":{master['dport']} " in row and " ftp " in row, row
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "back")
        # the control flow's detail: the helper, asked of the kernel
        app.set_filter("dport 21 and ipv4")
        await wait_for(pilot, lambda: app.shown_index is not None and app.shown_index.spec.filter == "dport 21 and ipv4"
                       and len(app.main.flow_list.records) == 1, "the control flow")
        app.main.flow_list.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the flow detail")
        await wait_for(pilot, lambda: "asking the kernel" not in screen_text(app), "the helper's answer")
        assert [ln for ln in screen_text(app).splitlines() if "helper " in ln][0].split("helper")[1].split()[0] == "ftp"
        assert any(f["extra"].get("helper") == "ftp" and f["orig"]["dport"] == "21" for f in conntrack_list(ftp_ns))


async def test_r_names_flows_and_hides_its_own_lookups(dns_ns: str) -> None:  # noqa: F811
    # a flow to the address the namespace's nameserver has a name for
    sh("conntrack", "-I", "-p", "tcp", "-s", "10.9.0.1", "-d", "192.0.2.7", "--sport", "5555", "--dport", "443",
       "--state", "ESTABLISHED", "-t", "300", netns=dns_ns)
    spec = NetnsSpec(name=dns_ns)
    app = app_on(dns_ns)
    app.new_resolver = lambda: Resolver([SERVER], spec=spec)  # the namespace's nameserver, from inside it
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_live(pilot, app)
        assert "web.example" not in screen_text(app)
        await pilot.press("R")
        await wait_for(pilot, lambda: "web.example:443" in screen_text(app), "the flow shown by name")
        resolver = app.resolver
        assert resolver is not None
        sh(sys.executable, "-c", FOREIGN_QUERY, netns=dns_ns)  # someone else's lookup to the same server
        kernel = [f for f in conntrack_list(dns_ns) if f["orig"]["dst"] == SERVER]
        own = [f for f in kernel if int(f["orig"]["sport"]) in resolver.own_ports]
        others = [f for f in kernel if f not in own]
        assert own and others  # the kernel tracks the resolver's lookups, and the other one
        app.set_filter(f"dst {SERVER}")
        await wait_for(pilot, lambda: app.shown_index is not None and app.shown_index.spec.filter == f"dst {SERVER}"
                       and len(app.main.flow_list.records) == len(others), "the lookups, cttop's own hidden")
        text = screen_text(app)
        assert all(f":{f['orig']['sport']} " not in text for f in own)
        assert all(f":{f['orig']['sport']} " in text for f in others)
        # Nor do they count where the view sums the table: the heaviest destinations, the states.
        await group_to(pilot, app, "dst")
        await wait_for(pilot, lambda: any(g.text == SERVER and g.entries == len(others)
                                          for g in app.shown_frame.top), "the server's entries, ours left out")
        # Held apart, not forgotten: the kernel's count includes them (and the states sum what is shown).
        assert app.collector.table.held > len(app.collector.table)
        frame = app.shown_frame
        assert frame is not None and sum(s.count for s in frame.states) == frame.flows


async def test_x_at_80_columns_scrolls_to_the_helper_and_stays_there(ftp_ns: str) -> None:  # noqa: F811
    app = app_on(ftp_ns)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("X")
        await wait_for(pilot, lambda: f"{len(CLIENTS)} expectations from ftp" in screen_text(app), "the table")
        assert "FLAGS" not in screen_text(app)  # too wide for 80 columns: the last ones are off to the right
        await pilot.press(*["right"] * 40)
        await wait_for(pilot, lambda: "FLAGS" in screen_text(app), "the table scrolled to its last column")
        table = app.screen.query_one(DataTable)
        x = table.scroll_x
        shown = ExpectScreen._show
        reads: list[int] = []
        # each read of the table (r, or the screen's own refresh) rebuilds the rows: the view stays put
        with patch.object(ExpectScreen, "_show", lambda self, exps: (reads.append(len(exps)), shown(self, exps))):
            await pilot.press("r")
            await wait_for(pilot, lambda: len(reads) >= 2, "two reads of the table")
        await pilot.pause()
        text = screen_text(app)
        assert table.scroll_x == x > 0 and "FLAGS" in text and reads[-1] == len(CLIENTS)
        helpers = [e["helper"] for e in map(parse_expect, conntrack_expect(ftp_ns))]
        rows = [ln for ln in text.splitlines() if " ftp " in ln and " → " in ln]
        assert helpers == ["ftp"] * len(CLIENTS) and len(rows) == len(CLIENTS), text
        # Two reads back to back (r pressed as the screen's own refresh lands; CI saw it): the second must
        # keep the column the first puts back, not the left edge its clear() left meanwhile.
        screen, exps = app.screen, read_expectations(app.spec)
        assert isinstance(screen, ExpectScreen)
        screen._show(exps)
        screen._show(exps)
        await pilot.pause()
        await pilot.pause()
        assert table.scroll_x == x > 0


async def test_t_shows_the_expectation_limit_and_the_helpers_settings(ns: str) -> None:
    want = {"nf_conntrack_expect_max": sh("cat", "/proc/sys/net/netfilter/nf_conntrack_expect_max", netns=ns).strip()}
    want |= helper_files()  # nf_conntrack_ftp.ports → /sys/module/nf_conntrack_ftp/parameters/ports, …
    app = app_on(ns)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TunablesScreen) and bool(app.screen.items), "t")
        screen = app.screen
        assert isinstance(screen, TunablesScreen)
        names = [s.name for s in screen.items]
        assert set(want) <= set(names)
        at = 0
        for i in sorted(names.index(n) for n in want):  # down the list, as a person would, each one's detail
            await pilot.press(*["down"] * (i - at))
            at, name = i, names[i]
            await wait_for(pilot, lambda: f"{name} = " in screen_text(app), name)
            text = " ".join(screen_text(app).split())
            assert f"{name} = {want[name]} " in text and "read-only here" in text, (name, text)
