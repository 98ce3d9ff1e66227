"""`cttop tunables` as text: a header line, and a marker beside each value that is not the kernel's default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_cttop as cttop
from tests.conftest import sh

pytestmark = pytest.mark.kernel
HEADER = re.compile(r"TUNABLE +VALUE +DEFAULT +MEANING")
ROW = re.compile(r"(\S+) +(\*?) +(\S+) +(\d*)  ")
LEGEND = "* the value differs from the kernel's default"


def proc_sys(ns: str, name: str) -> str:
    return sh("cat", f"/proc/sys/net/netfilter/{name}", netns=ns).strip()


def test_header_and_a_marker_exactly_where_proc_sys_differs_from_the_default(netns: str, tmp_path: Path) -> None:
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=10", netns=netns)
    r = cttop("tunables", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert HEADER.fullmatch(lines[0]), lines[0]
    rows = {}
    for line in lines[1:]:
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    assert len(rows) > 20 and lines[-1] == LEGEND
    checked = 0
    for name, (mark, value, default) in rows.items():
        if name == "hashsize" or not default:
            continue  # a module parameter, not under /proc/sys/net/netfilter; or no known default
        actual = proc_sys(netns, name)
        assert value == actual, name
        assert (mark == "*") == (actual != default), (name, mark, actual, default)
        checked += 1
    assert checked > 20
    # A fresh namespace has the kernel's defaults: only the value set above is marked among its own.
    assert rows["nf_conntrack_udp_timeout"] == ("*", "10", "30")
    assert rows["nf_conntrack_tcp_timeout_established"] == ("", "432000", "432000")
