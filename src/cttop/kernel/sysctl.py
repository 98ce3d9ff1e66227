"""nf_conntrack sysctls and the hashsize module parameter, read and written per namespace.

``/proc/sys/net`` shows the namespace of the thread that opens it, so reads and
writes for another namespace happen through :func:`cttop.kernel.netns.run_in`.
"""

from __future__ import annotations

import os
import re
from typing import Final

from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec, run_in

SYSCTL_DIR = "/proc/sys/net/netfilter"
HASHSIZE_PATH = "/sys/module/nf_conntrack/parameters/hashsize"
MODULE_DIR = "/sys/module"
# These are one value for the whole host; only the initial namespace may write them.
GLOBAL_NAMES = frozenset({"nf_conntrack_max", "nf_conntrack_buckets", "hashsize", "nf_conntrack_expect_max"})
# The conntrack helpers whose module parameters (ports watched, timeouts, looseness) cttop shows, named
# ``nf_conntrack_ftp.ports`` as the kernel command line names them: one value for the whole host.
HELPERS = ("amanda", "ftp", "h323", "irc", "netbios_ns", "pptp", "sane", "sip", "snmp", "tftp")
_HELPER_PARAM = re.compile(r"nf_conntrack_([a-z0-9_]+)\.([a-z0-9_]+)")
# A sysctl integer as the kernel prints it (and as a person types one): decimal digits, maybe a minus.
_INTEGER = re.compile(r"-?[0-9]+")


class SysctlError(CttopError):
    """A sysctl that cannot be read or written; the message names it and says why."""


def path_of(name: str) -> str:
    if name == "hashsize":
        return HASHSIZE_PATH
    m = _HELPER_PARAM.fullmatch(name)
    if m is not None and m.group(1) in HELPERS:
        return os.path.join(MODULE_DIR, f"nf_conntrack_{m.group(1)}", "parameters", m.group(2))
    if "/" in name or name.startswith("."):
        raise SysctlError(f"{name}: not a sysctl name")
    return os.path.join(SYSCTL_DIR, name)


def is_global(name: str) -> bool:
    """Whether ``name`` is one value for the whole host: a global sysctl, or a helper's module parameter."""
    m = _HELPER_PARAM.fullmatch(name)
    return name in GLOBAL_NAMES or (m is not None and m.group(1) in HELPERS)


def sysctl_key(name: str) -> str:
    """The dotted name ``sysctl -w`` takes (``net.netfilter.nf_conntrack_max``)."""
    return f"net.netfilter.{name}"


def _read_local(names: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if names is None:
        try:
            names = sorted(n for n in os.listdir(SYSCTL_DIR) if n.startswith("nf_conntrack"))
        except OSError:
            names = []
        names.append("hashsize")
    for n in names:
        try:
            with open(path_of(n)) as f:
                out[n] = f.read().strip()
        except OSError:
            continue
    return out


def read(spec: NetnsSpec = NetnsSpec(), names: list[str] | None = None) -> dict[str, str]:
    """Values of ``names`` (default: every nf_conntrack* sysctl plus hashsize); unreadable ones are left out."""
    return run_in(spec, lambda: _read_local(names))


def helper_params() -> list[str]:
    """The names (``nf_conntrack_ftp.ports``) of the helper module parameters this kernel has."""
    out = []
    for helper in HELPERS:
        mod = f"nf_conntrack_{helper}"
        try:
            params = sorted(os.listdir(os.path.join(MODULE_DIR, mod, "parameters")))
        except OSError:
            continue  # not built, not loaded, or built without parameters
        out += [f"{mod}.{p}" for p in params if re.fullmatch(r"[a-z0-9_]+", p)]
    return out


def as_int(text: str | None) -> int | None:
    """A sysctl's text as an integer; None when absent or not one (a word, a vector like tcp_rmem's, "1.5").

    The one parser of sysctl numbers, whether read from the kernel, the journal or typed: spaces around are
    ignored, but not the ``+``, ``_`` or non-ASCII digits that ``int()`` also takes.
    """
    if text is None or not _INTEGER.fullmatch(text.strip()):
        return None
    try:
        return int(text)
    except ValueError:
        return None  # more digits than int() converts (sys.get_int_max_str_digits)


def read_int(spec: NetnsSpec, name: str) -> int | None:
    return as_int(read(spec, [name]).get(name))


def _write_local(name: str, value: str) -> None:
    path = path_of(name)
    try:
        with open(path, "w") as f:
            f.write(value)
    except PermissionError:
        where = " (a global setting: writable only from the initial namespace)" if name in GLOBAL_NAMES else ""
        raise SysctlError(f"{name}: permission denied{where}") from None
    except FileNotFoundError:
        raise SysctlError(f"{name}: no such sysctl ({path})") from None
    except OSError as e:
        raise SysctlError(f"{name}={value}: kernel refused: {e.strerror}") from None


def write(spec: NetnsSpec, name: str, value: str) -> None:
    run_in(spec, lambda: _write_local(name, value))


# Why nf_conntrack_buckets is read-only: the kernel shows the hash's size there; hashsize sets it.
BUCKETS_READ_ONLY: Final = "change hashsize instead"


def writable(spec: NetnsSpec, name: str) -> tuple[bool, str]:
    """Whether ``name`` can be written here, and if not, why (for the tunables screen)."""
    if name == "nf_conntrack_buckets":
        return False, BUCKETS_READ_ONLY
    if name in GLOBAL_NAMES and not spec.is_initial():
        return False, "global setting: writable only from the initial namespace"
    ok = run_in(spec, lambda: os.access(path_of(name), os.W_OK))
    return (True, "") if ok else (False, "not writable by this user")


