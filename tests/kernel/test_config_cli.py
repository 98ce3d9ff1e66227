"""The config file as a box uses it: read_only refusing real writes, and the mouse switched off on a real terminal."""

from __future__ import annotations

import json
import os
import pty
import pwd
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, sh
from tests.conftest import run_cttop as cttop
from tests.oracle import conntrack_count

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


def live_view_output(args: list[str], env: dict[str, str], cli: list[str] = CLI) -> bytes:
    """Everything the live view (``cli``: this checkout's cttop) writes to a real terminal until it has drawn
    the table, then quit with q."""
    pid, master = pty.fork()
    if pid == 0:
        os.environ.update(env, TERM="xterm-256color")
        os.execvp(cli[0], [*cli, *args])
    seen = b""
    try:
        end = time.monotonic() + CAP
        while b"LIVE" not in seen:
            assert time.monotonic() < end, f"the live view never drew: {seen[-500:]!r}"
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    raise AssertionError(f"the live view stopped before it drew: {seen[-1500:]!r}") from None
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


def unlisted_uid() -> int:
    """A uid the password database does not know, as a container's `--user 12345` runs with (or a unit's
    DynamicUser= on a box without nss-systemd)."""
    return next(u for u in range(54321, 54421) if not _known(u))


def _known(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_a_uid_with_no_passwd_entry_runs_on_the_system_file(netns: str, nobody_cttop: list[str]) -> None:
    for i in range(3):
        sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", str(1000 + i),
           "--dport", "53", "-t", "300", netns=netns)
    uid = unlisted_uid()
    as_uid = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=+net_admin",
              "--ambient-caps=+net_admin"]
    r = subprocess.run(["ip", "netns", "exec", netns, *as_uid, "env", "-i", *nobody_cttop, "snapshot", "--json"],
                       capture_output=True, text=True, cwd="/", check=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["count"] == conntrack_count(netns) == 3
