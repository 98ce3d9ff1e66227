"""The README's quick start: `cttop lab` opens the TUI on the lab's router in a real terminal (tmux), and `q`
takes the whole lab down: no namespace, no process and no nft rule of it is left.

The oracle is the terminal's own text (`tmux capture-pane`), then `ip netns`, /proc, pgrep and the host's
`nft list ruleset`. The waits have generous caps that only bound a broken run; nothing is timed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import delete_netns, sh

pytestmark = pytest.mark.kernel

COLS, ROWS = 100, 30
UP_CAP = 90.0  # seconds before giving up on the TUI coming up
DOWN_CAP = 60.0  # ... and on the lab being gone after q
ROUTER = re.compile(r"cttop-lab-([0-9a-f]+)-router")
COUNT = re.compile(r"(?m)^(\d[\d,]*) / \d[\d,]*")


class Tmux:
    """A private tmux server (its own socket), so the test touches no one else's sessions."""

    def __init__(self) -> None:
        self.socket = f"cttop-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], check=False, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "lab", check=False)

    def processes(self) -> str:
        """What runs in the pane, for a failure's message."""
        pid = self.run("display-message", "-p", "-t", "lab", "#{pane_pid}", check=False).strip()
        if not pid:
            return "(no pane)"
        return subprocess.run(["ps", "-o", "pid,stat,wchan:24,args", "--ppid", pid, "-p", pid, "--forest"],
                              check=False, capture_output=True, text=True).stdout

    def kill(self) -> None:
        """End the session as a closed terminal would (SIGHUP), and wait for what ran in it to finish cleaning up."""
        pane = self.run("display-message", "-p", "-t", "lab", "#{pane_pid}", check=False).strip()
        inside = subprocess.run(["pgrep", "-P", pane], check=False, capture_output=True,
                                text=True).stdout.split() if pane else []
        self.run("kill-server", check=False)
        end = time.monotonic() + DOWN_CAP
        while any(alive(int(p)) for p in inside) and time.monotonic() < end:
            time.sleep(0.2)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def lab_namespaces(tag: str) -> list[str]:
    return [n for n in os.listdir("/run/netns") if n.startswith(f"cttop-lab-{tag}-")] \
        if os.path.isdir("/run/netns") else []


def pids_in(names: list[str]) -> set[int]:
    return {int(p) for ns in names for p in sh("ip", "netns", "pids", ns, check=False).split()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not reaped yet
    except FileNotFoundError:
        return False


def test_quick_start_tui_comes_up_live_on_the_router_and_q_removes_the_lab(
        tmux: Tmux, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path / "state"))
    rc_file = tmp_path / "rc"
    ruleset_before = sh("nft", "list", "ruleset")
    command = f"{shlex.quote(sys.executable)} -m cttop lab; echo $? > {shlex.quote(str(rc_file))}"
    tmux.run("new-session", "-d", "-s", "lab", "-x", str(COLS), "-y", str(ROWS), "sh", "-c", command)
    tag: str | None = None
    seen: set[int] = set()
    try:
        screen = ""
        end = time.monotonic() + UP_CAP
        while time.monotonic() < end and not rc_file.exists():
            screen = tmux.screen()
            m = ROUTER.search(screen)
            if m is not None:
                tag = m.group(1)
                seen |= pids_in(lab_namespaces(tag))
                counts = [int(c.replace(",", "")) for c in COUNT.findall(screen)]
                if "LIVE" in screen and counts and counts[0] > 0:
                    break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the lab's TUI did not come up live on its router:\n{screen}\n{tmux.processes()}")
        assert tag is not None
        status = screen.splitlines()[0]
        assert f"cttop-lab-{tag}-router" in status and "LIVE" in status and "read-only" not in status
        assert len(max(screen.splitlines(), key=len)) <= COLS
        seen |= pids_in(lab_namespaces(tag))
        assert seen, "no lab process was ever seen"

        tmux.run("send-keys", "-t", "lab", "q")
        end = time.monotonic() + DOWN_CAP
        while not rc_file.exists() and time.monotonic() < end:
            time.sleep(0.3)
        assert rc_file.read_text().strip() == "0", tmux.screen()
        assert lab_namespaces(tag) == []
        assert not [p for p in seen if alive(p)]
        assert subprocess.run(["pgrep", "-f", f"--lab {tag}"], check=False, capture_output=True, text=True).stdout == ""
        assert sh("nft", "list", "ruleset") == ruleset_before
        assert "cttop-lab" not in sh("nft", "list", "tables")
    finally:
        tmux.kill()
        if tag is not None:
            for ns in lab_namespaces(tag):
                delete_netns(ns)
