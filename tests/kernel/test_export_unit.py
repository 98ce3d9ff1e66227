"""contrib/systemd/cttop-export.service, run for real without systemd: the unit's user, capabilities and
no_new_privs, read from the file itself (so the test cannot drift from it) and applied with setpriv, inside a
throwaway namespace with real flows; its scraped numbers checked against the kernel.

systemd is not PID 1 here, so the mount and seccomp sandbox (ProtectSystem=, RestrictAddressFamilies=...) is
not reproduced; MemoryDenyWriteExecute= is (prctl PR_SET_MDWE), and `systemd-analyze verify` checks the file.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import delete_netns, make_netns, sh
from tests.kernel.test_host_export import busy_netns, sample_value  # noqa: F401  (busy_netns: a fixture)
from tests.kernel.test_snapshot import INJECT
from tests.nobody import NOBODY_UID
from tests.oracle import conntrack_count, conntrack_list, conntrack_stats, oracle_state

pytestmark = pytest.mark.kernel

UNIT_DIR = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
UNIT = UNIT_DIR / "cttop-export.service"
DROP_IN = UNIT_DIR / "other-namespaces.conf"
MERGED = ("AmbientCapabilities", "CapabilityBoundingSet")  # systemd ORs these across files; empty resets
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
CAP_NET_ADMIN = 12


def parse_unit(*paths: Path) -> dict[str, str]:
    """The [Service] settings of a unit and its drop-ins, as systemd reads them: later files override a key,
    except the capability sets, which are merged."""
    out: dict[str, str] = {}
    for path in paths:
        section = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            key, value = f"{section}.{key.strip()}", value.strip()
            if key.split(".", 1)[1] in MERGED and value and out.get(key):
                out[key] = f"{out[key]} {value}"
            else:
                out[key] = value
    return out


def caps(value: str) -> str:
    """'CAP_NET_ADMIN CAP_SYS_ADMIN' as setpriv's '-all,+net_admin,+sys_admin'."""
    return ",".join(["-all", *dict.fromkeys(f"+{c.lower().removeprefix('cap_')}" for c in value.split())])


def sandbox(unit: dict[str, str]) -> list[str]:
    """setpriv (and a prctl) applying what the unit says about who the exporter runs as."""
    assert unit["Service.DynamicUser"] == "yes" or unit.get("Service.User")
    ambient = caps(unit["Service.AmbientCapabilities"])
    argv = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups",
            f"--inh-caps={ambient}", f"--ambient-caps={ambient}",
            f"--bounding-set={caps(unit['Service.CapabilityBoundingSet'])}"]
    if unit.get("Service.NoNewPrivileges") == "yes":
        argv.append("--no-new-privs")
    if unit.get("Service.MemoryDenyWriteExecute") == "yes" and mdwe_supported():
        # Set by root before dropping; kept across fork and exec, as under systemd.
        code = ("import ctypes, os, sys\n"
                f"assert ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0\n"
                "os.execvp(sys.argv[1], sys.argv[1:])")
        argv = [sys.executable, "-c", code, *argv]
    return argv


def mdwe_supported() -> bool:
    call = f"ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0)"
    code = f"import ctypes, sys; sys.exit({call} != 0)"
    r = subprocess.run([sys.executable, "-c", code], check=False)
    if r.returncode:
        print("this kernel has no PR_SET_MDWE (before 6.3): MemoryDenyWriteExecute= not reproduced")
    return r.returncode == 0


def exec_start(unit: dict[str, str], cttop: list[str]) -> tuple[list[str], int]:
    """ExecStart's arguments run by ``cttop`` (a copy nobody can read), and the port it listens on."""
    binary, *args = shlex.split(unit["Service.ExecStart"])
    assert os.path.basename(binary) == "cttop"
    listen = args[args.index("--listen") + 1]
    return [*cttop, *args], int(listen.rsplit(":", 1)[1])


def scrape(ns: str, port: int, proc: subprocess.Popen[str]) -> str:
    code = ("import sys, urllib.request\n"
            f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=10).read().decode())")
    for _ in range(500):
        assert proc.poll() is None, proc.communicate()
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                           check=False)
        if r.returncode == 0:
            return r.stdout
        time.sleep(0.05)
    raise AssertionError("the exporter never answered")


def untracked_port(ns: str, port: int) -> None:
    """Scrapes leave no entry behind: the count the test compares is the flows it made, nothing else."""
    sh("nft", f"add table inet hsraw; add chain inet hsraw o {{ type filter hook output priority raw; }}; "
              f"add rule inet hsraw o tcp dport {port} notrack; add rule inet hsraw o tcp sport {port} notrack",
       netns=ns)


@dataclass
class Running:
    proc: subprocess.Popen[str]
    ns: str
    port: int

    def families(self) -> dict[str, Any]:
        return {f.name: f for f in text_string_to_metric_families(scrape(self.ns, self.port, self.proc))}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


@pytest.fixture
def exporter(nobody_cttop: list[str]) -> Iterator[Any]:
    """Start the unit's exporter in a namespace (unit files given) and stop it after the test."""
    started: list[Running] = []

    def start(ns: str, *files: Path) -> Running:
        unit = parse_unit(*files)
        argv, port = exec_start(unit, nobody_cttop)
        untracked_port(ns, port)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *sandbox(unit), "env", "-i", "PATH=/usr/bin:/bin",
                                 *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        started.append(Running(proc, ns, port))
        return started[-1]

    yield start
    for run in started:
        run.stop()



