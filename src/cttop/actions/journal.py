"""The journal: every change cttop made, as JSON lines appended under a lock and never rewritten.

It lives at ``<state_dir>/journal.jsonl`` so it survives a dropped SSH session.
A change is two lines. Its *intent* (what it is about to do, the values before
and the values it means to set) is written and fsynced before the kernel is
touched; ``{"completes": id, ...}`` follows once the change is done. An intent
without its completion is a change that was interrupted: it is listed as such,
with its before values, and can be undone. A change that failed and was rolled
back gets ``{"aborts": id}`` and is not listed. An undo is a change of its own
naming the change it undid (``undoes``); :meth:`Journal.records` folds that into
``undone_by`` on the original. How each change ended is also told to the host's
log once the lock is released (:mod:`cttop.actions.audit`).

Nothing read back is trusted. The state dir, the journal and its lock file are
used only when cttop could have made them (:mod:`cttop.actions.safeopen`). A line
that is not a well-typed record is skipped with a warning naming its line; a
record whose content fails its kind's schema (:mod:`cttop.actions.schema`) is
kept and marked ``damaged``, and nothing acts on it.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import pwd
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from cttop.actions import audit, safeopen
from cttop.actions.errors import ActionError
from cttop.kernel.netns import NetnsId

DEFAULT_STATE_DIR = "/var/lib/cttop"
STATE_DIR_ENV = "CTTOP_STATE_DIR"
JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = "journal.lock"
# A change is a few hundred bytes; a journal this big is not one cttop wrote.
MAX_JOURNAL_BYTES = 64 << 20
# Times a lock file removed under a waiting cttop is opened again before giving up (each needs another
# cttop's first record to fail meanwhile).
LOCK_TRIES = 100
# Seconds since 1970 that a clock can show (year 5138); beyond, the time cannot even be printed.
MAX_TIME = 1e11

# Record.state: what the journal says happened.
COMPLETE = "complete"
INTERRUPTED = "interrupted"
# How an intent line spells its state on disk (read back as INTERRUPTED until completed).
INTENT = "intent"

_warned: set[str] = set()
# Where warnings go instead of stderr while the TUI owns the terminal (it shows them as toasts). Called from
# whichever thread read the journal.
warning_sink: Callable[[str], None] | None = None


def warn(message: str) -> None:
    """Say ``message`` on stderr (or to :data:`warning_sink`) once per process, however often the journal is read."""
    if message not in _warned:
        _warned.add(message)
        if warning_sink is not None:
            warning_sink(message)
        else:
            print(f"cttop: warning: {message}", file=sys.stderr)


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
    """One journaled change. ``before``/``after`` hold whatever its undo needs, per kind (see schema)."""

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
    count: int = 0
    # The namespace's cookie and the boot's id (NetnsId): None in a record made before they were kept, or where
    # the kernel has none.
    netns_cookie: int | None = None
    boot_id: str | None = None
    # Derived when reading, never written: whether it completed, who undid it, why nothing may act on it,
    # and the journal line it starts on.
    state: str = COMPLETE
    undone_by: str | None = None
    damaged: str | None = None
    line: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def intent_json(self) -> dict[str, Any]:
        """The intent line: the record as known before the change, without what only reading derives."""
        d = asdict(self)
        for derived in ("undone_by", "damaged", "line"):
            del d[derived]
        d["state"] = INTENT
        return d

    def undo_refusal(self) -> str | None:
        """Why this change cannot be undone, in any namespace; None when it can."""
        if self.damaged is not None:
            return f"change {self.id} is damaged in the journal ({self.damaged}): refusing to undo it"
        if self.undoes is not None:
            return f"change {self.id} is itself the undo of {self.undoes}; it cannot be undone"
        if not self.undoable:
            return f"change {self.id} ({self.kind}) cannot be undone: {self.summary or self.description}"
        if self.undone_by is not None:
            return f"change {self.id} was already undone by {self.undone_by}"
        return None

    def made_in(self, here: NetnsId) -> bool:
        """Whether this change was made in namespace ``here`` (not one deleted since that had its inode)."""
        return here.holds(self.netns_inode, self.netns_cookie, self.boot_id)

    def time_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))

    def status(self) -> str:
        if self.damaged is not None:
            return f"damaged: {self.damaged}"
        interrupted = " (interrupted)" if self.state == INTERRUPTED else ""
        if self.undoes is not None:
            return f"undo of {self.undoes}{interrupted}"
        if self.undone_by is not None:
            return f"undone by {self.undone_by}"
        if self.state == INTERRUPTED:
            return "interrupted, undoable" if self.undoable else "interrupted"
        return "undoable" if self.undoable else "cannot be undone"


# The type each field of a record line must have; a line with another is skipped. bool is not an int here.
_NUMBER = (int, float)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "kind": (str,), "description": (str,), "commands": (list,), "netns": (str,),
    "netns_inode": (int,), "undoable": (bool,), "before": (dict,), "after": (dict,), "summary": (str,),
    "warnings": (list,), "undoes": (str, type(None)), "time": _NUMBER, "uid": (int,), "user": (str,),
    "count": (int,), "state": (str,), "netns_cookie": (int, type(None)), "boot_id": (str, type(None)),
}
_REQUIRED = ("id", "kind", "description", "commands", "netns", "netns_inode", "undoable")
_COMPLETION_TYPES: dict[str, tuple[type, ...]] = {"completes": (str,), "after": (dict,), "summary": (str,),
                                                   "count": (int,)}


def _type_error(d: dict[str, Any], types: dict[str, tuple[type, ...]], required: tuple[str, ...]) -> str | None:
    """Why ``d`` does not have the field types of its line, or None."""
    for name in required:
        if name not in d:
            return f"has no {name!r}"
    for name, want in types.items():
        if name not in d:
            continue
        v = d[name]
        if isinstance(v, bool) and bool not in want or not isinstance(v, want):
            return f"field {name!r} is {type(v).__name__}, not {'/'.join(t.__name__ for t in want)}"
        if isinstance(v, list) and not all(isinstance(x, str) for x in v):
            return f"field {name!r} holds something other than text"
        if isinstance(v, float) and not math.isfinite(v):
            return f"field {name!r} is not a finite number"
    return None


# The schema check (cttop.actions.schema.damage). The schemas know the plans, the tunables and the filter
# grammar, whose modules import this one, so the package (cttop.actions, which Python runs before any of its
# modules) installs it: this module imports none of them and the import graph has no cycle.
VALIDATOR: Callable[[Record], str | None] | None = None


def _damage(rec: Record) -> str | None:
    if VALIDATOR is None:
        raise RuntimeError("cttop.actions did not install the journal's schema check")
    return VALIDATOR(rec)


class Transaction:
    """The journal opened for appending, while its lock is held (see :meth:`Journal.locked`)."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        # The intents written here and not yet ended, and how the others ended: for the audit trail.
        self.open_intents: dict[str, Record] = {}
        self.ended: list[audit.Ending] = []

    def intent(self, record: Record) -> None:
        self._append(record.intent_json())
        self.open_intents[record.id] = record

    def complete(self, ident: str, after: dict[str, Any], summary: str, count: int) -> None:
        self._append({"completes": ident, "after": after, "summary": summary, "count": count, "time": time.time()})
        self._ended(ident, audit.COMPLETED, summary)

    def abort(self, ident: str, reason: str) -> None:
        self._append({"aborts": ident, "reason": reason, "time": time.time()})
        self._ended(ident, audit.ROLLED_BACK, reason)

    def _ended(self, ident: str, outcome: str, detail: str) -> None:
        record = self.open_intents.pop(ident, None)
        if record is not None:
            self.ended.append(audit.Ending(record, outcome, detail))

    def endings(self, failure: BaseException | None) -> list[audit.Ending]:
        """How every change of this transaction ended; one still open was cut off by ``failure``."""
        why = str(failure) if failure is not None else ""
        return self.ended + [audit.Ending(r, audit.INTERRUPTED, why) for r in self.open_intents.values()]

    def _append(self, obj: dict[str, Any]) -> None:
        # ASCII only (ensure_ascii), so what cttop writes always reads back as UTF-8.
        line = (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()
        start = os.fstat(self.fd).st_size
        try:
            safeopen.write_all(self.fd, line)
            os.fsync(self.fd)
        except OSError as e:
            # A torn line must not stay to be glued to the next record.
            _cut(self.fd, start)
            raise ActionError(f"journal {self.path}: {e.strerror or e}") from None


def _cut(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass  # then the next open finds the torn line and cuts it


class Journal:
    """The journal file of one state directory."""

    def __init__(self, state_dir: str | None = None) -> None:
        self.state_dir = state_dir or default_state_dir()
        self.path = os.path.join(self.state_dir, JOURNAL_NAME)
        # The warnings of the last read, for a screen to show (they also go to stderr, once).
        self.skipped: list[str] = []

    # --- opening -----------------------------------------------------------------------------

    def _dir(self, create: bool, made: list[str] | None = None) -> int | None:
        # Made 0700: the journal names users and commands.
        return safeopen.open_dir(self.state_dir, "journal directory", 0o700 if create else None, made)

    def _open(self, dir_fd: int, name: str, flags: int) -> int:
        path = os.path.join(self.state_dir, name)
        fd = safeopen.open_at(dir_fd, name, flags, "journal", path)
        try:
            st = os.fstat(fd)
            # A journal too large to read back is refused before a change is recorded in it, not after (undo
            # and `cttop journal` would refuse to read the record).
            safeopen.check_size(st.st_size, MAX_JOURNAL_BYTES, "journal", path)
            if flags & (os.O_WRONLY | os.O_RDWR) and st.st_mode & 0o077:
                os.fchmod(fd, 0o600)  # an older cttop made it world-readable
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_or_make(self, dir_fd: int, name: str, flags: int) -> tuple[int, bool]:
        """``name`` opened, made if missing; and whether this call made it (only then is it ours to take back).
        FileNotFoundError when the directory itself was removed meanwhile."""
        try:
            return self._open(dir_fd, name, flags), False
        except FileNotFoundError:
            pass
        try:
            return self._open(dir_fd, name, flags | os.O_CREAT | os.O_EXCL), True
        except FileExistsError:  # made by a cttop beside this one
            return self._open(dir_fd, name, flags), False

    def ensure_writable(self) -> None:
        """Fail before anything changes if the record of the change could not be kept. Makes nothing that stays:
        a state dir it makes to try is taken back (the change makes it again, under its lock)."""
        made: list[str] = []
        try:
            dir_fd = self._dir(create=True, made=made)
            assert dir_fd is not None
            try:
                for name in (JOURNAL_NAME, LOCK_NAME):
                    try:
                        os.close(self._open(dir_fd, name, os.O_RDWR | os.O_APPEND))
                    except FileNotFoundError:
                        pass  # made on the first change
                if not os.access(self.state_dir, os.W_OK):
                    raise ActionError(f"journal directory {self.state_dir}: not writable by this user")
            finally:
                os.close(dir_fd)
        finally:
            safeopen.remove_made(made, "journal directory")

    def _lock(self, made: list[str]) -> tuple[int, int, bool]:
        """The state dir's fd and its lock file's, the lock held, and whether this call made the lock file.

        A cttop whose first record failed removes the lock file it made (:meth:`_take_back`) while another may
        be waiting on it: a lock on a file no longer in the directory guards nothing, so it is opened again."""
        for _ in range(LOCK_TRIES):
            dir_fd = self._dir(create=True, made=made)
            assert dir_fd is not None
            try:
                try:
                    lock, lock_made = self._open_or_make(dir_fd, LOCK_NAME, os.O_RDWR)
                except FileNotFoundError:
                    os.close(dir_fd)  # the directory was taken back under us: made again
                    continue
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if os.fstat(lock).st_nlink:
                        return dir_fd, lock, lock_made
                except BaseException:
                    os.close(lock)
                    raise
                os.close(lock)
            except BaseException:
                os.close(dir_fd)
                raise
            os.close(dir_fd)
        raise ActionError(f"journal {self.path}: its lock file kept being removed by another cttop")

    def _take_back(self, dir_fd: int, names: list[str]) -> None:
        """Remove the files this change made while its journal stayed empty (the first record refused): the
        state dir is then as it was, and the directories made for it can go too. Runs while another error may
        be raised, so its own failures end it quietly."""
        try:
            for name in names:
                os.unlink(name, dir_fd=dir_fd)
            os.fsync(dir_fd)
        except OSError:
            pass

    @contextmanager
    def locked(self) -> Iterator[Transaction]:
        """Hold the journal's lock (one change at a time, across processes) with the journal open to append.

        A line torn by a crash or a full disk is cut off here, before anything is appended after it.
        Once the lock is released, how each change ended goes to the host's log (:mod:`cttop.actions.audit`).
        A journal this made and left empty (its first record refused) is taken back with its lock file and the
        directories made for them: a change refused for want of its record leaves the disk as it was.
        """
        txn: Transaction | None = None
        failure: BaseException | None = None
        made: list[str] = []
        dir_fd, lock, lock_made = self._lock(made)
        empty = False
        try:
            try:
                fd, journal_made = self._open_or_make(dir_fd, JOURNAL_NAME, os.O_RDWR | os.O_APPEND)
                if journal_made:
                    os.fsync(dir_fd)  # the new file's name on disk too, not only the bytes its fsyncs keep
                try:
                    self._cut_torn_tail(fd)
                    txn = Transaction(self.path, fd)
                    yield txn
                except BaseException as e:
                    failure = e
                    raise
                finally:
                    try:
                        if journal_made and os.fstat(fd).st_size == 0:
                            empty = True
                            self._take_back(dir_fd, [JOURNAL_NAME] + ([LOCK_NAME] if lock_made else []))
                    finally:
                        os.close(fd)
            finally:
                os.close(lock)  # releases the lock
        finally:
            os.close(dir_fd)
            if empty:
                safeopen.remove_made(made, "journal directory")
            if txn is not None:
                audit.send(txn.endings(failure))

    def _cut_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        data = os.pread(fd, size, 0)  # all of it: _open refused a journal larger than it reads
        keep = data.rfind(b"\n") + 1
        self._torn(data.count(b"\n", 0, keep) + 1)
        _cut(fd, keep)

    def _torn(self, line: int) -> None:
        self._skip(line, "is cut short (a crash or a full disk mid-write)")

    def _skip(self, line: int, why: str) -> None:
        message = f"journal {self.path}: line {line} {why}; left out"
        self.skipped.append(message)
        warn(message)

    # --- reading -------------------------------------------------------------------------------

    def _read(self) -> bytes:
        dir_fd = self._dir(create=False)
        if dir_fd is None:
            return b""
        try:
            try:
                fd = self._open(dir_fd, JOURNAL_NAME, os.O_RDONLY)
            except FileNotFoundError:
                return b""
            try:
                return safeopen.read_all(fd, MAX_JOURNAL_BYTES, "journal", self.path)
            except OSError as e:
                raise ActionError(f"journal {self.path}: {e.strerror}") from None
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)

    def records(self) -> list[Record]:
        """Every change, oldest first: completed or interrupted, ``undone_by`` and ``damaged`` filled in.

        Lines that are not records are left out with a warning naming them.
        """
        self.skipped = []
        lines = self._read().split(b"\n")
        tail = lines.pop()  # what follows the last newline: empty unless the last line is torn
        out: list[Record] = []
        pending: dict[str, Record] = {}
        for n, raw in enumerate(lines, 1):
            self._line(n, raw, out, pending)
        if tail:
            self._torn(len(lines) + 1)
        seen: set[str] = set()
        for r in out:
            if r.id in seen:
                r.damaged = f"a second change with id {r.id}"
            seen.add(r.id)
            if r.damaged is None:
                r.damaged = _damage(r)
        by_id = {r.id: r for r in out}
        for r in out:
            target = by_id.get(r.undoes) if r.undoes is not None else None
            # Only a completed, sound undo undoes: an interrupted one may have restored nothing.
            if target is not None and r.state == COMPLETE and r.damaged is None:
                target.undone_by = r.id
        return out

    def _line(self, n: int, raw: bytes, out: list[Record], pending: dict[str, Record]) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._skip(n, "is not UTF-8 text")
        if not text.strip():
            return None
        try:
            d = json.loads(text)
        except (ValueError, RecursionError):
            return self._skip(n, "is not JSON")
        if not isinstance(d, dict):
            return self._skip(n, "is not a JSON object")
        if "completes" in d or "aborts" in d:
            return self._ending(n, d, out, pending)
        why = _type_error(d, _FIELD_TYPES, _REQUIRED)
        if why is None and d.get("state", COMPLETE) not in (COMPLETE, INTENT):
            why = f"has an unknown state {str(d['state'])[:20]!r}"
        if why is None and not 0 <= d.get("time", 0) < MAX_TIME:
            why = "has a time out of range"
        if why is not None:
            return self._skip(n, why)
        fields = {k: v for k, v in d.items() if k in _FIELD_TYPES}
        fields["state"] = INTERRUPTED if fields.get("state") == INTENT else COMPLETE
        rec = Record(**fields, line=n)
        out.append(rec)
        if rec.state == INTERRUPTED:
            pending[rec.id] = rec
        return None

    def _ending(self, n: int, d: dict[str, Any], out: list[Record], pending: dict[str, Record]) -> None:
        """A ``completes`` or ``aborts`` line, applied to the intent it names."""
        if "completes" in d:
            why = _type_error(d, _COMPLETION_TYPES, tuple(_COMPLETION_TYPES))
            ident = d["completes"]
        else:
            ident = d["aborts"]
            why = None if isinstance(ident, str) else "field 'aborts' is not text"
        if why is None and ident not in pending:
            why = f"ends change {str(ident)[:16]!r}, which has no open intent before it"
        if why is not None:
            return self._skip(n, why)
        rec = pending.pop(ident)
        if "aborts" in d:
            out[:] = [r for r in out if r is not rec]  # failed and rolled back: nothing changed, nothing to list
            return None
        rec.after, rec.summary, rec.count, rec.state = d["after"], d["summary"], d["count"], COMPLETE
        return None

    def find(self, ident: str) -> Record:
        """The record whose id is ``ident`` or starts with it (unambiguously)."""
        recs = self.records()
        exact = [r for r in recs if r.id == ident]
        if len(exact) == 1:
            return exact[0]
        hits = exact or ([r for r in recs if r.id.startswith(ident)] if ident else [])
        if not hits:
            raise ActionError(f"journal {self.path}: no change with id {ident!r}")
        if len(hits) > 1:
            raise ActionError(f"journal {self.path}: id {ident!r} is ambiguous ({', '.join(r.id for r in hits)})")
        return hits[0]

    def last_undoable(self, here: NetnsId) -> Record | None:
        """The newest change in that namespace that can still be undone."""
        for r in reversed(self.records()):
            if (r.made_in(here) and r.undoable and r.undone_by is None and r.undoes is None
                    and r.damaged is None):
                return r
        return None
