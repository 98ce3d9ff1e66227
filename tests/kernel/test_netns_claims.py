"""A test run that gets killed leaves its namespaces to the next run's sweep, and a run going on beside it
keeps its own (tests/netns_claims.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import netns_claims
from tests.conftest import delete_netns, sh

pytestmark = pytest.mark.kernel

# A stand-in for a test run: makes a namespace the way the fixtures do, says its name, then waits to be killed.
RUN = ("import sys, time; sys.path.insert(0, sys.argv[1]); from tests.conftest import make_netns; "
       "print(make_netns('cttop-sweep'), flush=True); time.sleep(600)")
ROOT = str(Path(__file__).resolve().parents[2])


def claimed() -> set[str]:
    return {Path(e.path).read_bytes().decode() for e in os.scandir(netns_claims.CLAIMS)}


def namespaces() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()}


@pytest.fixture
def other_run() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-c", RUN, ROOT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    try:
        assert name in namespaces()
        yield proc, name
    finally:
        proc.kill()
        proc.wait()
        delete_netns(name)  # in case the test failed before its sweep
        netns_claims.sweep(lambda _n: None)  # and its claim with it


def test_a_killed_runs_namespace_is_swept(other_run: tuple[subprocess.Popen[str], str]) -> None:
    proc, name = other_run
    proc.kill()  # SIGKILL: nothing of its own cleanup runs
    proc.wait()
    assert name in namespaces()
    swept = netns_claims.sweep(delete_netns)
    assert name in swept
    assert name not in namespaces()
    assert name not in claimed()


def test_a_live_runs_namespace_is_left_alone(other_run: tuple[subprocess.Popen[str], str], netns: str) -> None:
    _proc, name = other_run
    swept = netns_claims.sweep(delete_netns)
    assert name not in swept and netns not in swept  # the other run's, and this run's own
    assert {name, netns} <= namespaces()
    assert {name, netns} <= claimed()


def test_a_claims_dir_anyone_could_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forged = tmp_path / "claims"
    forged.mkdir(mode=0o777)
    forged.chmod(0o777)
    (forged / "x").write_bytes(b"some-host-namespace")
    monkeypatch.setattr(netns_claims, "CLAIMS", str(forged))
    deleted: list[str] = []
    with pytest.raises(RuntimeError, match="not ours"):
        netns_claims.sweep(deleted.append)
    assert deleted == []
