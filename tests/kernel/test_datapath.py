"""When nf_conntrack is not the table: an eBPF datapath's pinned conntrack maps, and kube-proxy rewriting sysctls.

The BPF filesystem is a real one mounted in a temporary directory, with real maps
created and pinned there by bpftool under the names Cilium and Calico give theirs
(CTTOP_BPFFS points cttop at it; the TUI's header is checked in tests/ui/test_containers_kernel.py). kube-proxy is a process named kube-proxy (a copy
of sleep) in a throwaway namespace. All of it is removed even on failure.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cttop, sh

pytestmark = pytest.mark.kernel

CILIUM = ("tc/globals/cilium_ct4_global", "tc/globals/cilium_ct_any4_global")
CALICO = ("tc/globals/cali_v4_ct3",)
UNRELATED = ("tc/globals/cilium_lb4_services_v2", "tc/globals/cali_v4_nat_fe3")


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (scripts/setup.sh installs it)")
    root = tmp_path / "bpffs"
    root.mkdir()
    sh("mount", "-t", "bpf", "bpf", str(root))
    try:
        for rel in CILIUM + CALICO + UNRELATED:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            # The kernel's map name is at most 15 characters; the pinned file's name is what cttop reads.
            sh("bpftool", "map", "create", str(root / rel), "type", "hash", "key", "4", "value", "4",
               "entries", "64", "name", os.path.basename(rel)[:15])
        assert sh("stat", "-f", "-c", "%T", str(root)).strip() in ("bpf_fs", "UNKNOWN (0xcafe4a11)")
        yield root
    finally:
        sh("umount", str(root), check=False)


def test_snapshot_json_says_which_maps_are_the_table_and_how_to_list_them(bpffs: Path) -> None:
    r = run_cttop("snapshot", "--json", env={"CTTOP_BPFFS": str(bpffs)})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["datapath"]
    assert d["nf_conntrack_is_the_table"] is False
    found = {x["name"]: x for x in d["ebpf_conntrack"]}
    assert sorted(found["Cilium"]["maps"]) == sorted(str(bpffs / m) for m in CILIUM)
    assert found["Calico (eBPF)"]["maps"] == [str(bpffs / CALICO[0])]
    assert any("cilium bpf ct list global" in c for c in found["Cilium"]["commands"])
    # The inspect command it prints works on the map it names.
    bpftool = next(c for c in found["Cilium"]["commands"] if c.startswith("bpftool "))
    out = subprocess.run(shlex.split(bpftool), capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "Found 0 elements" in out.stdout + out.stderr, out


def test_no_maps_no_note(tmp_path: Path) -> None:
    r = run_cttop("snapshot", "--json", env={"CTTOP_BPFFS": str(tmp_path)})
    d = json.loads(r.stdout)["datapath"]
    assert d["nf_conntrack_is_the_table"] is True and d["ebpf_conntrack"] == []
    assert "eBPF" not in run_cttop("snapshot", env={"CTTOP_BPFFS": str(tmp_path)}).stdout


def test_doctor_and_human_snapshot_say_so(bpffs: Path, netns: str) -> None:
    env = {"CTTOP_BPFFS": str(bpffs)}
    r = run_cttop("doctor", "--netns", netns, "--json", "--seconds", "0.1", env=env)
    (f,) = [f for f in json.loads(r.stdout)["findings"] if f["code"] == "ebpf-conntrack"]
    assert "Cilium" in f["title"] and "Calico" in f["title"] and "not the table" in f["title"]
    assert f"bpftool map dump pinned {bpffs / CILIUM[0]}" in f["commands"]
    human = run_cttop("snapshot", "--netns", netns, env=env).stdout
    assert "nf_conntrack is not the table for pod traffic" in human and "cilium bpf ct list global" in human


@pytest.fixture
def kube_proxy(netns: str, tmp_path: Path) -> Iterator[int]:
    """A process named kube-proxy in ``netns``."""
    binary = tmp_path / "kube-proxy"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    proc = subprocess.Popen(["ip", "netns", "exec", netns, str(binary), "600"])
    try:
        for _ in range(200):
            try:
                with open(f"/proc/{proc.pid}/comm") as f:
                    if f.read().strip() == "kube-proxy":
                        break
            except OSError:
                pass
            subprocess.run(["sleep", "0.02"], check=False)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_doctor_names_kube_proxy_as_the_cause_of_drift(netns: str, kube_proxy: int, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    key = "net.netfilter.nf_conntrack_tcp_timeout_established"
    r = run_cttop("set", "nf_conntrack_tcp_timeout_established=7440", "--netns", netns, "--yes", "--state-dir", state)
    assert r.returncode == 0, r.stderr
    sh("sysctl", "-w", f"{key}=86400", netns=netns)  # what kube-proxy does at start
    assert sh("sysctl", "-n", key, netns=netns).strip() == "86400"
    r = run_cttop("doctor", "--netns", netns, "--json", "--seconds", "0.1", "--state-dir", state)
    findings = {f["code"]: f for f in json.loads(r.stdout)["findings"]}
    assert findings["drift"]["severity"] == "warning"
    kp = findings["kube-proxy"]
    assert kp["severity"] == "warning"
    assert kp["title"] == f"kube-proxy[{kube_proxy}] rewrote nf_conntrack_tcp_timeout_established"
    assert kp["data"]["rewritten"] == ["nf_conntrack_tcp_timeout_established"]


@pytest.fixture
def kube_proxy_elsewhere(tmp_path: Path) -> Iterator[int]:
    """A process named kube-proxy in the tests' own namespace, not in the one under test."""
    other = tmp_path / "kube-proxy"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", other)
    proc = subprocess.Popen([str(other), "600"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_kube_proxy_elsewhere_is_not_the_cause_of_a_namespaces_drift(netns: str, kube_proxy_elsewhere: int,
                                                                      tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    run_cttop("set", "nf_conntrack_tcp_timeout_established=7440", "--netns", netns, "--yes", "--state-dir", state)
    sh("sysctl", "-w", "net.netfilter.nf_conntrack_tcp_timeout_established=86400", netns=netns)
    r = run_cttop("doctor", "--netns", netns, "--json", "--seconds", "0.1", "--state-dir", state)
    findings = {f["code"]: f for f in json.loads(r.stdout)["findings"]}
    assert findings["drift"]["severity"] == "warning"
    assert findings["kube-proxy"]["severity"] == "ok" and findings["kube-proxy"]["data"]["rewritten"] == []
