"""The plan: one remediation that can say what it will do, do it atomically, journal it and undo it.

The UI and the CLI only ever use this surface:

- ``describe()``: what will change, for a human (may span lines);
- ``commands()``: the exact equivalent shell commands;
- ``warnings()``: what the person confirming should know first;
- ``undoable``: False when the change cannot be taken back (deleted flows);
- ``check()``: raise :class:`ActionError` now if ``apply()`` would refuse for
  anything known before changing (read-only mode, a global setting outside the
  initial namespace, an unwritable journal, a change already undone), so nobody
  is asked to confirm a change that cannot be made;
- ``apply()``: check again, then change; on any failure roll back what
  was done and raise :class:`ActionError` with a one-line reason.

No change without its record: ``apply()`` holds the journal's lock from the
checks and the reading of the "before" values through the change and its
record, so two cttops never interleave. It writes (and fsyncs) the intent before
touching anything, completes it after, and keeps SIGHUP/SIGINT/SIGTERM (a
dropped SSH session, a Ctrl-C) waiting in between. If the completion cannot be
written, the change is rolled back.

Subclasses supply ``_validate`` (read-only checks, run again under the lock
since the kernel may have moved since the plan was shown), ``_intent`` (read the
values before and say what will be set), ``_change`` (do it; undo its own
partial work before raising) and ``_rollback`` (take back a completed change
whose record could not be written, where it can be).
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cttop.actions.errors import ActionError
from cttop.actions.journal import COMPLETE, Journal, Record, Transaction, new_id
from cttop.kernel.netns import NetnsSpec

READ_ONLY_ENV = "CTTOP_READ_ONLY"
# Held back while a change and its record are written: hang-up (SSH dropped), Ctrl-C, kill.
DEFERRED_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM})
_read_only_forced = False


def set_read_only(on: bool = True) -> None:
    """Refuse every write from now on in this process (``--read-only``)."""
    global _read_only_forced
    _read_only_forced = on


def read_only() -> bool:
    """Whether writes are refused: ``--read-only`` was given or CTTOP_READ_ONLY=1. The UI hides write keys then."""
    return _read_only_forced or os.environ.get(READ_ONLY_ENV, "") not in ("", "0")


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Block the signals that end a session until the body is done; they are delivered after it.

    The mask is per thread. From the CLI this is the main thread, and the threads
    that enter namespaces are started from it, so they inherit the mask.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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
    """What ``_change`` did: journaled as ``after`` and enough for ``_rollback``."""

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

    def _intent(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read the values before (under the lock) and say what will be set: the intent's ``before`` and ``after``."""
        return {}, {}

    @abstractmethod
    def _change(self) -> Change: ...

    def _rollback(self, change: Change) -> str | None:
        """Take back a completed change; '' when all was put back, else what was not; None for a change that
        cannot be taken back (deleted flows: the default)."""
        return None

    def _refuse_read_only(self) -> None:
        if read_only():
            raise ActionError(f"read-only mode (--read-only, {READ_ONLY_ENV}=1 or read_only in the config): "
                              f"refusing to {self.kind}")

    def _check_undone(self) -> None:
        """An undo refuses a change the journal (read now) says is damaged or already undone."""
        if self.undoes is not None:
            why = self.journal.find(self.undoes).undo_refusal()
            if why is not None:
                raise ActionError(why)

    def check(self) -> None:
        """Refuse now what ``apply()`` would refuse before changing anything; changes nothing."""
        self._refuse_read_only()
        self._validate()
        self._check_undone()
        self.journal.ensure_writable()

    def apply(self) -> ActionResult:
        if self.result is not None:
            raise ActionError(f"change {self.id} was already applied")
        self._refuse_read_only()
        self.journal.ensure_writable()
        here = self.spec.identity()
        # The signals a session ends with are held from the change until the host's log has its line, which the
        # journal sends once its lock is released: a SIGTERM or hang-up let through at the end of the change
        # itself ended the process with the change made and journaled, and never logged.
        with ExitStack() as held, self.journal.locked() as txn:
            # Again under the lock: another cttop may have changed the kernel or the journal meanwhile.
            self._validate()
            self._check_undone()
            # The values before are read here, under the lock, and the text describes them: described before
            # the change, which moves the values the text is about.
            before, intended = self._intent()
            description, commands, warnings = self.describe(), self.commands(), self.warnings()
            record = Record(
                id=self.id, kind=self.kind, description=description, commands=commands,
                netns=self.spec.label(), netns_inode=here.inode, netns_cookie=here.cookie, boot_id=here.boot,
                undoable=self.undoable and self.undoes is None, before=before, after=intended, warnings=warnings,
                undoes=self.undoes,
            )
            held.enter_context(deferred_signals())
            change = self._journaled_change(txn, record)
        record.after, record.summary, record.count, record.state = change.after, change.summary, change.count, COMPLETE
        self.result = ActionResult(id=self.id, kind=self.kind, summary=change.summary,
                                   count=change.count, record=record, warnings=warnings)
        return self.result

    def _journaled_change(self, txn: Transaction, record: Record) -> Change:
        """Intent, change, completion; a change whose completion cannot be written is rolled back."""
        try:
            txn.intent(record)
        except ActionError as e:
            raise ActionError(f"{e}; nothing was changed") from None
        try:
            change = self._change()
        except ActionError as e:
            self._abort(txn, str(e))
            raise
        try:
            txn.complete(self.id, change.after, change.summary, change.count)
        except ActionError as e:
            problems = self._rollback(change)
            if problems is None:
                # It stands, and its intent (in the journal before it) stays, listed as interrupted: the one
                # record there can be of it. Saying "nothing was changed" here would hide a deletion.
                raise ActionError(f"{e}: {change.summary}, but the record of it could not be completed "
                                  "(`cttop journal` lists it as interrupted); it cannot be taken back") from None
            if problems:
                raise ActionError(f"{e}: the change could not be recorded; {problems}") from None
            self._abort(txn, f"not recorded: {e}")
            raise ActionError(f"{e}: the change could not be recorded, so it was rolled back; "
                              "nothing was changed") from None
        return change

    def _abort(self, txn: Transaction, reason: str) -> None:
        try:
            txn.abort(self.id, reason)
        except ActionError:
            pass  # then the intent stays, listed as interrupted, with the values before
