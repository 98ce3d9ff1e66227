"""The live view refuses to start without a terminal, in one line and exit 2, instead of running Textual
headless forever (seen: `cttop > file </dev/null` burning 60% of a core)."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest

from tests.conftest import CLI
from tests.unit.test_replay import rec  # noqa: F401  (the fixture: a recording built with the real writer)

REFUSAL = "cttop: the live view needs a terminal; for scripts use cttop snapshot --json\n"
CAP = 60  # seconds: a live view that started would never end; this turns that into a failure, not a hang


def run(args: list[str], stdin: int, stdout: int) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CTTOP_READ_ONLY"}
    return subprocess.run([*CLI, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env,
                          timeout=CAP, check=False)


@pytest.mark.parametrize("args", [[], ["--read-only", "-i", "0.5"], ["replay", "REC"]],
                         ids=["cttop", "options", "replay"])
def test_no_terminal_refuses_in_one_line(args: list[str], rec: str) -> None:  # noqa: F811
    r = run([rec if a == "REC" else a for a in args], subprocess.DEVNULL, subprocess.PIPE)
    assert (r.returncode, r.stdout, r.stderr.decode()) == (2, b"", REFUSAL)


@pytest.mark.kernel
def test_no_terminal_refuses_in_a_namespace_too(netns: str) -> None:
    r = run(["--netns", netns], subprocess.DEVNULL, subprocess.PIPE)
    assert (r.returncode, r.stdout, r.stderr.decode()) == (2, b"", REFUSAL)


def test_a_bad_namespace_is_said_first() -> None:
    # The one error to fix whether or not there is a terminal.
    r = run(["--netns", "cttop-no-such-ns"], subprocess.DEVNULL, subprocess.PIPE)
    assert (r.returncode, r.stderr.decode()) == (2, "cttop: --netns cttop-no-such-ns: no such network namespace\n")


@pytest.mark.parametrize("tty_on", ["stdin", "stdout"])
def test_a_terminal_on_one_side_only_is_not_enough(tty_on: str) -> None:
    leader, follower = pty.openpty()
    try:
        if tty_on == "stdin":
            r = run([], follower, subprocess.PIPE)
        else:
            r = run([], subprocess.DEVNULL, follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert (r.returncode, r.stderr.decode()) == (2, REFUSAL)

