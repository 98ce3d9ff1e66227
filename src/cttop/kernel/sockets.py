"""The inet sockets of one network namespace, from sock_diag, with their inode numbers.

psutil.net_connections() cannot be used here: it reads ``/proc/net/*``, and
``/proc/net`` is ``/proc/self/net``, the namespace of the process's *main*
thread, so a thread that entered another namespace with setns(2) still sees
the caller's sockets (checked on kernel 6.18). A sock_diag netlink socket is
bound to the namespace it was created in, like the ctnetlink one, and its
replies are fixed-layout structs, so it is also far cheaper than parsing
``/proc/thread-self/net/tcp`` text.

A TCP dump walks the host's whole established hash, whichever namespace asks
(2 ms a family with 262,144 buckets, measured here), so a protocol and family the
namespace has no socket of (``sockstat``'s per-namespace ``inuse``) is not asked
about: on a host of many containers most have no socket of some kinds.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Final

from cttop.errors import CttopError
from cttop.kernel.framing import NLH_LEN, DecodeError, error_code, messages, request
from cttop.kernel.nlconst import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from cttop.kernel.netns import NetnsSpec, run_in

NETLINK_SOCK_DIAG: Final = 4
SOCK_DIAG_BY_FAMILY: Final = 20
ALL_STATES: Final = 0xFFFFFFFF
TCP_LISTEN: Final = 10
TCP_TIME_WAIT: Final = 6
TCP_CLOSE: Final = 7  # also what an unconnected UDP socket reports

# inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid (48 bytes).
REQ: Final = struct.Struct("<BBBxI48x")
# inet_diag_msg after the netlink header: family, state, timer, retrans, sport, dport (big endian),
# src[16], dst[16], ifindex, cookie[2], expires, rqueue, wqueue, uid, inode.
MSG: Final = struct.Struct("<BB6x16s16s4x8x4x4x4xII")
MSG_BE_PORTS: Final = struct.Struct(">HH")
V4_MAPPED: Final = b"\0" * 10 + b"\xff\xff"

PROTOCOLS: Final = (socket.IPPROTO_TCP, socket.IPPROTO_UDP)
# sockstat's line for each (family, protocol): in the thread's own namespace's /proc/thread-self/net.
SOCKSTAT: Final = {(socket.AF_INET, socket.IPPROTO_TCP): ("sockstat", "TCP:"),
                   (socket.AF_INET, socket.IPPROTO_UDP): ("sockstat", "UDP:"),
                   (socket.AF_INET6, socket.IPPROTO_TCP): ("sockstat6", "TCP6:"),
                   (socket.AF_INET6, socket.IPPROTO_UDP): ("sockstat6", "UDP6:")}


class SocketsError(CttopError):
    """sock_diag failed in a namespace; says where and why."""


@dataclass(frozen=True, slots=True)
class InetSocket:
    proto: int
    laddr: bytes  # 4 or 16 bytes; v4-mapped v6 addresses are given as 4
    lport: int
    raddr: bytes
    rport: int
    state: int  # TCP_* state number (UDP: TCP_CLOSE unconnected, 1 connected)
    uid: int
    inode: int  # 0 for sockets no process holds (TIME_WAIT, not yet accepted)


def _addr(family: int, raw: bytes) -> bytes:
    if family == socket.AF_INET:
        return raw[:4]
    return raw[12:] if raw[:12] == V4_MAPPED else raw


def _request(sock: socket.socket, family: int, proto: int, seq: int) -> list[InetSocket]:
    body = REQ.pack(family, proto, 0, ALL_STATES)
    sock.send(request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
    out: list[InetSocket] = []
    buf = bytearray(1 << 18)
    unpack, ports = MSG.unpack_from, MSG_BE_PORTS.unpack_from
    while True:
        n = sock.recv_into(buf)
        try:
            for off, _length, typ, _flags in messages(memoryview(buf)[:n]):
                if typ == NLMSG_DONE:
                    return out
                if typ == NLMSG_ERROR:
                    code = error_code(buf, off)
                    if code == errno.ENOENT:  # protocol not available (module absent)
                        return out
                    raise SocketsError(f"sock_diag: kernel said {os.strerror(code)}")
                fam, state, src, dst, uid, inode = unpack(buf, off + NLH_LEN)
                sport, dport = ports(buf, off + NLH_LEN + 4)
                out.append(InetSocket(proto, _addr(fam, src), sport, _addr(fam, dst), dport, state, uid, inode))
        except DecodeError as e:
            raise SocketsError(f"sock_diag: {e}") from None


def _in_use() -> set[tuple[int, int]] | None:
    """The (family, protocol) pairs with sockets in the calling thread's namespace; None if unknown."""
    lines: dict[str, str] = {}
    try:
        for name in ("sockstat", "sockstat6"):
            with open(f"/proc/thread-self/net/{name}") as f:
                lines.update((ln.split(None, 1)[0], ln) for ln in f if ln.strip())
    except OSError:
        return None
    out: set[tuple[int, int]] = set()
    for key, (_file, head) in SOCKSTAT.items():
        words = lines.get(head, "").split()
        if "inuse" not in words or words[words.index("inuse") + 1] != "0":
            out.add(key)
    return out


def _list_local() -> list[InetSocket]:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except OSError as e:
        raise SocketsError(f"cannot open a sock_diag socket: {e.strerror}") from None
    try:
        sock.bind((0, 0))
        out: list[InetSocket] = []
        seq = 0
        used = _in_use()
        for proto in PROTOCOLS:
            for family in (socket.AF_INET, socket.AF_INET6):
                if used is not None and (family, proto) not in used:
                    continue
                seq += 1
                out += _request(sock, family, proto, seq)
        return out
    except OSError as e:
        raise SocketsError(f"sock_diag: {e.strerror}") from None
    finally:
        sock.close()


def list_sockets(spec: NetnsSpec = NetnsSpec()) -> list[InetSocket]:
    """Every TCP and UDP socket (both families, every state) in ``spec``'s namespace."""
    return run_in(spec, _list_local)
