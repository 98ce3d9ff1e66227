"""The plan contract: validate first, journal the intent before the change and its completion after,
roll back when the record cannot be written, hold the hang-up signals meanwhile."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.actions import plan as plan_mod
from cttop.actions.errors import ActionError
from cttop.actions.journal import COMPLETE, INTERRUPTED, Journal, Transaction
from cttop.actions.plan import Change, Plan, read_only, set_read_only
from cttop.kernel.netns import NetnsSpec


class Recorder(Plan):
    """A plan over a dict instead of the kernel, to watch what apply() does in which order."""

    kind = "test"

    def __init__(self, journal: Journal, state: dict[str, int], fail_validate: bool = False,
                 fail_change: bool = False) -> None:
        super().__init__(NetnsSpec(), journal)
        self.state = state
        self.fail_validate = fail_validate
        self.fail_change = fail_change
        self.rolled_back = False
        self.journal_at_change: list[dict[str, object]] = []
        self.blocked_at_change: set[int] = set()

    def describe(self) -> str:
        return f"set x from {self.state['x']} to 2"

    def commands(self) -> list[str]:
        return ["echo 2 > x"]

    def _validate(self) -> None:
        if self.fail_validate:
            raise ActionError("x: not allowed")

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        return {"x": self.state["x"]}, {"x": 2}

    def _change(self) -> Change:
        with open(self.journal.path) as f:
            self.journal_at_change = [json.loads(line) for line in f]
        self.blocked_at_change = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        if self.fail_change:
            raise ActionError("x: kernel refused; nothing was changed")
        self.old = self.state["x"]
        self.state["x"] = 2
        return Change(after={"x": 2}, summary="x=2", count=1)

    def _rollback(self, change: Change) -> str | None:
        self.state["x"] = self.old
        self.rolled_back = True
        return ""


@pytest.fixture(autouse=True)
def writable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    set_read_only(False)
    yield
    set_read_only(False)  # a test that switched it on must not leave it on for the rest of the run


def test_apply_journals_the_description_from_before_the_change(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    state = {"x": 1}
    p = Recorder(j, state)
    res = p.apply()
    [r] = j.records()
    assert state == {"x": 2} and res.id == p.id == r.id and res.count == 1 and r.state == COMPLETE
    assert r.description == "set x from 1 to 2" and r.before == {"x": 1} and r.commands == ["echo 2 > x"]
    with pytest.raises(ActionError, match="already applied"):
        p.apply()


def test_the_intent_is_on_disk_before_the_change_and_signals_wait(tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    p = Recorder(j, {"x": 1})
    p.apply()
    [intent] = p.journal_at_change
    assert intent["id"] == p.id and intent["state"] == "intent" and intent["before"] == {"x": 1}
    assert intent["after"] == {"x": 2}
    assert plan_mod.DEFERRED_SIGNALS <= p.blocked_at_change
    assert not plan_mod.DEFERRED_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])  # unblocked after


@pytest.mark.parametrize("how", ["fail_validate", "fail_change"])
def test_failed_apply_journals_nothing(tmp_path: Path, how: str) -> None:
    j = Journal(str(tmp_path))
    state = {"x": 1}
    with pytest.raises(ActionError):
        Recorder(j, state, **{how: True}).apply()
    assert state == {"x": 1} and j.records() == []


def test_journal_failure_after_the_change_rolls_it_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))
    state = {"x": 1}

    def broken(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    monkeypatch.setattr(Transaction, "complete", broken)
    monkeypatch.setattr(Transaction, "abort", broken)
    p = Recorder(j, state)
    with pytest.raises(ActionError) as e:
        p.apply()
    assert str(e.value) == (f"journal {j.path}: No space left on device: the change could not be recorded, "
                            "so it was rolled back; nothing was changed")
    assert p.rolled_back and state == {"x": 1} and p.result is None
    # Neither completion nor abort could be written: the intent stays, listed as interrupted with the values before.
    [r] = j.records()
    assert r.state == INTERRUPTED and r.before == {"x": 1}


class Deleter(Recorder):
    """A change that cannot be taken back, as deleted flows cannot."""

    undoable = False

    def _rollback(self, change: Change) -> str | None:
        return Plan._rollback(self, change)  # the default: None


def test_journal_failure_after_a_change_that_cannot_be_taken_back_says_it_was_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))
    state = {"x": 1}

    def broken(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    monkeypatch.setattr(Transaction, "complete", broken)
    aborted: list[object] = []
    monkeypatch.setattr(Transaction, "abort", lambda self, *a: aborted.append(a))
    p = Deleter(j, state)
    with pytest.raises(ActionError) as e:
        p.apply()
    assert str(e.value) == (f"journal {j.path}: No space left on device: x=2, but the record of it could not be "
                            "completed (`cttop journal` lists it as interrupted); it cannot be taken back")
    assert "nothing was changed" not in str(e.value)
    assert state == {"x": 2} and p.result is None
    # No abort is written (it would say the change did not happen): the intent stays, as interrupted.
    assert aborted == []
    [r] = j.records()
    assert r.state == INTERRUPTED and r.id == p.id


def test_journal_failure_before_the_change_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))
    state = {"x": 1}

    def broken(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    monkeypatch.setattr(Transaction, "intent", broken)
    p = Recorder(j, state)
    with pytest.raises(ActionError, match="No space left on device; nothing was changed$"):
        p.apply()
    assert p.journal_at_change == [] and state == {"x": 1}
    assert list(tmp_path.iterdir()) == []  # the journal and its lock, made for the record, taken back


def test_unwritable_journal_refused_before_any_change(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("")
    state = {"x": 1}
    with pytest.raises(ActionError, match="journal"):
        Recorder(Journal(str(blocker / "d")), state).apply()
    assert state == {"x": 1}


def test_read_only_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"x": 1}
    monkeypatch.setenv("CTTOP_READ_ONLY", "1")
    assert read_only()
    with pytest.raises(ActionError, match="read-only"):
        Recorder(Journal(str(tmp_path)), state).apply()
    monkeypatch.setenv("CTTOP_READ_ONLY", "0")
    assert not read_only()
    set_read_only(True)
    with pytest.raises(ActionError, match="read-only"):
        Recorder(Journal(str(tmp_path)), state).apply()
    assert state == {"x": 1} and Journal(str(tmp_path)).records() == []
    assert plan_mod.read_only()


def test_check_refuses_what_apply_would_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"x": 1}
    Recorder(Journal(str(tmp_path)), state).check()
    with pytest.raises(ActionError, match="not allowed"):
        Recorder(Journal(str(tmp_path)), state, fail_validate=True).check()
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(ActionError, match="journal"):
        Recorder(Journal(str(blocker / "d")), state).check()
    monkeypatch.setenv("CTTOP_READ_ONLY", "1")
    with pytest.raises(ActionError, match="read-only"):
        Recorder(Journal(str(tmp_path)), state).check()
    assert state == {"x": 1} and Journal(str(tmp_path)).records() == []


def test_actions_never_import_textual() -> None:
    code = "import sys, cttop.actions; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
