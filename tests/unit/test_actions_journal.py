"""The journal: intent then completion lines, undo folded into undone_by, ids by prefix, bad lines left out
with a warning naming them, torn lines cut, and only state cttop could have made is used."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from cttop.actions import journal as journal_mod
from cttop.actions.errors import ActionError
from cttop.actions.journal import COMPLETE, INTERRUPTED, Journal, Record
from cttop.kernel.netns import NetnsId
from tests.actions_helpers import journal as write

UDP = "nf_conntrack_udp_timeout"
NOBODY = 65534


def rec(id: str, inode: int = 7, undoable: bool = True, undoes: str | None = None, kind: str = "sysctl") -> Record:
    sysctl = kind == "sysctl"
    return Record(id=id, kind=kind, description="d", commands=["c"], netns="ns", netns_inode=inode,
                  undoable=undoable, undoes=undoes, before={"values": {UDP: "30"}} if sysctl else {},
                  after={"values": {UDP: "10"}} if sysctl else {})


def ns(inode: int) -> NetnsId:
    """A namespace known by its inode alone (a kernel without cookies), as the records here are."""
    return NetnsId(inode, None, None, initial=False)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Warnings are said once per process; each test starts with none said.
    monkeypatch.setattr(journal_mod, "_warned", set())


def test_records_round_trip_with_who_and_when(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    [r] = j.records()
    intent, done = (json.loads(x) for x in (tmp_path / "journal.jsonl").read_text().splitlines())
    for key in ("id", "time", "kind", "description", "commands", "uid", "user", "netns", "netns_inode",
                "before", "after", "undoable"):
        assert key in intent
    assert intent["state"] == "intent" and "undone_by" not in intent and "damaged" not in intent
    assert done["completes"] == "aaaa0001"
    assert r.id == "aaaa0001" and r.uid == intent["uid"] and r.undone_by is None and r.state == COMPLETE
    assert r.damaged is None and r.line == 1


def test_undo_is_a_record_of_its_own_folded_into_undone_by(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    write(j, rec("bbbb0002"))
    write(j, rec("cccc0003", undoable=False, undoes="bbbb0002"))
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 6  # intent and completion each; never rewritten
    by_id = {r.id: r for r in j.records()}
    assert by_id["bbbb0002"].undone_by == "cccc0003"
    assert j.last_undoable(ns(7)).id == "aaaa0001"  # type: ignore[union-attr]
    assert j.last_undoable(ns(8)) is None


def test_an_interrupted_undo_undoes_nothing(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    write(j, rec("cccc0003", undoable=False, undoes="aaaa0001"), complete=False)
    by_id = {r.id: r for r in j.records()}
    assert by_id["cccc0003"].state == INTERRUPTED and by_id["aaaa0001"].undone_by is None
    assert "undo of aaaa0001 (interrupted)" == by_id["cccc0003"].status()


def test_last_undoable_skips_what_cannot_be_undone(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    write(j, rec("bbbb0002", undoable=False, kind="flush"))
    assert j.last_undoable(ns(7)).id == "aaaa0001"  # type: ignore[union-attr]


def test_an_intent_without_completion_is_interrupted_and_undoable(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"), complete=False)
    [r] = j.records()
    assert r.state == INTERRUPTED and r.before == {"values": {UDP: "30"}} and r.status() == "interrupted, undoable"
    assert j.last_undoable(ns(7)).id == "aaaa0001"  # type: ignore[union-attr]


def test_an_aborted_change_is_not_listed(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    with j.locked() as txn:
        txn.intent(rec("aaaa0001"))
        txn.abort("aaaa0001", "kernel refused")
    assert j.records() == []


def test_a_line_cut_by_a_crash_is_left_out_then_cut_off_once(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    with open(j.path, "a") as f:
        f.write('{"id": "bbbb00')
    assert [r.id for r in j.records()] == ["aaaa0001"]
    assert j.skipped == [f"journal {j.path}: line 3 is cut short (a crash or a full disk mid-write); left out"]
    write(j, rec("cccc0003"))  # the next change cuts it off, and is not glued to it
    assert [r.id for r in j.records()] == ["aaaa0001", "cccc0003"]
    lines = Path(j.path).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x) for x in lines)
    assert capsys.readouterr().err.count("line 3 is cut short") == 1


@pytest.mark.parametrize("bad, why", [
    (b"[1,2,3]", "is not a JSON object"),
    (b'"text"', "is not a JSON object"),
    (b"{not json", "is not JSON"),
    (b'{"id": "aaaa0002", "kind": "sysctl", "description": "\xff\xfe", "commands": []}', "is not UTF-8 text"),
    (b"[" * 100000, "is not JSON"),
    ((b'{"id": 5, "kind": "sysctl", "description": "", "commands": [], "netns": "", "netns_inode": 7, '
      b'"undoable": true}'), "field 'id' is int, not str"),
    ((b'{"id": "aaaa0002", "kind": "sysctl", "description": "", "commands": [1], "netns": "", '
      b'"netns_inode": 7, "undoable": true}'), "field 'commands' holds something other than text"),
    ((b'{"id": "aaaa0002", "kind": "sysctl", "description": "", "commands": [], "netns": "", '
      b'"netns_inode": true, "undoable": true}'), "field 'netns_inode' is bool, not int"),
    ((b'{"id": "aaaa0002", "kind": "sysctl", "description": "", "commands": [], "netns": "", '
      b'"netns_inode": 7, "undoable": true, "time": Infinity}'), "field 'time' is not a finite number"),
    ((b'{"id": "aaaa0002", "kind": "sysctl", "description": "", "commands": [], "netns": "", '
      b'"netns_inode": 7, "undoable": true, "time": 1e300}'), "has a time out of range"),
    (b'{"id": "aaaa0002", "kind": "sysctl"}', "has no 'description'"),
    (b'{"completes": "ffff0000", "after": {}, "summary": "", "count": 0}', "ends change 'ffff0000', which has no open intent before it"),
    (b'{"completes": "aaaa0001", "after": [], "summary": "", "count": 0}', "field 'after' is list, not dict"),
])
def test_a_bad_line_is_left_out_with_its_line_number(tmp_path: Path, bad: bytes, why: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    with open(j.path, "ab") as f:
        f.write(bad + b"\n")
    write(j, rec("cccc0003"))
    assert [r.id for r in j.records()] == ["aaaa0001", "cccc0003"]
    assert [r.id for r in j.records()] == ["aaaa0001", "cccc0003"]  # read twice, warned once
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"journal {j.path}: line 3 {why}" in err, err


def test_find_by_prefix(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("ab120000"))
    write(j, rec("ab340000"))
    assert j.find("ab3").id == "ab340000"
    assert j.find("ab120000").id == "ab120000"
    with pytest.raises(ActionError, match="ambiguous"):
        j.find("ab")
    with pytest.raises(ActionError, match="no change with id"):
        j.find("ff")


def test_missing_journal_is_empty_and_state_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_STATE_DIR", str(tmp_path / "state"))
    j = Journal()
    assert j.path == str(tmp_path / "state" / "journal.jsonl")
    assert j.records() == []
    assert not (tmp_path / "state").exists()  # reading makes nothing
    j.ensure_writable()
    assert not (tmp_path / "state").exists()  # checking makes nothing that stays: the change makes it


@pytest.mark.parametrize("there", ["", "state", "state/sub"])
def test_a_refused_first_record_takes_back_what_was_made_for_it(tmp_path: Path, there: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A first intent the disk refuses leaves no empty journal, lock file or state dir (with the directory
    above it that was made for it); a directory that was there stays, and so does a second journal's record."""
    if there:
        (tmp_path / there).mkdir(parents=True, mode=0o700)
    j = Journal(str(tmp_path / "state" / "sub"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ActionError, match="No space left on device"):
        write(j, rec("aaaa0001"))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    monkeypatch.setattr(os, "write", real_write)
    write(j, rec("aaaa0002"))  # made again, whole
    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ActionError, match="No space left on device"):
        write(j, rec("aaaa0003"))
    assert [r.id for r in j.records()] == ["aaaa0002"]  # a journal with records is never taken back
    assert (tmp_path / "state" / "sub" / "journal.lock").exists()


