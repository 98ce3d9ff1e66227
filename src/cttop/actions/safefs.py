"""Opening the files cttop writes so that nobody else's state can turn root against its host.

A directory or file cttop uses must be one it could have made itself: owned by
root or by the user running cttop, not writable by group or others, and not a
symbolic link. Files are opened relative to a checked directory fd
(``dir_fd``, ``O_NOFOLLOW``), so a path swapped after the check is not followed.
Every directory above it must be safe the same way (or sticky, as /tmp is), as
sshd's StrictModes asks: whoever can rename entries in a parent can put a link
there, and send the next run's journal into a directory of root's choosing
that is not cttop's.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat

from cttop.actions.errors import ActionError

# Never block on a FIFO put where a file should be; follow no link in the last component.
OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _owner(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def untrusted(st: os.stat_result) -> str | None:
    """Why a file or directory with this stat is not cttop's to use, or None when it is."""
    if st.st_uid not in (0, os.geteuid()):
        return f"owned by {_owner(st.st_uid)}, not root or you"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH \
            else "group" if st.st_mode & stat.S_IWGRP else "others"
        return f"writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def where(what: str, path: str) -> str:
    """How an error names the path: ``journal /var/lib/cttop/journal.jsonl``, or the path alone."""
    return f"{what} {path}" if what else path


def refusal(what: str, path: str, e: OSError) -> ActionError:
    """The one-line error for an open that failed; a symlink is named as such."""
    # O_NOFOLLOW gives ELOOP on a link, but O_DIRECTORY|O_NOFOLLOW gives ENOTDIR.
    if e.errno == errno.ELOOP or e.errno == errno.ENOTDIR and os.path.islink(path):
        return ActionError(f"{where(what, path)}: a symbolic link: refusing to follow it")
    return ActionError(f"{where(what, path)}: {e.strerror or e}")


def open_dir(path: str, what: str, create_mode: int | None = None) -> int | None:
    """An fd on directory ``path`` once it is checked; None when it is missing and ``create_mode`` is None.

    With ``create_mode`` a missing directory is made with that mode (its parents 0755).
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | OPEN_FLAGS
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if create_mode is None:
            return None
        try:
            parent = os.path.dirname(os.path.abspath(path))
            try:
                try:
                    os.mkdir(path, create_mode)
                except FileNotFoundError:
                    os.makedirs(parent, 0o755, exist_ok=True)
                    os.mkdir(path, create_mode)
                _sync_dir(parent)
            except FileExistsError:
                pass  # made by a cttop running beside this one: checked below like any other
            fd = os.open(path, flags)
        except OSError as e:
            raise refusal(what, path, e) from None
    except OSError as e:
        raise refusal(what, path, e) from None
    problem = untrusted(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise ActionError(f"{where(what, path)}: {problem}: refusing to use it")
    try:
        _check_parents(fd, path, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_parents(fd: int, path: str, what: str) -> None:
    """Refuse when a directory above the opened one is not safe: walked by ``..`` from the fd, so what is
    checked is where the directory really is, whatever links the path went through."""
    named = os.path.dirname(os.path.abspath(path))  # how the refusal names each parent (the path's own words)
    st = os.fstat(fd)
    up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    try:
        while True:
            parent = os.fstat(up)
            if (parent.st_dev, parent.st_ino) == (st.st_dev, st.st_ino):
                return  # the root: its own parent
            problem = untrusted(parent)
            if problem is not None and not (parent.st_mode & stat.S_ISVTX and parent.st_uid == 0):
                raise ActionError(f"{where(what, path)}: the directory above it, {named}, is {problem}: "
                                  "refusing to use it")
            st, named = parent, os.path.dirname(named)
            nxt = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=up)
            os.close(up)
            up = nxt
    finally:
        os.close(up)


def _sync_dir(path: str) -> None:
    """Put a new entry of directory ``path`` on disk (what is written in the new entry has fsyncs of its own)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_stat(st: os.stat_result, what: str, path: str) -> os.stat_result:
    """Refuse a file that is not a regular file cttop could have made (a link included); its stat otherwise."""
    if stat.S_ISLNK(st.st_mode):
        raise ActionError(f"{where(what, path)}: a symbolic link: refusing to follow it")
    problem = "not a regular file" if not stat.S_ISREG(st.st_mode) else untrusted(st)
    if problem is not None:
        raise ActionError(f"{where(what, path)}: {problem}: refusing to use it")
    return st


def open_at(dir_fd: int, name: str, flags: int, what: str, path: str, mode: int = 0o600) -> int:
    """Open ``name`` in the checked directory without following a link, and check the file.

    FileNotFoundError passes through (a missing file is no refusal); other failures are ActionError.
    """
    try:
        fd = os.open(name, flags | OPEN_FLAGS, mode, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise refusal(what, path, e) from None
    try:
        check_stat(os.fstat(fd), what, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write every byte or raise OSError: a short write (a full disk) is retried, and then fails with ENOSPC."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def check_size(size: int, limit: int, what: str, path: str) -> None:
    """Refuse a file past ``limit`` bytes (nothing cttop writes comes near it)."""
    if size > limit:
        raise ActionError(f"{where(what, path)}: larger than {limit >> 20} MiB: not a file cttop wrote")


def read_all(fd: int, limit: int, what: str, path: str) -> bytes:
    """The whole file, refused past ``limit`` bytes (read, not stat'ed: it may grow while read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 1 << 16):
        size += len(chunk)
        check_size(size, limit, what, path)
        chunks.append(chunk)
    return b"".join(chunks)
