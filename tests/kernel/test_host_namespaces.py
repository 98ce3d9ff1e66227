"""`cttop namespaces` against the kernel: named namespaces and one held only by a process."""

from __future__ import annotations

import ctypes
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from cttop.host.namespaces import Namespace, discover, list_namespaces, read_counters, totals
from cttop.kernel.perms import CAP_NET_ADMIN, CAP_SYS_ADMIN, has_caps
from tests.conftest import delete_netns, make_netns, sh
from tests.nobody import AS_NOBODY
from tests.oracle import conntrack_count, conntrack_stats

pytestmark = pytest.mark.kernel

COUNTS = (7, 13)
HIDDEN_COUNT = 5


def inject(n: int, *, netns: str | None = None, pid: int | None = None) -> None:
    prefix = ["nsenter", "-t", str(pid), "-n"] if pid is not None else []
    for i in range(n):
        sh(*prefix, "conntrack", "-I", "-p", "udp", "-s", f"10.8.{i // 250}.{i % 250 + 1}", "-d", "10.8.255.1",
           "--sport", "1000", "--dport", "53", "-t", "300", netns=netns)


def exec_done(pid: int) -> None:
    """Wait until ``pid`` runs `sleep`: its launcher execs it only once inside the namespace."""
    for _ in range(500):
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == "sleep":
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never started sleep")


@pytest.fixture
def namespaces() -> Iterator[tuple[list[str], int]]:
    """Two named namespaces with known counts, and one held only by a `sleep` (its pid)."""
    names: list[str] = []
    hidden = None
    try:
        for n in COUNTS:
            names.append(make_netns())
            inject(n, netns=names[-1])
        hidden = subprocess.Popen(["unshare", "--net", "--", "sleep", "300"])
        exec_done(hidden.pid)
        inject(HIDDEN_COUNT, pid=hidden.pid)
        yield names, hidden.pid
    finally:
        if hidden is not None:
            hidden.kill()
            hidden.wait()
        for name in names:
            delete_netns(name)


def kernel_view(*, netns: str | None = None, pid: int | None = None) -> dict[str, int]:
    """Count, max, drop and early_drop as conntrack(8) and /proc inside the namespace report them."""
    if pid is not None:
        count = int(sh("nsenter", "-t", str(pid), "-n", "conntrack", "-C").strip())
        stats: dict[str, int] = {}
        for line in sh("nsenter", "-t", str(pid), "-n", "conntrack", "-S").splitlines():
            for t in line.split()[1:]:
                k, _, v = t.partition("=")
                stats[k] = stats.get(k, 0) + int(v)
        mx = int(sh("nsenter", "-t", str(pid), "-n", "cat", "/proc/sys/net/netfilter/nf_conntrack_max"))
    else:
        assert netns is not None
        count, stats = conntrack_count(netns), conntrack_stats(netns)
        mx = int(sh("cat", "/proc/sys/net/netfilter/nf_conntrack_max", netns=netns))
    return {"count": count, "max": mx, "drop": stats["drop"], "early_drop": stats["early_drop"]}


def test_every_namespace_with_its_count(namespaces: tuple[list[str], int]) -> None:
    names, pid = namespaces
    listed = list_namespaces()
    by_name = {n.names[0]: n for n in listed if n.names}
    for name, want in zip(names, COUNTS):
        ns = by_name[name]
        assert ns.count == want
        k = kernel_view(netns=name)
        assert (ns.count, ns.max, ns.drop, ns.early_drop) == (k["count"], k["max"], k["drop"], k["early_drop"])
        assert ns.share == want / k["max"]
        assert ns.spec.name == name
    [hidden] = [n for n in listed if pid in n.pids]
    assert hidden.names == [] and hidden.pids == [pid]
    assert hidden.process == "sleep" and hidden.label == f"pid:{pid}"
    assert hidden.spec.pid == pid
    k = kernel_view(pid=pid)
    assert (hidden.count, hidden.max, hidden.drop, hidden.early_drop) == \
        (HIDDEN_COUNT, k["max"], k["drop"], k["early_drop"])
    # Deduplicated by inode: each namespace once, whatever names or processes point at it.
    inodes = [n.inode for n in listed]
    assert len(inodes) == len(set(inodes))
    assert sum(n.initial for n in listed) == 1
    t = totals(listed)
    assert t.count == sum(n.count or 0 for n in listed) >= sum(COUNTS) + HIDDEN_COUNT


def test_a_named_namespace_with_processes_is_listed_once(namespaces: tuple[list[str], int]) -> None:
    names, _pid = namespaces
    p = subprocess.Popen(["ip", "netns", "exec", names[0], "sleep", "300"])
    try:
        exec_done(p.pid)
        [ns] = [n for n in discover() if names[0] in n.names]
        assert ns.pids == [p.pid] and ns.process == "sleep"
        assert ns.label == names[0]
    finally:
        p.kill()
        p.wait()