def test_a_lock_file_taken_back_under_a_waiting_cttop_is_opened_again(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One cttop waits on the lock of another whose first record is then refused: the lock it gets is on a file
    taken back, in a directory taken back, so it opens them again rather than append under a lock that guards
    nothing (in a directory that is gone)."""
    j = Journal(str(tmp_path / "state"))
    waiting_on_lock = threading.Event()
    real_flock = fcntl.flock

    def flock(fd: int, op: int) -> None:
        if threading.current_thread().name == "second":
            waiting_on_lock.set()
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            write(Journal(str(tmp_path / "state")), rec("bbbb0002"))
        except BaseException as e:
            errors.append(e)

    with pytest.raises(ActionError, match="refused"), j.locked():
        t = threading.Thread(target=second, name="second")
        t.start()
        assert waiting_on_lock.wait(5)
        time.sleep(0.05)  # into the flock call
        raise ActionError("refused")  # the first record never written
    t.join(5)
    assert errors == [] and [r.id for r in j.records()] == ["bbbb0002"]
    assert (tmp_path / "state" / "journal.lock").exists()


def test_made_private_state_dir_0700_journal_0600(tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "state"))
    write(j, rec("aaaa0001"))
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(j.path).st_mode) == 0o600


def test_a_world_readable_journal_is_made_private_on_the_next_change(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    os.chmod(j.path, 0o644)
    write(j, rec("bbbb0002"))
    assert stat.S_IMODE(os.stat(j.path).st_mode) == 0o600


def test_unwritable_state_dir_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ActionError, match="journal directory .*Not a directory"):
        Journal(str(blocker / "sub")).ensure_writable()


def test_a_short_write_is_cut_back_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    size = os.path.getsize(j.path)
    real_write = os.write
    calls = []

    def full_disk(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # the page that still had room
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ActionError, match=f"journal {j.path}: No space left on device"), j.locked() as txn:
        txn.intent(rec("bbbb0002"))
    monkeypatch.undo()
    assert os.path.getsize(j.path) == size and len(calls) == 2  # the torn part is gone
    assert [r.id for r in j.records()] == ["aaaa0001"] and j.skipped == []


def test_a_new_journal_is_in_its_directory_on_disk_before_the_intent_counts_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intent's fsync keeps the file's bytes; the new file's name is kept only by an fsync of its directory.
    Without it, power lost after the first change in a new state dir can leave the change with no journal."""
    j = Journal(str(tmp_path / "state"))
    real_fsync = os.fsync
    synced: list[str] = []

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with j.locked() as txn:
        txn.intent(rec("aaaa0001"))
    # The new state dir in its parent, the new journal in the state dir, then the intent.
    assert synced == ["dir", "dir", "file"], synced
    synced.clear()
    with j.locked() as txn:  # the journal exists now: no directory sync per change
        txn.intent(rec("bbbb0002"))
    assert synced == ["file"], synced


# --- state cttop did not make (root: the owner can be someone else) --------------------------------

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files owned by someone else")


@root_only
def test_a_state_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chown(state, NOBODY, NOBODY)
    for act in (Journal(str(state)).records, Journal(str(state)).ensure_writable):
        with pytest.raises(ActionError) as e:
            act()
        assert str(e.value).startswith(f"journal directory {state}: owned by uid {NOBODY}")
        assert str(e.value).endswith("not root or you: refusing to use it")
    assert list(state.iterdir()) == []


@root_only
@pytest.mark.parametrize("mode, who", [(0o777, "group and others"), (0o1777, "group and others"),
                                       (0o757, "others"), (0o775, "group")])
def test_a_state_dir_others_can_write_is_refused(tmp_path: Path, mode: int, who: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, mode)
    with pytest.raises(ActionError, match=f"journal directory {state}: writable by {who} "
                                          f"\\(mode {mode:04o}\\): refusing to use it"):
        Journal(str(state)).ensure_writable()


@root_only
def test_a_journal_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    write(j, rec("aaaa0001"))
    os.chown(j.path, NOBODY, NOBODY)
    with pytest.raises(ActionError, match=f"journal {j.path}: owned by uid {NOBODY}"):
        j.records()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_journal_symlink_is_refused_and_its_target_left_alone(tmp_path: Path, dangling: bool) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "secret"
    if not dangling:
        target.write_text("root's\n")
        target.chmod(0o600)
    (state / "journal.jsonl").symlink_to(target)
    j = Journal(str(state))
    message = f"journal {j.path}: a symbolic link: refusing to follow it"
    for act in (j.records, j.ensure_writable, lambda: write(j, rec("aaaa0001"))):
        with pytest.raises(ActionError, match=message):
            act()
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "root's\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_state_dir_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(real)
    with pytest.raises(ActionError, match="journal directory .*state: a symbolic link: refusing to follow it"):
        write(Journal(str(tmp_path / "state")), rec("aaaa0001"))
    assert list(real.iterdir()) == []


def test_a_fifo_journal_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "journal.jsonl", 0o600)
    with pytest.raises(ActionError, match="not a regular file"):
        Journal(str(tmp_path)).records()


