"""`cttop snapshot --json --flows` against `conntrack -L -o extended,id`, flow by flow and in aggregate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cttop.table.groups import GROUPS
from tests.conftest import delete_netns, make_netns, sh
from tests.oracle import (
    assert_same_tuple,
    conntrack_count,
    conntrack_list,
    conntrack_stats,
    nat_kind,
    oracle_state,
    with_connlabels,
)

pytestmark = pytest.mark.kernel

INJECT = [
    # ICMP echo, a marked UDP flow in zone 7 that was DNAT'd, an SNAT'd TCP one, IPv6 TCP
    ["-p", "icmp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--icmp-type", "8", "--icmp-code", "0",
     "--icmp-id", "77", "-t", "300"],
    ["-p", "udp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--sport", "1", "--dport", "2", "-t", "300",
     "--dst-nat", "10.99.0.2", "-w", "7", "-m", "42"],
    ["-p", "tcp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--sport", "3", "--dport", "4", "--state", "ESTABLISHED",
     "-t", "300", "-u", "ASSURED,SEEN_REPLY", "--src-nat", "10.99.0.1", "-m", "0x10"],
    ["-p", "tcp", "-s", "fd00::1", "-d", "fd00::2", "--sport", "5", "--dport", "6", "--state", "SYN_RECV",
     "-t", "300"],
    ["-p", "udp", "-s", "10.5.0.9", "-d", "10.5.0.2", "--sport", "9", "--dport", "53", "-t", "300",
     "-u", "SEEN_REPLY,ASSURED"],
    ["-p", "gre", "-s", "10.6.0.1", "-d", "10.6.0.2", "--srckey", "5", "--dstkey", "6", "-t", "300"],
    ["-p", "99", "-s", "10.6.0.1", "-d", "10.6.0.2", "-t", "300"],
    # both ends rewritten; and a DNAT that only changes the port (no address changes)
    ["-p", "tcp", "-s", "10.7.0.1", "-d", "10.7.0.2", "--sport", "11", "--dport", "12", "--state", "ESTABLISHED",
     "-t", "300", "--src-nat", "10.98.0.1", "--dst-nat", "10.98.0.2"],
    ["-p", "tcp", "-s", "10.7.0.1", "-d", "10.7.0.2", "--sport", "13", "--dport", "22", "--state", "ESTABLISHED",
     "-t", "300", "--dst-nat", "10.7.0.2:2222"],
]
# Made once timestamps are on, with labels named bN for bit N (LABELS_CONF): bits in both 64-bit words, and the edges.
LABELLED = [
    (["-p", "udp", "-s", "10.8.0.1", "-d", "10.8.0.2", "--sport", "31", "--dport", "32", "-t", "300"], (3, 70, 127)),
    (["-p", "udp", "-s", "10.8.0.1", "-d", "10.8.0.2", "--sport", "33", "--dport", "34", "-t", "300"], (0,)),
]
LIST_ALL = "extended,id,ktimestamp,labels"
# Three TCP segments with SYN and FIN both set: conntrack counts each as invalid (and makes no entry),
# so the pressure counters hold more than the insert count.
INVALID_TCP = ("import socket, struct; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)\n"
               "for p in (1, 2, 3): s.sendto(struct.pack('!HHIIBBHHH', 40000 + p, 80, 1, 0, 0x50, 0x03, 512, 0, 0),"
               " ('127.0.0.1', 0))")
RULES = ("add table inet f; add chain inet f in { type filter hook input priority 0; }; "
         "add rule inet f in tcp dport 9 drop; "
         # never matches: a 'ct label set' rule is what makes the kernel give new entries room for labels
         "add rule inet f in meta mark 0x7ea1 ct label set 127; "
         "add table ip nat; add chain ip nat out { type nat hook output priority -100; }; "
         "add rule ip nat out tcp dport 8090 dnat to 127.0.0.1:8080")


@pytest.fixture(scope="module")
def labels_conf(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding xtables/connlabel.conf naming every bit N "bN", for tests.oracle.with_connlabels."""
    root = tmp_path_factory.mktemp("connlabel")
    (root / "xtables").mkdir()
    (root / "xtables" / "connlabel.conf").write_text("".join(f"{n} b{n}\n" for n in range(128)))
    return str(root)


