"""Names chosen to attack the terminal, on real kernel objects, for the terminal-safety tests.

A named namespace, two processes in it and a cgroup, all named with escape sequences (an OSC that
retitles the terminal, a colour, a C1 CSI, a bidi override, a newline that would forge a line, a byte
that is not UTF-8). Each process holds a real TCP connection that conntrack tracks. One is named with
``prctl(PR_SET_NAME)``, the other by its argv[0] (psutil reads the command line when the 15-byte comm is
full). Everything is removed on the way out, failed or not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import CLI, TRACK_RULES, add_netns, delete_netns, sh

OSC_TITLE = "\x1b]0;PWNED\x07"
RED = "\x1b[31m"
C1_CSI = "\x9b"
RLO = "\u202e"
NOT_UTF8 = os.fsdecode(b"\xff")  # how os.listdir and psutil hand over the byte 0xff
# What must never reach a terminal raw (newline aside, which the tests look for by line).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")

# 14 bytes (a comm holds 15): a short OSC title, a colour, and U+009B (CSI) in UTF-8.
COMM_OSC = "\x1b]0;PW\x07"
COMM_NAME = (COMM_OSC + RED + C1_CSI).encode()
# A full 15-byte comm, and an argv[0] that goes on from it: psutil names the process by argv[0].
ARGV_COMM = b"ht-hostile-argv"
ARGV0 = ARGV_COMM.decode() + OSC_TITLE + RED + RLO + "\nTOTAL 0"

HOLDER = r"""
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(bytes.fromhex(sys.argv[1]), os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET: join the namespace before opening any socket
    raise OSError(ctypes.get_errno(), "setns")
if libc.prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[2])), 0, 0, 0) != 0:  # PR_SET_NAME
    raise OSError(ctypes.get_errno(), "prctl")
port = int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
client = socket.create_connection(("127.0.0.1", port))
held = srv.accept()[0]
print("READY", flush=True)
time.sleep(600)
"""


@dataclass(frozen=True)
class Hostile:
    netns: str  # its name under /run/netns, escape sequences and all
    pids: tuple[int, int]  # the comm-named holder, the argv[0]-named holder
    ports: tuple[int, int]
    cgroup: str | None  # the cgroup (named like the rest) holding the lowest pid; None without cgroup v2

    @property
    def lowest(self) -> int:
        return min(self.pids)


def cgroup2_root() -> str | None:
    with open("/proc/self/mounts", "rb") as f:  # bytes: mount points (a hostile netns's) need not be UTF-8
        for line in f:
            dev, where, kind, *_ = line.split()
            if kind == b"cgroup2":
                return os.fsdecode(where)
    return None


def raw_name(pid: int) -> str:
    """What the kernel says a process is called, as psutil reads it: the comm, or argv[0] when the
    15-byte comm is full and argv[0]'s file name goes on from it."""
    with open(f"/proc/{pid}/comm", "rb") as f:
        comm = os.fsdecode(f.read().rstrip(b"\n"))
    if len(comm) < 15:
        return comm
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv0 = os.path.basename(os.fsdecode(f.read().split(b"\0")[0]))
    return argv0 if argv0.startswith(comm) else comm


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup", "rb") as f:
        unified = [line for line in f.read().split(b"\n") if line.startswith(b"0::")]
    return os.fsdecode(unified[0][3:])


def _start(netns: str, comm: bytes, port: int, argv0: str) -> subprocess.Popen[str]:
    path = os.fsencode(f"/run/netns/{netns}").hex()
    proc = subprocess.Popen([argv0, "-c", HOLDER, path, comm.hex(), str(port)], executable=sys.executable,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the holder on port {port} did not start")
    return proc


@contextmanager
def hostile_namespace() -> Iterator[Hostile]:
    name = f"cttop-test-{uuid.uuid4().hex[:8]}-{OSC_TITLE}{RED}{C1_CSI}{RLO}\nTOTAL{NOT_UTF8}"
    procs: list[subprocess.Popen[str]] = []
    cgroup = None
    root = cgroup2_root()
    add_netns(name)
    try:
        sh("ip", "link", "set", "lo", "up", netns=name)
        sh("nft", TRACK_RULES, netns=name)
        ports = (7301, 7302)
        procs.append(_start(name, COMM_NAME, ports[0], sys.executable))
        procs.append(_start(name, ARGV_COMM, ports[1], ARGV0))
        pids = (procs[0].pid, procs[1].pid)
        if root is not None:
            cgroup = os.path.join(root, f"ht-{uuid.uuid4().hex[:6]}-{RED}evil{RLO}{NOT_UTF8}.scope")
            os.mkdir(cgroup)
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(min(pids)))
        yield Hostile(name, pids, ports, cgroup)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        try:
            if cgroup is not None:
                os.rmdir(cgroup)  # empty once its one process is gone
        finally:
            delete_netns(name)


HOSTILE_USER = "root\x1b]0;USER\x07\x1b[31m"
HOSTILE_SUMMARY = "set it\x1b[2J\x9b\u202e\nforged line"


def forge_journal(state: Path, netns: str) -> str:
    """A real change, then its record edited as someone with write access to the file could."""
    r = subprocess.run([*CLI, "set", "nf_conntrack_tcp_timeout_established=4321", "--netns", netns, "--yes",
                        "--state-dir", str(state)], capture_output=True, stdin=subprocess.DEVNULL, check=False)
    assert r.returncode == 0, r.stderr
    path = state / "journal.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # The change's own record (its intent); the line completing it only names its id.
    [change] = [r for r in recs if "kind" in r]
    assert change["netns"] == netns
    change.update(user=HOSTILE_USER, summary=HOSTILE_SUMMARY, description=HOSTILE_SUMMARY)
    for r in recs:
        if r.get("completes") == change["id"]:
            r["summary"] = HOSTILE_SUMMARY  # the summary in force is the completion's
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(change["id"])


@contextmanager
def held_in(root: str, path: str) -> Iterator[int]:
    """A process in a network namespace of its own, placed in cgroup ``path`` (made here) under ``root``."""
    parts = path.split("/")
    made: list[str] = []
    proc = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    try:
        for i in range(1, len(parts) + 1):
            d = os.path.join(root, *parts[:i])
            if not os.path.isdir(d):
                os.mkdir(d)
                made.append(d)
        with open(os.path.join(root, path, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        for d in reversed(made):
            os.rmdir(d)  # empty once its process is gone