BOOT = "f0cd74c2-0c6f-4b39-9d94-9b12e6dacb0c"
OTHER_BOOT = "0e8a5e8e-3b0c-4e7f-9a39-5d6a1c2b7f10"


@pytest.mark.parametrize("recorded, here, same", [
    ((7, 40, BOOT), NetnsId(7, 40, BOOT, initial=False), True),
    ((7, 40, BOOT), NetnsId(7, 41, BOOT, initial=False), False),  # deleted since; another got its inode
    ((7, 40, BOOT), NetnsId(7, 40, OTHER_BOOT, initial=False), False),  # cookies start again at each boot
    ((8, 40, BOOT), NetnsId(7, 40, BOOT, initial=False), False),
    ((7, None, None), NetnsId(7, 41, BOOT, initial=False), True),  # a record from before cookies: the inode
    ((7, 40, BOOT), NetnsId(7, None, None, initial=False), True),  # a kernel without cookies: the inode
    ((7, 3, OTHER_BOOT), NetnsId(7, 5, BOOT, initial=True), True),  # the host's: the same one across boots
])
def test_a_change_belongs_to_the_namespace_it_was_made_in(recorded: tuple[int, int | None, str | None],
                                                          here: NetnsId, same: bool) -> None:
    r = rec("aaaa0001", inode=recorded[0])
    r.netns_cookie, r.boot_id = recorded[1], recorded[2]
    assert r.made_in(here) is same


def test_the_last_undoable_change_is_of_this_namespace_not_a_deleted_one_with_its_inode(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    old, new = rec("aaaa0001"), rec("bbbb0002")
    old.netns_cookie, old.boot_id = 40, BOOT
    new.netns_cookie, new.boot_id = 41, BOOT
    write(j, old)
    write(j, new)
    assert j.last_undoable(NetnsId(7, 40, BOOT, initial=False)).id == "aaaa0001"  # type: ignore[union-attr]
    assert j.last_undoable(NetnsId(7, 42, BOOT, initial=False)) is None


@pytest.mark.parametrize("field, value, why", [
    ("netns_cookie", 0, "a namespace cookie out of range"),
    ("netns_cookie", 1 << 64, "a namespace cookie out of range"),
    ("boot_id", "../../etc", "a boot id that is not one"),
])
def test_a_forged_cookie_or_boot_id_is_damage(tmp_path: Path, field: str, value: object, why: str) -> None:
    j = Journal(str(tmp_path))
    r = rec("aaaa0001")
    setattr(r, field, value)
    write(j, r)
    [got] = j.records()
    assert got.damaged == why and j.last_undoable(ns(7)) is None
