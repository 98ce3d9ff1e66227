"""Tunables against the kernel: set and undo, persist, drift, refusals. The oracle is /proc/sys read with `ip netns exec`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.actions import drift
from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Transaction
from cttop.actions.persist import PersistPaths
from cttop.actions.plan import set_read_only
from cttop.actions.sysctl_plan import SetSysctls
from cttop.actions.undo import undo_plan
from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsSpec
from tests.actions_helpers import undo
from tests.conftest import sh

pytestmark = pytest.mark.kernel
UDP = "nf_conntrack_udp_timeout"
EST = "nf_conntrack_tcp_timeout_established"


def proc(name: str, netns: str | None) -> str:
    return sh("cat", f"/proc/sys/net/netfilter/{name}", netns=netns).strip()


@pytest.fixture(autouse=True)
def writable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    set_read_only(False)
    yield
    set_read_only(False)  # a test that switched it on must not leave it on for the rest of the run


def test_timeout_set_then_undone(netns: str, tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    spec = NetnsSpec(name=netns)
    assert proc(UDP, netns) == "30"
    plan = SetSysctls(spec, {"udp_timeout": "10"}, journal=j)
    assert plan.commands() == [f"ip netns exec {netns} sysctl -w net.netfilter.{UDP}=10"]
    res = plan.apply()
    assert proc(UDP, netns) == "10"
    assert proc(UDP, None) == "30"  # the host's own value is untouched
    [rec] = j.records()
    assert rec.id == res.id and rec.before["values"] == {UDP: "30"} and rec.netns == netns and rec.undoable
    undo(plan)
    assert proc(UDP, netns) == "30"
    recs = j.records()
    assert recs[0].undone_by == recs[1].id and recs[1].undoes == res.id and not recs[1].undoable
    with pytest.raises(ActionError, match="already undone"):
        undo_plan(spec, res.id, j)
    with pytest.raises(ActionError, match="nothing to undo"):
        undo_plan(spec, None, j)


def test_undo_refuses_another_namespace(netns: str, module_netns: str, tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    res = SetSysctls(NetnsSpec(name=netns), {UDP: 11}, journal=j).apply()
    with pytest.raises(ActionError, match=f"made in namespace {netns}"):
        undo_plan(NetnsSpec(name=module_netns), res.id, j)
    assert proc(UDP, netns) == "11"


@pytest.mark.parametrize("values, message", [
    ({UDP: "abc"}, f"{UDP}=abc: not an integer"),
    ({"no_such_thing": "1"}, "no_such_thing: not a conntrack tunable"),
    ({UDP: "-1"}, f"{UDP}=-1: out of range"),
    ({"nf_conntrack_buckets": "1024"}, "read-only"),
])
def test_bad_values_refused_and_nothing_changes(netns: str, tmp_path: Path, values: dict[str, str],
                                                message: str) -> None:
    j = Journal(str(tmp_path))
    with pytest.raises(ActionError) as e:
        SetSysctls(NetnsSpec(name=netns), {EST: "7200", **values}, journal=j).apply()
    assert message in str(e.value) and "\n" not in str(e.value)
    assert proc(EST, netns) == "432000" and proc(UDP, netns) == "30"
    assert j.records() == []


@pytest.mark.parametrize("name", ["nf_conntrack_max", "hashsize"])
def test_globals_refused_in_a_namespace_with_the_reason(netns: str, tmp_path: Path, name: str) -> None:
    j = Journal(str(tmp_path))
    before = sysctl.read(NetnsSpec(), [name])[name]
    with pytest.raises(ActionError, match="writable only from the initial namespace"):
        SetSysctls(NetnsSpec(name=netns), {UDP: "12", name: "300000"}, journal=j).apply()
    assert proc(UDP, netns) == "30"  # all or nothing: the valid one was not applied either
    assert sysctl.read(NetnsSpec(), [name])[name] == before
    assert j.records() == []


def test_kernel_failure_midway_rolls_back(netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))
    real = sysctl.write
    calls: list[str] = []

    def second_fails(spec: NetnsSpec, name: str, value: str) -> None:
        calls.append(name)
        if len(calls) == 2:
            raise sysctl.SysctlError(f"{name}={value}: kernel refused: Invalid argument")
        real(spec, name, value)

    monkeypatch.setattr(sysctl, "write", second_fails)
    with pytest.raises(ActionError, match="kernel refused.*nothing was changed"):
        SetSysctls(NetnsSpec(name=netns), {UDP: "13", EST: "7200"}, journal=j).apply()
    assert calls == [UDP, EST, UDP]  # the second failed, the first was put back
    assert proc(UDP, netns) == "30" and proc(EST, netns) == "432000"
    assert j.records() == []


def test_journal_failure_after_the_write_restores_the_value(netns: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))

    def full(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    monkeypatch.setattr(Transaction, "complete", full)
    with pytest.raises(ActionError, match="No space left on device: the change could not be recorded, so it was "
                                          "rolled back; nothing was changed"):
        SetSysctls(NetnsSpec(name=netns), {UDP: "14"}, journal=j).apply()
    assert proc(UDP, netns) == "30"
    assert j.records() == []  # the abort line was written: no change to list


def test_read_only_refuses(netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_READ_ONLY", "1")
    j = Journal(str(tmp_path))
    with pytest.raises(ActionError, match="read-only"):
        SetSysctls(NetnsSpec(name=netns), {UDP: "15"}, journal=j).apply()
    assert proc(UDP, netns) == "30" and j.records() == []


def test_persist_files_written_merged_and_undone(netns: str, tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "state"))
    paths = PersistPaths.under(str(tmp_path / "etc"))
    conf = tmp_path / "etc" / "sysctl.d" / "90-cttop.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# someone's\nnet.core.somaxconn = 1024\nnet.netfilter.nf_conntrack_udp_timeout = 99\n")
    plan = SetSysctls(NetnsSpec(name=netns), {UDP: "16", EST: "86400"}, persist=paths, journal=j)
    assert any("initial namespace" in w for w in plan.warnings())
    plan.apply()
    assert proc(UDP, netns) == "16" and proc(EST, netns) == "86400"
    assert conf.read_text() == ("# someone's\nnet.core.somaxconn = 1024\nnet.netfilter.nf_conntrack_udp_timeout = 16\n"
                                "net.netfilter.nf_conntrack_tcp_timeout_established = 86400\n")
    assert not (tmp_path / "etc" / "modprobe.d").exists()
    undo(plan, paths)
    assert proc(UDP, netns) == "30" and proc(EST, netns) == "432000"
    # The file's lines are as they were, including the value someone else had there.
    assert conf.read_text() == "# someone's\nnet.core.somaxconn = 1024\nnet.netfilter.nf_conntrack_udp_timeout = 99\n"


def test_hashsize_persist_goes_to_modprobe_d(tmp_path: Path) -> None:
    """Only the file side: hashsize is refused in a namespace, so the plan is built, shown, not applied."""
    paths = PersistPaths.under(str(tmp_path))
    plan = SetSysctls(NetnsSpec(), {"hashsize": "262144"}, persist=paths, journal=Journal(str(tmp_path)))
    assert plan.edits == {paths.modprobe_file: {"hashsize": "262144"}}
    assert any("options nf_conntrack hashsize=262144" in c for c in plan.commands())


def test_drift_detected_after_someone_else_writes(netns: str, tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    spec = NetnsSpec(name=netns)
    res = SetSysctls(spec, {UDP: "17"}, journal=j).apply()
    assert drift.check(spec, j) == []
    sh("sysctl", "-w", f"net.netfilter.{UDP}=55", netns=netns)
    [d] = drift.check(spec, j)
    assert (d.name, d.expected, d.current, d.record_id) == (UDP, "17", "55", res.id)
    assert "55" in d.message() and "17" in d.message()
    with pytest.raises(ActionError) as e:
        undo_plan(spec, res.id, j).check()
    assert str(e.value) == (f"{UDP} changed since change {res.id}: it is 55 now, not the 17 that change set; "
                            "--force restores 30 anyway")
    assert proc(UDP, netns) == "55"
    forced = undo_plan(spec, res.id, j, force=True)
    assert any(f"{UDP} is 55 now, not the 17 change {res.id} set: changed since" in w for w in forced.warnings())
    forced.apply()
    assert proc(UDP, netns) == "30"
    assert drift.check(spec, j) == []  # handed back: no longer watched


def test_max_set_and_undone_in_the_initial_namespace(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    old = proc("nf_conntrack_max", None)
    new = str(int(old) + 4096)  # higher: nothing is dropped meanwhile
    try:
        plan = SetSysctls(NetnsSpec(), {"nf_conntrack_max": new}, journal=j)
        assert any("global" in w for w in plan.warnings())
        plan.apply()
        assert proc("nf_conntrack_max", None) == new
        undo(plan)
        assert proc("nf_conntrack_max", None) == old
    finally:
        # Put it back only if it is still ours: someone else may own it by now.
        if proc("nf_conntrack_max", None) == new:
            sh("sysctl", "-w", f"net.netfilter.nf_conntrack_max={old}")


def test_hashsize_set_and_undone_in_the_initial_namespace(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    old = Path(sysctl.HASHSIZE_PATH).read_text().strip()
    new = str(int(old) + 16384)  # more buckets: a resize that drops nothing
    try:
        plan = SetSysctls(NetnsSpec(), {"hashsize": new}, journal=j)
        assert any("global" in w for w in plan.warnings())
        plan.apply()
        assert Path(sysctl.HASHSIZE_PATH).read_text().strip() == new and proc("nf_conntrack_buckets", None) == new
        undo(plan)
        assert Path(sysctl.HASHSIZE_PATH).read_text().strip() == old and proc("nf_conntrack_buckets", None) == old
    finally:
        # Put it back only if it is still ours: someone else may own it by now.
        if Path(sysctl.HASHSIZE_PATH).read_text().strip() == new:
            Path(sysctl.HASHSIZE_PATH).write_text(old)


@pytest.mark.parametrize("there", ["", "sysctl.d"])
def test_a_change_the_journal_cannot_record_takes_back_its_file_and_directories(
        netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, there: str) -> None:
    """The value set and persisted, then the journal's completion refused (a full disk): the value is put back,
    the file goes, and so does a sysctl.d/ the write made for it (it stayed, empty); one that was there stays."""
    j = Journal(str(tmp_path / "state"))
    etc = tmp_path / "etc"
    (etc / there).mkdir(parents=True, exist_ok=True)
    before = sorted(p.relative_to(etc) for p in etc.rglob("*"))

    def refused(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    monkeypatch.setattr(Transaction, "complete", refused)
    monkeypatch.setattr(Transaction, "abort", refused)
    with pytest.raises(ActionError, match="could not be recorded, so it was rolled back; nothing was changed"):
        SetSysctls(NetnsSpec(name=netns), {UDP: "17"}, persist=PersistPaths.under(str(etc)), journal=j).apply()
    assert proc(UDP, netns) == "30"
    assert sorted(p.relative_to(etc) for p in etc.rglob("*")) == before
