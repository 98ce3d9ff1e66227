"""A pod's name is read from the pod's own /etc/hostname, which the pod's owner makes: a link there must not
make root read a host file (and print it as the pod's name, on a terminal and on /metrics), and a FIFO there
must not hang the owner lookup.

Real processes: each holds a tracked UDP flow in a throwaway namespace, is chrooted into a directory the test
makes (its /etc/hostname a link, a FIFO, a directory or a file), and sits in a kubepods-style cgroup2 cgroup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.lab.containers import cgroup_root
from cttop.owners.cgroup import placement_of
from tests.conftest import run_cttop

pytestmark = pytest.mark.kernel

SECRET = "host-secret-4f2a"  # what a host file holds; never a pod's name
# Bind two UDP sockets, make one flow between them (tracked: conntrack -L shows it), enter the pod's root.
HOLD = """
import os, socket, sys, time
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", 0))
b.sendto(b"x", a.getsockname())
os.chroot(sys.argv[1]); os.chdir("/")
print("READY", flush=True)
time.sleep(120)
"""


def _pod_cgroup() -> str:
    uid = str(uuid.uuid4())
    return os.path.join(cgroup_root(), f"cttop-test-{uid[:8]}.slice", "kubepods", "besteffort", f"pod{uid}",
                        uuid.uuid4().hex * 2)


def _remove_cgroup(leaf: str) -> None:
    path = leaf
    for _ in range(4):  # the leaf, pod, besteffort, kubepods; then the test's slice
        os.rmdir(path)
        path = os.path.dirname(path)
    os.rmdir(path)


@pytest.fixture
def pod(netns: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A pod root to fill (``root/etc``) and a function-scoped namespace; the pod is started by ``start``."""
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "secret").write_text(SECRET + "\n")
    yield netns, tmp_path


def start(netns: str, root: Path) -> tuple[subprocess.Popen[str], str]:
    leaf = _pod_cgroup()
    os.makedirs(leaf)

    def enter() -> None:
        with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    try:
        # preexec_fn: one write in the child before exec, as the lab's enter_cgroup does.
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", HOLD, str(root)],
                                stdout=subprocess.PIPE, text=True, preexec_fn=enter)  # noqa: PLW1509
    except BaseException:
        _remove_cgroup(leaf)
        raise
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc, leaf


def stop(proc: subprocess.Popen[str], leaf: str) -> None:
    proc.kill()
    proc.wait()
    _remove_cgroup(leaf)


def placement_within(pid: int, seconds: float = 5.0) -> object:
    """placement_of, which must come back: a lookup left blocked past ``seconds`` fails the test."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(placement_of(pid)), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"the owner lookup of pid {pid} is blocked"
    return out[0]


@pytest.mark.parametrize("how", ["absolute link", "relative link", "etc a link", "fifo", "directory"])
def test_a_pods_hostname_that_is_not_its_own_file_names_nothing(pod: tuple[str, Path], how: str) -> None:
    netns, tmp = pod
    etc = tmp / "root" / "etc"
    if how == "absolute link":  # resolved against the host's root, it is the host's file
        (etc / "hostname").symlink_to(tmp / "secret")
    elif how == "relative link":
        (etc / "hostname").symlink_to(os.path.relpath(tmp / "secret", etc))
    elif how == "etc a link":
        etc.rmdir()
        (tmp / "hostetc").mkdir()
        (tmp / "hostetc" / "hostname").write_text(SECRET + "\n")
        etc.symlink_to(tmp / "hostetc")
    elif how == "fifo":
        os.mkfifo(etc / "hostname")
    else:
        (etc / "hostname").mkdir()
    proc, leaf = start(netns, tmp / "root")
    try:
        p = placement_within(proc.pid)
        assert p is not None and p.kind == "pod" and p.name is None, p  # type: ignore[attr-defined]
        # The whole path, as an operator meets it: the pod is a group, shown by its uid, no file's text.
        r = run_cttop("snapshot", "--netns", netns, "--group-by", "container", "--flows", "--json")
        assert r.returncode == 0, r.stderr
        assert SECRET not in r.stdout
        keys = [row["key"] for row in json.loads(r.stdout)["top"]["rows"]]
        assert any(k.startswith("pod:") for k in keys), keys
    finally:
        stop(proc, leaf)


def test_a_pods_own_hostname_file_names_it(pod: tuple[str, Path]) -> None:
    netns, tmp = pod
    (tmp / "root" / "etc" / "hostname").write_text("api-7d9f\n")
    proc, leaf = start(netns, tmp / "root")
    try:
        p = placement_within(proc.pid)
        assert p is not None and p.name == "api-7d9f", p  # type: ignore[attr-defined]
        r = run_cttop("snapshot", "--netns", netns, "--group-by", "container", "--json")
        assert r.returncode == 0, r.stderr
        assert "pod:api-7d9f" in [row["key"] for row in json.loads(r.stdout)["top"]["rows"]], r.stdout
    finally:
        stop(proc, leaf)
