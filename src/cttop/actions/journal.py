"""The journal: one JSON line per applied change, appended and never rewritten.

It lives at ``<state_dir>/journal.jsonl`` so it survives a dropped SSH session.
Marking a change as undone would mean rewriting its line, so an undo is a record
of its own naming the change it undid (``undoes``); :meth:`Journal.records` folds
that back into ``undone_by`` on the original.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cttop.actions.errors import ActionError

DEFAULT_STATE_DIR = "/var/lib/cttop"
STATE_DIR_ENV = "CTTOP_STATE_DIR"
JOURNAL_NAME = "journal.jsonl"


def default_state_dir() -> str:
    return os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR


def new_id() -> str:
    """Eight hex digits: short enough to type after ``cttop undo``, random so no lock is needed to pick one."""
    return secrets.token_hex(4)


def _user() -> str:
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = str(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo by {sudo})" if sudo and sudo != name else name


@dataclass
class Record:
    """One journaled change. ``before``/``after`` hold whatever its undo needs, per kind."""

    id: str
    kind: str
    description: str
    commands: list[str]
    netns: str
    netns_inode: int
    undoable: bool
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    warnings: list[str] = field(default_factory=list)
    undoes: str | None = None
    time: float = field(default_factory=time.time)
    uid: int = field(default_factory=os.getuid)
    user: str = field(default_factory=_user)
    # Filled in when reading the journal, from a later record's ``undoes``.
    undone_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Record:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})

    def time_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))

    def status(self) -> str:
        if self.undoes is not None:
            return f"undo of {self.undoes}"
        if self.undone_by is not None:
            return f"undone by {self.undone_by}"
        return "undoable" if self.undoable else "cannot be undone"


class Journal:
    """The journal file of one state directory."""

    def __init__(self, state_dir: str | None = None) -> None:
        self.state_dir = state_dir or default_state_dir()
        self.path = os.path.join(self.state_dir, JOURNAL_NAME)

    def ensure_writable(self) -> None:
        """Fail before anything changes if the record of the change could not be kept."""
        try:
            os.makedirs(self.state_dir, mode=0o755, exist_ok=True)
        except OSError as e:
            raise ActionError(f"journal directory {self.state_dir}: {e.strerror}") from None
        target = self.path if os.path.exists(self.path) else self.state_dir
        if not os.access(target, os.W_OK):
            raise ActionError(f"journal {self.path}: not writable by this user")

    def append(self, record: Record) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":")) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ActionError(f"journal {self.path}: {e.strerror}") from None
        try:
            # Two cttops appending at once must not interleave their lines.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
            os.fsync(fd)
        except OSError as e:
            raise ActionError(f"journal {self.path}: {e.strerror}") from None
        finally:
            os.close(fd)

    def records(self) -> list[Record]:
        """Every record, oldest first, with ``undone_by`` filled in."""
        try:
            with open(self.path) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ActionError(f"journal {self.path}: {e.strerror}") from None
        out: list[Record] = []
        for line in lines:
            try:
                out.append(Record.from_json(json.loads(line)))
            except (ValueError, TypeError):
                # A line cut short by a crash mid-write: the change it would describe
                # was rolled back or never confirmed, so skipping it loses nothing.
                continue
        by_id = {r.id: r for r in out}
        for r in out:
            if r.undoes is not None and r.undoes in by_id:
                by_id[r.undoes].undone_by = r.id
        return out

    def find(self, ident: str) -> Record:
        """The record whose id is ``ident`` or starts with it (unambiguously)."""
        recs = self.records()
        exact = [r for r in recs if r.id == ident]
        if exact:
            return exact[0]
        hits = [r for r in recs if r.id.startswith(ident)] if ident else []
        if not hits:
            raise ActionError(f"journal {self.path}: no change with id {ident!r}")
        if len(hits) > 1:
            raise ActionError(f"journal {self.path}: id {ident!r} is ambiguous ({', '.join(r.id for r in hits)})")
        return hits[0]

    def last_undoable(self, netns_inode: int) -> Record | None:
        """The newest change in that namespace that can still be undone."""
        for r in reversed(self.records()):
            if r.netns_inode == netns_inode and r.undoable and r.undone_by is None and r.undoes is None:
                return r
        return None
