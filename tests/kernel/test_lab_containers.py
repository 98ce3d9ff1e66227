"""`cttop lab --scenario containers`, headless: the misbehaving container holds the host's table, named, and
nothing of the lab (namespaces, cgroups, runtime metadata, the directories it made) is left after it, or after
`--keep` and `--cleanup`; a Docker state directory or /etc/netns that was there before stays as it was.

The oracle: `conntrack -L` in the lab's host namespace, `/proc/PID/cgroup` of the lab's processes, and
the cgroup filesystem, /etc/netns and Docker's state directory during and afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cttop.lab import containers
from cttop.lab.containers import CONTAINERS, NETNS_ETC, ContainerLab, cgroup_root, docker_state
from cttop.lab.topology import LabError
from cttop.owners.cgroup import DOCKER_CONTAINERS
from tests.conftest import run_cttop, sh
from tests.container_host import TestLab, by_role

pytestmark = pytest.mark.kernel

DURATION = 25.0
SHORT = 6.0  # seconds of traffic where a few of spray's flows are enough
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
    paths.append(lab.record)
    return [p for p in paths if os.path.exists(p)]


def missing_dirs() -> list[str]:
    """The directories the lab writes its metadata in that are not there now (so the lab would make them)."""
    return [d for d in (docker_state(), DOCKER_CONTAINERS, NETNS_ETC) if not os.path.lexists(d)]


def tree(top: str) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``top``: its mode, and a file's bytes."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for d, _subs, files in os.walk(top):
        out[d] = (os.lstat(d).st_mode, None)
        for f in files:
            path = os.path.join(d, f)
            out[path] = (os.lstat(path).st_mode, Path(path).read_bytes())
    return out


def wait_for_spray(proc: subprocess.Popen[str], lab: ContainerLab, flows: int) -> None:
    end = time.monotonic() + CAP
    while len(sh("conntrack", "-L", "-s", by_role("spray").address, netns=lab.router).splitlines()) < flows:
        assert time.monotonic() < end and proc.poll() is None, "spray's flows never piled up"
        time.sleep(0.5)


def container_keys(lab: ContainerLab) -> set[str]:
    r = run_cttop("snapshot", "--netns", lab.router, "--group-by", "container", "--json")
    return {row["key"] for row in json.loads(r.stdout)["top"]["rows"]}


@contextmanager
def running(*args: str, duration: float = DURATION) -> Iterator[tuple[subprocess.Popen[str], ContainerLab]]:
    proc = subprocess.Popen(lab_command("--no-ui", "--duration", str(duration), *args), stdout=subprocess.PIPE,
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
    made = missing_dirs()
    with running() as (proc, lab):
        spray = by_role("spray")
        wait_for_spray(proc, lab, 1000)
        kernel = len(sh("conntrack", "-L", netns=lab.router).splitlines())
        r = run_cttop("snapshot", "--netns", lab.router, "--group-by", "container", "--json")
        top = json.loads(r.stdout)["top"]["rows"]
        # By name where the lab made Docker's state directory, by short id where it was there (a Docker host).
        assert top[0]["key"] == lab.label(spray) and top[0]["entries"] > kernel / 2
        assert lab.label(by_role("web")) in {row["key"] for row in top}
        # Its processes sit in the cgroups the runtimes would have made.
        for c in CONTAINERS:
            pids = sh("ip", "netns", "pids", lab.ns(c.role)).split()
            assert pids, c.role
            with open(f"/proc/{pids[0]}/cgroup") as f:
                assert lab.cgroup(c) in f.read(), c.role
        stderr = proc.communicate(timeout=DURATION + CAP)[1]
        assert proc.returncode == 0, stderr
    assert leftovers(lab) == []
    assert [d for d in made if os.path.lexists(d)] == []


def test_keep_then_cleanup_by_tag_removes_its_cgroups_metadata_and_the_directories_it_made() -> None:
    """Where Docker's state directory (and /etc/netns) are missing the lab makes them, and notes so on the host:
    `--cleanup TAG`, another process, removes exactly those."""
    if os.path.lexists(docker_state()):
        pytest.skip(f"{docker_state()} is there (a Docker host, or another lab's now): the lab would not make it")
    made = missing_dirs()
    kept = [d for d in (NETNS_ETC,) if d not in made]
    with running("--keep", duration=SHORT) as (proc, lab):
        stderr = proc.communicate(timeout=SHORT + CAP)[1]
        assert proc.returncode == 0, stderr
        assert f"cttop lab --cleanup {lab.tag}" in stderr
        assert all(os.path.isdir(d) for d in made)
        # namespaces, the slice, docker's two, the pod's, and the record of the directories the lab made
        assert len(leftovers(lab)) == len(lab.roles) + 1 + 2 + 1 + 1
        r = subprocess.run(lab_command("--cleanup", lab.tag), capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert f"removed {os.path.join(cgroup_root(), lab.slice)}" in r.stdout
    assert leftovers(lab) == []
    assert [d for d in made if os.path.lexists(d)] == []
    assert all(os.path.isdir(d) for d in kept)


def test_on_a_docker_host_it_writes_nothing_in_dockers_state_and_names_containers_by_short_id() -> None:
    made = [d for d in (docker_state(), DOCKER_CONTAINERS) if not os.path.lexists(d)]
    own = Path(DOCKER_CONTAINERS) / f"cttop-test-{secrets.token_hex(3)}"
    try:
        for d in made:
            os.mkdir(d, 0o710)
        own.write_bytes(b'{"not": "the lab\'s"}\n')
        before = tree(docker_state())
        with running(duration=SHORT) as (proc, lab):
            wait_for_spray(proc, lab, 100)
            keys = container_keys(lab)
            during = tree(docker_state())
            stderr = proc.communicate(timeout=SHORT + CAP)[1]
            assert proc.returncode == 0, stderr
        short = {f"docker:{lab.container_id(by_role(r))[:12]}" for r in ("spray", "web")}
        assert short <= keys and not {"docker:spray", "docker:web"} & keys, keys
        said = [ln for ln in stderr.splitlines() if docker_state() in ln]
        assert len(said) == 1 and all(k in said[0] for k in short), stderr
        assert during == before
        assert tree(docker_state()) == before
        assert leftovers(lab) == []
    finally:
        own.unlink(missing_ok=True)
        for d in reversed(made):
            with contextlib.suppress(OSError):  # not empty: someone else's since, not the test's to remove
                os.rmdir(d)


def test_an_etc_netns_that_was_there_stays() -> None:
    made = not os.path.lexists(NETNS_ETC)
    try:
        if made:
            os.mkdir(NETNS_ETC)
        with running(duration=SHORT) as (proc, lab):
            stderr = proc.communicate(timeout=SHORT + CAP)[1]
            assert proc.returncode == 0, stderr
        assert os.path.isdir(NETNS_ETC)
        assert leftovers(lab) == []
    finally:
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(NETNS_ETC)


@pytest.mark.parametrize("blocked", ["metadata", "cgroup"])
def test_a_place_it_cannot_write_is_one_clear_error_and_nothing_is_left(
        blocked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's state directory or the cgroup filesystem not writable (read-only, or not a directory):
    a LabError naming the path (the CLI prints it as one line), and the half-built lab removed."""
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    if blocked == "metadata":
        monkeypatch.setattr(containers, "DOCKER_CONTAINERS", str(not_a_dir / "docker" / "containers"))
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