@pytest.fixture(scope="module")
def mixed(labels_conf: str) -> Iterator[str]:
    """A namespace with a real mix: some flows made before accounting and timestamps were on, most after."""
    ns = make_netns()
    traffic = None
    try:
        sh("nft", RULES, netns=ns)
        for args in INJECT:
            sh("conntrack", "-I", *args, netns=ns)
        sh(sys.executable, "-c", INVALID_TCP, netns=ns)
        sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", "net.netfilter.nf_conntrack_timestamp=1", netns=ns)
        for args, bits in LABELLED:
            sh(*with_connlabels(labels_conf, "conntrack", "-I", *args, "--label-add", ",".join(f"b{n}" for n in bits)),
               netns=ns)
        traffic = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.traffic_mix", "120"],
                                   stdout=subprocess.PIPE, text=True)
        assert traffic.stdout is not None and traffic.stdout.readline().strip() == "READY"
        yield ns
    finally:
        if traffic is not None:
            traffic.kill()
            traffic.wait()
        delete_netns(ns)


def snapshot(ns: str, *extra: str, pure: bool = False) -> dict[str, Any]:
    """`cttop snapshot --json`; ``pure``: without the compiled accelerator (a dump made into rows, not counted in C)."""
    env = os.environ | {"CTTOP_PURE_PYTHON": "1"} if pure else None
    out = subprocess.run(["cttop", "snapshot", "--netns", ns, "--json", *extra], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def counters(f: dict[str, Any], k: str) -> int | None:
    if k not in f["orig"]:
        return None
    return int(f["orig"][k]) + int(f["reply"][k])


def stable_pair(ns: str, args: tuple[str, ...] = ("--flows",), labels_conf: str | None = None, pure: bool = False) \
        -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Oracle, cttop, oracle again; retried until the table held still across the three reads.

    With ``labels_conf`` the oracle also reads start timestamps and label names.
    """
    output = LIST_ALL if labels_conf else "extended,id"
    for _ in range(5):
        before = conntrack_list(ns, output, labels_conf)
        snap = snapshot(ns, *args, pure=pure)
        after = conntrack_list(ns, output, labels_conf)
        key = lambda fs: sorted((f["id"], f["state"], tuple(f["flags"]), counters(f, "packets")) for f in fs)
        if key(before) == key(after):
            return after, snap
    raise AssertionError("the table kept changing under the test")


def test_flows_equal_conntrack_flow_by_flow(mixed: str, labels_conf: str) -> None:
    oracle, snap = stable_pair(mixed, labels_conf=labels_conf)
    mine = {f["id"]: f for f in snap["flows"]}
    assert set(mine) == {f["id"] for f in oracle}
    assert len(oracle) >= 19  # the mix really is there
    for o in oracle:
        m = mine[o["id"]]
        assert_same_tuple(o, m)
        assert m["mark"] == int(o["extra"]["mark"])
        assert ("ASSURED" in m["status"]) == ("ASSURED" in o["flags"])
        assert ("SEEN_REPLY" not in m["status"]) == ("UNREPLIED" in o["flags"])
        assert m["bytes"] == counters(o, "bytes") and m["packets"] == counters(o, "packets")
        assert abs(m["timeout"] - o["timeout"]) <= 2
        assert m["nat"] == nat_kind(o), (o, m)
        # conntrack prints the start to the second; cttop keeps the kernel's nanoseconds
        assert (None if m["start"] is None else m["start"] // 10**9) == o["start"], (o, m)


def test_labels_equal_conntrack(mixed: str, labels_conf: str) -> None:
    oracle, snap = stable_pair(mixed, labels_conf=labels_conf)
    mine = {f["id"]: f["labels"] for f in snap["flows"]}
    want = {o["id"]: sum(1 << int(name[1:]) for name in o["labels"]) if o["labels"] else None for o in oracle}
    assert sorted(v for v in want.values() if v) == sorted(sum(1 << n for n in bits) for _, bits in LABELLED)
    assert mine == want


def test_the_mix_covers_what_matters(mixed: str) -> None:
    oracle, snap = stable_pair(mixed)
    states = Counter(f"{f['proto']}:{oracle_state(f)}" for f in oracle)
    for k in ("tcp:ESTABLISHED", "tcp:TIME_WAIT", "tcp:SYN_SENT", "udp:UNREPLIED", "udp:REPLIED", "udp:ASSURED",
              "icmp:UNREPLIED", "tcp:SYN_RECV"):
        assert states[k] >= 1, (k, states)
    assert {f["family"] for f in oracle} == {"ipv4", "ipv6"}
    assert {"gre", "unknown"} <= {f["proto"] for f in oracle} and "99:UNREPLIED" in snap["by_state"]
    nat = Counter(f["nat"] for f in snap["flows"])
    assert nat["snat"] >= 1 and nat["dnat"] >= 3 and nat["both"] >= 1  # the nft DNAT, the injected ones
    assert any(f["nat"] == "dnat" and f["reply_src"] == f["dst"] for f in snap["flows"])  # by port alone
    stamped = [f for f in snap["flows"] if f["start"] is not None]
    assert 0 < len(stamped) < len(snap["flows"])  # timestamps on for some, off for others
    with_acct = [f for f in snap["flows"] if f["bytes"] is not None]
    assert 0 < len(with_acct) < len(snap["flows"])  # accounting on for some, off for others
    assert any(f["zone"] == 7 and f["mark"] == 42 for f in snap["flows"])


@pytest.mark.parametrize("pure", [False, True], ids=["counted-in-c", "rows"])
def test_aggregates_equal_conntrack(mixed: str, pure: bool) -> None:
    oracle, _ = stable_pair(mixed)
    snap = snapshot(mixed, "--group-by", "dport", "--top", "50", pure=pure)
    assert snap["count"] == len(oracle) == conntrack_count(mixed)
    assert snap["listed"] == snap["matched"] == len(oracle)
    name = lambda f: str(f["protonum"]) if f["proto"] == "unknown" else f["proto"]
    assert snap["by_proto"] == dict(Counter(map(name, oracle)))
    assert snap["by_state"] == dict(Counter(f"{name(f)}:{oracle_state(f)}" for f in oracle))
    assert snap["evictable"] == sum("ASSURED" not in f["flags"] for f in oracle)
    ports = Counter(f"{f['proto']}/{f['orig']['dport']}" for f in oracle if "dport" in f["orig"])
    assert {r["key"]: r["entries"] for r in snap["top"]["rows"] if r["key"] != "-"} == dict(ports)
    assert snap["max"] == int(open("/proc/sys/net/netfilter/nf_conntrack_max").read())


def proto_text(f: dict[str, Any]) -> str:
    # conntrack says "unknown" for protocols it has no name for; cttop gives the number
    return str(f["protonum"]) if f["proto"] == "unknown" else str(f["proto"])


def port_text(f: dict[str, Any], k: str) -> str:
    return f"{f['proto']}/{f['orig'][k]}" if k in f["orig"] else "-"


def mark_text(f: dict[str, Any]) -> str:
    mark = int(f["extra"]["mark"])
    return f"{mark:#x}" if mark else "0"


# Each --group-by key's group name, from a conntrack -L entry.
ORACLE_GROUPS: dict[str, Callable[[dict[str, Any]], str]] = {
    "src": lambda f: f["orig"]["src"],
    "dst": lambda f: f["orig"]["dst"],
    "dport": lambda f: port_text(f, "dport"),
    "sport": lambda f: port_text(f, "sport"),
    "proto": proto_text,
    "state": lambda f: f"{proto_text(f)}:{oracle_state(f)}",
    "src-dport": lambda f: f"{f['orig']['src']} → {port_text(f, 'dport')}",
    "pair": lambda f: f"{f['orig']['src']} → {f['orig']['dst']}",
    "mark": mark_text,
    "zone": lambda f: str(int(f["extra"].get("zone", 0))),
}


def oracle_groups(oracle: list[dict[str, Any]], key: str) -> dict[str, tuple[int, int, int]]:
    """group → (entries, bytes, packets); flows made before accounting was on add to entries only."""
    out: dict[str, tuple[int, int, int]] = {}
    for f in oracle:
        g = ORACLE_GROUPS[key](f)
        n, b, p = out.get(g, (0, 0, 0))
        out[g] = (n + 1, b + (counters(f, "bytes") or 0), p + (counters(f, "packets") or 0))
    return out


def test_every_group_key_is_checked() -> None:
    assert set(ORACLE_GROUPS) == set(GROUPS)


@pytest.mark.parametrize("pure", [False, True], ids=["counted-in-c", "rows"])
@pytest.mark.parametrize("key", list(ORACLE_GROUPS))
def test_groups_equal_conntrack(mixed: str, key: str, pure: bool) -> None:
    """Each group key's entries, bytes and packets, counted in C (kernel/_counts.c) and made of rows alike."""
    for by, col in (("entries", 0), ("bytes", 1), ("packets", 2)):
        oracle, snap = stable_pair(mixed, ("--group-by", key, "--by", by, "--top", "1000"), pure=pure)
        want = oracle_groups(oracle, key)
        assert len(want) >= 2, want  # the mix splits every key
        top = snap["top"]
        assert (top["key"], top["by"]) == (key, by)
        rows = top["rows"]
        got = {r["key"]: (r["entries"], r["bytes"], r["packets"]) for r in rows}
        assert len(got) == len(rows)  # no group listed twice
        assert got == want, (key, by)  # groups that moved nothing are listed too when ranking by bytes/packets
        ranked = [want[r["key"]][col] for r in rows]
        assert ranked == sorted(ranked, reverse=True), (key, by)
    # some group must carry traffic, or bytes and packets were compared as zeros only
    assert any(b for _, b, _ in want.values())


def test_stats_equal_conntrack_s(mixed: str) -> None:
    # Counters only grow: cttop's read must fall between two reads of conntrack -S around it.
    before = conntrack_stats(mixed)
    stats = snapshot(mixed)["stats"]
    after = conntrack_stats(mixed)
    assert {"drop", "early_drop", "insert_failed", "insert", "found", "invalid", "error", "search_restart",
            "clash_resolve", "chaintoolong"} <= set(before)
    for k in before:
        assert before[k] <= stats[k] <= after[k], (k, before[k], stats[k], after[k])
    # the kernel sends nothing else any more; cttop must not invent values for the fields it lists anyway
    assert all(v == 0 for k, v in stats.items() if k not in before), stats
    assert before["invalid"] >= 3 and before["insert"] >= len(INJECT), before  # not a comparison of zeros only


# Filters and what conntrack -L shows that they select: some the kernel applies whole (a protocol, a port, a
# family, a mark), the others cttop applies to the rows.
FILTERS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("udp", lambda f: f["proto"] == "udp"),
    ("tcp dport 8080", lambda f: f["proto"] == "tcp" and f["orig"].get("dport") == "8080"),
    ("ipv6", lambda f: f["family"] == "ipv6"),
    ("mark 42", lambda f: f["extra"]["mark"] == "42"),
    ("unreplied and not icmp", lambda f: "UNREPLIED" in f["flags"] and f["proto"] != "icmp"),
    ("dnat", lambda f: nat_kind(f) in ("dnat", "both")),
]