def cli_json() -> dict[str, Any]:
    r = subprocess.run(["cttop", "namespaces", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_cli_json_and_table(namespaces: tuple[list[str], int]) -> None:
    names, pid = namespaces
    out = cli_json()
    by_label = {n["label"]: n for n in out["namespaces"]}
    for name, want in zip(names, COUNTS):
        assert by_label[name]["count"] == want
        assert by_label[name]["share"] == want / by_label[name]["max"]
    assert by_label[f"pid:{pid}"]["count"] == HIDDEN_COUNT
    assert by_label[f"pid:{pid}"]["process"] == "sleep"
    assert out["total"]["count"] == sum(n["count"] or 0 for n in out["namespaces"])
    text = subprocess.run(["cttop", "namespaces"], capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split() for line in text.stdout.splitlines() if line.strip()}
    assert lines[names[1]][1] == str(COUNTS[1])
    assert lines[f"pid:{pid}"][1] == str(HIDDEN_COUNT)
    assert "TOTAL" in lines


def test_deleted_namespaces_are_gone() -> None:
    name = make_netns()
    try:
        assert any(name in n.names for n in discover())
    finally:
        delete_netns(name)
    assert not any(name in n.names for n in discover())




def test_init_is_represented_by_pid_1() -> None:
    [init] = [n for n in discover() if n.initial]
    assert init.pid == 1
    assert init.process == psutil.Process(1).name() != "kthreadd"


def test_as_nobody_own_count_from_proc_total_unknown_permission_said_once(
        namespaces: tuple[list[str], int], nobody_cttop: list[str]) -> None:
    names, _pid = namespaces
    # Run inside a namespace with a known count, so the own row has an exact expected value.
    r = subprocess.run(["ip", "netns", "exec", names[1], *AS_NOBODY, *nobody_cttop, "namespaces"],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    errors = r.stderr.splitlines()
    assert len(errors) == 1 and "need CAP_SYS_ADMIN (run with sudo)" in errors[0], errors
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.strip()}
    own = rows[names[1]]
    k = kernel_view(netns=names[1])
    assert own[1:6] == ["*", str(COUNTS[1]), f"{COUNTS[1] / k['max']:.1%}", str(k["drop"]), str(k["early_drop"])]
    assert rows[names[0]][1] == "?"
    assert rows["TOTAL"][1:5] == ["?", "-", "?", "?"]
    assert "the total is unknown" in r.stdout

    r = subprocess.run(["ip", "netns", "exec", names[1], *AS_NOBODY, *nobody_cttop, "namespaces", "--json"],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    by_label = {n["label"]: n for n in out["namespaces"]}
    assert by_label[names[1]]["own"] and by_label[names[1]]["count"] == COUNTS[1]
    assert by_label[names[1]]["error"] is None
    assert by_label[names[0]]["count"] is None and by_label[names[0]]["denied"]
    assert by_label["init"]["pid"] == 1 and by_label["init"]["denied"]
    t = out["total"]
    assert t["count"] is None and t["share"] is None and t["unreadable"] == t["denied"] >= 2
    assert t["at_least"]["count"] == sum(n["count"] or 0 for n in out["namespaces"]) >= COUNTS[1]


def test_as_nobody_in_the_host_namespace_init_is_read_from_proc(nobody_cttop: list[str]) -> None:
    r = subprocess.run([*AS_NOBODY, *nobody_cttop, "namespaces", "--json"], check=False, capture_output=True,
                       text=True)
    [init] = [n for n in json.loads(r.stdout)["namespaces"] if n["initial"]]
    assert init["own"] and init["error"] is None and isinstance(init["count"], int)
    with open("/proc/sys/net/netfilter/nf_conntrack_max") as f:
        assert init["max"] == int(f.read())
    others = [n for n in json.loads(r.stdout)["namespaces"] if not n["initial"]]
    assert r.returncode == (1 if others else 0)


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_effective(cap: int) -> None:
    """Take ``cap`` out of the calling thread's effective set: capset(2) changes that thread alone."""
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    data[cap // 32].effective &= ~(1 << cap % 32)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def test_a_thread_without_cap_sys_admin_reads_another_namespace_as_denied() -> None:
    """The kernel refuses setns by the calling thread's capabilities, so 'denied' is judged by that thread's
    (it once read the main thread's, and called the refusal a failure)."""
    name = make_netns("h13f1-caps")
    seen: dict[str, object] = {}

    def worker() -> None:
        drop_effective(CAP_SYS_ADMIN)
        ns = Namespace(inode=0, names=[name])
        read_counters(ns)
        seen.update(ns=ns, caps=(has_caps(CAP_NET_ADMIN), has_caps(CAP_NET_ADMIN, CAP_SYS_ADMIN)))

    try:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    finally:
        delete_netns(name)
    assert has_caps(CAP_NET_ADMIN, CAP_SYS_ADMIN)  # this thread kept them
    assert seen["caps"] == (True, False)
    ns = seen["ns"]
    assert isinstance(ns, Namespace) and ns.count is None and ns.error and ns.denied, ns
