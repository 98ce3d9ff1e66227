"""Undo of forged journal records, generated: it never writes outside cttop's own files, and never runs a
command that is not derived from a record that passed its schema.

The kernel is a dict, nft and iptables are recorded instead of run, and every
call that writes a file (os.open with write flags, rename, unlink, chmod...) is
audited by the path it resolves to. Records are valid ones with 0-3 hostile
mutations: paths of other files, cron lines as keys, lines injected in values,
nft text in expressions and backends, bad types, other namespaces.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cttop.actions import shell
from cttop.actions.journal import Journal, Record
from cttop.actions.notrack.match import alternatives_matches, iptables_matches, nft_match
from cttop.actions.persist import PersistPaths
from cttop.actions.undo import undo_plan
from cttop.errors import CttopError
from cttop.filter import compile_filter
from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsSpec

UDP, EST = "nf_conntrack_udp_timeout", "nf_conntrack_tcp_timeout_established"
KERNEL = {UDP: "30", EST: "432000", "nf_conntrack_max": "262144", "hashsize": "65536",
          "nf_conntrack_buckets": "65536", "nf_conntrack_count": "0"}
IDS = ["aaaa0001", "bbbb0002", "cccc0003"]
OWN_INODE = os.stat("/proc/thread-self/ns/net").st_ino
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# Placeholders for paths, filled in per example (each gets its own directories).
ETC_SYSCTL, ETC_MODPROBE, ETC_NFT = "@etc/sysctl.d/90-cttop.conf", "@etc/modprobe.d/cttop.conf", "@etc/nftables.d/cttop.nft"
HOSTILE_PATHS = ["@victim/crontab", "@victim/secret", "@victim/sysctl.d/90-cttop.conf", "@victim/nftables.d/cttop.nft",
                 "@etc/sysctl.d/../../victim/crontab", "relative/sysctl.d/90-cttop.conf", "@state/journal.jsonl",
                 "@etc/sysctl.d/90-cttop.conf\n/etc/passwd", "/etc/passwd"]
HOSTILE_KEYS = ["* * * * * root touch /tmp/hj-pwned #", "kernel.core_pattern", "net.netfilter.nf_conntrack_buckets",
                "net.netfilter.nf_conntrack_udp_timeout\nkernel.core_pattern", "nf_conntrack_udp_timeout", ""]
HOSTILE_NAMES = ["../../../kernel/core_pattern", "kernel.core_pattern", "nf_conntrack_buckets", "nf_conntrack_count",
                 f"{UDP}\n", "", "nf_conntrack_bogus"]
HOSTILE_VALUES: list[Any] = ["-1", "1_0", " 30", "30\nkernel.core_pattern = |/tmp/hj-pwned", "abc", "2147483648",
                             "99999999999999999999", 30, None, ["30"], "\x1b]0;x\x07"]
EXPRS = ["udp dport 53", "src 10.0.0.1 and tcp dport 80", "udp dport 53 or tcp dport 80", "host 10.9.0.0/16",
         "mark 0x10/0xff and udp"]
HOSTILE_EXPRS: list[Any] = ["udp dport 53 notrack\nadd table inet hjevil", 'udp dport 53 comment "x"; add table inet e',
                            "tcp dport 22 } ; chain x { policy drop", "state established", "not udp", "", None, 5,
                            "\x1b[31mudp dport 53", "udp dport 53 " * 400]
HOSTILE_BACKENDS: list[Any] = ["nft -f /tmp/hj-evil", "ip6tables", "", None, 1]
SAFE_NFT = re.compile(r'(add table inet cttop|delete table inet cttop'
                      r'|add chain inet cttop (pre \{ type filter hook prerouting|out \{ type filter hook output)'
                      r' priority raw; \}'
                      r'|delete rule inet cttop (pre|out) handle [0-9]+'
                      r'|add rule inet cttop (pre|out) [a-z0-9 .:/{},&=-]+ notrack comment "cttop:[0-9a-f]{8}")')
SAFE_IPT = re.compile(r'(\*raw|COMMIT|-[ID] (PREROUTING|OUTPUT) [a-z0-9 .:/-]+ -m comment --comment cttop:[0-9a-f]{8}'
                      r' -j CT --notrack)')
NFT_FILE_FRAME = re.compile(r"#.*|table inet cttop( \{)?|delete table inet cttop|\tchain (pre|out) \{"
                            r"|\t\ttype filter hook (prerouting|output) priority raw; policy accept;|\t\}|\}")
SAFE_CONF = re.compile(r"(# Written by cttop; it edits only the (lines of the keys|options) it sets\."
                       r"|net\.netfilter\.nf_conntrack_[a-z0-9_]+ = [0-9]+|options nf_conntrack( [a-z_]+=[0-9]+)+)")
# Ids, paths and numbers, left out of the refusals counted in the statistics.
VARYING = re.compile(r"[0-9a-f]{8}|/tmp/\S+|\d+")
READ_COMMANDS = {("nft", "-a", "list", "table", "inet", "cttop"), ("nft", "list", "table", "inet", "cttop"),
                 ("iptables-save", "-t", "raw"), ("ip6tables-save", "-t", "raw")}
WRITE_COMMANDS = {("nft", "-f", "-"), ("iptables-restore", "--noflush"), ("ip6tables-restore", "--noflush")}


# --- records ---------------------------------------------------------------------------------------

def key_of(name: str) -> str:
    return name if name == "hashsize" else f"net.netfilter.{name}"


@st.composite
def sysctl_record(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from([UDP, EST, "nf_conntrack_max"]), min_size=1, max_size=3, unique=True))
    before = {n: draw(st.sampled_from(["30", "7", "432000", "262144"])) for n in names}
    after = {n: draw(st.sampled_from(["10", "30", "7200"])) for n in names}
    rec: dict[str, Any] = {"kind": "sysctl", "before": {"values": before}, "after": {"values": after}}
    if draw(st.booleans()):
        # cttop's file, or a file of the same name elsewhere (sound, but not a file cttop writes here).
        path = draw(st.sampled_from([ETC_SYSCTL, ETC_SYSCTL, "@victim/sysctl.d/90-cttop.conf"]))
        keys = {key_of(n): draw(st.sampled_from([None, "30", "99"])) for n in names}
        rec["before"]["persist"] = {path: keys}
        rec["after"]["persist"] = {path: {k: "10" for k in keys}}
    return rec


@st.composite
def notrack_record(draw: st.DrawFn) -> dict[str, Any]:
    nft_file = draw(st.sampled_from([ETC_NFT, ETC_NFT, "@victim/nftables.d/cttop.nft"]))
    persist = {"persist_file": nft_file} if draw(st.booleans()) else {}
    if draw(st.booleans()):
        return {"kind": "notrack-add", "after": {"expr": draw(st.sampled_from(EXPRS)),
                                                 "backend": draw(st.sampled_from(["nft", "iptables"])), **persist}}
    groups = [{"id": draw(st.sampled_from(IDS)), "expr": draw(st.sampled_from(EXPRS)),
               "backend": draw(st.sampled_from(["nft", "iptables"]))} for _ in range(draw(st.integers(1, 3)))]
    return {"kind": "notrack-remove", "before": {"groups": groups, **persist}, "after": {"removed": 4}}


def _set(path: list[Any]) -> Callable[[dict[str, Any], Any], None]:
    """A mutation that puts a value at ``path`` (keys; '*' is the first existing key there)."""
    def put(rec: dict[str, Any], value: Any) -> None:
        node = rec
        for k in path[:-1]:
            k = next(iter(node), "x") if k == "*" and isinstance(node, dict) else k
            node = node.setdefault(k, {}) if isinstance(node, dict) else node
            if not isinstance(node, dict):
                return
        last = next(iter(node), "x") if path[-1] == "*" else path[-1]
        node[last] = value
    return put


def _rename(path: list[str], new: Any) -> Callable[[dict[str, Any], Any], None]:
    """A mutation that moves the first entry of the mapping at ``path`` to a hostile key."""
    def move(rec: dict[str, Any], value: Any) -> None:
        node: Any = rec
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and node:
            node[new] = node.pop(next(iter(node)))
    return move


def _group(name: str) -> Callable[[dict[str, Any], Any], None]:
    """A mutation of one field of a removal's first rule group."""
    def put(rec: dict[str, Any], value: Any) -> None:
        before = rec.get("before")
        groups = before.get("groups") if isinstance(before, dict) else None
        if isinstance(groups, list) and groups and isinstance(groups[0], dict):
            groups[0][name] = value
    return put


