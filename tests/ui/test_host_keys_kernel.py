"""D and N on real namespaces: the numbers on screen are the kernel's (conntrack -C / -S inside each namespace),
Enter in N switches the view, and a doctor fix button really changes the namespace's setting."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable

from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.screens.doctor import DoctorScreen, FindingView
from cttop.ui.screens.namespaces import NamespacesScreen
from tests.conftest import delete_netns, make_netns, sh
from tests.udp_burst import unanswered_udp_burst
from tests.ui.helpers import confirm_shown, screen_text, wait_for, wait_live

pytestmark = pytest.mark.kernel

SYSCTL = "/proc/sys/net/netfilter"


def kernel_count(ns: str) -> int:
    return int(sh("conntrack", "-C", netns=ns).strip())


def kernel_stat(ns: str, name: str) -> int:
    """A per-CPU counter of `conntrack -S`, summed over CPUs."""
    return sum(int(v) for v in re.findall(rf"\b{name}=(\d+)", sh("conntrack", "-S", netns=ns)))


def read_sysctl(ns: str, name: str) -> int:
    return int(sh("cat", f"{SYSCTL}/{name}", netns=ns).strip())


async def open_doctor(pilot: Pilot[None], app: CttopApp) -> DoctorScreen:
    """Press D and wait until the doctor has watched the table and shows its report."""
    await pilot.press("D")
    doctor = app.screen
    assert isinstance(doctor, DoctorScreen)
    await wait_for(pilot, lambda: doctor.report is not None, "the doctor's report")
    await pilot.pause(0.2)
    return doctor


def insert_udp(ns: str, n: int) -> None:
    for i in range(n):
        sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", str(20000 + i),
           "--dport", "53", "-t", "600", netns=ns)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[str, str]]:
    a, b = make_netns(), make_netns()
    try:
        insert_udp(a, 9)
        insert_udp(b, 4)
        yield a, b
    finally:
        delete_netns(a)
        delete_netns(b)


def row_of(text: str, label: str) -> list[str]:
    """The namespace table's row of ``label``: the name, then the next column at least two cells on."""
    line = next(line for line in text.splitlines() if f" {label}  " in line)
    return line[line.index(f" {label}  ") + 1:].split("│")[0].split()


async def test_doctor_and_namespaces_show_the_kernels_numbers_and_enter_switches(pair: tuple[str, str]) -> None:
    a, b = pair
    maximum = int(sh("cat", f"{SYSCTL}/nf_conntrack_max"))
    app = CttopApp(LiveSource(NetnsSpec(name=a)), interval=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_live(pilot, app)
        await open_doctor(pilot, app)
        text = screen_text(app)
        assert f"{kernel_count(a)} of {maximum} entries" in text
        assert re.search(rf"\b(OK|WARNING|CRITICAL|UNKNOWN) · {a} · watched 3\.0 s", text)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "the doctor to close")

        await pilot.press("N")
        screen = app.screen
        assert isinstance(screen, NamespacesScreen)
        await wait_for(pilot, lambda: bool(screen.namespaces), "the namespace list")
        await pilot.pause(0.2)
        text = screen_text(app)
        for ns in (a, b):
            count = kernel_count(ns)
            assert row_of(text, ns)[:5] == [ns, str(count), f"{count / maximum:.1%}", str(kernel_stat(ns, "drop")),
                                            str(kernel_stat(ns, "early_drop"))]
        assert f"▶  {a} " in text and f"▶  {b} " not in text  # the one shown now
        labels = [ns.label for ns in screen.namespaces]
        screen.query_one(DataTable).move_cursor(row=labels.index(b))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.main, "the namespace screen to close")
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.label == b
                       and app.shown_frame.phase == "live" and app.shown_index is not None, "a live view of b")
        await pilot.pause(0.2)
        text = screen_text(app)
        count_b = kernel_count(b)
        assert app.spec == NetnsSpec(name=b)
        assert text.splitlines()[0].startswith(f"cttop · {b} · LIVE")
        assert f"{count_b:,} / {maximum:,}" in text
        assert len(app.main.flow_list.records) == count_b == 4


@pytest.fixture
def unreplied_ns() -> Iterator[str]:
    """A namespace whose table is mostly UNREPLIED UDP, enough (over 5 % of the max) for doctor to care."""
    ns = make_netns()
    try:
        unanswered_udp_burst(ns, 0.06)
        yield ns
    finally:
        delete_netns(ns)


async def test_doctor_fix_button_changes_the_kernel(unreplied_ns: str, tmp_path: object,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ns = unreplied_ns
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path))
    assert read_sysctl(ns, "nf_conntrack_udp_timeout") == 300
    app = CttopApp(LiveSource(NetnsSpec(name=ns)), interval=0.5)
    async with app.run_test(size=(130, 50)) as pilot:
        await wait_live(pilot, app)
        doctor = await open_doctor(pilot, app)
        assert doctor.report is not None
        assert doctor.report.status == "warning"
        assert "WARNING · " in screen_text(app)
        view = next(v for v in doctor.query(FindingView) if v.finding.code == "timeout-udp_timeout")
        view.query_one(Button).press()
        await wait_for(pilot, lambda: confirm_shown(app), "the confirmation")
        assert "nf_conntrack_udp_timeout" in screen_text(app)
        assert read_sysctl(ns, "nf_conntrack_udp_timeout") == 300  # nothing before the answer
        await pilot.press("y")
        await wait_for(pilot, lambda: read_sysctl(ns, "nf_conntrack_udp_timeout") == 10, "the kernel's new timeout")
        await wait_for(pilot, lambda: app.screen is doctor, "back to the doctor")
