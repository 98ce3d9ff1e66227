"""The TUI on a container host: `g container` names the containers behind forwarded flows with the
kernel's numbers, Enter filters the list to one, the detail names the DNAT'd backend, and F flushes
exactly that container's flows (tests/container_host.py; the oracle is `conntrack -L`); and the header
says when an eBPF datapath's conntrack maps are the table, and names kube-proxy as the cause of drift only
where doctor does (a value it writes, in its own namespace or a global one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.kernel.netns import NetnsSpec
from cttop.lab.containers import VIP4
from cttop.sources.live import LiveSource
from cttop.table.packing import record_key
from cttop.ui import fmt
from cttop.ui.app import CttopApp
from cttop.ui.detail import DetailScreen
from cttop.ui.flows import CONTAINER_WIDTH
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from tests.conftest import run_cttop, sh
from tests.container_host import SPRAY, WEB_OUT, ContainerHost, by_role, container_host
from tests.kernel.test_datapath import bpffs, kube_proxy, kube_proxy_elsewhere  # noqa: F401  (fixtures)
from tests.ui.helpers import confirm_open, confirm_text, screen_text, wait_for, wait_live, wait_view, yes_and_wait
from tests.ui.test_owners_kernel import group_to

pytestmark = pytest.mark.kernel

WEB = WEB_OUT + 1


@pytest.fixture
def ch() -> Iterator[ContainerHost]:
    with container_host() as host:
        yield host


def kernel_ids(ch: ContainerHost, role: str) -> set[str]:
    return {ln.split("id=")[1].split()[0] for ln in ch.kernel_lines("-s", by_role(role).address, "-o", "id")}


async def test_g_container_names_both_containers_enter_filters_and_F_flushes_one(
        ch: ContainerHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    spray_ids, web_ids = kernel_ids(ch, "spray"), kernel_ids(ch, "web")
    assert (len(spray_ids), len(web_ids)) == (SPRAY, WEB)
    app = CttopApp(LiveSource(NetnsSpec(name=ch.host)), interval=0.2)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_live(pilot, app)
        await group_to(pilot, app, "container")
        await wait_for(pilot, lambda: app.shown_frame is not None
                       and {g.text for g in app.shown_frame.top} >= {ch.label("spray"), ch.label("web")},
                       "both containers ranked")
        frame = app.shown_frame
        assert frame is not None
        got = {g.text: g.entries for g in frame.top}
        assert (got[ch.label("spray")], got[ch.label("web")]) == (SPRAY, WEB)
        text = screen_text(app)
        assert "Heaviest container by entries" in text
        assert re.search(rf"{re.escape(ch.label('spray'))}\s+{SPRAY}\s+\d+%", text), text
        assert re.search(rf"{re.escape(ch.label('web'))}\s+{WEB}\s+\d+%", text), text

        heaviest = app.main.query_one(HeaviestPanel)
        heaviest.focus()
        heaviest.cursor = [g.text for g in frame.top].index(ch.label("spray"))
        await pilot.press("enter")
        expr = f"container {ch.label('spray')}"
        await wait_for(pilot, lambda: app.view.filter == expr, "the container's filter")
        await wait_view(pilot, app)
        shown = {str(record_key(r) & 0xFFFFFFFF) for r in app.main.flow_list.records}
        assert shown == spray_ids
        # Each of its lines names the process inside the container, and the container.
        lines = [ln for ln in screen_text(app).splitlines() if by_role("spray").address in ln]
        column = fmt.truncate(ch.label("spray"), CONTAINER_WIDTH)  # a short id (on a Docker host) is cut to fit
        assert len(lines) == SPRAY and all(ch.process("spray") in ln and column in ln for ln in lines)

        await pilot.press("F")
        confirm = await confirm_open(pilot, app)
        assert f"Flush the flows matching '{expr}'" in confirm_text(confirm) and f", {SPRAY} now" in confirm_text(confirm)
        await yes_and_wait(pilot, app, tmp_path)
    assert kernel_ids(ch, "spray") == set() and kernel_ids(ch, "web") == web_ids


async def test_notrack_on_a_container_group_says_rules_cannot_match_owners(
        ch: ContainerHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It said the owners were "known only from a live namespace's sockets", in a live namespace."""
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    app = CttopApp(LiveSource(NetnsSpec(name=ch.host)), interval=0.2)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await wait_live(pilot, app)
        await group_to(pilot, app, "container")
        await wait_for(pilot, lambda: app.shown_frame is not None
                       and ch.label("spray") in {g.text for g in app.shown_frame.top}, "the container ranked")
        await pilot.press("tab")
        heaviest = app.main.query_one(HeaviestPanel)
        assert app.focused is heaviest
        heaviest.cursor = [g.text for g in heaviest.rows].index(ch.label("spray"))
        await pilot.press("n")
        await wait_for(pilot, lambda: any("cannot add NOTRACK" in n.message for n in app._notifications),
                       "the refusal")
        said = next(n.message for n in app._notifications if "cannot add NOTRACK" in n.message)
        assert "cannot match on owners" in said and "addresses" in said and "live namespace" not in said
        assert app.screen is app.main  # no confirmation: nothing to confirm
    tables = sh("nft", "list", "tables", netns=ch.host)
    assert not re.search(r"^table inet cttop$", tables, re.MULTILINE)  # no rule was added


