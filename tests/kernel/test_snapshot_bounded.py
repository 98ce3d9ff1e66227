"""`cttop snapshot --max-flows N`: the counts cover every flow (checked against `conntrack -L`), the records held
are bounded: --flows lists the first N, and bytes a second are left out over N counted flows, each said so."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import delete_netns, make_netns, sh
from tests.oracle import conntrack_list, oracle_state

pytestmark = pytest.mark.kernel

UDP, TCP = 30, 20


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    name = make_netns("cttop-snapmax")
    try:
        sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", netns=name)
        for i in range(UDP):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.31.0.{i % 5 + 1}", "-d", "10.31.1.1", "--sport",
               str(2000 + i), "--dport", "53", "-t", "600", netns=name)
        for i in range(TCP):
            sh("conntrack", "-I", "-p", "tcp", "-s", "10.31.0.9", "-d", "10.31.1.2", "--sport", str(3000 + i),
               "--dport", "443", "--state", "ESTABLISHED" if i % 2 else "SYN_SENT", "-t", "600", netns=name)
        yield name
    finally:
        delete_netns(name)


def snapshot(ns: str, *extra: str) -> tuple[dict[str, Any], str]:
    out = subprocess.run(["cttop", "snapshot", "--netns", ns, "--json", *extra], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def test_flows_past_the_bound_are_left_out_and_counted(ns: str) -> None:
    snap, err = snapshot(ns, "--flows", "--max-flows", "12")
    oracle = conntrack_list(ns, "extended,id")
    assert len(oracle) == UDP + TCP == snap["count"] == snap["listed"]
    assert len(snap["flows"]) == 12 and {f["id"] for f in snap["flows"]} <= {f["id"] for f in oracle}
    assert snap["bounded"] == {"max_flows": 12, "flows_left_out": UDP + TCP - 12, "byte_rates_left_out": False}
    # The aggregates are every flow's, not the listed ones'.
    assert snap["by_state"] == dict(Counter(f"{f['proto']}:{oracle_state(f)}" for f in oracle))
    assert sum(r["entries"] for r in snap["top"]["rows"]) == UDP + TCP
    assert f"lists the first 12 matching flows, not the {UDP + TCP - 12} after them" in err
    # 0: no bound.
    whole, err = snapshot(ns, "--flows", "--max-flows", "0")
    assert len(whole["flows"]) == UDP + TCP and whole["bounded"]["flows_left_out"] == 0 and err == ""


def test_bytes_a_second_need_every_counted_flow_held(ns: str) -> None:
    # Every flow here was made with accounting on, so all carry counters.
    held, _ = snapshot(ns, "--by", "bytes", "--seconds", "0.5", "--max-flows", "0")
    assert held["bounded"]["byte_rates_left_out"] is False
    assert all(r["bytes_rate"] is not None for r in held["top"]["rows"])
    bounded, err = snapshot(ns, "--by", "bytes", "--seconds", "0.5", "--max-flows", "10")
    assert bounded["bounded"]["byte_rates_left_out"] is True
    assert all(r["bytes_rate"] is None for r in bounded["top"]["rows"])
    assert "no bytes or packets a second: more than 10 flows carry counters" in err
    assert sum(r["entries"] for r in bounded["top"]["rows"]) == UDP + TCP


@pytest.mark.parametrize("value", ["-1", "many", "1e3"])
def test_a_bad_bound_is_one_line(ns: str, value: str) -> None:
    out = subprocess.run(["cttop", "snapshot", "--netns", ns, "--max-flows", value], capture_output=True, text=True)
    assert out.returncode == 2 and "--max-flows" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert out.stdout == ""
