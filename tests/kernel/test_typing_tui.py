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


def start(tmux: Tmux, ns: str, state: Path, *flags: str, env: str = "") -> None:  # noqa: F811
    """cttop on ``ns`` in the pane; when it ends, the pane says how (``EXIT=<status>``) and stays."""
    command = (f"{env} CTTOP_STATE_DIR={shlex.quote(str(state))} {shlex.quote(sys.executable)} -m cttop --no-config "
               f"--netns {shlex.quote(ns)} {' '.join(flags)}; echo EXIT=$?; sleep 600")
    tmux.run("new-session", "-d", "-s", "lab", "-x", "80", "-y", "24", "sh", "-c", command)
    wait_screen(tmux, "the live view", lambda s: "LIVE" in s and "Flows " in s)


@pytest.mark.parametrize("where", ["list", "filter line", "dialog"])
def test_ctrl_c_quits_from_anywhere_and_changes_nothing(tmux: Tmux, ns: str, tmp_path: Path, where: str) -> None:  # noqa: F811
    """As top and iptstate: Ctrl-C leaves (Textual's own only said to press Ctrl-Q), with status 0."""
    before = kernel_flows(ns)
    start(tmux, ns, tmp_path / "state")
    if where == "filter line":
        tmux.run("send-keys", "-t", "lab", "/dport 4")
        wait_screen(tmux, "the filter line", lambda s: filter_line(s).startswith("filter: dport 4"))
    elif where == "dialog":
        tmux.run("send-keys", "-t", "lab", "F")
        wait_screen(tmux, "the flush dialog", lambda s: "conntrack -F" in s or "conntrack -D" in s)
    tmux.run("send-keys", "-t", "lab", "C-c")
    wait_screen(tmux, "cttop gone", lambda s: "EXIT=" in s)
    assert "EXIT=0" in tmux.screen(), tmux.screen()
    assert kernel_flows(ns).keys() == before.keys()
    assert journal_lines(tmp_path / "state") == []


def test_a_change_key_in_read_only_mode_says_it_is_refused(tmux: Tmux, ns: str, tmp_path: Path) -> None:  # noqa: F811
    before = kernel_flows(ns)
    start(tmux, ns, tmp_path / "state", "--read-only")
    tmux.run("send-keys", "-t", "lab", "F")
    screen = wait_screen(tmux, "the refusal", lambda s: "Flush: this view is read-only" in s)
    assert "nothing is changed" in screen and "conntrack -F" not in screen, screen
    tmux.run("send-keys", "-t", "lab", "q")
    wait_screen(tmux, "cttop gone", lambda s: "EXIT=0" in s)
    assert kernel_flows(ns).keys() == before.keys()
    assert journal_lines(tmp_path / "state") == []


def test_the_view_runs_without_colour(tmux: Tmux, ns: str, tmp_path: Path) -> None:  # noqa: F811
    """NO_COLOR=1 crashed the view at start-up (and exited 0): it runs, a list emptied by a filter included."""
    start(tmux, ns, tmp_path / "state", env="NO_COLOR=1")
    tmux.run("send-keys", "-t", "lab", "/dport 1", "Enter")
    wait_screen(tmux, "an empty filtered list", lambda s: "No flow matches dport 1" in s)
    tmux.run("send-keys", "-t", "lab", "q")
    screen = wait_screen(tmux, "cttop gone", lambda s: "EXIT=" in s)
    assert "EXIT=0" in screen and "Traceback" not in screen, screen
