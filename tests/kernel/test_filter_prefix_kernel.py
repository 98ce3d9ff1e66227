"""Prefixes follow tcpdump on every command that takes a filter: ``host ADDR/len`` and a ``net`` with host
bits set are refused in one line, exit 2, and the kernel (``conntrack -L``, ``nft list ruleset``, inside the
namespace) is left exactly as it was. The valid spelling of the same network acts on exactly that network.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import delete_netns, make_netns, sh
from tests.conftest import run_cttop as cttop

pytestmark = pytest.mark.kernel

# Sources inside and outside 10.0.0.0/8; the widening bug made "host 10.0.0.1/8" take all of the first three.
INSIDE = ("10.0.0.1", "10.9.8.7", "10.200.0.3")
OUTSIDE = ("192.168.5.5", "172.16.0.9")
WIDE = ["host 10.0.0.1/8", "net 10.0.0.1/8", "src 10.0.0.1/8", "src host 10.0.0.0/8", "dst net 10.1.0.1/16"]


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("cttop-filter-prefix")
    try:
        for i, src in enumerate(INSIDE + OUTSIDE):
            sh("conntrack", "-I", "-p", "udp", "-s", src, "-d", "10.1.0.53", "--sport", str(40000 + i),
               "--dport", "53", "-t", "600", netns=name)
        yield name
    finally:
        delete_netns(name)


def table(ns: str) -> set[str]:
    """Every entry as `conntrack -L -o id` prints it, minus the timeout, which counts down."""
    return {re.sub(r"^(\S+\s+\d+\s+)\d+", r"\1", line)
            for line in sh("conntrack", "-L", "-o", "id", netns=ns).splitlines() if line.strip()}


def sources(ns: str) -> list[str]:
    return sorted(re.search(r"\bsrc=(\S+)", line).group(1)  # type: ignore[union-attr]
                  for line in sh("conntrack", "-L", netns=ns).splitlines() if line.startswith("udp"))


def ruleset(ns: str) -> str:
    return sh("nft", "list", "ruleset", netns=ns)


def refused_in_one_line(r: subprocess.CompletedProcess[str], says: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cttop: filter: ") and says in lines[0], lines
    assert re.search(r"at column \d+$", lines[0]), lines[0]


@pytest.mark.parametrize("text", WIDE)
def test_snapshot_refuses_a_widening_prefix(ns: str, text: str) -> None:
    r = cttop("snapshot", "--netns", ns, "--filter", text)
    refused_in_one_line(r, "host takes an address" if "host" in text else "non-network bits set")
    assert r.stdout == ""


def test_snapshot_with_the_network_spelled_right_counts_the_network(ns: str) -> None:
    r = cttop("snapshot", "--netns", ns, "--json", "--filter", "net 10.0.0.0/8")
    assert r.returncode == 0, r.stderr
    net = ipaddress.ip_network("10.0.0.0/8")
    # Every entry's destination is in 10/8 too: "net" matches either address, so all of them.
    assert json.loads(r.stdout)["matched"] == len(sources(ns)) == len(INSIDE + OUTSIDE)
    r = cttop("snapshot", "--netns", ns, "--json", "--filter", "src net 10.0.0.0/8")
    assert json.loads(r.stdout)["matched"] == sum(ipaddress.ip_address(s) in net for s in sources(ns)) == 3


@pytest.mark.parametrize("text", WIDE)
def test_flush_and_delete_refuse_and_the_table_is_unchanged(ns: str, tmp_path: Path, text: str) -> None:
    before = table(ns)
    for cmd in ("flush", "delete"):
        r = cttop(cmd, "--netns", ns, "--filter", text, "--yes", "--state-dir", str(tmp_path))
        refused_in_one_line(r, "host takes an address" if "host" in text else "non-network bits set")
    assert table(ns) == before and len(before) == 5
    assert not (tmp_path / "journal.jsonl").exists()


def test_flush_of_the_network_spelled_right_flushes_exactly_it(ns: str, tmp_path: Path) -> None:
    r = cttop("flush", "--netns", ns, "--filter", "src net 10.0.0.0/8", "--yes", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert sources(ns) == sorted(OUTSIDE)


@pytest.mark.parametrize("text", [*WIDE, "udp dport 53 and host 10.0.0.1/8"])
def test_notrack_add_refuses_and_the_ruleset_is_unchanged(ns: str, tmp_path: Path, text: str) -> None:
    before = ruleset(ns)
    r = cttop("notrack", "add", text, "--netns", ns, "--yes", "--state-dir", str(tmp_path))
    refused_in_one_line(r, "host takes an address" if "host" in text else "non-network bits set")
    after = ruleset(ns)
    assert after == before and "table inet cttop " not in after and "notrack" not in after
    assert not (tmp_path / "journal.jsonl").exists()


def test_notrack_add_of_a_host_installs_the_address_not_a_network(ns: str, tmp_path: Path) -> None:
    # The bug installed "ip saddr 10.0.0.0/8 notrack" for "host 10.0.0.1/8"; an address stays an address.
    r = cttop("notrack", "add", "host 10.0.0.1/32", "--netns", ns, "--yes", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rules = sh("nft", "list", "table", "inet", "cttop", netns=ns)
    assert "ip saddr 10.0.0.1 " in rules and "ip daddr 10.0.0.1 " in rules
    assert "/" not in "".join(line for line in rules.splitlines() if "notrack" in line)
