"""`cttop expect` against `conntrack -L expect`, and a flow's helper against `conntrack -L`, on real FTP helper flows.

A namespace attaches the built-in FTP helper to TCP port 21 (and 2121, whose flows are put in conntrack
zone 7) with an nft ``ct helper`` object; a tiny FTP server answers PASV/EPSV, and clients holding their
control flows open make one expectation each: IPv4 PASV, IPv6 EPSV, and IPv4 in a zone.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cttop.kernel.ctnetlink import Ctnetlink, KernelError
from cttop.kernel.netns import NetnsSpec
from cttop.model import R_ID, R_SPORT
from tests.conftest import delete_netns, make_netns, run_cttop, sh
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

# The helper is attached in the output hook: on loopback the flow is made (and confirmed) on the way out,
# and a helper can only be set on an unconfirmed flow. Flows to or from port 2121 go to zone 7 first (raw).
HELPER_RULES = """
table inet hx {
    ct helper ftp-std { type "ftp" protocol tcp; }
    chain raw { type filter hook output priority -300; tcp dport 2121 ct zone set 7; tcp sport 2121 ct zone set 7; }
    chain out { type filter hook output priority 0; tcp dport { 21, 2121 } ct helper set "ftp-std"; }
}
"""
CLIENTS = (("127.0.0.1", "21", "pasv"), ("::1", "21", "epsv"), ("127.0.0.1", "2121", "pasv"))


def _hold(ns: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.ftp_helper", *args],
                            stdout=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def ftp_ns() -> Iterator[str]:
    ns = make_netns()
    procs: list[subprocess.Popen[str]] = []
    try:
        sh("nft", "-f", "-", netns=ns, input=HELPER_RULES)
        procs.append(_hold(ns, "server", "127.0.0.1:21", "[::1]:21", "127.0.0.1:2121"))
        assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == "READY"
        for host, port, verb in CLIENTS:
            procs.append(_hold(ns, "client", host, port, verb))
            reply = procs[-1].stdout.readline() if procs[-1].stdout else ""
            assert reply.startswith("227" if verb == "pasv" else "229"), reply
        yield ns
    finally:
        for p in procs:
            p.kill()
            p.wait()
        delete_netns(ns)


def parse_expect(line: str) -> dict[str, Any]:
    """One `conntrack -L expect` line: timeout, proto, then the expected tuple, the mask and the master's.

    The three tuples share the key names sport/dport, so each src-like key says which tuple follows.
    """
    tok = line.split()
    out: dict[str, Any] = {"timeout": int(tok[0]), "expected": {}, "mask": {}, "master": {}, "flags": [],
                           "zone": None, "class": None, "helper": None}
    cur = out["expected"]
    for t in tok[1:]:
        k, eq, v = t.partition("=")
        if not eq:
            out["flags"] = t.split(",")
        elif k == "proto":
            out["proto"] = int(v)
        elif k in ("src", "mask-src", "master-src"):
            cur = out[{"src": "expected", "mask-src": "mask", "master-src": "master"}[k]]
            cur["src"] = v
        elif k in ("dst", "mask-dst", "master-dst"):
            cur["dst"] = v
        elif k in ("sport", "dport"):
            cur[k] = int(v)
        elif k in ("zone", "class"):
            out[k] = int(v)
        elif k == "helper":
            out["helper"] = v
    return out


def conntrack_expect(ns: str) -> list[str]:
    lines = []
    for fam in ("ipv4", "ipv6"):
        lines += [ln for ln in sh("conntrack", "-L", "expect", "-f", fam, netns=ns).splitlines() if ln.strip()]
    return lines


def test_expectations_equal_conntrack_field_by_field(ftp_ns: str) -> None:
    before = [parse_expect(ln) for ln in conntrack_expect(ftp_ns)]
    r = run_cttop("expect", "--netns", ftp_ns, "--json")
    after = [parse_expect(ln) for ln in conntrack_expect(ftp_ns)]
    assert r.returncode == 0, r.stderr
    mine = json.loads(r.stdout)
    assert len(before) == len(after) == len(mine) == len(CLIENTS)  # one per client, none lost or invented
    key = lambda e: (e["master"]["src"], e["master"]["sport"])
    for o, a, m in zip(sorted(before, key=key), sorted(after, key=key), sorted(mine, key=key)):
        for part in ("expected", "mask", "master"):
            assert m[part] == o[part], (part, o, m)
        assert m["proto"] == "tcp" and o["proto"] == 6
        assert m["family"] == ("ipv6" if ":" in o["master"]["src"] else "ipv4")
        assert m["helper"] == o["helper"] == "ftp"
        assert m["class"] == o["class"]
        assert m["flags"] == o["flags"]
        assert m["zone"] == o["zone"]
        assert a["timeout"] <= m["timeout"] <= o["timeout"]  # it only counts down
    # the expected data connection goes to the port the server named, from any client port (a 0 mask)
    assert all(m["mask"]["sport"] == 0 and m["mask"]["dport"] == 65535 for m in mine)
    # a master in zone 7 still makes its expectation (the kernel does not say the zone: both print none)
    assert any(m["master"]["dport"] == 2121 for m in mine)
    assert {m["family"] for m in mine} == {"ipv4", "ipv6"}


def test_text_is_conntracks_layout(ftp_ns: str) -> None:
    r = run_cttop("expect", "--netns", ftp_ns)
    assert r.returncode == 0, r.stderr
    theirs = conntrack_expect(ftp_ns)
    drop_timeout = lambda lines: sorted(ln.split(" ", 1)[1] for ln in lines)
    assert drop_timeout(r.stdout.splitlines()) == drop_timeout(theirs)
    assert len(theirs) == len(CLIENTS)
    assert r.stderr.strip() == f"cttop: {len(theirs)} expectations have been shown."


def test_empty_table_and_bad_namespace(netns: str) -> None:
    r = run_cttop("expect", "--netns", netns, "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [] == conntrack_expect(netns)
    r = run_cttop("expect", "--netns", "no-such-ns-here")
    assert r.returncode == 2 and "no such network namespace" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_a_flows_helper_as_conntrack_shows_it(ftp_ns: str) -> None:
    plain = ["-p", "udp", "-s", "10.3.0.1", "-d", "10.3.0.2", "--sport", "5", "--dport", "6"]
    sh("conntrack", "-I", *plain, "-t", "300", netns=ftp_ns)  # a flow no helper watches
    try:
        _check_helpers(ftp_ns)
    finally:
        sh("conntrack", "-D", *plain, netns=ftp_ns)


def _check_helpers(ftp_ns: str) -> None:
    with Ctnetlink(NetnsSpec(name=ftp_ns)) as ct:
        rows = ct.dump()
        helpers = {r[R_ID]: ct.helper_of(r) for r in rows}
        theirs = {f["id"]: f["extra"].get("helper") for f in conntrack_list(ftp_ns)}
        assert helpers == theirs
        assert sorted(h for h in helpers.values() if h) == ["ftp"] * len(CLIENTS)  # the control flows
        assert list(helpers.values()).count(None) == 1  # and the plain one
        # the server's data listener made no flow; an entry the kernel no longer has is said so
        gone = rows[0][:R_SPORT] + (1,) + rows[0][R_SPORT + 1:]
        with pytest.raises(KernelError) as err:
            ct.helper_of(gone)
        assert err.value.code == errno.ENOENT
