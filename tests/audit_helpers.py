"""A stand-in for the host's syslog: an AF_UNIX datagram socket that cttop's audit lines are sent to."""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cttop.actions.audit import SOCKET_ENV

WAIT_CAP = 20.0  # seconds to wait for a line that is sent right after the change; never asserted on
LINE = re.compile(r"<(\d+)>cttop\[(\d+)\]: (.*)", re.S)


@dataclass
class Line:
    pri: int
    pid: int
    text: str
    raw: bytes


class Syslog:
    """What was sent to the socket, one datagram at a time, as a syslog daemon receives it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self) -> Line:
        self.sock.settimeout(WAIT_CAP)
        raw = self.sock.recv(65536)
        m = LINE.fullmatch(raw.decode())
        assert m, raw
        return Line(int(m.group(1)), int(m.group(2)), m.group(3), raw)

    def pending(self) -> list[bytes]:
        """Whatever else arrived, without waiting."""
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(self.sock.recv(65536))
        except BlockingIOError:
            return out


@pytest.fixture
def syslog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Syslog]:
    """A syslog socket in a fresh directory (short: AF_UNIX paths stop at 108 bytes), named by
    $CTTOP_SYSLOG_SOCKET for this process and the cttop commands it starts; removed after."""
    d = tempfile.mkdtemp(prefix="cttop-syslog-")
    try:
        log = Syslog(f"{d}/log")
        monkeypatch.setenv(SOCKET_ENV, log.path)
        try:
            yield log
        finally:
            log.sock.close()
    finally:
        shutil.rmtree(d)
