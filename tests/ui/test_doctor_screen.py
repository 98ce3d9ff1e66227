"""The doctor screen at 80 columns: fixes laid out a line each, and no one-key global fix from a namespace.

The report is hand-made, in the shapes doctor gives them (cttop.doctor.fixes): a
per-namespace timeout fix with a plan, and a global one with its scope comment and no
plan, as doctor leaves it for a namespace that is not the initial one.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Button

import cttop.ui.screens.doctor as doctor_screen
from cttop.doctor import Finding, Remedy, Report
from cttop.doctor.fixes import GLOBAL_ELSEWHERE, GLOBAL_HERE
from cttop.kernel.netns import NetnsSpec
from cttop.ui.app import CttopApp
from cttop.ui.commands import CommandBlock
from cttop.ui.screens.doctor import DoctorScreen, FindingView
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import joined, screen_text, wait_for, wait_live

NS = "cttop-lab-c803c9-router"
FLUSH = f"cttop flush --netns {NS} --filter '(udp state replied or udp state unreplied) and timeout < 590'"


def report(initial: bool) -> Report:
    scope = GLOBAL_HERE if initial else GLOBAL_ELSEWHERE.format(where=NS)
    plan: Any = object()
    local = Remedy("sysctl", lambda journal: plan)
    return Report(NS, 3.0, [
        Finding("timeout-udp_timeout", "critical", "6% are udp UNREPLIED held by nf_conntrack_udp_timeout=600",
                "16337 of 262136 entries (6%) are udp UNREPLIED",
                commands=[f"ip netns exec {NS} sysctl -w net.netfilter.nf_conntrack_udp_timeout=10", FLUSH],
                action=local, weight=16000),
        Finding("fill", "critical", "Table full: 100.0% (262144 of 262144)", "262144 entries",
                commands=[scope, "sysctl -w net.netfilter.nf_conntrack_max=524288"],
                action=local if initial else None),
    ])


def doctor_on(monkeypatch: pytest.MonkeyPatch, result: Report) -> tuple[CttopApp, DoctorScreen]:
    monkeypatch.setattr(doctor_screen, "diagnose", lambda spec, seconds, **kw: result)
    return CttopApp(FixedSource(), interval=0.1), DoctorScreen(NetnsSpec(name=NS), seconds=1)


async def test_fixes_are_laid_out_as_confirmations_lay_out_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    app, screen = doctor_on(monkeypatch, report(initial=False))
    async with app.run_test(size=(80, 40)) as pilot:
        await wait_live(pilot, app)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
        buttons = [b for v in screen.query(FindingView) for b in v.query(Button)]
        blocks = [b.lines() for b in screen.query(CommandBlock)]
        findings = [v.finding for v in screen.query(FindingView) if v.finding.commands]
    # Each finding's fix, joined back as a shell reads a pasted block, is exactly its commands.
    for block, f in zip(blocks, findings, strict=True):
        assert joined(block) == [c for c in f.commands if not c.startswith("#")]
    flush_at = next(i for i, line in enumerate(lines) if "cttop flush --netns" in line)
    inside = lines[flush_at].split("│")[1]  # within the doctor box's borders
    assert inside.rstrip().endswith("\\")  # the long flush goes on, and says so
    comment_at = next(i for i, line in enumerate(lines) if "# global: the whole host" in line)
    command_at = next(i for i, line in enumerate(lines) if "sysctl -w net.netfilter.nf_conntrack_max" in line)
    assert comment_at < command_at  # the scope comment above the command it is about
    assert all("sysctl" not in lines[i] for i in range(comment_at, command_at))
    # Only the namespace's own fix is a button: the host-wide max is a command to read.
    assert [str(b.label) for b in buttons] == ["Set the tunables…"]


async def test_from_the_initial_namespace_the_global_fix_is_a_button_that_says_whole_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    app, screen = doctor_on(monkeypatch, report(initial=True))
    async with app.run_test(size=(80, 40)) as pilot:
        await wait_live(pilot, app)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.2)
        labels = [str(b.label) for v in screen.query(FindingView) for b in v.query(Button)]
    assert labels == ["Set the tunables…", "Set for the whole host…"]


async def test_each_fix_a_finding_lists_has_its_button(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timeout's finding lists the sysctl and the flush of the entries already idle past it: the screen once
    offered only the first, under a finding that says they go only when flushed."""
    built: list[str] = []

    def remedy(kind: str) -> Remedy:
        def build(journal: object) -> Any:
            built.append(kind)
            raise ValueError(f"{kind} built")  # the screen says it could not prepare it: nothing is applied
        return Remedy(kind, build)

    base = report(initial=False)
    timeout = base.findings[0]
    both = Report(NS, 3.0, [Finding(timeout.code, timeout.severity, timeout.title, timeout.evidence,
                                    commands=timeout.commands, action=remedy("sysctl"), weight=timeout.weight,
                                    also=(remedy("flush"),))])
    app, screen = doctor_on(monkeypatch, both)
    async with app.run_test(size=(80, 40), notifications=True) as pilot:
        await wait_live(pilot, app)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.report is not None, "the report")
        await pilot.pause(0.2)
        buttons = [b for v in screen.query(FindingView) for b in v.query(Button)]
        assert [str(b.label) for b in buttons] == ["Set the tunables…", "Flush…"]
        buttons[1].press()
        await wait_for(pilot, lambda: built == ["flush"], "the flush's plan")
        buttons[0].press()
        await wait_for(pilot, lambda: built == ["flush", "sysctl"], "the sysctl's plan")