def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_the_unit_as_written_serves_the_kernels_numbers(exporter: Any, busy_netns: str) -> None:
    run = exporter(busy_netns, UNIT)
    fams = run.families()
    # It really ran as the unit says: an unprivileged uid holding CAP_NET_ADMIN alone, no_new_privs.
    st = status(run.proc.pid)
    assert st["Uid"].split() == [str(NOBODY_UID)] * 4 and st["NoNewPrivs"] == "1"
    assert {int(st[k], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == {1 << CAP_NET_ADMIN}

    flows = conntrack_list(busy_netns)
    count, stats = conntrack_count(busy_netns), conntrack_stats(busy_netns)
    with open("/proc/sys/net/netfilter/nf_conntrack_max") as f:  # global: the same in every namespace
        limit = int(f.read())
    assert sample_value(fams, "cttop_up") == 1
    assert sample_value(fams, "node_nf_conntrack_entries") == count == len(flows) >= len(INJECT)
    assert sample_value(fams, "node_nf_conntrack_entries_limit") == limit
    for name in ("insert", "insert_failed", "drop", "early_drop", "invalid", "found", "search_restart"):
        assert sample_value(fams, f"node_nf_conntrack_stat_{name}") == stats[name], name
    assert stats["insert"] > 0
    want = Counter(f"{f['proto']}:{oracle_state(f)}" for f in flows)
    # conntrack(8) calls a protocol it has no name for "unknown"; cttop gives its number.
    got = {f"{'unknown' if x.labels['proto'].isdigit() else x.labels['proto']}:{x.labels['state']}": x.value
           for x in fams["cttop_entries_by_state"].samples}
    assert got == want
    assert sample_value(fams, "cttop_evictable_entries") == sum("ASSURED" not in f["flags"] for f in flows)


def test_without_cap_net_admin_it_stops_in_one_line(nobody_cttop: list[str], busy_netns: str,
                                                    tmp_path: Path) -> None:
    """The one capability the unit grants is the one it needs."""
    text = UNIT.read_text().replace("AmbientCapabilities=CAP_NET_ADMIN", "AmbientCapabilities=")
    (tmp_path / UNIT.name).write_text(text)
    unit = parse_unit(tmp_path / UNIT.name)
    argv, _port = exec_start(unit, nobody_cttop)
    r = subprocess.run(["ip", "netns", "exec", busy_netns, *sandbox(unit), "env", "-i", *argv], capture_output=True,
                       text=True, timeout=60, cwd="/", check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not permitted" in r.stderr, r.stderr


def test_other_namespaces_only_with_the_drop_in(exporter: Any, busy_netns: str) -> None:
    other = make_netns("cttop-unit-other")
    try:
        for i in range(7):
            sh("conntrack", "-I", "-p", "udp", "-s", "10.9.0.1", "-d", "10.9.0.2", "--sport", str(3000 + i),
               "--dport", "53", "-t", "300", netns=other)
        first = exporter(busy_netns, UNIT)
        plain = first.families()
        first.stop()  # the next one listens on the same port
        assert sample_value(plain, "cttop_namespaces_unreadable") >= 1
        assert other not in {x.labels["netns"] for x in plain["cttop_namespace_entries"].samples}

        with_drop_in = exporter(busy_netns, UNIT, DROP_IN)
        fams = with_drop_in.families()
        st = status(with_drop_in.proc.pid)
        assert int(st["CapEff"], 16) == (1 << CAP_NET_ADMIN) | (1 << 21) | (1 << 19)  # + SYS_ADMIN, SYS_PTRACE
        assert sample_value(fams, "cttop_namespace_entries", netns=other) == conntrack_count(other) == 7
    finally:
        delete_netns(other)


def test_the_unit_asks_for_the_sandbox() -> None:
    unit = parse_unit(UNIT)
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("DynamicUser", "yes"), ("AmbientCapabilities", "CAP_NET_ADMIN"),
                       ("CapabilityBoundingSet", "CAP_NET_ADMIN"), ("RestrictNamespaces", "yes")):
        assert unit[f"Service.{key}"] == value, key
    assert set(unit["Service.RestrictAddressFamilies"].split()) == {"AF_NETLINK", "AF_INET", "AF_INET6", "AF_UNIX"}
    assert "CAP_SYS_ADMIN" in parse_unit(UNIT, DROP_IN)["Service.AmbientCapabilities"]


def test_systemd_analyze_verifies_the_unit_and_the_drop_in(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify checks that ExecStart's binary exists: point it at this checkout's cttop.
    cttop = shutil.which("cttop")
    assert cttop is not None
    (tmp_path / UNIT.name).write_text(UNIT.read_text().replace("/usr/local/bin/cttop", cttop))
    for with_drop_in in (False, True):
        if with_drop_in:
            (tmp_path / f"{UNIT.name}.d").mkdir()
            shutil.copy(DROP_IN, tmp_path / f"{UNIT.name}.d" / DROP_IN.name)
        r = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / UNIT.name)], capture_output=True,
                           text=True, check=False)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stderr
        # The figure the README gives is the unit's alone; the drop-in's extra capabilities raise it.
        r = subprocess.run([analyze, "security", "--offline=yes", str(tmp_path / UNIT.name)], capture_output=True,
                           text=True, check=False)
        shown = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr
        print(f"{'with' if with_drop_in else 'without'} the drop-in: {shown}")
