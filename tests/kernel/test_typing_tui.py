"""Typing fast in a real terminal (tmux): keys sent in one `send-keys` reach cttop in one read, as over a laggy
SSH link. The filter line gets exactly what was typed, nothing typed for it runs as a command on the flow list,
and the kernel's table (`conntrack -L`) and the journal are what they were.

The waits have generous caps that only bound a broken run; nothing is timed.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.test_lab_tui import COLS, ROWS, UP_CAP, Tmux, tmux  # noqa: F401 - tmux is a fixture
from tests.ui.helpers import journal_lines
from tests.ui.test_remedy_kernel import kernel_flows, ns  # noqa: F401 - ns is a fixture

pytestmark = pytest.mark.kernel


def wait_screen(term: Tmux, what: str, ok: Callable[[str], bool]) -> str:
    end = time.monotonic() + UP_CAP
    while time.monotonic() < end:
        screen = term.screen()
        if ok(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}:\n{term.screen()}\n{term.processes()}")


def filter_line(screen: str) -> str:
    return next((line for line in screen.splitlines() if line.startswith("filter: ")), "")


def test_a_filter_typed_fast_is_the_filter_and_runs_no_command(tmux: Tmux, ns: str, tmp_path: Path) -> None:  # noqa: F811
    state = tmp_path / "state"
    before = kernel_flows(ns)
    command = (f"CTTOP_STATE_DIR={shlex.quote(str(state))} {shlex.quote(sys.executable)} -m cttop --no-config "
               f"--netns {shlex.quote(ns)}")
    tmux.run("new-session", "-d", "-s", "lab", "-x", str(COLS), "-y", str(ROWS), "sh", "-c", command)
    wait_screen(tmux, "the live view", lambda s: "LIVE" in s and "Flows " in s)

    # d is Delete on the flow list and y its Yes: typed after /, they are the filter's text.
    tmux.run("send-keys", "-t", "lab", "/dy")
    screen = wait_screen(tmux, "'dy' in the filter line", lambda s: filter_line(s).startswith("filter: dy"))
    assert "Delete" not in screen and "This deletes" not in screen, screen
    # Ctrl+U then a whole filter and Enter, in one write: the line is emptied first, then typed, then committed.
    tmux.run("send-keys", "-t", "lab", "C-u", "dport 443 and src 10.0.0.1", "Enter")
    want = sum(1 for line in kernel_flows(ns).values() if "dport=443" in line and "src=10.0.0.1 " in line)
    # The title names the filter as soon as it is committed, and its count once the list is filtered ("sorting…"
    # until then; a CI run read the screen in between): wait for both.
    screen = wait_screen(tmux, "the typed filter in force",
                         lambda s: "filter: dport 443 and src 10.0.0.1 ·" in s and f"Flows {want} of" in s)
    assert want > 0 and f"Flows {want} of {len(before)}" in screen, screen
    tmux.run("send-keys", "-t", "lab", "q")
    assert kernel_flows(ns).keys() == before.keys()
    assert journal_lines(state) == []
