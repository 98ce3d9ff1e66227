"""Opening the files cttop writes so that nobody else's state can turn root against its host.

A directory or file cttop uses must pass :func:`cttop.safefs.untrusted` (one it could have made itself)
and not be a symbolic link. Files are opened relative to a checked directory fd
(``dir_fd``, ``O_NOFOLLOW``), so a path swapped after the check is not followed.
Every directory above it must be safe the same way (or sticky, as /tmp is), as
sshd's StrictModes asks: whoever can rename entries in a parent can put a link
there, and send the next run's journal into a directory of root's choosing
that is not cttop's. Refusals are ActionError: a plan's rollback catches them.
"""

from __future__ import annotations

import errno
import os
import stat

from cttop.actions.errors import ActionError
from cttop.safefs import OPEN_FLAGS, owner, untrusted


def where(what: str, path: str) -> str:
    """How an error names the path: ``journal /var/lib/cttop/journal.jsonl``, or the path alone."""
    return f"{what} {path}" if what else path


def refusal(what: str, path: str, e: OSError) -> ActionError:
    """The one-line error for an open that failed; a symlink is named as such."""
    # O_NOFOLLOW gives ELOOP on a link, but O_DIRECTORY|O_NOFOLLOW gives ENOTDIR.
    if e.errno == errno.ELOOP or e.errno == errno.ENOTDIR and os.path.islink(path):
        return ActionError(f"{where(what, path)}: a symbolic link: refusing to follow it")
    return ActionError(f"{where(what, path)}: {e.strerror or e}")


def open_dir(path: str, what: str, create_mode: int | None = None, made: list[str] | None = None) -> int | None:
    """An fd on directory ``path`` once it is checked; None when it is missing and ``create_mode`` is None.

    With ``create_mode`` a missing directory is made with that mode (missing ones above it 0755), each in a
    directory already checked: nothing is made under a directory that is then refused. Each one made is
    added to ``made`` as it is, outermost first, so that a write that then fails can take them back
    (:func:`remove_made`), even when the walk itself fails.
    """
    fd = _walk(path, what, create_mode, made)
    if fd is None:
        return None
    problem = untrusted(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise ActionError(f"{where(what, path)}: {problem}: refusing to use it")
    return fd


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
MAX_LINKS = 40  # links followed in one path, as the kernel's own walk allows


def _walk(path: str, what: str, create_mode: int | None, made: list[str] | None) -> int | None:
    """Open directory ``path`` a component at a time from /, checking each directory before anything in it is
    believed: whoever can rename entries in a directory could swap in a link, so a link is followed only out
    of a directory that passes (and, in a sticky one such as /tmp, only a link of root's or yours). Every
    directory the walk enters is checked, so the directory's real parents are, whatever links led there.
    The last component is never a link."""
    todo = [c for c in os.path.abspath(path).split("/") if c]
    todo.reverse()  # popped from the end
    cur, shown = os.open("/", DIR_FLAGS), "/"
    links = 0
    try:
        while todo:
            _check_above(cur, shown, what, path)
            name = todo.pop()
            last = not todo
            if name == ".":
                continue
            if name == "..":
                nxt, shown = os.open("..", DIR_FLAGS, dir_fd=cur), os.path.dirname(shown)
            else:
                try:
                    nxt = _open_in(cur, name, create_mode, last, made, shown)
                except FileNotFoundError as e:
                    if create_mode is not None:  # made, then gone: someone else's doing
                        raise refusal(what, path, e) from None
                    os.close(cur)
                    return None
                except OSError as e:
                    target = _link(cur, name) if not last and e.errno in (errno.ELOOP, errno.ENOTDIR) else None
                    if target is None:
                        raise refusal(what, path, e) from None
                    links += 1
                    if links > MAX_LINKS:
                        raise refusal(what, path, OSError(errno.ELOOP, os.strerror(errno.ELOOP))) from None
                    _check_link(cur, name, shown, what, path)
                    todo.extend(reversed([c for c in target.split("/") if c]))
                    if target.startswith("/"):
                        os.close(cur)
                        cur, shown = os.open("/", DIR_FLAGS), "/"
                    continue
                shown = os.path.join(shown, name)
            os.close(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise


def _open_in(dir_fd: int, name: str, create_mode: int | None, last: bool, made: list[str] | None,
             shown: str) -> int:
    """Directory ``name`` in the checked ``dir_fd`` (``shown``), not followed if a link; made there if missing
    and asked to (FileNotFoundError if not), and then added to ``made``."""
    flags = DIR_FLAGS | os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        if create_mode is None:
            raise
    try:
        os.mkdir(name, create_mode if last else 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made by a cttop running beside this one: checked like any other, and not ours to take back
    else:
        made_path = os.path.join(shown, name)
        # At once: should the next call fail, it is taken back too. Once: a directory taken back and made again
        # (the journal's lock retry) listed twice stopped remove_made at its second, already gone.
        if made is not None and made_path not in made:
            made.append(made_path)
        os.fsync(dir_fd)  # the new entry on disk (what is written in it has fsyncs of its own)
    return os.open(name, flags, dir_fd=dir_fd)


def remove_made(made: list[str], what: str) -> None:
    """Take back the directories a failed write made (``open_dir``'s ``made``), innermost first, each only while
    empty: anything someone put in one since stays, and so do it and those above it. Each is removed from its
    parent opened by the same checked walk, never by a path a link could send elsewhere; this runs while
    another error is raised, so its own failures end it quietly."""
    for path in reversed(made):
        try:
            parent = open_dir(os.path.dirname(path), what)
        except (OSError, ActionError):
            return
        if parent is None:
            return
        try:
            os.rmdir(os.path.basename(path), dir_fd=parent)
            os.fsync(parent)  # gone on disk, as its making was
        except OSError:
            return  # not empty, or already gone
        finally:
            os.close(parent)


def _link(dir_fd: int, name: str) -> str | None:
    """Where link ``name`` points, or None if it is not a link."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None


def _check_above(fd: int, shown: str, what: str, path: str) -> None:
    """Refuse a directory above the one asked for that others could rename entries in (sticky and root's, as
    /tmp is, is safe: there nobody renames what is not theirs)."""
    st = os.fstat(fd)
    problem = untrusted(st)
    if problem is not None and not (st.st_mode & stat.S_ISVTX and st.st_uid == 0):
        raise ActionError(f"{where(what, path)}: the directory above it, {shown}, is {problem}: refusing to use it")


def _check_link(dir_fd: int, name: str, shown: str, what: str, path: str) -> None:
    """A link in a sticky directory anyone may write is followed only if it is root's or yours (what the
    kernel's fs.protected_symlinks asks too)."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if st.st_uid not in (0, os.geteuid()) and untrusted(os.fstat(dir_fd)) is not None:
        raise ActionError(f"{where(what, path)}: the link {os.path.join(shown, name)} is "
                          f"owned by {owner(st.st_uid)}, not root or you: refusing to follow it")


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

    FileNotFoundError passes through (a missing file is no refusal), and so does FileExistsError (``O_EXCL``:
    another made it first); other failures are ActionError.
    """
    try:
        fd = os.open(name, flags | OPEN_FLAGS, mode, dir_fd=dir_fd)
    except (FileNotFoundError, FileExistsError):
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
