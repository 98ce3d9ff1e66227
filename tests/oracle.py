"""An independent reading of the kernel's table: `conntrack -L -o extended,id` parsed from text.

Deliberately shares no code with cttop's decoder: it is the oracle cttop is checked against.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from tests.conftest import sh

TUPLE_KEYS = {"src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey", "packets", "bytes"}


# `-o ktimestamp` prints "[start=Sun Nov 29 19:12:12 2026]" (local time, whole seconds), `-o labels` "labels=a,b".
_START = re.compile(r" \[start=([^\]]+)\]")
_STOP = re.compile(r" \[stop=[^\]]+\]")
_LABELS = re.compile(r" labels=(\S+)")


def parse_line(line: str) -> dict[str, Any]:
    """One `conntrack -L -o extended,id[,ktimestamp][,labels]` line: the trailing id= is the entry's id.

    "start" is whole seconds since the epoch (None without a timestamp), "labels" the label names (None if none).
    """
    start_m, labels_m = _START.search(line), _LABELS.search(line)
    start = int(time.mktime(time.strptime(start_m.group(1), "%a %b %d %H:%M:%S %Y"))) if start_m else None
    labels = labels_m.group(1).split(",") if labels_m else None
    line = _LABELS.sub("", _STOP.sub("", _START.sub("", line)))
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
            "orig": orig, "reply": reply, "flags": flags, "extra": extra, "start": start, "labels": labels}


def nat_kind(f: dict[str, Any]) -> str | None:
    """'snat', 'dnat', 'both' or None: which side of the reply tuple is not the original's mirror image.

    A rewritten source shows as the reply's destination address or port; a rewritten destination as its source.
    """
    o, r = f["orig"], f["reply"]
    snat = r["dst"] != o["src"] or r.get("dport") != o.get("sport")
    dnat = r["src"] != o["dst"] or r.get("sport") != o.get("dport")
    return {(True, True): "both", (True, False): "snat", (False, True): "dnat"}.get((snat, dnat))


def with_connlabels(conf_dir: str, *cmd: str) -> list[str]:
    """``cmd`` run where /etc/xtables/connlabel.conf is ``conf_dir``/xtables/connlabel.conf.

    conntrack-tools reads label names only from that fixed path; a read-only overlay on /etc in a private
    mount namespace supplies it without touching the host's /etc.
    """
    mount = f"mount -t overlay overlay -o lowerdir={conf_dir}:/etc /etc"
    return ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", *cmd]


def conntrack_list(netns: str, output: str = "extended,id", labels_conf: str | None = None) -> list[dict[str, Any]]:
    """Every entry of both families; ``labels_conf`` (see with_connlabels) lets `-o labels` name the labels."""
    out = []
    for fam in ("ipv4", "ipv6"):
        cmd = ["conntrack", "-L", "-f", fam, "-o", output]
        text = sh(*(with_connlabels(labels_conf, *cmd) if labels_conf else cmd), netns=netns)
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


def oracle_state(f: dict[str, Any]) -> str:
    if f["state"] is not None:
        return f["state"]
    if "UNREPLIED" in f["flags"]:
        return "UNREPLIED"
    return "ASSURED" if "ASSURED" in f["flags"] else "REPLIED"


def port(d: dict[str, str], k: str) -> int | None:
    return int(d[k]) if k in d else None


def assert_same_tuple(o: dict[str, Any], m: dict[str, Any]) -> None:
    """A flow as conntrack printed it (``o``) and as cttop gave it in JSON (``m``): family, protocol, state,
    both tuples, and the ICMP/GRE keys and zone where the flow has them."""
    assert m["family"] == o["family"]
    # conntrack says "unknown" for protocols it has no name for; cttop gives the number
    assert m["proto"] == (str(o["protonum"]) if o["proto"] == "unknown" else o["proto"])
    assert m["state"] == oracle_state(o), (o, m)
    assert m["src"] == o["orig"]["src"] and m["dst"] == o["orig"]["dst"]
    assert m["reply_src"] == o["reply"]["src"] and m["reply_dst"] == o["reply"]["dst"]
    assert m["sport"] == port(o["orig"], "sport") and m["dport"] == port(o["orig"], "dport")
    assert m["reply_sport"] == port(o["reply"], "sport") and m["reply_dport"] == port(o["reply"], "dport")
    if o["proto"] == "icmp":
        assert (m["icmp_type"], m["icmp_code"], m["icmp_id"]) == \
            (int(o["orig"]["type"]), int(o["orig"]["code"]), int(o["orig"]["id"]))
    if o["proto"] == "gre":
        assert (m["gre_srckey"], m["gre_dstkey"]) == (int(o["orig"]["srckey"], 16), int(o["orig"]["dstkey"], 16))
    assert m["zone"] == int(o["extra"].get("zone", 0))
