"""The audit trail of real commands: `cttop set` and `cttop undo` in a throwaway namespace each leave one
line on the syslog socket, checked against the kernel and the journal, and no syslog changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.audit_helpers import Syslog, syslog  # noqa: F401  (the fixture)
from tests.conftest import CLI, sh
from tests.conftest import run_cttop as cttop

pytestmark = pytest.mark.kernel
UDP = "net.netfilter.nf_conntrack_udp_timeout"
AUTHPRIV_NOTICE = 10 * 8 + 5
LOGINUID = "4242"


def udp_timeout(netns: str) -> str:
    return sh("sysctl", "-n", UDP, netns=netns).strip()


def journal(state: Path) -> list[dict[str, object]]:
    return json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)


def test_set_and_undo_each_leave_one_line(netns: str, tmp_path: Path, syslog: Syslog) -> None:
    inode = os.stat(f"/run/netns/{netns}").st_ino
    r = cttop("set", "udp_timeout=10", "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert udp_timeout(netns) == "10"
    [change] = journal(tmp_path)
    line = syslog.next()
    assert line.pri == AUTHPRIV_NOTICE and line.pid != os.getpid()
    assert line.text.startswith(f"change {change['id']} applied: uid=0 loginuid=")
    assert (f'netns="{netns}" netns_inode={inode} kind="sysctl" summary="{change["summary"]}" '
            f'command="ip netns exec {netns} sysctl -w {UDP}=10"') in line.text

    r = cttop("undo", "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert udp_timeout(netns) == "30"
    undo = journal(tmp_path)[-1]
    assert undo["undoes"] == change["id"]
    line = syslog.next()
    assert line.text.startswith(f"change {undo['id']} undid change {change['id']}: ")
    assert f'command="ip netns exec {netns} sysctl -w {UDP}=30"' in line.text
    assert syslog.pending() == []


def test_the_line_names_who_logged_in_and_who_ran_sudo(netns: str, tmp_path: Path, syslog: Syslog) -> None:
    # As after `ssh alice@host` then `sudo cttop`: the login session's uid, and sudo's SUDO_USER.
    login = ["sh", "-c", f'echo {LOGINUID} > /proc/self/loginuid && exec "$@"', "sh"]
    probe = subprocess.run([*login, "cat", "/proc/self/loginuid"], capture_output=True, text=True, check=False)
    if probe.stdout != LOGINUID:
        pytest.skip(f"cannot set a login uid here (no CAP_AUDIT_CONTROL or an immutable one): {probe.stderr}")
    env = {k: v for k, v in os.environ.items() if k != "CTTOP_READ_ONLY"} | {"SUDO_USER": "alice"}
    r = subprocess.run([*login, *CLI, "set", "udp_timeout=11", "--yes", "--netns", netns, "--state-dir",
                        str(tmp_path)], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert udp_timeout(netns) == "11"
    assert f' uid=0 loginuid={LOGINUID} sudo_user="alice" netns="{netns}" ' in syslog.next().text


def test_no_syslog_the_change_and_its_journal_stand(netns: str, tmp_path: Path) -> None:
    r = cttop("set", "udp_timeout=12", "--yes", "--netns", netns, "--state-dir", str(tmp_path / "state"),
              env={"CTTOP_SYSLOG_SOCKET": str(tmp_path / "no-such-socket")})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "no-such-socket" not in r.stdout and "done: set" in r.stdout
    assert udp_timeout(netns) == "12"
    [change] = journal(tmp_path / "state")
    assert change["kind"] == "sysctl" and change["state"] == "complete"
