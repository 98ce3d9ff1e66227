"""The config file as a box uses it: read_only refusing real writes, and the mouse switched off on a real terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, sh
from tests.conftest import run_cttop as cttop

pytestmark = pytest.mark.kernel
MOUSE_ON = b"\x1b[?1000h"  # what a terminal gets told to start reporting the mouse (and stop selecting text)
CAP = 30.0  # seconds; only bounds a failing test


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_read_only_in_the_config_refuses_writes_and_no_read_only_overrides_it(netns: str, tmp_path: Path) -> None:
    sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "53",
       "-t", "300", netns=netns)
    env = {"CTTOP_CONFIG": config(tmp_path, "read_only = true\n")}
    r = cttop("flush", "--yes", "--netns", netns, "--state-dir", str(tmp_path), env=env)
    assert r.returncode == 2 and r.stderr.startswith("cttop: read-only mode"), r.stderr
    assert "dport=53" in sh("conntrack", "-L", netns=netns)

    r = cttop("--no-read-only", "flush", "--yes", "--netns", netns, "--state-dir", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    assert sh("conntrack", "-C", netns=netns).strip() == "0"


def live_view_output(args: list[str], env: dict[str, str]) -> bytes:
    """Everything the live view writes to a real terminal until it has drawn the table, then quit with q."""
    pid, master = pty.fork()
    if pid == 0:
        os.environ.update(env, TERM="xterm-256color")
        os.execv(CLI[0], [*CLI, *args])
    seen = b""
    try:
        end = time.monotonic() + CAP
        while b"LIVE" not in seen:
            assert time.monotonic() < end, f"the live view never drew: {seen[-500:]!r}"
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
        os.write(master, b"q")
        end = time.monotonic() + CAP
        while not os.waitpid(pid, os.WNOHANG)[0]:
            assert time.monotonic() < end, "q did not quit"
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    pass  # the child closed the terminal
        return seen
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(master)


@pytest.mark.parametrize(("config_text", "flags", "mouse"), [
    ("", [], True),
    ("", ["--no-mouse"], False),
    ("mouse = false\n", [], False),
    ("mouse = false\n", ["--mouse"], True),
], ids=["default", "flag", "config", "flag-over-config"])
def test_no_mouse_leaves_the_terminal_selecting_text(netns: str, tmp_path: Path, config_text: str,
                                                    flags: list[str], mouse: bool) -> None:
    out = live_view_output([*flags, "--netns", netns], {"CTTOP_CONFIG": config(tmp_path, config_text)})
    assert (MOUSE_ON in out) is mouse
