"""An independent reading of the kernel's table: `conntrack -L -o extended,id` parsed from text.

Deliberately shares no code with cttop's decoder: it is the oracle cttop is checked against.
"""

from __future__ import annotations

import subprocess
from typing import Any

from tests.conftest import sh

TUPLE_KEYS = {"src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey", "packets", "bytes"}


def parse_line(line: str) -> dict[str, Any]:
    """One `conntrack -L -o extended,id` line: the trailing id= is the entry's id."""
    tok = line.split()
    assert tok[-1].startswith("id="), line
    ct_id = int(tok[-1][3:])
    fam, proto, timeout = tok[0], tok[2], int(tok[4])
    rest = tok[5:-1]
    state = None
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        state, rest = rest[0], rest[1:]
    orig: dict[str, str] = {}
    reply: dict[str, str] = {}
    flags: list[str] = []
    extra: dict[str, str] = {}
    for t in rest:
        if t.startswith("["):
            flags.append(t.strip("[]"))
            continue
        k, _, v = t.partition("=")
        if k in TUPLE_KEYS and not extra:
            cur = reply if k == "src" and "src" in orig or reply else orig
            cur[k] = v
        else:
            extra[k] = v
    return {"id": ct_id, "family": fam, "proto": proto, "protonum": int(tok[3]), "timeout": timeout, "state": state,
            "orig": orig, "reply": reply, "flags": flags, "extra": extra}


def conntrack_list(netns: str) -> list[dict[str, Any]]:
    out = []
    for fam in ("ipv4", "ipv6"):
        text = sh("conntrack", "-L", "-f", fam, "-o", "extended,id", netns=netns)
        out += [parse_line(line) for line in text.splitlines() if line.strip()]
    return out


def conntrack_count(netns: str) -> int:
    return int(sh("conntrack", "-C", netns=netns).strip())


def conntrack_stats(netns: str) -> dict[str, int]:
    """`conntrack -S` summed over CPUs."""
    total: dict[str, int] = {}
    for line in sh("conntrack", "-S", netns=netns).splitlines():
        for t in line.split()[1:]:
            k, _, v = t.partition("=")
            if v.isdigit():
                total[k] = total.get(k, 0) + int(v)
    return total


def run(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *args], capture_output=True, text=True)