def test_filter_matches_what_conntrack_selects(mixed: str) -> None:
    for expr, want in FILTERS:
        oracle, _ = stable_pair(mixed)
        snap = snapshot(mixed, "--flows", "--filter", expr)
        assert sorted(f["id"] for f in snap["flows"]) == sorted(f["id"] for f in oracle if want(f)), expr
        assert snap["matched"] == len(snap["flows"])


@pytest.mark.parametrize("pure", [False, True], ids=["counted-in-c", "rows"])
def test_a_filtered_snapshot_counts_what_conntrack_selects(mixed: str, pure: bool) -> None:
    """No flows listed: a filter the kernel applies whole is counted in C, the others made of rows; either way the
    matches and their groups are what conntrack shows."""
    for expr, want in FILTERS:
        oracle, snap = stable_pair(mixed, ("--filter", expr, "--group-by", "proto"), pure=pure)
        chosen = [f for f in oracle if want(f)]
        assert chosen and snap["matched"] == len(chosen), expr
        assert {r["key"]: r["entries"] for r in snap["top"]["rows"]} == Counter(map(proto_text, chosen)), expr
        assert sum(snap["by_state"].values()) == len(chosen), expr


def test_bad_input_is_one_line_and_nonzero(mixed: str) -> None:
    for args, msg in ((["--filter", "udp dport"], "filter: expected a port number at column 10"),
                      (["--group-by", "nope"], "--group-by 'nope'"),
                      (["--netns", "no-such-ns-here"], "no such network namespace")):
        r = subprocess.run(["cttop", "snapshot", *args] + (["--netns", mixed] if "--netns" not in args else []),
                           capture_output=True, text=True)
        assert r.returncode == 2
        assert msg in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_without_permission_count_and_max_still_shown(mixed: str) -> None:
    # Enter the namespace as root, then drop CAP_NET_ADMIN: /proc/sys still reads, the dump must not.
    drop = ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
    r = subprocess.run(["ip", "netns", "exec", mixed, *drop, "cttop", "snapshot", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["count"] == conntrack_count(mixed) and snap["max"] > 0
    assert snap["listed"] is None and "CAP_NET_ADMIN" in r.stderr
    r = subprocess.run(["ip", "netns", "exec", mixed, *drop, "cttop", "snapshot", "--flows"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.count("CAP_NET_ADMIN") == 1 and "Traceback" not in r.stderr


def test_every_way_of_naming_the_namespace_reads_the_same_table(mixed: str) -> None:
    holder = subprocess.Popen(["ip", "netns", "exec", mixed, "sleep", "60"])
    try:
        want = conntrack_count(mixed)
        for args in (["--netns", mixed], ["--netns-path", f"/run/netns/{mixed}"], ["--netns-pid", str(holder.pid)]):
            r = subprocess.run(["cttop", "snapshot", "--json", *args], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["count"] == want, args
        r = subprocess.run(["cttop", "snapshot", "--netns", mixed, "--netns-pid", str(holder.pid)],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "exclusive" in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_filtered_snapshot_says_how_many_of_the_table_match(mixed: str) -> None:
    """The human line's total is the table's, also when the kernel applied the filter and returned only the
    matches (it read "2399 of 2399 flows match" on a table of 10,528)."""
    for expr, want in FILTERS:
        for _ in range(5):
            before = conntrack_list(mixed, "extended,id")
            r = subprocess.run(["cttop", "snapshot", "--netns", mixed, "--filter", expr], capture_output=True,
                               text=True)
            after = conntrack_list(mixed, "extended,id")
            if sorted(f["id"] for f in before) == sorted(f["id"] for f in after):
                break
        assert r.returncode == 0, r.stderr
        chosen = sum(1 for f in after if want(f))
        assert 0 < chosen < len(after), expr
        assert f"\n{chosen} of {len(after)} flows match the filter;" in r.stdout, (expr, r.stdout)
