"""D (doctor) and N (namespaces) on a fixed source, with the kernel-facing calls replaced by hand-made results."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.widgets import Button, DataTable

import cttop.ui.screens.doctor as doctor_screen
import cttop.ui.screens.namespaces as ns_screen
from cttop.actions import ActionResult
from cttop.doctor import Finding, Remedy, Report
from cttop.host.namespaces import Namespace
from cttop.kernel.netns import NetnsSpec
from cttop.ui.app import CttopApp, help_sections
from cttop.ui.header import StatusLine
from cttop.ui.keys.host import HostKeys
from cttop.ui.screens.doctor import DoctorScreen
from cttop.ui.screens.namespaces import NamespacesScreen
from tests.ui.fixed_source import FixedSource, fixed_rows
from tests.ui.helpers import app_on, confirm_shown, screen_text, wait_for, wait_live


class FakePlan:
    """Enough of a cttop.actions plan for the confirmation and apply path; records whether it was applied."""

    undoes = None
    undoable = True

    def __init__(self) -> None:
        self.applied = 0

    def describe(self) -> str:
        return "Set nf_conntrack_udp_timeout from 30 to 10 in ns-a"

    def commands(self) -> list[str]:
        return ["ip netns exec ns-a sysctl -w net.netfilter.nf_conntrack_udp_timeout=10"]

    def warnings(self) -> list[str]:
        return []

    def apply(self) -> ActionResult:
        self.applied += 1
        return ActionResult("j1", "sysctl", "nf_conntrack_udp_timeout 30 -> 10", 1, {})  # type: ignore[arg-type]


def report(plan: FakePlan) -> Report:
    return Report("ns-a", 2.0, [
        Finding("fill", "ok", "Table 1.0% full", "2621 of 262144 entries"),
        Finding("unreplied", "warning", "UNREPLIED dominate: 90% of entries (2359)",
                "2359 of 2621 entries (90%) are UNREPLIED\nthey never saw a reply",
                commands=["ip netns exec ns-a sysctl -w net.netfilter.nf_conntrack_udp_timeout=10"],
                action=Remedy("sysctl", lambda journal: plan)),  # type: ignore[arg-type,return-value]
        Finding("drops", "critical", "New flows dropped: drop +40 in 2.0 s (20/s)", "in 2.0 s: drop +40",
                commands=["sysctl -w net.netfilter.nf_conntrack_max=524288"]),
    ])


class FakeDiagnose:
    """Stands in for doctor.diagnose: blocks until released, so the test sees the screen while it watches."""

    def __init__(self, result: Report) -> None:
        self.result = result
        self.release = threading.Event()
        self.calls: list[tuple[NetnsSpec, float]] = []

    def __call__(self, spec: NetnsSpec, seconds: float, **kw: Any) -> Report:
        self.calls.append((spec, seconds))
        if not self.release.wait(20):
            raise RuntimeError("never released")
        return self.result


def notices(app: CttopApp) -> str:
    """The notifications raised so far (headless runs do not draw toasts)."""
    return "\n".join(n.message for n in app._notifications)


async def test_replays_have_no_namespace_to_doctor_or_list() -> None:
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("D")
        await pilot.pause(0.2)
        assert app.screen is app.main
        assert "doctor needs a live namespace" in notices(app)
        await pilot.press("N")
        await pilot.pause(0.2)
        assert app.screen is app.main
        assert "namespaces need a live view" in notices(app)


async def test_doctor_watches_in_a_worker_then_lists_findings_worst_first(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FakePlan()
    fake = FakeDiagnose(report(plan))
    monkeypatch.setattr(doctor_screen, "diagnose", fake)
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        screen = DoctorScreen(NetnsSpec(name="ns-a"), seconds=2)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: len(fake.calls) == 1, "diagnose to be called")
        text = screen_text(app)
        assert "WATCHING" in text and "watching the table for 2 s" in text
        await pilot.press("down")  # the UI answers keys while the worker watches
        fake.release.set()
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.2)
        text = screen_text(app)
    assert fake.calls == [(NetnsSpec(name="ns-a"), 2)]
    assert "CRITICAL · ns-a · watched 2.0 s · 1 critical, 1 warning, 1 ok" in text
    lines = text.splitlines()
    order = [next(i for i, line in enumerate(lines) if needle in line)
             for needle in ("CRITICAL New flows dropped", "WARNING  UNREPLIED dominate", "OK       Table 1.0% full")]
    assert order == sorted(order)
    assert "2359 of 2621 entries (90%) are UNREPLIED" in text
    assert "ip netns exec ns-a sysctl -w net.netfilter.nf_conntrack_udp_timeout=10" in text
    assert "sysctl -w net.netfilter.nf_conntrack_max=524288" in text


async def test_fix_button_opens_the_confirmation_and_applies_only_on_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FakePlan()
    fake = FakeDiagnose(report(plan))
    fake.release.set()
    monkeypatch.setattr(doctor_screen, "diagnose", fake)
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        screen = DoctorScreen(NetnsSpec(name="ns-a"), seconds=2)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.1)
        buttons = list(screen.query(Button))
        assert [str(b.label) for b in buttons] == ["Set the tunables…"]  # only the finding with a remedy
        buttons[0].press()
        await wait_for(pilot, lambda: confirm_shown(app), "the confirmation")
        assert "Set nf_conntrack_udp_timeout from 30 to 10 in ns-a" in screen_text(app)
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen, "back to the doctor")
        await pilot.pause(0.2)
        assert plan.applied == 0 and len(fake.calls) == 1
        buttons[0].press()
        await wait_for(pilot, lambda: confirm_shown(app), "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: plan.applied == 1, "the plan to be applied")
        await wait_for(pilot, lambda: len(fake.calls) == 2, "doctor to watch again after the fix")
        await wait_for(pilot, lambda: screen.report is not None, "the new report")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main, "the doctor to close")


async def test_read_only_doctor_shows_commands_but_no_fix_buttons(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDiagnose(report(FakePlan()))
    fake.release.set()
    monkeypatch.setattr(doctor_screen, "diagnose", fake)
    app = app_on(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        screen = DoctorScreen(NetnsSpec(name="ns-a"), seconds=2)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert not list(screen.query(Button))
    assert "read-only: fixes shown as commands only" in text
    assert "ip netns exec ns-a sysctl -w net.netfilter.nf_conntrack_udp_timeout=10" in text


def fake_namespaces() -> list[Namespace]:
    return [
        Namespace(1, initial=True, pids=[1, 2], process="systemd", count=120, max=262144, drop=0, early_drop=0),
        Namespace(2, names=["alpha"], count=25, max=262144, drop=3, early_drop=7),
        Namespace(3, names=["beta"], count=4, max=262144, drop=0, early_drop=0),
        Namespace(4, pids=[900], process="[nginx]", container="docker:web", error="permission denied"),
    ]


async def test_namespaces_lists_each_with_totals_and_enter_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ns_screen, "list_namespaces", fake_namespaces)
    beta_rows = fixed_rows()[:4]
    opened: list[NetnsSpec] = []

    def open_source(spec: NetnsSpec) -> FixedSource:
        opened.append(spec)
        return FixedSource(beta_rows, label=spec.label(), maximum=262144)

    monkeypatch.setattr(ns_screen, "LiveSource", open_source)
    app = app_on()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        old = app.collector
        await pilot.press("space")  # a tag, which must not survive the switch
        assert app.main.flow_list.tagged
        screen = NamespacesScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: bool(screen.namespaces), "the namespaces")
        await pilot.pause(0.1)
        text = screen_text(app)
        lines = text.splitlines()

        def line_of(label: str) -> list[str]:
            line = next(line for line in lines if f" {label} " in line)
            return line[line.index(f" {label} ") + 1:].split("│")[0].split()

        assert line_of("alpha")[:5] == ["alpha", "25", "0.0%", "3", "7"]
        assert line_of("beta")[:5] == ["beta", "4", "0.0%", "0", "0"]
        assert line_of("init")[:7] == ["init", "120", "0.0%", "0", "0", "2", "systemd"]
        assert line_of("docker:web")[:8] == ["docker:web", "?", "-", "?", "?", "1", "[nginx]", "docker:web"]
        assert "TOTAL 149 entries in 4 namespaces = 0.1% of the shared max 262144 · drop 3 · early_drop 7" in text
        assert "1 unreadable" in text
        table = screen.query_one(DataTable)
        table.move_cursor(row=3)
        await pilot.press("enter")  # unreadable: says why, stays
        await pilot.pause(0.2)
        assert app.screen is screen and "docker:web: permission denied" in notices(app)
        table.move_cursor(row=2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.main, "the screen to close")
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.label == "beta"
                       and app.shown_frame.phase == "live", "a live frame of beta")
        await wait_for(pilot, lambda: app.shown_index is not None and len(app.main.flow_list.records) == 4,
                       "beta's flows")
        text = screen_text(app)
        assert app.collector is not old and not old._thread.is_alive()
        assert not app.main.flow_list.tagged
        assert app.main.query_one(StatusLine).tagged == 0
    assert opened == [NetnsSpec(name="beta")]
    assert text.splitlines()[0].startswith("cttop · beta · LIVE")
    assert "4 / 262,144" in text and "Flows 4 " in text


async def test_help_and_palette_offer_doctor_and_namespaces() -> None:
    app = app_on(read_only=True)  # neither writes, so read-only keeps them
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        titles = [e.title for e in app.main.palette()]
        footer = screen_text(app).splitlines()[-1]
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "Doctor and namespaces" in screen_text(app), "the help")
        help_text = screen_text(app)
    assert {"Doctor", "Namespaces"} <= set(titles)
    assert "D Doctor" in footer and "N Namespaces" in footer
    section = dict(help_sections())["Doctor and namespaces"]
    assert [b.key for b in section] == ["D", "N"]
    assert HostKeys.__dict__["BINDINGS"] == section
    assert "Doctor and namespaces" in help_text
