"""The audit trail: each change cttop applies or undoes is also told to the host's log, through ``/dev/log``.

The journal is a file on the box that root can edit; the host's log usually
leaves the box (a log shipper, a remote rsyslog) and is where an incident's
review looks first. So every journal intent that ends (completed, rolled back,
or left interrupted) becomes one syslog line once the journal's lock is
released, naming who (uid, audit ``loginuid``, ``SUDO_USER``), where (the
namespace and its inode), which change (its journal id) and the exact
commands.

Facility ``authpriv``, severity ``notice`` (``warning`` for a change that failed
or was cut off): what sudo uses for the commands it runs as root. Distributions
route authpriv to a file only root and the adm group read (``/var/log/auth.log``
on Debian, ``/var/log/secure`` on RHEL), which suits lines naming users and
commands, and where people already look for "who did what as root";
``journalctl SYSLOG_FACILITY=10`` or ``journalctl -t cttop`` finds them under
journald. The local facilities mean nothing unless a site configures them.

The line is RFC 3164 as local syslog() writes it, ``<PRI>cttop[PID]: message``
(the daemon adds the time and host), one datagram on an AF_UNIX socket,
``/dev/log`` or ``$CTTOP_SYSLOG_SOCKET``. Every text field is escaped of control
characters, so a namespace's name cannot forge a second log line, and the whole
is bounded (:data:`MAX_BYTES`), the commands cut last. No syslog (a container, a
minimal host) or a send that fails is not an error: the change and its journal
stand, and nothing is printed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cttop.termsafe import safe_line

if TYPE_CHECKING:
    from cttop.actions.journal import Record

SOCKET_ENV: Final = "CTTOP_SYSLOG_SOCKET"
DEFAULT_SOCKET: Final = "/dev/log"
TAG: Final = "cttop"
# RFC 3164/5424 numbers: facility authpriv (10); severities notice (5) and warning (4).
AUTHPRIV: Final = 10
NOTICE: Final = 5
WARNING: Final = 4
# The datagram's size: RFC 5424's 2048 bytes, which every receiver takes whole (rsyslog's default is 8k).
MAX_BYTES: Final = 2048
CUT_MARK: Final = " ...(cut; the journal holds the whole record)"
# A stuck syslog daemon must not hold up the person at the keyboard for long.
SEND_TIMEOUT: Final = 1.0
# /proc/self/loginuid when no login session set it (a daemon, a container): (uid_t)-1.
LOGINUID_UNSET: Final = 4294967295

# How an intent ended, as the line says it.
COMPLETED: Final = "completed"
ROLLED_BACK: Final = "rolled back"
INTERRUPTED: Final = "interrupted"


@dataclass(frozen=True)
class Ending:
    """How one journaled change ended: ``detail`` is its summary when completed, else why it did not."""

    record: Record
    outcome: str
    detail: str


def socket_path() -> str:
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def loginuid() -> str:
    """The audit login uid of this process (who logged in, kept across sudo and su), or ``unset``."""
    try:
        with open("/proc/self/loginuid", encoding="ascii") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return "unset"  # a kernel without audit support has no such file
    return "unset" if value == LOGINUID_UNSET else str(value)


def _quoted(value: object) -> str:
    return '"' + safe_line(value).replace('"', '\\"') + '"'


def message(end: Ending) -> str:
    """The log line's text for ``end``, without the ``<PRI>cttop[PID]:`` header."""
    rec = end.record
    if end.outcome == COMPLETED:
        event = f"change {rec.id} " + (f"undid change {rec.undoes}" if rec.undoes else "applied")
    elif end.outcome == ROLLED_BACK:
        event = f"change {rec.id} failed and was rolled back"
    else:
        event = f"change {rec.id} was interrupted; the journal lists it as interrupted, with the values before"
    fields = [f"uid={os.getuid()}", f"loginuid={loginuid()}"]
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        fields.append(f"sudo_user={_quoted(sudo_user)}")
    fields += [f"netns={_quoted(rec.netns)}", f"netns_inode={rec.netns_inode}", f"kind={_quoted(rec.kind)}"]
    if rec.undoes:
        fields.append(f"undoes={_quoted(rec.undoes)}")
    if end.detail:
        fields.append(f"{'summary' if end.outcome == COMPLETED else 'reason'}={_quoted(end.detail)}")
    fields += [f"command={_quoted(c)}" for c in rec.commands]
    return safe_line(f"{event}: {' '.join(fields)}")


def datagram(end: Ending) -> bytes:
    """The whole datagram, at most :data:`MAX_BYTES`: a longer one loses its tail (the commands) to a mark."""
    severity = NOTICE if end.outcome == COMPLETED else WARNING
    data = f"<{AUTHPRIV * 8 + severity}>{TAG}[{os.getpid()}]: {message(end)}".encode()
    if len(data) <= MAX_BYTES:
        return data
    keep = data[:MAX_BYTES - len(CUT_MARK)].decode("utf-8", "ignore")  # never half a character
    return (keep + CUT_MARK).encode()


def send(ends: list[Ending]) -> None:
    """Tell the host's log how each change ended; silently nothing when there is no syslog to tell."""
    if not ends:
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.settimeout(SEND_TIMEOUT)
            s.connect(socket_path())
            for end in ends:
                s.send(datagram(end))
    except OSError:
        pass  # no /dev/log, a stopped or stuck daemon: the change and its journal stand all the same
