"""A change made from the TUI reaches the audit trail as the CLI's do: one line on the syslog socket."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.audit_helpers import Syslog, syslog  # noqa: F401  (the fixture)
from tests.ui.helpers import confirm_open, wait_live, yes_and_wait
from tests.ui.test_remedy_kernel import (  # noqa: F401  (ns and state: the fixtures)
    SIZE,
    UDP_TIMEOUT,
    app_for,
    ns,
    proc_sys,
    set_from_tunables,
    state,
)

pytestmark = pytest.mark.kernel


async def test_t_then_u_from_the_tui_each_leave_one_line(ns: str, state: Path, syslog: Syslog) -> None:
    app = app_for(ns)
    async with app.run_test(size=SIZE) as pilot:
        await wait_live(pilot, app)
        change = await set_from_tunables(pilot, app, ns, state, UDP_TIMEOUT, "17")
        line = syslog.next()
        await pilot.press("escape", "u")
        await confirm_open(pilot, app)
        undo = await yes_and_wait(pilot, app, state)
        assert proc_sys(ns, UDP_TIMEOUT) == "30"
        undo_line = syslog.next()
    assert line.pid == os.getpid()
    assert line.text.startswith(f"change {change['id']} applied: uid=0 ")
    assert (f'netns="{ns}" netns_inode={os.stat(f"/run/netns/{ns}").st_ino} kind="sysctl" '
            f'summary="{change["summary"]}" command="ip netns exec {ns} sysctl -w net.netfilter.{UDP_TIMEOUT}=17"'
            ) in line.text
    assert undo_line.text.startswith(f"change {undo['id']} undid change {change['id']}: ")
    assert syslog.pending() == []
