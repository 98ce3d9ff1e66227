"""Fixtures shared by every test layer: throwaway namespaces and the kernel-capability gate."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests import netns_claims
from tests.kernel_env import kernel_unavailable_reason

if TYPE_CHECKING:
    from cttop.model import Row

_REASON = kernel_unavailable_reason()
pytest_plugins = ("tests.nobody",)  # the nobody_cttop fixture: cttop as another user can run it

# cttop's CLI as a process, from this interpreter (the venv's), whatever PATH holds.
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'cttop'; from cttop.cli import main; main()"]


def run_cttop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a cttop command with no terminal on stdin (and never in read-only mode unless ``env`` says so)."""
    full_env = {k: v for k, v in os.environ.items() if k != "CTTOP_READ_ONLY"} | (env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=full_env,
                          check=False)


def pytest_configure(config: pytest.Config) -> None:
    # Run from a script with `&` (no job control), the suite starts with Ctrl-C ignored, and every cttop it
    # starts inherits that: `cttop events` and the lab then rightly ignore the SIGINT a test sends them.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Tests run `cttop` as a command (also inside `ip netns exec`): use the one
    # installed beside this interpreter, e.g. .venv/bin/cttop.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _REASON is None:
        swept = netns_claims.sweep(delete_netns)
        if swept:
            print(f"deleted {len(swept)} namespace(s) left by a test run that was killed: "
                  f"{', '.join(map(ascii, swept))}", file=sys.stderr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _REASON is None:
        return
    skip = pytest.mark.skip(reason=f"kernel tests need it: {_REASON}")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"kernel tests: {'enabled' if _REASON is None else 'SKIPPED, ' + _REASON}"


def sh(*args: str, netns: str | None = None, check: bool = True, input: str | None = None) -> str:
    """Run a command (inside ``netns`` if given) and return its stdout."""
    cmd = (["ip", "netns", "exec", netns] if netns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


TRACK_RULES = "add table inet cttoptest; add chain inet cttoptest o { type filter hook output priority 0; }; " \
    "add rule inet cttoptest o ct state new counter; " \
    "add chain inet cttoptest p { type filter hook prerouting priority 0; }; " \
    "add rule inet cttoptest p ct state new counter"


def add_netns(name: str) -> None:
    """Make a named namespace, claimed by this run (tests/netns_claims.py): a run that gets killed leaves it
    to the next run's sweep. :func:`delete_netns` removes both."""
    netns_claims.claim(name)
    try:
        sh("ip", "netns", "add", name)
    except Exception:
        netns_claims.release(name)
        raise


# Put before every test namespace's name: runs side by side on one host can tell theirs apart (`h15a-`).
NETNS_PREFIX_ENV = "CTTOP_TEST_NETNS_PREFIX"


def make_netns(prefix: str = "cttop-test") -> str:
    name = f"{os.environ.get(NETNS_PREFIX_ENV, '')}{prefix}-{uuid.uuid4().hex[:8]}"
    add_netns(name)
    try:
        sh("ip", "link", "set", "lo", "up", netns=name)
        # A new namespace tracks nothing until a rule needs conntrack.
        sh("nft", TRACK_RULES, netns=name)
    except Exception:
        delete_netns(name)
        raise
    return name


@contextmanager
def netns_holding(rows: Iterable[Row], prefix: str) -> Iterator[str]:
    """A throwaway namespace holding these entries, made over ctnetlink (conntrack -I would take minutes)."""
    from cttop.kernel.ctnetlink import Ctnetlink  # not for the unit tests' collection
    from cttop.kernel.netns import NetnsSpec

    name = make_netns(prefix)
    try:
        wanted = list(rows)
        with Ctnetlink(NetnsSpec(name=name)) as ct:
            assert ct.create(wanted) == len(wanted)
        yield name
    finally:
        delete_netns(name)


def delete_netns(name: str) -> None:
    # Processes left in the namespace would keep it alive; kill them first.
    pids = sh("ip", "netns", "pids", name, check=False).split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "del", name, check=False)
    netns_claims.release(name)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh namespace with loopback up and conntrack enabled; always deleted."""
    name = make_netns()
    try:
        yield name
    finally:
        delete_netns(name)


@pytest.fixture(scope="module")
def module_netns() -> Iterator[str]:
    name = make_netns()
    try:
        yield name
    finally:
        delete_netns(name)


def conntrack_available() -> bool:
    return shutil.which("conntrack") is not None
