"""The plan: one remediation that can say what it will do, do it atomically, journal it and undo it.

The UI and the CLI only ever use this surface:

- ``describe()``: what will change, for a human (may span lines);
- ``commands()``: the exact equivalent shell commands;
- ``warnings()``: what the person confirming should know first;
- ``undoable``: False when the change cannot be taken back (deleted flows);
- ``check()``: raise :class:`ActionError` now if ``apply()`` would refuse for
  anything known before changing (read-only mode, a global setting outside the
  initial namespace, an unwritable journal), so nobody is asked to confirm a
  change that cannot be made;
- ``apply()``: check again, then change; on any failure roll back what
  was done, journal nothing and raise :class:`ActionError` with a one-line reason;
- ``undo()``: after ``apply()``, take the change back (itself journaled).

Subclasses supply ``_validate`` (read-only checks, run again at apply time since
the kernel may have moved since the plan was shown), ``_change`` (do it; undo its
own partial work before raising) and ``_rollback`` (take back a completed change
whose journal record could not be written).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Record, new_id
from cttop.kernel.netns import NetnsSpec

READ_ONLY_ENV = "CTTOP_READ_ONLY"
_read_only_forced = False


def set_read_only(on: bool = True) -> None:
    """Refuse every write from now on in this process (``--read-only``)."""
    global _read_only_forced
    _read_only_forced = on


def read_only() -> bool:
    """Whether writes are refused: ``--read-only`` was given or CTTOP_READ_ONLY=1. The UI hides write keys then."""
    return _read_only_forced or os.environ.get(READ_ONLY_ENV, "") not in ("", "0")


@dataclass
class ActionResult:
    """What an applied plan did, as the kernel reported it."""

    id: str
    kind: str
    summary: str
    count: int
    record: Record
    warnings: list[str] = field(default_factory=list)


@dataclass
class Change:
    """What ``_change`` did: journaled as ``before``/``after`` and enough for ``_rollback``."""

    before: dict[str, Any]
    after: dict[str, Any]
    summary: str
    count: int


class Plan(ABC):
    kind: ClassVar[str]
    undoable: bool = True

    def __init__(self, spec: NetnsSpec, journal: Journal | None = None) -> None:
        self.spec = spec
        self.journal = journal or Journal()
        self.id = new_id()
        # Set on plans built by cttop.actions.undo: the id of the change this one takes back.
        self.undoes: str | None = None
        self.result: ActionResult | None = None

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def commands(self) -> list[str]: ...

    def warnings(self) -> list[str]:
        return []

    @abstractmethod
    def _validate(self) -> None: ...

    @abstractmethod
    def _change(self) -> Change: ...

    def _rollback(self, change: Change) -> None:
        """Take back a completed change; plans that cannot (deleted flows) keep the default."""

    def check(self) -> None:
        """Refuse now what ``apply()`` would refuse before changing anything; changes nothing."""
        if read_only():
            raise ActionError(f"read-only mode (--read-only, {READ_ONLY_ENV}=1 or read_only in the config): "
                              f"refusing to {self.kind}")
        self._validate()
        self.journal.ensure_writable()

    def apply(self) -> ActionResult:
        if self.result is not None:
            raise ActionError(f"change {self.id} was already applied")
        self.check()
        inode = self.spec.inode()
        # Described before the change, which moves the values the text is about.
        description, commands, warnings = self.describe(), self.commands(), self.warnings()
        change = self._change()
        record = Record(
            id=self.id, kind=self.kind, description=description, commands=commands,
            netns=self.spec.label(), netns_inode=inode, undoable=self.undoable and self.undoes is None,
            before=change.before, after=change.after, summary=change.summary, warnings=warnings,
            undoes=self.undoes,
        )
        try:
            self.journal.append(record)
        except ActionError:
            self._rollback(change)
            raise
        self.result = ActionResult(id=self.id, kind=self.kind, summary=change.summary,
                                   count=change.count, record=record, warnings=warnings)
        return self.result

    def undo(self) -> ActionResult:
        """Take back this plan's applied change; raises ActionError when it cannot be."""
        if self.result is None:
            raise ActionError(f"change {self.id} was not applied; nothing to undo")
        from cttop.actions.undo import undo_plan  # undo builds plans of every kind

        return undo_plan(self.spec, self.id, self.journal).apply()
