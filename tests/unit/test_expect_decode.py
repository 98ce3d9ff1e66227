"""The expectation decoder on a message the 6.18 kernel sent (an FTP PASV expectation), and on the
attributes that kernel leaves out (zone, NAT function) or a real helper rarely sets (flags), added by hand."""

from __future__ import annotations

import socket

import pytest

from cttop.kernel import nlconst as C
from cttop.kernel.attrs import be, nla
from cttop.kernel.expect import decode_expectation
from cttop.kernel.framing import NFGEN, DecodeError, request

# The attributes (in the kernel's order) of one IPCTNL_MSG_EXP_NEW from `cttop expect` in a namespace where a
# client sent PASV to 127.0.0.1:2121 from port 53138 and the server answered with port 58101
# (see tests/kernel/test_expect.py).
RECORDED = b"".join(nla(typ, bytes.fromhex(payload)) for typ, payload in (
    (C.CTA_EXPECT_TUPLE | C.NLA_F_NESTED, "14000180080001007f000001080002007f0000011c000280050001000600000006000200"
                                          "0000000006000300e2f50000"),
    (C.CTA_EXPECT_MASK | C.NLA_F_NESTED, "1400018008000100ffffffff08000200ffffffff1c0002800500010006000000060002"
                                         "000000000006000300ffff0000"),
    (C.CTA_EXPECT_MASTER | C.NLA_F_NESTED, "14000180080001007f000001080002007f0000011c00028005000100060000000600"
                                           "0200cf9200000600030008490000"),
    (C.CTA_EXPECT_TIMEOUT, "0000012b"), (C.CTA_EXPECT_ID, "4d46d151"), (C.CTA_EXPECT_FLAGS, "00000000"),
    (C.CTA_EXPECT_CLASS, "00000000"), (C.CTA_EXPECT_HELP_NAME, "66747000"),
))


def message(body: bytes, family: int = socket.AF_INET) -> bytes:
    return request(C.exp_msg(C.IPCTNL_MSG_EXP_NEW), 0, 1, NFGEN.pack(family, 0, 0) + body)


def test_recorded_ftp_expectation() -> None:
    e = decode_expectation(message(RECORDED), 0, len(message(RECORDED)))
    assert e.to_json() == {
        "id": 0x4D46D151, "family": "ipv4", "proto": "tcp", "timeout": 299,
        "master": {"src": "127.0.0.1", "dst": "127.0.0.1", "sport": 0xCF92, "dport": 0x0849},
        "expected": {"src": "127.0.0.1", "dst": "127.0.0.1", "sport": 0, "dport": 0xE2F5},
        "mask": {"src": "255.255.255.255", "dst": "255.255.255.255", "sport": 0, "dport": 0xFFFF},
        "helper": "ftp", "class": 0, "flags": [], "zone": None, "fn": None,
    }
    assert e.text().startswith("299 proto=6 src=127.0.0.1 dst=127.0.0.1 sport=0 dport=58101 ")
    assert e.text().endswith("master-src=127.0.0.1 master-dst=127.0.0.1 sport=53138 dport=2121 class=0 helper=ftp")


def test_zone_flags_and_fn_when_sent() -> None:
    body = RECORDED + nla(C.CTA_EXPECT_ZONE, be("H", 7)) + nla(C.CTA_EXPECT_FLAGS, be("I", 0b101)) \
        + nla(C.CTA_EXPECT_FN, b"nat-follow-master\0")
    e = decode_expectation(message(body), 0, len(message(body)))
    assert (e.zone, e.flag_names, e.fn) == (7, ["PERMANENT", "USERSPACE"], "nat-follow-master")
    # conntrack's order: zone, then the flags, then class and helper
    assert e.text().endswith("dport=2121 zone=7 PERMANENT,USERSPACE class=0 helper=ftp")


def test_broken_messages_are_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_expectation(message(b""), 0, len(message(b"")))  # no tuples
    # an IPv4 tuple read as IPv6: the address sizes do not fit the family
    with pytest.raises(DecodeError):
        decode_expectation(message(RECORDED, socket.AF_INET6), 0, len(message(RECORDED)))
