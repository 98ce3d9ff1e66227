"""Which network namespace cttop looks at, and running code inside it.

setns(2) changes only the calling thread, so every entry here saves and restores
the calling thread's own namespace (``/proc/thread-self/ns/net``). pyroute2's
``pushns`` saves ``/proc/self`` (the main thread's) and its ``setns`` by name
creates a namespace that does not exist, turning a typo into a new namespace; and
importing pyroute2 costs 100 ms, a tenth of a whole snapshot. So setns(2) is
called directly: ``os.setns`` on Python 3.12+, libc through ctypes before that.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

from cttop.errors import CttopError

NETNS_RUN_DIR = "/run/netns"
T = TypeVar("T")
# init_net's fixed inode (PROC_NET_INIT_INO): pid 1's ns link may be unreadable (sandboxes, hidepid).
PROC_NET_INIT_INO = 0xEFFFFFF9
SO_NETNS_COOKIE = 71  # asm-generic/socket.h; Linux 5.14+
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class NetnsError(CttopError):
    """A namespace that cannot be found or entered; the message says which and why."""


def initial_inode() -> int:
    """The initial (host's) namespace's inode."""
    try:
        return os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return PROC_NET_INIT_INO


@dataclass(frozen=True)
class NetnsId:
    """Which namespace a change was made in, for as long as the journal keeps it.

    An inode alone is not enough: the kernel gives a deleted namespace's inode to the next one made, so a lab
    started after another one's was deleted got its journal, its undo and its drift. The namespace cookie
    (SO_NETNS_COOKIE) is never reused while the machine is up, and with the boot's id it is never reused at all.
    Both are None where the kernel or /proc has none (before 5.14): then the inode is all there is.
    """

    inode: int
    cookie: int | None
    boot: str | None
    initial: bool  # the host's namespace: its inode is fixed and never another's, across boots too

    def holds(self, inode: int, cookie: int | None, boot: str | None) -> bool:
        """Whether a namespace recorded as (inode, cookie, boot) is this one."""
        if inode != self.inode:
            return False
        if self.initial or cookie is None or self.cookie is None:
            return True
        return cookie == self.cookie and boot == self.boot


def _cookie() -> int | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
    except OSError:  # ENOPROTOOPT: a kernel without namespace cookies
        return None


def _boot_id() -> str | None:
    try:
        with open(BOOT_ID) as f:
            return f.read().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class NetnsSpec:
    """A namespace chosen by name (``ip netns``), by a process in it, or by path.

    All three None means the caller's own namespace. Each use opens it again, so a spec ``pin``-ned to the
    namespace it named when chosen refuses another found there later: the process exits and its pid goes to
    one elsewhere (an unprivileged user can fork until it gets it, in the host's namespace), or the name or
    path is made anew. Unpinned, a view of a container's namespace flushed the host's table.
    """

    name: str | None = None
    pid: int | None = None
    path: str | None = None
    pin: NetnsId | None = field(default=None, compare=False, repr=False)

    @property
    def is_own(self) -> bool:
        return self.name is None and self.pid is None and self.path is None

    def resolved_path(self) -> str | None:
        if self.name is not None:
            if not self.name:
                raise NetnsError("--netns '': give a name, as `ip netns list` shows it")
            if "/" in self.name or self.name in (".", ".."):
                raise NetnsError(f"--netns {self.name!r}: a name as `ip netns list` shows it, not a path")
            return os.path.join(NETNS_RUN_DIR, self.name)
        if self.pid is not None:
            return f"/proc/{self.pid}/ns/net"
        return self.path

    def label(self) -> str:
        if self.name is not None:
            return self.name
        if self.pid is not None:
            return f"pid:{self.pid}"
        if self.path is not None:
            return self.path
        return "own"

    def open_fd(self) -> int | None:
        """An O_RDONLY fd on the namespace, or None for the caller's own."""
        path = self.resolved_path()
        if path is None:
            return None
        try:
            # O_NONBLOCK: a --netns-path naming a FIFO must not hang the open (setns then refuses it).
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise self._missing() from None
        except PermissionError:
            hint = " (run as root)" if os.geteuid() != 0 else ""
            raise NetnsError(f"namespace {self.label()}: permission denied{hint}") from None
        except OSError as e:  # ENAMETOOLONG, ELOOP, ENOTDIR, ENXIO...: the path itself is unusable
            raise NetnsError(f"{self.option()}: {e.strerror}") from None
        try:
            self._held(os.fstat(fd).st_ino, None)
        except NetnsError:
            os.close(fd)
            raise
        return fd

    def inode(self) -> int:
        path = self.resolved_path() or "/proc/thread-self/ns/net"
        try:
            return self._held(os.stat(path).st_ino, None)
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as e:
            where = self.option() if not self.is_own else "this process's network namespace"
            raise NetnsError(f"{where}: {e.strerror}") from None

    def pinned(self) -> NetnsSpec:
        """This spec held to the namespace it names now (see the class); as it is if that cannot be read now,
        for the open that needs it to say why."""
        if self.is_own or self.pin is not None:
            return self
        try:
            return replace(self, pin=self.identity())
        except NetnsError:
            return self

    def _held(self, inode: int, cookie: int | None) -> int:
        """``inode``, if it (and ``cookie``, when both are known) is the pinned namespace's; else refused."""
        pin = self.pin
        if pin is not None and (inode != pin.inode or None not in (cookie, pin.cookie) and cookie != pin.cookie):
            what = "its process exited, and the pid is another's" if self.pid is not None else "it was made anew"
            raise NetnsError(f"{self.option()}: no longer the network namespace cttop opened ({what}); "
                             "open it again to see the one there now")
        return inode

    def is_initial(self) -> bool:
        """Whether this is the host's own namespace, where globals live and persisted files apply."""
        return self.inode() == initial_inode()

    def identity(self) -> NetnsId:
        """This namespace's inode, cookie and boot, read through one open of it (so they are of one namespace)."""
        fd = self.open_fd()
        if fd is None:
            inode = self.inode()
            cookie = _cookie()
        else:
            try:
                inode = os.fstat(fd).st_ino
                cookie = run_in(NetnsSpec(path=f"/proc/self/fd/{fd}"), _cookie)
            finally:
                os.close(fd)
        return NetnsId(inode, cookie, _boot_id(), inode == initial_inode())

    def argv(self) -> list[str]:
        """The option naming this namespace on a cttop command line (none for cttop's own)."""
        if self.name is not None:
            return ["--netns", self.name]
        if self.pid is not None:
            return ["--netns-pid", str(self.pid)]
        if self.path is not None:
            return ["--netns-path", self.path]
        return []

    def option(self) -> str:
        """The option as the user typed it."""
        return " ".join(self.argv())

    def _missing(self) -> NetnsError:
        """The option as the user typed it, and what is missing."""
        what = "network namespace" if self.name is not None else "process" if self.pid is not None else "file"
        return NetnsError(f"{self.option()}: no such {what}")

    def enter_failed(self, errno_: int) -> NetnsError:
        if errno_ == errno.EINVAL:  # setns(2) on a file that is no network namespace
            return NetnsError(f"{self.option()}: not a network namespace")
        return NetnsError(f"{self.option()}: cannot enter the network namespace: {os.strerror(errno_)}")


CLONE_NEWNET = 0x40000000


@functools.cache
def _libc() -> ctypes.CDLL:
    # The symbols already loaded into this process; find_library would run ldconfig.
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, spec: NetnsSpec) -> None:
    """Enter ``fd``'s namespace; ``spec`` names it in the error."""
    if hasattr(os, "setns"):
        try:
            os.setns(fd, CLONE_NEWNET)
        except OSError as e:
            raise spec.enter_failed(e.errno or errno.EINVAL) from None
        return
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        raise spec.enter_failed(ctypes.get_errno())


@contextmanager
def entered(spec: NetnsSpec) -> Iterator[None]:
    """Run the body with the calling thread inside ``spec``'s namespace."""
    fd = spec.open_fd()
    if fd is None:
        yield
        return
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, spec)
        try:
            if spec.pin is not None:  # the inode was checked on opening; a freed one is given again, a cookie never
                spec._held(spec.pin.inode, _cookie())
            yield
        finally:
            _setns(saved, NetnsSpec(path="/proc/thread-self/ns/net"))
    finally:
        os.close(fd)
        os.close(saved)


def run_in(spec: NetnsSpec, fn: Callable[[], T]) -> T:
    """Call ``fn`` inside the namespace on a short-lived thread.

    A separate thread keeps the caller's namespace untouched even if restoring it
    failed, which matters for long-lived UI threads.
    """
    if spec.is_own:
        return fn()
    box: list[T] = []
    err: list[BaseException] = []

    def target() -> None:
        try:
            with entered(spec):
                box.append(fn())
        except BaseException as e:  # re-raised in the caller's thread
            err.append(e)

    t = threading.Thread(target=target, name=f"netns-{spec.label()}")
    t.start()
    t.join()
    if err:
        raise err[0]
    return box[0]