MUTATIONS: list[tuple[Callable[[dict[str, Any], Any], None], st.SearchStrategy[Any]]] = [
    (_set(["before", "values", "*"]), st.sampled_from(HOSTILE_VALUES)),
    (_set(["before", "values", "nf_conntrack_buckets"]), st.sampled_from(["1024", "30"])),
    (_set(["after", "values", "*"]), st.sampled_from(HOSTILE_VALUES)),
    (_set(["before", "persist", ETC_SYSCTL, "*"]), st.sampled_from(HOSTILE_VALUES)),
    *[(_rename(["before", "values"], n), st.none()) for n in HOSTILE_NAMES],
    *[(_rename(["before", "persist"], p), st.none()) for p in HOSTILE_PATHS],
    *[(_rename(["before", "persist", ETC_SYSCTL], k), st.none()) for k in HOSTILE_KEYS],
    (_set(["before", "persist"]), st.sampled_from([[], "x", {ETC_SYSCTL: "30"}])),
    (_set(["after", "expr"]), st.sampled_from(HOSTILE_EXPRS)),
    (_set(["after", "backend"]), st.sampled_from(HOSTILE_BACKENDS)),
    (_set(["after", "persist_file"]), st.sampled_from(HOSTILE_PATHS)),
    (_set(["before", "persist_file"]), st.sampled_from(HOSTILE_PATHS)),
    (_set(["before", "groups"]), st.sampled_from([[], "udp", [{"id": "aaaa0001"}], [[1]]])),
    (_group("expr"), st.sampled_from(HOSTILE_EXPRS)),
    (_group("backend"), st.sampled_from(HOSTILE_BACKENDS)),
    (_group("id"), st.sampled_from(["x; add table inet e", "AAAA0001", 7])),
    (_set(["before", "rules"]), st.just([{"id": "aaaa0001", "backend": "nft", "chain": "pre",
                                          "rule": "accept\nadd table inet hjevil", "handle": None}])),
    (_set(["kind"]), st.sampled_from(["sysctl", "notrack-add", "notrack-remove", "flush", "shell", "", 5])),
    (_set(["undoable"]), st.sampled_from([False, 1, "yes"])),
    (_set(["undoes"]), st.sampled_from(IDS + ["zz", 5])),
    (_set(["id"]), st.sampled_from(["AAAA0001", "aaaa000", "aaaa0001\n", "../x", 7])),
    (_set(["netns_inode"]), st.sampled_from([OWN_INODE + 1, -1, "1", True])),
    (_set(["commands"]), st.sampled_from([["\x1b]0;pwned\x07"], "rm -rf /", [1]])),
    (_set(["time"]), st.sampled_from([float("inf"), 1e300, -5, "now"])),
]


