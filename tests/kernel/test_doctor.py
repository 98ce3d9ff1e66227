"""`cttop doctor` on real tables: the lab's scenarios, injected idle sessions, drift and accounting.

Doctor runs as the `cttop doctor --json` command. The oracle is the kernel: `conntrack
-C/-L/-S` and /proc/sys read inside the namespace, `nft list` for rules; and the fix
commands doctor prints are run as printed, then the kernel is asked again.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cttop.actions.journal import Journal
from cttop.actions.sysctl_plan import SetSysctls
from cttop.doctor import diagnose
from cttop.doctor.collect import IDLE_SECONDS
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.lab.scenarios import STORM_PORT
from cttop.model import AF_INET, IPS_ASSURED, IPS_SEEN_REPLY, Row
from tests.conftest import sh
from tests.kernel.test_lab import count, flows, global_max, lab_namespaces, lab_running, stat_sum
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

EST_TIMEOUT = 432000
DROP_CAP = ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[str]:
    # Drift reads the journal: a private one keeps other runs' changes out of the verdict.
    yield str(tmp_path / "state")


def doctor(state_dir: str, *args: str, prefix: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    cmd = [*prefix, "cttop", "doctor", "--json", "--state-dir", state_dir, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.stdout, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return r.returncode, doc


def finding(doc: dict[str, Any], code: str) -> dict[str, Any]:
    [f] = [f for f in doc["findings"] if f["code"] == code]
    return f


def problems(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["code"], f["severity"], f["title"]) for f in doc["findings"] if f["severity"] != "ok"]


def read_sysctl(ns: str, name: str) -> int:
    return int(sh("cat", f"/proc/sys/net/netfilter/{name}", netns=ns))


def run_printed(command: str, *extra: str) -> None:
    """Run a command exactly as doctor printed it (plus options that answer its questions)."""
    r = subprocess.run(["sh", "-c", " ".join([command, *extra])], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, f"{command}: {r.stderr}"


def test_table_full_is_critical_with_fill_and_drop_findings(state_dir: str) -> None:
    max_entries = global_max()
    with lab_running("table-full", 40) as lab:
        n = lab.sample(count, lambda n: n == max_entries)
        assert n == max_entries
        pressure_before = stat_sum(lab.router, "drop") + stat_sum(lab.router, "early_drop")
        code, doc = doctor(state_dir, "--netns", lab.router, "--seconds", "2")
        pressure_after = stat_sum(lab.router, "drop") + stat_sum(lab.router, "early_drop")
        human = subprocess.run(["cttop", "doctor", "--netns", lab.router, "--seconds", "1", "--state-dir", state_dir],
                               capture_output=True, text=True, timeout=120, check=False)
        router = lab.router
    assert code == 2 and doc["status"] == "critical" and doc["netns"] == router, problems(doc)
    fill = finding(doc, "fill")
    assert fill["severity"] == "critical"
    assert fill["data"]["max"] == max_entries and fill["data"]["count"] >= 0.95 * max_entries
    # nf_conntrack_max is global: the fix runs in the initial namespace, not the router's.
    assert fill["commands"][0].startswith(f"sysctl -w net.netfilter.nf_conntrack_max={2 * max_entries} ")
    assert "initial namespace" in fill["commands"][0]
    drops = finding(doc, "drops")
    rose = drops["data"]["drop"] + drops["data"]["early_drop"]
    assert drops["severity"] == ("critical" if drops["data"]["drop"] else "warning")
    assert rose > 0
    # Doctor's watch lies inside the kernel's before/after readings.
    assert rose <= pressure_after - pressure_before
    assert finding(doc, "netns-log")["severity"] == "ok"
    assert global_max() == max_entries
    assert not [n for n in lab_namespaces() if router in n]

    # The same verdict for people: worst first, the fix under it.
    lines = human.stdout.splitlines()
    assert human.returncode == 2, human.stderr
    assert lines[0].startswith(f"cttop doctor: namespace {router}, watched ") and "CRITICAL" in lines[0]
    assert lines[2].startswith("[CRIT] Table full")
    fix = lines.index("       fix:")
    assert lines[fix + 1].strip().startswith("sysctl -w net.netfilter.nf_conntrack_max=")
    order = {"[CRIT]": 0, "[UNKN]": 1, "[WARN]": 2, "[OK]": 3}
    tags = [order[line.split("]")[0] + "]"] for line in lines if line.startswith("[")]
    assert tags == sorted(tags)


def test_mixed_traffic_is_ok_and_without_cap_net_admin_unknown(state_dir: str) -> None:
    with lab_running("mixed", 30) as lab:
        assert lab.sample(count, lambda n: n > 100) > 100
        code, doc = doctor(state_dir, "--netns", lab.router, "--seconds", "2")
        stats = {k: stat_sum(lab.router, k) for k in ("drop", "early_drop", "insert_failed", "chaintoolong")}
        # Without CAP_NET_ADMIN: the kernel itself refuses the flows, and doctor says what it could not see.
        refused = subprocess.run(["ip", "netns", "exec", lab.router, *DROP_CAP, "conntrack", "-L"],
                                 capture_output=True, text=True, check=False)
        weak_code, weak = doctor(state_dir, "--seconds", "1", prefix=("ip", "netns", "exec", lab.router, *DROP_CAP))
    assert code == 0 and doc["status"] == "ok", problems(doc)
    assert stats == {"drop": 0, "early_drop": 0, "insert_failed": 0, "chaintoolong": 0}
    assert finding(doc, "drops")["data"]["drop"] == 0
    assert refused.returncode != 0
    assert weak_code == 3 and weak["status"] == "unknown", problems(weak)
    perm = finding(weak, "permission")
    assert perm["severity"] == "unknown" and "CAP_NET_ADMIN" in perm["evidence"]
    fill = finding(weak, "fill")
    assert fill["data"]["max"] == global_max() and fill["data"]["count"] > 0
    assert not [f for f in weak["findings"] if f["code"] in ("unreplied", "group-share")]
    assert finding(weak, "drops")["data"]["drop"] == 0  # from /proc/net/stat/nf_conntrack, world-readable


def test_udp_storm_is_an_unreplied_majority_with_its_port_to_notrack(state_dir: str) -> None:
    floor = 0.05 * global_max()

    def unreplied_share(ns: str) -> tuple[int, int, int]:
        fs = flows(ns)
        unreplied = [f for f in fs if f.unreplied]
        return len(fs), len(unreplied), sum(f"dport={STORM_PORT}" in f.line for f in unreplied)

    with lab_running("udp-storm", 40) as lab:
        total, unreplied, to_port = lab.sample(unreplied_share, lambda s: s[1] > 1.2 * floor and 2 * s[1] > s[0])
        assert unreplied > 1.2 * floor and 2 * unreplied > total
        assert 2 * to_port > unreplied
        code, doc = doctor(state_dir, "--netns", lab.router, "--seconds", "1")
        f = finding(doc, "unreplied")
        notrack = f"cttop notrack add --netns {lab.router} 'udp dport {STORM_PORT}'"
        if notrack in f["commands"]:
            run_printed(notrack, "--yes", "--state-dir", state_dir)
            rules = sh("nft", "list", "table", "inet", "cttop", netns=lab.router)
    assert code == 1 and doc["status"] == "warning", problems(doc)
    assert f["severity"] == "warning" and f["data"]["share"] > 0.5
    assert f["commands"][0] == f"ip netns exec {lab.router} sysctl -w net.netfilter.nf_conntrack_udp_timeout=10"
    assert notrack in f["commands"]
    assert f"udp dport {STORM_PORT}" in rules and "notrack" in rules


def session(i: int, left: int) -> Row:
    """An ESTABLISHED, ASSURED TCP entry with ``left`` seconds to live."""
    src = socket.inet_aton(f"10.55.{i >> 8 & 255}.{i & 255}")
    dst = socket.inet_aton("10.66.0.1")
    sport = 20000 + (i >> 16)
    return (0, AF_INET, 6, 3, IPS_ASSURED | IPS_SEEN_REPLY, src, dst, sport, 443, dst, src, 443, sport,
            left, 0, 0, 0, None, None, None, None, 0, 0)


def test_idle_established_sessions_get_a_lower_timeout_and_a_flush(netns: str, state_dir: str) -> None:
    spec = NetnsSpec(name=netns)
    # Enough idle sessions to matter (5 % of nf_conntrack_max), idle 9 h; and a few fresh ones.
    idle_n, fresh_n = int(0.05 * global_max()) + 500, 300
    with Ctnetlink(spec) as ct:
        made = ct.create([session(i, EST_TIMEOUT - 32000) for i in range(idle_n)]
                         + [session(idle_n + i, EST_TIMEOUT - 10) for i in range(fresh_n)])
    assert made == idle_n + fresh_n
    cut = EST_TIMEOUT - IDLE_SECONDS
    listed = conntrack_list(netns)
    assert len(listed) == idle_n + fresh_n
    assert sum(e["state"] == "ESTABLISHED" and e["timeout"] < cut for e in listed) == idle_n
    assert read_sysctl(netns, "nf_conntrack_tcp_timeout_established") == EST_TIMEOUT

    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5")
    assert code == 1, problems(doc)
    f = finding(doc, "established-idle")
    assert f["severity"] == "warning" and f["data"]["idle"] == idle_n and f["data"]["established"] == idle_n + fresh_n
    assert f["commands"] == [
        f"ip netns exec {netns} sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established={IDLE_SECONDS}",
        f"cttop flush --netns {netns} --filter 'tcp state established and timeout < {cut}'"]

    # The finding's plan, as the TUI would apply it, and the flush as printed.
    journal = Journal(state_dir)
    [live] = [x for x in diagnose(spec, 0.2, journal=journal).findings if x.code == "established-idle"]
    assert live.action is not None
    plan = live.action(journal)
    assert plan.commands()[0] == f["commands"][0]
    plan.apply()
    assert read_sysctl(netns, "nf_conntrack_tcp_timeout_established") == IDLE_SECONDS
    run_printed(f["commands"][1], "--yes", "--state-dir", state_dir)
    left = conntrack_list(netns)
    assert len(left) == fresh_n and all(e["timeout"] >= cut for e in left)

    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5")
    assert code == 0, problems(doc)
    assert finding(doc, "established-idle")["severity"] == "ok"


def test_drift_is_found_and_its_command_puts_the_value_back(netns: str, state_dir: str) -> None:
    SetSysctls(NetnsSpec(name=netns), {"nf_conntrack_udp_timeout": 25}, journal=Journal(state_dir)).apply()
    sh("sysctl", "-w", "net.netfilter.nf_conntrack_udp_timeout=40", netns=netns)
    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5")
    assert code == 1, problems(doc)
    f = finding(doc, "drift")
    assert f["severity"] == "warning" and f["data"]["drifts"][0]["now"] == "40"
    assert f["commands"] == [f"ip netns exec {netns} sysctl -w net.netfilter.nf_conntrack_udp_timeout=25"]
    run_printed(f["commands"][0])
    assert read_sysctl(netns, "nf_conntrack_udp_timeout") == 25
    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5")
    assert code == 0 and finding(doc, "drift")["severity"] == "ok", problems(doc)


def test_bytes_wanted_with_accounting_off_until_its_command_runs(netns: str, state_dir: str) -> None:
    assert read_sysctl(netns, "nf_conntrack_acct") == 0
    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5")
    assert code == 0 and not [f for f in doc["findings"] if f["code"] == "accounting"]
    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5", "--bytes")
    assert code == 1, problems(doc)
    f = finding(doc, "accounting")
    assert f["commands"] == [f"ip netns exec {netns} sysctl -w net.netfilter.nf_conntrack_acct=1"]
    run_printed(f["commands"][0])
    assert read_sysctl(netns, "nf_conntrack_acct") == 1
    code, doc = doctor(state_dir, "--netns", netns, "--seconds", "0.5", "--bytes")
    assert code == 0 and finding(doc, "accounting")["severity"] == "ok", problems(doc)
