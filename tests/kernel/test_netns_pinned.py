"""A namespace chosen once stays the one acted on, on the real kernel.

Every use of a spec opens its namespace again, by pid, name or path. A view of a container's namespace chosen by
pid (`cttop --netns-pid`, or N's list, which opens unnamed namespaces by a process in them) outlives that
process: an unprivileged user can fork until the pid is theirs, in the host's namespace, and the view's F then
flushed the host's table while it showed the container's. A name made anew is the same case, made by root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.actions import FlushFlows
from cttop.actions.journal import Journal
from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec
from tests.conftest import TRACK_RULES, add_netns, delete_netns, make_netns, sh

pytestmark = pytest.mark.kernel

# What a spec refuses to open once its name or pid names another namespace.
REFUSED = "no longer the network namespace cttop opened"


def made_anew(name: str, flows: int) -> None:
    """Delete namespace ``name`` and make another under the same name, holding ``flows`` entries."""
    delete_netns(name)
    add_netns(name)
    sh("nft", TRACK_RULES, netns=name)
    for i in range(flows):
        sh("conntrack", "-I", "-p", "udp", "-s", f"10.66.0.{i + 1}", "-d", "10.66.1.1", "--sport", "1000",
           "--dport", "53", "-t", "300", netns=name)


def count(name: str) -> int:
    return int(sh("conntrack", "-C", netns=name).strip())


@pytest.fixture
def two() -> Iterator[tuple[str, str]]:
    a, b = make_netns("cttop-pin-a"), make_netns("cttop-pin-b")
    try:
        yield a, b
    finally:
        delete_netns(a)
        delete_netns(b)


def test_a_flush_on_a_namespace_made_anew_since_it_was_chosen_is_refused(two: tuple[str, str],
                                                                         tmp_path: Path) -> None:
    _, b = two
    spec = NetnsSpec(name=b).pinned()  # as the CLI chooses it
    made_anew(b, 3)
    with pytest.raises(CttopError, match=REFUSED):
        FlushFlows(spec, "", journal=Journal(str(tmp_path))).apply()
    assert count(b) == 3  # the namespace there now was not touched


def test_a_pid_that_now_names_another_namespace_is_refused(two: tuple[str, str], tmp_path: Path) -> None:
    """What a reused pid looks like: the spec was pinned when its pid was in one namespace, and the pid now names
    another (here a process of the other namespace stands in for the pid's next owner)."""
    a, b = two
    holder = subprocess.Popen(["ip", "netns", "exec", a, "sleep", "60"])
    other = subprocess.Popen(["ip", "netns", "exec", b, "sleep", "60"])
    try:
        for p in (holder, other):  # each execs sleep in its namespace
            for _ in range(500):
                if os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                    break
                os.sched_yield()
        chosen = NetnsSpec(pid=holder.pid).pinned()
        now = NetnsSpec(pid=other.pid, pin=chosen.pin)
        sh("conntrack", "-I", "-p", "udp", "-s", "10.66.0.1", "-d", "10.66.1.1", "--sport", "1000", "--dport", "53",
           "-t", "300", netns=b)
        with pytest.raises(CttopError, match=rf"--netns-pid {other.pid}: {REFUSED} \(its process exited"):
            FlushFlows(now, "", journal=Journal(str(tmp_path))).apply()
        assert count(b) == 1  # the namespace the pid names now was not touched
    finally:
        for p in (holder, other):
            p.kill()
            p.wait()
