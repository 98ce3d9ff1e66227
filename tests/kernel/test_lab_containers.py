"""`cttop lab --scenario containers`, headless: the misbehaving container holds the host's table, named, and
nothing of the lab (namespaces, cgroups, runtime metadata) is left after it, or after `--keep` and `--cleanup`.

The oracle: `conntrack -L` in the lab's host namespace, `/proc/PID/cgroup` of the lab's processes, and
the cgroup filesystem, /etc/netns and Docker's state directory afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

<<<<<<< HEAD
from cttop.lab import containers
from cttop.lab.containers import CONTAINERS, NETNS_ETC, ContainerLab, by_role, cgroup_root
from cttop.lab.topology import LabError
from cttop.owners.cgroup import DOCKER_CONTAINERS
from tests.conftest import run_cttop, sh
from tests.container_host import TestLab
=======
from cttop.lab.containers import CONTAINERS, NETNS_ETC, ContainerLab, cgroup_root
from cttop.owners.cgroup import DOCKER_CONTAINERS
from tests.conftest import run_cttop, sh
from tests.container_host import by_role
>>>>>>> audit-12

pytestmark = pytest.mark.kernel

DURATION = 25.0
CAP = 60.0


def lab_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; sys.argv[0] = 'cttop'; from cttop.cli import main; main()", "lab",
            "--scenario", "containers", *args]


def leftovers(lab: ContainerLab) -> list[str]:
    """What of the lab is still on the host."""
    paths = [os.path.join(cgroup_root(), lab.slice)]
    paths += [os.path.join(DOCKER_CONTAINERS, lab.container_id(c)) for c in CONTAINERS if c.kind == "docker"]
    paths += [os.path.join(NETNS_ETC, lab.ns(c.role)) for c in CONTAINERS]
    paths += [os.path.join("/run/netns", lab.ns(r)) for r in lab.roles]
    return [p for p in paths if os.path.exists(p)]


@contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], ContainerLab]]:
    proc = subprocess.Popen(lab_command("--no-ui", "--duration", str(DURATION), *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lab: ContainerLab | None = None
    try:
        assert proc.stdout is not None
        names = dict(proc.stdout.readline().split() for _ in ContainerLab.roles)
        lab = ContainerLab(names["host"].removeprefix(ContainerLab.prefix).split("-")[0])
        assert names == {r: lab.ns(r) for r in lab.roles}
        yield proc, lab
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(DURATION + CAP)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if lab is not None:
            subprocess.run(lab_command("--cleanup", lab.tag), capture_output=True, check=False)


def test_spray_holds_the_hosts_table_by_name_and_the_lab_leaves_nothing() -> None:
    with running() as (proc, lab):
        spray = by_role("spray")
        end = time.monotonic() + CAP
        while len(sh("conntrack", "-L", "-s", spray.address, netns=lab.router).splitlines()) < 1000:
            assert time.monotonic() < end and proc.poll() is None, "spray's flows never piled up"
            time.sleep(0.5)
        kernel = len(sh("conntrack", "-L", netns=lab.router).splitlines())
        r = run_cttop("snapshot", "--netns", lab.router, "--group-by", "container", "--json")
        top = json.loads(r.stdout)["top"]["rows"]
        assert top[0]["key"] == "docker:spray" and top[0]["entries"] > kernel / 2
        assert "docker:web" in {row["key"] for row in top}
        # Its processes sit in the cgroups the runtimes would have made.
        for c in CONTAINERS:
            pids = sh("ip", "netns", "pids", lab.ns(c.role)).split()
            assert pids, c.role
            with open(f"/proc/{pids[0]}/cgroup") as f:
                assert lab.cgroup(c) in f.read(), c.role
        stderr = proc.communicate(timeout=DURATION + CAP)[1]
        assert proc.returncode == 0, stderr
    assert leftovers(lab) == []


def test_keep_then_cleanup_by_tag_removes_its_cgroups_and_metadata() -> None:
    with running("--keep") as (proc, lab):
        stderr = proc.communicate(timeout=DURATION + CAP)[1]
        assert proc.returncode == 0, stderr
        assert f"cttop lab --cleanup {lab.tag}" in stderr
        assert len(leftovers(lab)) == len(lab.roles) + 1 + 2 + 1  # namespaces, the slice, docker's two, the pod's
        r = subprocess.run(lab_command("--cleanup", lab.tag), capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert f"removed {os.path.join(cgroup_root(), lab.slice)}" in r.stdout
    assert leftovers(lab) == []


@pytest.mark.parametrize("blocked", ["metadata", "cgroup"])
def test_a_place_it_cannot_write_is_one_clear_error_and_nothing_is_left(
        blocked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's state directory or the cgroup filesystem not writable (read-only, or not a directory):
    a LabError naming the path (the CLI prints it as one line), and the half-built lab removed."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    if blocked == "metadata":
        monkeypatch.setattr(containers, "DOCKER_CONTAINERS", str(not_a_dir / "containers"))
    else:
        monkeypatch.setattr(containers, "cgroup_root", lambda: str(not_a_dir))
    lab = TestLab.new()
    try:
        where = re.escape(str(not_a_dir))
        with pytest.raises(LabError, match=rf"^cannot (create the cgroup|write the container.s metadata in) {where}/"
                                           r".*: Not a directory$"):
            containers.create(lab)
    finally:
        monkeypatch.undo()  # what is left is looked for where the lab really writes
        left = leftovers(lab)
        containers.destroy(lab)
    assert left == []
