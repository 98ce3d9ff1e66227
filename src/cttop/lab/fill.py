"""The table-full scenario's filler: ASSURED entries created in the router's own table over ctnetlink.

``python -m cttop.lab.fill --lab TAG --seconds S --entries N``, run inside the router.

Packets alone cannot fill the table the way a real box fills: the sink never answers,
so every entry the flood makes is UNREPLIED, early_drop can always evict one, and a new
flow always gets in (early_drop rises, drop never does). A real box is full of ASSURED
entries, which early_drop may not evict: when the few buckets it looks at hold none
that it may, the packet is dropped ("nf_conntrack: table full, dropping packet") and
``drop`` rises. So most of the table is made ASSURED here, shaped like the flood's own
SNAT'd flows, and the flood tops it up with evictable ones.

Each message is one template with the destination and source port patched in, sent
in batches: building every entry through the attribute encoder costs ~4 times as much
and one send per entry twice again.

``--kind idle-established`` makes the idle-established scenario's table instead:
TCP sessions ESTABLISHED and ASSURED whose peers went quiet hours ago, each with the
time left that many hours of silence leave under the 5-day default (no packet has
reset its timer since). Hours of silence cannot be waited for in a lab; the entries
are what a box that saw them would hold.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import struct
import sys

from cttop.kernel import nlconst as C
from cttop.kernel.attrs import be, nla
from cttop.kernel.ctnetlink import Ctnetlink, open_socket, row_tuples
from cttop.kernel.framing import NFGEN, error_code, messages, request
from cttop.lab.topology import CLIENT4, ROUTER_S4, SINK4
from cttop.model import AF_INET, IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY, NO_PSTATE, Row

BATCH = 64
# Below the ephemeral range (32768 and up), so no entry clashes with a flood packet's own tuple.
SPORTS = range(1024, 32768)
_SINK = struct.unpack("!I", socket.inet_aton(SINK4.split("/")[0]))[0]
# Placeholders found in the template and overwritten per entry.
_MARK_DST = socket.inet_aton("10.77.255.254")
_MARK_PORT = 0xFEDC
_PORT = struct.Struct("!H")
_SEQ_AT = 8  # nlmsghdr: len, type, flags, then seq


def template(port: int, timeout: int) -> tuple[bytes, list[int], list[int]]:
    """One create message and where in it the sink address and the source port go (each twice)."""
    src, nat = socket.inet_aton(CLIENT4), socket.inet_aton(ROUTER_S4)
    row: Row = (0, AF_INET, 17, NO_PSTATE, 0, src, _MARK_DST, _MARK_PORT, port, _MARK_DST, nat, port, _MARK_PORT,
                timeout, 0, 0, 0, None, None, None, None, 0, 0)
    payload = row_tuples(row) + nla(C.CTA_STATUS, be("I", IPS_ASSURED | IPS_SEEN_REPLY | IPS_CONFIRMED)) \
        + nla(C.CTA_TIMEOUT, be("I", timeout))
    flags = C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL
    msg = request(C.ct_msg(C.IPCTNL_MSG_CT_NEW), flags, 0, NFGEN.pack(AF_INET, 0, 0) + payload)
    marks = [(nla(C.CTA_IP_V4_DST, _MARK_DST), nla(C.CTA_IP_V4_SRC, _MARK_DST)),
             (nla(C.CTA_PROTO_SRC_PORT, _PORT.pack(_MARK_PORT)), nla(C.CTA_PROTO_DST_PORT, _PORT.pack(_MARK_PORT)))]
    offsets: list[list[int]] = []
    for pair in marks:
        found = []
        for attr in pair:
            assert msg.count(attr) == 1, "the template's placeholder is not unique"
            found.append(msg.index(attr) + 4)
        offsets.append(found)
    return msg, offsets[0], offsets[1]


def fill(sock: socket.socket, entries: int, port: int, timeout: int) -> dict[int, int]:
    """Create ``entries`` ASSURED entries; returns how many acks came back with each errno (0: created)."""
    msg, dst_at, port_at = template(port, timeout)
    size = len(msg)
    batch = bytearray(msg * BATCH)
    replies = bytearray(1 << 20)
    outcome: dict[int, int] = {}
    for start in range(0, entries, BATCH):
        n = min(BATCH, entries - start)
        for j in range(n):
            i, off = start + j, j * size
            dst = struct.pack("!I", _SINK + 1 + i // len(SPORTS))
            sport = _PORT.pack(SPORTS[i % len(SPORTS)])
            struct.pack_into("<I", batch, off + _SEQ_AT, i + 1)
            for at in dst_at:
                batch[off + at:off + at + 4] = dst
            for at in port_at:
                batch[off + at:off + at + 2] = sport
        sock.send(batch[:n * size])
        acks = 0
        while acks < n:
            got = sock.recv_into(replies)
            for off, _length, typ, _flags in messages(memoryview(replies)[:got]):
                if typ == C.NLMSG_ERROR:
                    code = error_code(replies, off)
                    outcome[code] = outcome.get(code, 0) + 1
                    acks += 1
    return outcome


TCP_ESTABLISHED = 3
# How long the idle sessions have been silent: from just past RFC 5382's 2 h 4 min floor to 4 days.
IDLE_FROM, IDLE_TO = 7500, 4 * 86400


def idle_sessions(entries: int, timeout: int) -> int:
    """Create ``entries`` ESTABLISHED TCP sessions idle IDLE_FROM..IDLE_TO s under ``timeout``; returns how many."""
    src, nat = socket.inet_aton(CLIENT4), socket.inet_aton(ROUTER_S4)
    status = IPS_ASSURED | IPS_SEEN_REPLY | IPS_CONFIRMED

    def row(i: int) -> Row:
        dst = struct.pack("!I", _SINK + 1 + i // len(SPORTS))
        sport = SPORTS[i % len(SPORTS)]
        idle = IDLE_FROM + (i * 7919) % (IDLE_TO - IDLE_FROM)  # spread evenly, in no order
        return (0, AF_INET, 6, TCP_ESTABLISHED, status, src, dst, sport, 443, dst, nat, 443, sport,
                timeout - idle, 0, 0, 0, None, None, None, None, 0, 0)

    with Ctnetlink() as ct:
        return ct.create(row(i) for i in range(entries))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cttop.lab.fill")
    p.add_argument("--seconds", type=float, required=True, help="exit after this long")
    p.add_argument("--lab", default="", help="the lab's tag (for `ps`)")
    p.add_argument("--entries", type=int, required=True)
    p.add_argument("--port", type=int, default=0, help="the ASSURED UDP entries' destination port")
    p.add_argument("--timeout", type=int, required=True, help="seconds each entry lives (idle-established: "
                   "the established timeout in force)")
    p.add_argument("--kind", choices=("assured-udp", "idle-established"), default="assured-udp")
    args = p.parse_args(argv)
    signal.alarm(int(args.seconds) + 5)
    if args.kind == "idle-established":
        made = idle_sessions(args.entries, args.timeout)
        if made != args.entries:
            sys.exit(f"{args.entries - made} of {args.entries} idle sessions could not be created")
        return
    with open_socket(1 << 20) as sock:
        outcome = fill(sock, args.entries, args.port, args.timeout)
    # ENOMEM: the table was full and nothing near was evictable; the flood got there first. Expected.
    other = {code: n for code, n in outcome.items() if code not in (0, errno.ENOMEM)}
    if other:
        sys.exit("; ".join(f"{n} creates failed: {os.strerror(code)}" for code, n in other.items()))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