@st.composite
def forged_record(draw: st.DrawFn) -> dict[str, Any]:
    rec = draw(st.one_of(sysctl_record(), notrack_record()))
    rec |= {"id": draw(st.sampled_from(IDS)), "description": "d", "commands": ["c"], "netns": "own",
            "netns_inode": OWN_INODE, "undoable": True, "time": 1.7e9, "uid": 0, "user": "root", "state": "intent"}
    for mutate, values in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        mutate(rec, draw(values))
    return rec


# --- the world the undo runs in ------------------------------------------------------------------

@dataclass
class World:
    root: Path
    kernel: dict[str, str] = field(default_factory=lambda: dict(KERNEL))
    live: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # id -> (chain, rule, handle)
    sysctl_writes: list[tuple[str, str]] = field(default_factory=list)
    commands: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)
    file_writes: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def paths(self) -> PersistPaths:
        return PersistPaths.under(str(self.root / "etc"))

    def fill(self, v: Any) -> Any:
        """The record with its path placeholders made real."""
        if isinstance(v, str):
            return v.replace("@", f"{self.root}/", 1) if v.startswith("@") else v
        if isinstance(v, dict):
            return {self.fill(k): self.fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.fill(x) for x in v]
        return v

    def allowed(self, path: str) -> bool:
        mine = {str(self.state), str(self.state / "journal.jsonl"), str(self.state / "journal.lock")}
        for f in (self.paths.sysctl_file, self.paths.modprobe_file, self.paths.nft_file):
            d, name = os.path.split(f)
            mine |= {f, d, os.path.dirname(d)}
            if re.fullmatch(re.escape(f"{d}/.{name}.cttop-") + "[0-9a-f]{8}", path):
                return True
        return path in mine

    def listing(self, handles: bool) -> str:
        chains = {"pre": "prerouting", "out": "output"}
        out = ["table inet cttop {"]
        for chain, hook in chains.items():
            out += [f"\tchain {chain} {{", f"\t\ttype filter hook {hook} priority raw; policy accept;"]
            out += [f"\t\t{rule}" + (f" # handle {h}" if handles else "")
                    for rules in self.live.values() for c, rule, h in rules if c == chain]
            out.append("\t}")
        return "\n".join([*out, "}"]) + "\n"