async def test_the_detail_of_a_dnat_flow_names_the_client_container_and_the_backend_pod(ch: ContainerHost) -> None:
    app = CttopApp(LiveSource(NetnsSpec(name=ch.host)), interval=0.2)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_live(pilot, app)
        app.set_filter(f"dst {VIP4}")
        await wait_view(pilot, app)
        await wait_for(pilot, lambda: len(app.main.flow_list.records) == 1, "the one flow to the service")
        owners = app.collector.owners
        assert owners is not None
        await wait_for(pilot, lambda: owners.index.hosts is not None, "the host's namespaces mapped")
        app.main.flow_list.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), "the flow detail")
        text = screen_text(app)
        assert re.search(rf"process\s+{re.escape(ch.process('web'))} in {re.escape(ch.label('web'))}", text), text
        api = by_role("api")
        assert re.search(rf"service\s+{re.escape(VIP4)}:53 → {re.escape(ch.label('api'))} at {api.address}:53", text)


async def test_the_header_says_so(bpffs: Path, netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_BPFFS", str(bpffs))
    app = CttopApp(LiveSource(NetnsSpec(name=netns)), interval=0.2)
    async with app.run_test(size=(200, 30)) as pilot:
        await wait_live(pilot, app)
        status = app.main.query_one(StatusLine)
        await wait_for(pilot, lambda: status.datapath is not None, "the datapath look")
        assert "eBPF CT tracks pod traffic, not this table: cilium bpf ct list global" in str(status.render())


ESTABLISHED = "nf_conntrack_tcp_timeout_established"  # one kube-proxy writes at start
GENERIC = "nf_conntrack_generic_timeout"  # one it does not


async def status_after_drift(netns: str, state: Path, name: str, value: str) -> str:
    """cttop sets ``name`` in ``netns``, someone rewrites it, and the TUI's status line once it sees the drift."""
    r = run_cttop("set", f"{name}={value}", "--netns", netns, "--yes", "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    sh("sysctl", "-qw", f"net.netfilter.{name}={int(value) + 1}", netns=netns)
    app = CttopApp(LiveSource(NetnsSpec(name=netns)), interval=0.2)
    async with app.run_test(size=(200, 30)) as pilot:
        await wait_live(pilot, app)
        status = app.main.query_one(StatusLine)
        await wait_for(pilot, lambda: status.drift == 1, "the drift")
        return str(status.render())


async def test_the_header_names_kube_proxy_in_the_namespace_as_the_cause_of_drift(
        netns: str, kube_proxy: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    line = await status_after_drift(netns, tmp_path, ESTABLISHED, "7440")
    assert f"drift: 1 value changed since cttop set them (by kube-proxy[{kube_proxy}]?)" in line, line


@pytest.mark.parametrize("name,value,where", [(ESTABLISHED, "7440", "elsewhere"), (GENERIC, "590", "here")])
async def test_the_header_does_not_blame_kube_proxy_for_what_it_did_not_write(
        netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
        name: str, value: str, where: str) -> None:
    """A per-namespace value drifted where no kube-proxy runs, or one kube-proxy never writes: as doctor says
    (tests/kernel/test_datapath.py), kube-proxy is not the cause."""
    request.getfixturevalue("kube_proxy" if where == "here" else "kube_proxy_elsewhere")
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    line = await status_after_drift(netns, tmp_path, name, value)
    assert "drift: 1 value changed since cttop set them" in line and "kube-proxy" not in line, line
