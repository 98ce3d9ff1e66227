"""A change belongs to the namespace it was made in, not to the next one the kernel gives that inode.

The kernel hands a deleted namespace's inode to a namespace made later (the lowest free one), so a journal that
knew namespaces by inode alone offered a deleted lab's change for undo in the next lab, and counted it as drift
there. The oracle is /proc/sys in the namespaces.
"""

from __future__ import annotations

import os
from pathlib import Path

from cttop.actions import drift
from cttop.actions.journal import Journal
from cttop.kernel.netns import NetnsSpec
from tests.conftest import delete_netns, make_netns, run_cttop, sh

UDP = "nf_conntrack_udp_timeout"


def inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def udp_timeout(name: str) -> str:
    return sh("cat", f"/proc/sys/net/netfilter/{UDP}", netns=name).strip()


def given_inode(state: Path, gone: int, now: int) -> None:
    """The journal as it reads once the kernel has given inode ``gone`` to a namespace with inode ``now``.

    The kernel hands out the lowest free inode: at a shell on this machine the first namespace made after one was
    deleted got its inode each time, but after other tests' namespaces have freed lower ones, no number of tries
    is sure to reach it. So the record is made to name the new namespace's inode, as it then would; its cookie and
    boot id stay those of the namespace it was made in."""
    path = state / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line.replace(f'"netns_inode":{gone},', f'"netns_inode":{now},') for line in lines))
    assert [r.netns_inode for r in Journal(str(state)).records()] == [now]


def test_a_deleted_namespaces_change_is_not_undone_nor_drift_in_the_one_given_its_inode(tmp_path: Path) -> None:
    first = make_netns()
    try:
        gone = inode(first)
        r = run_cttop("set", "--netns", first, f"{UDP}=17", "--yes", "--state-dir", str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert udp_timeout(first) == "17"
        [rec] = Journal(str(tmp_path)).records()
        assert rec.netns_inode == gone and rec.netns_cookie is not None and rec.boot_id is not None
    finally:
        delete_netns(first)
    heir = make_netns()
    try:
        given_inode(tmp_path, gone, inode(heir))
        here = NetnsSpec(name=heir)
        assert udp_timeout(heir) != "17"
        # Neither the last undoable change here, nor undoable here by its id.
        last = run_cttop("undo", "--netns", heir, "--state-dir", str(tmp_path))
        assert last.returncode != 0 and f"nothing to undo in namespace {heir}" in last.stderr, last.stderr
        by_id = run_cttop("undo", rec.id, "--netns", heir, "--state-dir", str(tmp_path))
        assert by_id.returncode != 0 and "deleted since" in by_id.stderr and "nothing to undo here" in by_id.stderr
        # Nor a value cttop set here that someone changed since.
        assert drift.check(here, Journal(str(tmp_path))) == []
        sh("sysctl", "-qw", f"net.netfilter.{UDP}=19", netns=heir)
        assert drift.check(here, Journal(str(tmp_path))) == []
        assert udp_timeout(heir) == "19"  # nothing above wrote here
    finally:
        delete_netns(heir)


def test_the_namespace_a_change_was_made_in_still_undoes_it(netns: str, tmp_path: Path) -> None:
    r = run_cttop("set", "--netns", netns, f"{UDP}=17", "--yes", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    sh("sysctl", "-qw", f"net.netfilter.{UDP}=19", netns=netns)
    [d] = drift.check(NetnsSpec(name=netns), Journal(str(tmp_path)))
    assert (d.name, d.expected, d.current) == (UDP, "17", "19")
    u = run_cttop("undo", "--netns", netns, "--state-dir", str(tmp_path), "--yes", "--force")
    assert u.returncode == 0, u.stderr
    assert udp_timeout(netns) == "30"