def _resolved(path: Any, dir_fd: int | None = None) -> str:
    p = os.fsdecode(path) if not isinstance(path, int) else os.readlink(f"/proc/self/fd/{path}")
    if dir_fd is not None and not os.path.isabs(p):
        p = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), p)
    return os.path.normpath(os.path.abspath(p))


@contextmanager
def world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="hj-forged-"))
    try:
        w = World(root)
        w.state.mkdir(mode=0o700)
        (root / "etc" / "sysctl.d").mkdir(parents=True)
        (root / "etc" / "sysctl.d" / "90-cttop.conf").write_text("net.core.somaxconn = 1024\n"
                                                                 "net.netfilter.nf_conntrack_udp_timeout = 10\n")
        (root / "victim" / "sysctl.d").mkdir(parents=True)
        for name, text in (("crontab", "# m h dom mon dow user command\n"), ("secret", "root:x\n"),
                           ("sysctl.d/90-cttop.conf", "vm.swappiness = 10\n")):
            (root / "victim" / name).write_text(text)
        (root / "victim" / "secret").chmod(0o600)
        yield w
    finally:
        shutil.rmtree(root)


@contextmanager
def audited(w: World) -> Iterator[None]:
    """Record every file write (by resolved path), sysctl write and command; refuse real processes."""
    real = {name: getattr(os, name) for name in ("open", "rename", "replace", "unlink", "remove", "mkdir", "rmdir",
                                                 "chmod", "fchmod", "chown", "fchown", "truncate", "ftruncate",
                                                 "symlink", "link")}
    real_open = builtins.open

    def note(op: str, path: str) -> None:
        w.file_writes.append((op, path))
        if not w.allowed(path):
            w.violations.append(f"{op} {path}")

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if flags & WRITE_FLAGS:
            note("open", _resolved(path, dir_fd))
        return real["open"](path, flags, mode, dir_fd=dir_fd)

    def two(name: str) -> Callable[..., Any]:
        def call(src: Any, dst: Any, *a: Any, src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
                 **k: Any) -> Any:
            note(name, _resolved(src, src_dir_fd))
            note(name, _resolved(dst, dst_dir_fd))
            return real[name](src, dst, *a, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, **k)
        return call

    def one(name: str) -> Callable[..., Any]:
        def call(path: Any, *a: Any, dir_fd: int | None = None, **k: Any) -> Any:
            note(name, _resolved(path, dir_fd))
            return real[name](path, *a, **({"dir_fd": dir_fd} if dir_fd is not None else {}), **k)
        return call

    def fd_call(name: str) -> Callable[..., Any]:
        def call(fd: int, *a: Any) -> Any:
            note(name, _resolved(fd))
            return real[name](fd, *a)
        return call

    def builtin_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        if any(c in mode for c in "wax+") and not isinstance(file, int):
            note("builtins.open", _resolved(file))
        return real_open(file, mode, *a, **k)

    def run(spec: NetnsSpec, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        w.commands.append((tuple(argv), stdin))
        out = w.listing("-a" in argv) if tuple(argv[:2]) in (("nft", "-a"), ("nft", "list")) and w.live else ""
        err = "" if out or argv[0] != "nft" or "-f" in argv else "Error: No such file or directory"
        return subprocess.CompletedProcess(argv, 0 if out or not err else 1, out, err)

    def no_process(*a: Any, **k: Any) -> Any:
        w.violations.append(f"a process: {a[0] if a else k}")
        raise OSError("no processes here")

    def write(spec: NetnsSpec, name: str, value: str) -> None:
        w.sysctl_writes.append((name, value))
        w.kernel[name] = value

    def read(spec: NetnsSpec | None = None, names: list[str] | None = None) -> dict[str, str]:
        return {n: w.kernel[n] for n in (names if names is not None else list(w.kernel)) if n in w.kernel}

    with ExitStack() as stack:
        for name in ("rename", "replace"):
            stack.enter_context(mock.patch.object(os, name, two(name)))
        for name in ("unlink", "remove", "mkdir", "rmdir", "chmod", "chown", "truncate"):
            stack.enter_context(mock.patch.object(os, name, one(name)))
        for name in ("fchmod", "fchown", "ftruncate"):
            stack.enter_context(mock.patch.object(os, name, fd_call(name)))
        for name in ("symlink", "link"):
            stack.enter_context(mock.patch.object(os, name, two(name)))
        stack.enter_context(mock.patch.object(os, "open", os_open))
        stack.enter_context(mock.patch.object(builtins, "open", builtin_open))
        stack.enter_context(mock.patch.object(shell, "run", run))
        stack.enter_context(mock.patch.object(shell, "have", lambda tool: True))
        stack.enter_context(mock.patch.object(subprocess, "Popen", no_process))
        stack.enter_context(mock.patch.object(sysctl, "read", read))
        stack.enter_context(mock.patch.object(sysctl, "write", write))
        stack.enter_context(mock.patch.object(sysctl, "writable", lambda spec, name: (True, "")))
        yield


# --- what may be derived from a sound record ------------------------------------------------------------

def derived_rule_lines(change_id: str, expr: str, backend: str) -> set[str]:
    """The rule lines a NOTRACK change of ``expr`` is made of, from the filter grammar (not from undo)."""
    out: set[str] = set()
    tag = f"cttop:{change_id}"
    for m in alternatives_matches(compile_filter(expr).ast):
        if backend == "nft":
            out |= {f'add rule inet cttop {c} {nft_match(m)} notrack comment "{tag}"' for c in ("pre", "out")}
        else:
            for _, args in iptables_matches(m):
                text = shlex.join([*args, "-m", "comment", "--comment", tag, "-j", "CT", "--notrack"])
                out |= {f"-I {c} {text}" for c in ("PREROUTING", "OUTPUT")}
    return out


def allowed_script_lines(rec: Record, w: World) -> set[str]:
    fixed = {"add table inet cttop", "delete table inet cttop", "*raw", "COMMIT",
             "add chain inet cttop pre { type filter hook prerouting priority raw; }",
             "add chain inet cttop out { type filter hook output priority raw; }"}
    live = {f"delete rule inet cttop {c} handle {h}" for i, rules in w.live.items() if i == rec.id
            for c, _, h in rules}
    if rec.kind == "notrack-remove":
        return fixed | {line for g in rec.before["groups"] for line in
                        derived_rule_lines(g["id"], g["expr"], g["backend"])}
    if rec.kind == "notrack-add":
        return fixed | live
    return set()


def check_effects(w: World, rec: Record | None, initial_confs: dict[str, str]) -> None:
    assert w.violations == [], w.violations
    writes = [c for c in w.commands if tuple(c[0]) not in READ_COMMANDS]
    assert all(tuple(argv) in WRITE_COMMANDS for argv, _ in writes), writes
    sound = rec is not None and rec.damaged is None and rec.undo_refusal() is None and rec.netns_inode == OWN_INODE
    if not sound:
        # Refused before anything: not a sysctl, not a command that writes, not a file (not even the journal).
        assert (w.sysctl_writes, writes, w.file_writes) == ([], [], []), (rec, w.sysctl_writes, writes)
        return
    assert rec is not None
    for name, value in w.sysctl_writes:
        assert rec.kind == "sysctl" and name in rec.before["values"], (name, rec)
        assert value in (str(int(rec.before["values"][name])), KERNEL[name]), (name, value)
    lines = allowed_script_lines(rec, w)
    for _, script in writes:
        for line in (script or "").splitlines():
            assert line in lines, (line, rec)
            assert SAFE_NFT.fullmatch(line) or SAFE_IPT.fullmatch(line), line
    for path, before in initial_confs.items():
        now = Path(path).read_text() if Path(path).exists() else ""
        new = set(now.splitlines()) - set(before.splitlines())
        if path == w.paths.nft_file:
            # The nft file holds the rules of sound additions, derived from their expressions (nft_file_text):
            # never the table as listed, nor text from a record.
            derived = {f'\t\t{nft_match(m)} notrack comment "cttop:{x.id}"' for x in Journal(str(w.state)).records()
                       if x.kind == "notrack-add" and x.undoes is None and x.damaged is None
                       for m in alternatives_matches(compile_filter(x.after["expr"]).ast)}
            assert all(line in derived or NFT_FILE_FRAME.fullmatch(line) for line in new), new
        else:
            assert all(SAFE_CONF.fullmatch(line) for line in new), (path, new)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(forged=forged_record(), complete=st.booleans(), force=st.booleans(), by_id=st.booleans(),
       live=st.sets(st.sampled_from(IDS)))
def test_undo_of_forged_records_writes_only_cttops_files_and_runs_only_derived_commands(
        forged: dict[str, Any], complete: bool, force: bool, by_id: bool, live: set[str]) -> None:
    with world() as w:
        rec_line = w.fill(forged)
        with open(w.state / "journal.jsonl", "w") as f:
            f.write(json.dumps(rec_line) + "\n")
            if complete and isinstance(rec_line.get("after"), dict):
                f.write(json.dumps({"completes": rec_line.get("id"), "after": rec_line["after"], "summary": "s",
                                    "count": 1}) + "\n")
        handle = iter(range(10, 1000))
        for i in live:
            w.live[i] = [(c, f'udp dport 53 notrack comment "cttop:{i}"', next(handle)) for c in ("pre", "out")]
        recs = Journal(str(w.state)).records()
        rec = recs[0] if recs else None
        victims = {p: (p.stat().st_mode, p.read_bytes()) for p in (w.root / "victim").rglob("*") if p.is_file()}
        confs = {f: Path(f).read_text() if Path(f).exists() else ""
                 for f in (w.paths.sysctl_file, w.paths.modprobe_file, w.paths.nft_file)}
        ident = rec_line.get("id") if by_id and isinstance(rec_line.get("id"), str) else None
        with audited(w):
            try:
                undo_plan(NetnsSpec(), ident, Journal(str(w.state)), persist=w.paths, force=force).apply()
                event("undone")  # --hypothesis-show-statistics: how often a forged record got this far
            except CttopError as e:
                event("refused: " + VARYING.sub("_", str(e))[:50])
        check_effects(w, rec, confs)
        assert victims == {p: (p.stat().st_mode, p.read_bytes()) for p in victims}
        assert sorted(p.name for p in (w.root / "victim").rglob("*")) == sorted(
            ["crontab", "secret", "sysctl.d", "90-cttop.conf"])
        assert not os.path.exists("/tmp/hj-pwned")
