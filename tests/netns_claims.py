"""Which test run owns which namespace, so that a run killed mid-test does not leave its namespaces behind.

Every namespace a test makes is claimed first by a file in :data:`CLAIMS`, locked (flock) by the pytest
process for as long as the namespace lives. A run killed with SIGKILL cleans nothing up, but the kernel
drops its locks: at the start of the next run, a claim that nobody holds is a leftover, and its namespace
is deleted. A claim still held belongs to a run going on beside this one (two runs on one host), and is
left alone, as is every namespace nobody claimed (the host's own, a lab an operator started).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable

CLAIMS = "/run/cttop-tests"
_FILE_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
_held: dict[str, int] = {}


def _claims_dir(create: bool) -> int | None:
    """The claims directory, opened; refused if anyone but us could have written it (trust no file we did
    not make: a forged claim would have us delete a namespace by its name)."""
    if create:
        os.makedirs(CLAIMS, mode=0o700, exist_ok=True)
    try:
        fd = os.open(CLAIMS, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise RuntimeError(f"{CLAIMS}: owned by uid {st.st_uid} with mode {st.st_mode & 0o777:o}; "
                           "not ours, so not used")
    return fd


def _key(name: str) -> str:
    # Test namespaces are named with escapes, newlines and bytes that are no UTF-8 (tests/hostile.py).
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:32]


def claim(name: str) -> None:
    """Claim ``name`` before the namespace is made, so no moment exists when it is there unclaimed."""
    dfd = _claims_dir(create=True)
    assert dfd is not None
    try:
        fd = os.open(_key(name), _FILE_FLAGS | os.O_CREAT, 0o600, dir_fd=dfd)
    finally:
        os.close(dfd)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, os.fsencode(name))
    _held[name] = fd


def release(name: str) -> None:
    """After the namespace is gone: drop the claim (unlinked while still locked, so no sweep takes it)."""
    fd = _held.pop(name, None)
    if fd is None:
        return
    dfd = _claims_dir(create=False)
    try:
        if dfd is not None:
            os.unlink(_key(name), dir_fd=dfd)
    except FileNotFoundError:
        pass
    finally:
        if dfd is not None:
            os.close(dfd)
        os.close(fd)


def sweep(delete: Callable[[str], None]) -> list[str]:
    """Delete the namespaces of claims nobody holds (their run was killed); returns their names."""
    dfd = _claims_dir(create=False)
    if dfd is None:
        return []
    swept: list[str] = []
    try:
        for entry in os.listdir(dfd):
            try:
                fd = os.open(entry, _FILE_FLAGS, dir_fd=dfd)
            except OSError:
                continue  # released meanwhile, or not a plain file (then not one of ours)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a run going on beside this one holds it
            try:
                name = os.fsdecode(os.read(fd, 4096))
                # Empty: a claim being made (created, not yet locked): its maker will lock and fill it.
                if name and _key(name) == entry:
                    delete(name)
                    swept.append(name)
                    os.unlink(entry, dir_fd=dfd)
            finally:
                os.close(fd)
    finally:
        os.close(dfd)
    return swept
