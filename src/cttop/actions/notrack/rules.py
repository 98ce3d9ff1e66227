"""cttop's NOTRACK rules in a namespace's ruleset: listed from the kernel, built from matches, changed in one
transaction per backend (``nft -f``, ``iptables-restore --noflush``), and shown as the shell commands that do the
same. Nothing here reads the journal: which change made a rule is its comment, ``cttop:<change id>``."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from cttop.actions import shell
from cttop.actions.errors import ActionError
from cttop.actions.notrack.match import Match, alternatives_matches, iptables_matches, nft_match
from cttop.filter import compile_filter
from cttop.kernel.netns import NetnsSpec

TABLE = "cttop"
NFT_TABLE = f"inet {TABLE}"
# chain name -> hook
NFT_CHAINS = {"pre": "prerouting", "out": "output"}
IPT_CHAINS = ("PREROUTING", "OUTPUT")
IPT_PROGS = ("iptables", "ip6tables")
TAG = "cttop:"
# What AddNotrack(backend=...) takes: iptables also means ip6tables.
BACKENDS = ("nft", "iptables")

# Change ids are eight hex digits (journal.new_id); another comment is not cttop's.
_TAG_RE = re.compile(r'comment "?cttop:([0-9a-f]{8})"?(\s|$)')
_HANDLE_RE = re.compile(r"\s+# handle (\d+)$")


@dataclass(frozen=True)
class NotrackRule:
    """One rule: as the backend lists it (``rule`` then is its text, to remove it by), or as cttop derives it."""

    id: str  # the change that added it (from its comment)
    backend: str  # "nft", "iptables" or "ip6tables"
    chain: str
    rule: str
    handle: int | None = None  # nft only

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def tag(change_id: str) -> str:
    return TAG + change_id


def pick_backend() -> str:
    if shell.have("nft"):
        return "nft"
    if shell.have("iptables-restore"):
        return "iptables"
    raise ActionError("NOTRACK needs nft or iptables, and neither is installed")


def nft_rules(spec: NetnsSpec) -> list[NotrackRule]:
    r = shell.run(spec, ["nft", "-a", "list", "table", "inet", TABLE])
    if r.returncode != 0:
        # No table means no rules; anything else is a real failure.
        if "No such file or directory" in r.stderr:
            return []
        raise ActionError(f"nft list table {NFT_TABLE}: {shell.first_line(r.stderr)}")
    out: list[NotrackRule] = []
    chain = None
    for line in r.stdout.splitlines():
        s = line.strip()
        m = re.match(r"chain (\S+) \{", s)
        if m:
            chain = m.group(1)
            continue
        h = _HANDLE_RE.search(line)
        t = _TAG_RE.search(s)
        if chain in NFT_CHAINS and h and t and not s.startswith(("type ", "table ", "chain ")):
            out.append(NotrackRule(t.group(1), "nft", chain, _HANDLE_RE.sub("", line).strip(), int(h.group(1))))
    return out


def _ipt_rules(spec: NetnsSpec, prog: str) -> list[NotrackRule]:
    if not shell.have(f"{prog}-save"):
        return []
    r = shell.run(spec, [f"{prog}-save", "-t", "raw"])
    if r.returncode != 0:
        return []
    out: list[NotrackRule] = []
    for line in r.stdout.splitlines():
        t = _TAG_RE.search(line)
        parts = line.split(None, 2)
        if t and len(parts) == 3 and parts[0] == "-A" and parts[1] in IPT_CHAINS:
            out.append(NotrackRule(t.group(1), prog, parts[1], parts[2]))
    return out


def list_rules(spec: NetnsSpec = NetnsSpec()) -> list[NotrackRule]:
    """Every cttop NOTRACK rule in the namespace, from the kernel (nft table and iptables raw table)."""
    out = nft_rules(spec) if shell.have("nft") else []
    for prog in IPT_PROGS:
        out += _ipt_rules(spec, prog)
    return out


def build_rules(change_id: str, alternatives: Sequence[Match], backend: str) -> list[NotrackRule]:
    """The rules (both chains, each family for iptables) that exempt ``alternatives``, tagged with the change id."""
    out: list[NotrackRule] = []
    comment = tag(change_id)
    for m in alternatives:
        if backend == "nft":
            text = f'{nft_match(m)} notrack comment "{comment}"'
            out += [NotrackRule(change_id, "nft", chain, text) for chain in NFT_CHAINS]
        else:
            for prog, args in iptables_matches(m):
                text = shlex.join([*args, "-m", "comment", "--comment", comment, "-j", "CT", "--notrack"])
                out += [NotrackRule(change_id, prog, chain, text) for chain in IPT_CHAINS]
    return out


def derived_rules(change_id: str, expr: str, backend: str) -> list[NotrackRule]:
    """The rules of change ``change_id`` made from filter ``expr``: parsed and compiled again, never read back."""
    return build_rules(change_id, alternatives_matches(compile_filter(expr).ast), backend)


def nft_script(add: Sequence[NotrackRule], remove: Sequence[NotrackRule], drop_table: bool) -> str:
    lines: list[str] = []
    if add:
        lines.append(f"add table {NFT_TABLE}")
        for chain, hook in NFT_CHAINS.items():
            lines.append(f"add chain {NFT_TABLE} {chain} {{ type filter hook {hook} priority raw; }}")
        lines += [f"add rule {NFT_TABLE} {r.chain} {r.rule}" for r in add]
    lines += [f"delete rule {NFT_TABLE} {r.chain} handle {r.handle}" for r in remove]
    if drop_table:
        lines.append(f"delete table {NFT_TABLE}")
    return "\n".join(lines) + "\n"


def _ipt_script(add: Sequence[NotrackRule], remove: Sequence[NotrackRule]) -> str:
    lines = ["*raw"]
    lines += [f"-I {r.chain} {r.rule}" for r in add]
    lines += [f"-D {r.chain} {r.rule}" for r in remove]
    return "\n".join(lines + ["COMMIT"]) + "\n"


def transact(spec: NetnsSpec, add: Sequence[NotrackRule], remove: Sequence[NotrackRule]) -> None:
    """Add and remove rules, each backend in one transaction; all or nothing across backends too."""
    backends = [b for b in ("nft", *IPT_PROGS) if any(r.backend == b for r in (*add, *remove))]
    done: list[str] = []
    for b in backends:
        a = [r for r in add if r.backend == b]
        d = [r for r in remove if r.backend == b]
        err = _run_backend(spec, b, a, d)
        if err is None:
            done.append(b)
            continue
        for prev in reversed(done):
            # The kernel gave back handles for what was added; undo by comment tag instead.
            _undo_backend(spec, prev, [r for r in add if r.backend == prev],
                          [r for r in remove if r.backend == prev])
        raise ActionError(f"{b} refused the change: {err}; nothing was changed")


def _run_backend(spec: NetnsSpec, backend: str, add: Sequence[NotrackRule],
                 remove: Sequence[NotrackRule]) -> str | None:
    if backend == "nft":
        remaining = [r for r in nft_rules(spec) if r not in remove]
        script = nft_script(add, remove, drop_table=not add and not remaining)
        r = shell.run(spec, ["nft", "-f", "-"], stdin=script)
    else:
        r = shell.run(spec, [f"{backend}-restore", "--noflush"], stdin=_ipt_script(add, remove))
    return None if r.returncode == 0 else shell.first_line(r.stderr)


def _undo_backend(spec: NetnsSpec, backend: str, added: Sequence[NotrackRule],
                  removed: Sequence[NotrackRule]) -> None:
    ids = {r.id for r in added}
    now = [r for r in list_rules(spec) if r.backend == backend and r.id in ids]
    _run_backend(spec, backend, list(removed), now)


def rule_commands(spec: NetnsSpec, add: Sequence[NotrackRule], remove: Sequence[NotrackRule],
                   drop_table: bool) -> list[str]:
    out: list[str] = []
    nft_add = [r for r in add if r.backend == "nft"]
    if nft_add:
        out.append(shell.shown(spec, ["nft", "add", "table", "inet", TABLE]))
        for chain, hook in NFT_CHAINS.items():
            chain_def = f"add chain {NFT_TABLE} {chain} {{ type filter hook {hook} priority raw; }}"
            out.append(shell.shown(spec, ["nft", chain_def]))
    for r in add:
        if r.backend == "nft":
            out.append(shell.shown(spec, ["nft", f"add rule {NFT_TABLE} {r.chain} {r.rule}"]))
        else:
            out.append(shell.shown(spec, [r.backend, "-t", "raw", "-I", r.chain, *shlex.split(r.rule)]))
    for r in remove:
        if r.backend == "nft":
            out.append(shell.shown(spec, ["nft", "delete", "rule", "inet", TABLE, r.chain, "handle", str(r.handle)]))
        else:
            out.append(shell.shown(spec, [r.backend, "-t", "raw", "-D", r.chain, *shlex.split(r.rule)]))
    if drop_table:
        out.append(shell.shown(spec, ["nft", "delete", "table", "inet", TABLE]))
    return out
