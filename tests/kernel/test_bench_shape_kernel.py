"""The benchmarks' realistic table shape, as the kernel holds it: unique, and the mix it claims."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import realistic_rows
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from tests.conftest import conntrack_available, sh

COMPARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "benchmarks", "compare.py")
ENTRIES = 16_384  # four rows per source: by the fourth, IPv6 sources reach ICMPv6 too


@pytest.mark.kernel
@pytest.mark.skipif(not conntrack_available(), reason="needs the conntrack tool to read the table back")
def test_realistic_rows_all_land_with_many_sources_protocols_states_and_ipv6(netns: str) -> None:
    with Ctnetlink(NetnsSpec(name=netns)) as ct:
        made = ct.create(realistic_rows(ENTRIES))
    assert made == ENTRIES  # every tuple unique: a duplicate is refused with EEXIST
    lines = sh("conntrack", "-L", netns=netns).splitlines()
    assert len(lines) == ENTRIES
    protos = collections.Counter(line.split()[0] for line in lines)
    assert set(protos) == {"tcp", "udp", "icmp", "icmpv6"}
    assert protos["tcp"] > ENTRIES / 2  # web traffic dominates, as on a busy node
    tcp_states = {line.split()[3] for line in lines if line.startswith("tcp")}
    assert {"ESTABLISHED", "TIME_WAIT", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "CLOSE_WAIT"} <= tcp_states
    ipv6 = len(sh("conntrack", "-L", "-f", "ipv6", netns=netns).splitlines())
    assert ipv6 == ENTRIES // 4
    sources = {line.split("src=", 1)[1].split()[0] for line in lines}
    assert len(sources) >= 4096


def test_compare_refuses_an_old_tree_without_cttop(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, COMPARE, "--old-tree", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip() == f"--old-tree: {tmp_path} has no src/cttop"
    assert "Traceback" not in r.stderr
