"""A namespace's own addresses, and which other namespaces its links lead to, over rtnetlink.

Three small requests on a NETLINK_ROUTE socket, which (like every netlink socket)
belongs to the namespace it was opened in, so callers open it inside one with
:func:`cttop.kernel.netns.run_in`:

- ``RTM_GETADDR`` (dump): the addresses, fixed ``ifaddrmsg`` plus IFA_LOCAL/IFA_ADDRESS;
- ``RTM_GETLINK`` (dump): each link's ``IFLA_LINK_NETNSID``, set on a veth (or any link)
  whose peer lives in another namespace: the id *this* namespace gave that one;
- ``RTM_GETNSID`` with ``NETNSA_FD``: the id this namespace gives the namespace behind
  an open fd (-1 if it gave none), which turns those ids into namespaces.

Hand-framed with :mod:`cttop.kernel.framing`: pyroute2's import alone costs more than
all three requests for a namespace (it is kept for the lab).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Final

from cttop.errors import CttopError
from cttop.kernel.framing import NLA, NLH_LEN, DecodeError, align, attrs, error_code, messages, request
from cttop.kernel.nlconst import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR

NETLINK_ROUTE: Final = 0
RTM_NEWLINK: Final = 16
RTM_GETLINK: Final = 18
RTM_NEWADDR: Final = 20
RTM_GETADDR: Final = 22
RTM_NEWNSID: Final = 88
RTM_GETNSID: Final = 90
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
IFLA_LINK_NETNSID: Final = 37
NETNSA_NSID: Final = 1
NETNSA_FD: Final = 3
# Scopes past these are the namespace's own business: host (127/8, ::1) and link (fe80::/10).
RT_SCOPE_SITE: Final = 200

IFADDRMSG: Final = struct.Struct("<BBBBI")  # family, prefixlen, flags, scope, ifindex
IFINFOMSG: Final = struct.Struct("<BxHiII")  # family, type, index, flags, change
RTGENMSG: Final = struct.Struct("<Bxxx")
S32: Final = struct.Struct("<i")
U32: Final = struct.Struct("<I")


class RtnlError(CttopError):
    """rtnetlink refused or answered garbage; says which request and why."""


class _Route:
    """One NETLINK_ROUTE socket in the calling thread's namespace."""

    def __init__(self) -> None:
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
            self.sock.bind((0, 0))
        except OSError as e:
            raise RtnlError(f"cannot open an rtnetlink socket: {e.strerror}") from None
        self.seq = 0
        self.buf = bytearray(1 << 16)

    def __enter__(self) -> _Route:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def ask(self, typ: int, flags: int, body: bytes, what: str) -> Iterator[tuple[int, int, int]]:
        """(offset, length, type) of each answer message, in ``self.buf``, until the request is done.

        A message's bytes stay valid only until the next one is asked for.
        """
        self.seq += 1
        try:
            self.sock.send(request(typ, flags, self.seq, body))
            while True:
                n = self.sock.recv_into(self.buf)
                view = memoryview(self.buf)[:n]
                for off, length, t, _flags in messages(view):
                    if t == NLMSG_DONE:
                        return
                    if t == NLMSG_ERROR:
                        code = error_code(self.buf, off)
                        if code:
                            raise RtnlError(f"rtnetlink {what}: {os.strerror(code)}")
                        return
                    yield off, length, t
                if not flags & NLM_F_DUMP:
                    return  # a plain request has one answer
        except DecodeError as e:
            raise RtnlError(f"rtnetlink {what}: {e}") from None
        except OSError as e:
            raise RtnlError(f"rtnetlink {what}: {e.strerror}") from None


def _addresses(route: _Route) -> list[bytes]:
    out: list[bytes] = []
    body = IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    for off, length, typ in route.ask(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, body, "address dump"):
        if typ != RTM_NEWADDR:
            continue
        family, _plen, _flags, scope, _index = IFADDRMSG.unpack_from(route.buf, off + NLH_LEN)
        if family not in (socket.AF_INET, socket.AF_INET6) or scope > RT_SCOPE_SITE:
            continue
        found: dict[int, bytes] = {}
        for t, payload in attrs(route.buf, off + NLH_LEN + align(IFADDRMSG.size), off + length):
            if t in (IFA_ADDRESS, IFA_LOCAL):
                found[t] = payload
        # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a point-to-point link.
        addr = found.get(IFA_LOCAL, found.get(IFA_ADDRESS))
        if addr is not None and len(addr) in (4, 16):
            out.append(addr)
    return out


def _link_nsids(route: _Route) -> set[int]:
    out: set[int] = set()
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    for off, length, typ in route.ask(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, body, "link dump"):
        if typ != RTM_NEWLINK:
            continue
        for t, payload in attrs(route.buf, off + NLH_LEN + IFINFOMSG.size, off + length):
            if t == IFLA_LINK_NETNSID and len(payload) == 4:
                nsid = S32.unpack(payload)[0]
                if nsid >= 0:
                    out.add(nsid)
    return out


def _nsid_of(route: _Route, fd: int) -> int | None:
    attr = NLA.pack(NLA.size + U32.size, NETNSA_FD) + U32.pack(fd)
    try:
        for off, length, typ in route.ask(RTM_GETNSID, NLM_F_REQUEST, RTGENMSG.pack(socket.AF_UNSPEC) + attr,
                                          "nsid request"):
            if typ != RTM_NEWNSID:
                continue
            for t, payload in attrs(route.buf, off + NLH_LEN + RTGENMSG.size, off + length):
                if t == NETNSA_NSID and len(payload) == 4:
                    nsid = S32.unpack(payload)[0]
                    return nsid if nsid >= 0 else None
    except RtnlError:
        return None  # the namespace went away while asked about
    return None


def addresses() -> list[bytes]:
    """The calling thread's namespace's addresses (4 or 16 bytes), without host- and link-scoped ones."""
    with _Route() as route:
        return _addresses(route)


def linked(fds: dict[int, int]) -> set[int]:
    """Of ``fds`` (key -> an open namespace fd), the keys of the namespaces a link of the calling
    thread's namespace leads to (a veth whose peer is there)."""
    with _Route() as route:
        nsids = _link_nsids(route)
        if not nsids:
            return set()
        out = set()
        for key, fd in fds.items():
            nsid = _nsid_of(route, fd)
            if nsid is not None and nsid in nsids:
                out.add(key)
        return out

