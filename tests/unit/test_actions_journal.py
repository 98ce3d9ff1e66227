"""The journal: append-only JSON lines, undo folded into undone_by, ids by prefix, crash-cut lines skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Record


def rec(id: str, inode: int = 7, undoable: bool = True, undoes: str | None = None, kind: str = "sysctl") -> Record:
    return Record(id=id, kind=kind, description="d", commands=["c"], netns="ns", netns_inode=inode,
                  undoable=undoable, undoes=undoes)


def test_records_round_trip_with_who_and_when(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    j.append(rec("aaaa0001"))
    [r] = j.records()
    line = json.loads((tmp_path / "journal.jsonl").read_text())
    for key in ("id", "time", "kind", "description", "commands", "uid", "user", "netns", "netns_inode",
                "before", "after", "undoable", "undone_by"):
        assert key in line
    assert r.id == "aaaa0001" and r.uid == line["uid"] and r.undone_by is None


def test_undo_is_a_record_of_its_own_folded_into_undone_by(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    j.append(rec("aaaa0001"))
    j.append(rec("bbbb0002"))
    j.append(rec("cccc0003", undoable=False, undoes="bbbb0002"))
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["undone_by"] is None  # never rewritten
    by_id = {r.id: r for r in j.records()}
    assert by_id["bbbb0002"].undone_by == "cccc0003"
    assert j.last_undoable(7).id == "aaaa0001"  # type: ignore[union-attr]
    assert j.last_undoable(8) is None


def test_last_undoable_skips_what_cannot_be_undone(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    j.append(rec("aaaa0001"))
    j.append(rec("bbbb0002", undoable=False, kind="flush"))
    assert j.last_undoable(7).id == "aaaa0001"  # type: ignore[union-attr]


def test_a_line_cut_by_a_crash_is_skipped(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    j.append(rec("aaaa0001"))
    with open(j.path, "a") as f:
        f.write('{"id": "bbbb00')
    assert [r.id for r in j.records()] == ["aaaa0001"]


def test_find_by_prefix(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    j.append(rec("ab120000"))
    j.append(rec("ab340000"))
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
    j.ensure_writable()
    assert (tmp_path / "state").is_dir()


def test_unwritable_state_dir_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ActionError, match="journal directory"):
        Journal(str(blocker / "sub")).ensure_writable()
