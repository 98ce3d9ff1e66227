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
import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from cttop.errors import CttopError

NETNS_RUN_DIR = "/run/netns"
T = TypeVar("T")


class NetnsError(CttopError):
    """A namespace that cannot be found or entered; the message says which and why."""


@dataclass(frozen=True)
class NetnsSpec:
    """A namespace chosen by name (``ip netns``), by a process in it, or by path.

    All three None means the caller's own namespace.
    """

    name: str | None = None
    pid: int | None = None
    path: str | None = None

    @property
    def is_own(self) -> bool:
        return self.name is None and self.pid is None and self.path is None

    def resolved_path(self) -> str | None:
        if self.name is not None:
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
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise self._missing() from None
        except PermissionError:
            raise NetnsError(f"namespace {self.label()}: permission denied (run as root)") from None

    def inode(self) -> int:
        path = self.resolved_path() or "/proc/thread-self/ns/net"
        try:
            return os.stat(path).st_ino
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as e:
            raise NetnsError(f"namespace {self.label()}: {e.strerror}") from None

    def _missing(self) -> NetnsError:
        """The option as the user typed it, and what is missing."""
        if self.name is not None:
            return NetnsError(f"--netns {self.name}: no such network namespace")
        if self.pid is not None:
            return NetnsError(f"--netns-pid {self.pid}: no such process")
        return NetnsError(f"--netns-path {self.path}: no such file")


CLONE_NEWNET = 0x40000000


@functools.cache
def _libc() -> ctypes.CDLL:
    # The symbols already loaded into this process; find_library would run ldconfig.
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):
        try:
            os.setns(fd, CLONE_NEWNET)
        except OSError as e:
            raise NetnsError(f"cannot enter network namespace: {e.strerror}") from None
        return
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        raise NetnsError(f"cannot enter network namespace: {os.strerror(ctypes.get_errno())}")


@contextmanager
def entered(spec: NetnsSpec) -> Iterator[None]:
    """Run the body with the calling thread inside ``spec``'s namespace."""
    fd = spec.open_fd()
    if fd is None:
        yield
        return
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
        try:
            yield
        finally:
            _setns(saved)
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
