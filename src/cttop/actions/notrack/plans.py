"""The NOTRACK changes as plans: add, remove, and the undo of a removal (rules derived again from the journaled
filter expressions, never read back); the nft file a persisted change writes; the rules listed by change for the
rules screen, each with the expression the journal says it was made from."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cttop.actions import persist as P
from cttop.actions import shell
from cttop.actions.errors import ActionError
from cttop.actions.flows import matching_chunks
from cttop.actions.journal import Journal, Record
from cttop.actions.notrack.match import (
    ANY_PORT_PROTOS_TEXT,
    alternatives_matches,
    iptables_matches,
    nft_match,
    notrack_filter,
)
from cttop.actions.notrack.rules import (
    NFT_CHAINS,
    NFT_TABLE,
    NotrackRule,
    build_rules,
    derived_rules,
    list_rules,
    nft_rules,
    nft_script,
    pick_backend,
    rule_commands,
    transact,
)
from cttop.actions.notrack.safety import safety_warnings
from cttop.actions.plan import Change, Plan
from cttop.errors import CttopError
from cttop.filter import Filter, compile_filter
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsError, NetnsSpec
from cttop.model import nat_kind
from cttop.table.packing import flow_key

NFTABLES_CONF = "/etc/nftables.conf"


@dataclass(frozen=True)
class RuleGroup:
    """The rules one change added, with the filter expression it was made from."""

    id: str
    expr: str | None  # None: made by a cttop with another journal
    rules: tuple[NotrackRule, ...]


def rule_groups(spec: NetnsSpec = NetnsSpec(), journal: Journal | None = None) -> list[RuleGroup]:
    """:func:`list_rules`, one group per change; the rules come from the kernel, only the expressions from the
    journal."""
    rules = list_rules(spec)
    exprs = journaled_exprs(journal or Journal())
    ids = dict.fromkeys(r.id for r in rules)
    return [RuleGroup(i, exprs.get(i), tuple(r for r in rules if r.id == i)) for i in ids]


def journaled_exprs(journal: Journal) -> dict[str, str]:
    """Change id -> the filter expression its NOTRACK rules were made from, for every sound addition."""
    return {r.id: r.after["expr"] for r in journal.records()
            if r.kind == AddNotrack.kind and r.undoes is None and r.damaged is None}


def nft_file_text(spec: NetnsSpec, journal: Journal) -> str | None:
    """cttop's nft rules in the namespace as a file ``nft -f`` loads idempotently, or None when there are none.

    Never the table as listed: in a namespace another root controls (a container's) it can hold any chain or
    rule, and the file loads into the host at boot. It holds the changes whose tagged rules are in the table,
    each one's rules derived again from the filter expression its journal record holds; others are left out.
    """
    exprs = journaled_exprs(journal)
    ids = dict.fromkeys(r.id for r in nft_rules(spec) if r.id in exprs)
    if not ids:
        return None
    rules = [r for i in ids for r in derived_rules(i, exprs[i], "nft")]
    lines = ["#!/usr/sbin/nft -f",
             "# cttop's NOTRACK rules (written by cttop: `cttop notrack list` shows them).",
             f"# Load at boot with: include \"<this file>\" in {NFTABLES_CONF}",
             f"table {NFT_TABLE}", f"delete table {NFT_TABLE}", f"table {NFT_TABLE} {{"]
    for chain, hook in NFT_CHAINS.items():
        lines += [f"\tchain {chain} {{", f"\t\ttype filter hook {hook} priority raw; policy accept;"]
        lines += [f"\t\t{r.rule}" for r in rules if r.chain == chain]
        lines.append("\t}")
    return "\n".join([*lines, "}"]) + "\n"


class _RulesPlan(Plan):
    """Shared by adding and removing: the rule transaction, its commands and the nft file refresh."""

    def __init__(self, spec: NetnsSpec, journal: Journal | None, persist_file: str | None) -> None:
        super().__init__(spec, journal)
        self.persist_file = persist_file
        self._file_before: str | None = None
        self._file_made: list[str] | None = None  # once written: the directories the write made

    def _adds(self) -> list[NotrackRule]:
        return []

    def _removes(self) -> list[NotrackRule]:
        return []

    def _drops_table(self) -> bool:
        removes = self._removes()
        if self._adds() or not any(r.backend == "nft" for r in removes):
            return False
        return not [r for r in nft_rules(self.spec) if r not in removes]

    def commands(self) -> list[str]:
        drops = self._drops_table()
        out = rule_commands(self.spec, self._adds(), self._removes(), drops)
        if self.persist_file is not None and drops:
            out.append(P.write_command(self.persist_file, None))
        elif self.persist_file is not None:
            out.append(f"# then {self.persist_file} is written: cttop's nft rules, each change's derived again from "
                       "its journaled filter (never the table as listed), under a 'delete table' header")
        return out

    def _persist_warnings(self) -> list[str]:
        out: list[str] = []
        if self.persist_file is None:
            return out
        if not P.boot_includes(NFTABLES_CONF, self.persist_file):
            out.append(f"{self.persist_file} loads at boot only if {NFTABLES_CONF} has "
                       f"include \"{self.persist_file}\"")
        if not self.spec.is_initial():
            out.append(f"a persisted file is loaded at boot into the initial namespace, not {self.spec.label()}")
        return out

    def _validate_persist(self) -> None:
        if self.persist_file is not None:
            P.check_writable(self.persist_file)

    def _transact_and_persist(self) -> None:
        transact(self.spec, self._adds(), self._removes())
        if self.persist_file is None:
            return
        try:
            self._file_before = P.read_text(self.persist_file)
            self._file_made = P.write_text(self.persist_file, nft_file_text(self.spec, self.journal))
        except ActionError as e:
            self._revert_rules()
            raise ActionError(f"{e}; nothing was changed") from None

    def _revert_rules(self) -> None:
        added_ids = {r.id for r in self._adds()}
        now = [r for r in list_rules(self.spec) if r.id in added_ids]
        transact(self.spec, self._removes(), now)

    def _rollback(self, change: Change) -> str:
        try:
            if self._file_made is not None:
                P.put_back(self.persist_file or "", self._file_before, self._file_made)
            self._revert_rules()
        except ActionError as e:
            return f"ROLLBACK FAILED: {e}"
        return ""

    def _persist_json(self) -> dict[str, object]:
        return {"persist_file": self.persist_file} if self.persist_file else {}


def nat_warning(nat_rows: int) -> list[str]:
    """What exempting ``nat_rows`` NAT'd flows the rules match breaks (none: nothing to say)."""
    return [f"{nat_rows} flows tracked now that these rules match are NAT'd: exempting them breaks them"] \
        if nat_rows else []


def nat_rows_matched(spec: NetnsSpec, filters: Iterable[Filter]) -> int:
    """The NAT'd flows in ``spec``'s table now that any of ``filters`` matches, each once."""
    try:
        with Ctnetlink(spec) as ct:
            # A chunk at a time: only the NAT'd matches' keys are held, not every match as a row.
            return len({flow_key(r) for flt in filters for rows in matching_chunks(ct, flt) for r in rows
                        if nat_kind(r) is not None})
    except NetnsError:
        raise  # it names the namespace option already
    except CttopError as e:
        raise ActionError(f"NOTRACK in namespace {spec.label()}: reading the flows the rules match: {e}") from None


class AddNotrack(_RulesPlan):
    """Exempt the flows a filter expression selects from tracking, both directions.

    ``expr`` is filter text (``udp dport 53``) or a compiled Filter; a top-level
    ``or`` gets one rule set per alternative, all in this one change. The NAT'd
    flows the rules match are counted in the kernel when the plan is made
    (:func:`nat_rows_matched`), so the warnings say what the rules would break now,
    not what a screen showed; ``nat_rows`` gives that count instead, for a variant
    of rules just counted (the same ones, persisted). ``persist`` also writes
    cttop's table to an nft file. Untranslatable filters raise ActionError here,
    before the table is read.
    """

    kind = "notrack-add"

    def __init__(self, spec: NetnsSpec, expr: str | Filter, *, nat_rows: int | None = None,
                 persist: P.PersistPaths | None = None, backend: str | None = None,
                 journal: Journal | None = None) -> None:
        flt = notrack_filter(expr) if isinstance(expr, str) else expr
        self.filter = flt
        self.expr = flt.text.strip()
        self.matches = alternatives_matches(flt.ast)
        self.backend = backend or pick_backend()
        if persist is not None and self.backend != "nft":
            raise ActionError("--persist writes an nft file, but nft is missing: "
                              "save the raw table with iptables-save instead")
        super().__init__(spec, journal, persist.nft_file if persist is not None else None)
        self.nat_rows = nat_rows_matched(spec, [flt]) if nat_rows is None else nat_rows
        self.rules = build_rules(self.id, self.matches, self.backend)

    def _adds(self) -> list[NotrackRule]:
        return self.rules

    def describe(self) -> str:
        where = f"nft table {NFT_TABLE}, chains pre/out at priority raw" if self.backend == "nft" \
            else "iptables raw table, PREROUTING and OUTPUT"
        lines = [f"Stop tracking '{self.expr}' in namespace {self.spec.label()}, both directions",
                 f"  {len(self.rules)} rules in {where}:"]
        lines += [f"    {m}" for m in dict.fromkeys(
            nft_match(x) if self.backend == "nft" else " ".join(iptables_matches(x)[0][1]) for x in self.matches)]
        if self.persist_file:
            lines.append(f"  persist in {self.persist_file}")
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        out = [("untracked packets lose NAT and conntrack helpers (FTP, SIP...): "
                "do not exempt traffic that is NAT'd"),
               ("a stateful filter must accept `ct state untracked` "
                "(iptables: -m conntrack --ctstate UNTRACKED), or it drops these packets"),
               "flows already tracked keep their entries until they expire or are flushed"]
        # The flows the rules would match, not the tagged ones the dialog may be named after.
        out[:0] = [*safety_warnings(self.spec, self.filter, self.matches), *nat_warning(self.nat_rows)]
        if any(m.has_ports and m.proto is None for m in self.matches):
            # The filter's port matches every protocol with ports; the rules only those nft and iptables name.
            out.append(f"a port with no protocol is matched in {ANY_PORT_PROTOS_TEXT} packets: DCCP and UDP-Lite "
                       "flows the filter shows stay tracked")
        if any(m.mark is not None for m in self.matches):
            out.append("mark here is the packet mark (meta mark) as it arrives at raw priority, "
                       "not the flow's ct mark, which does not exist before tracking")
        return out + self._persist_warnings()

    def _validate(self) -> None:
        if self.backend == "nft":
            r = shell.run(self.spec, ["nft", "-c", "-f", "-"], stdin=nft_script(self.rules, [], False))
            if r.returncode != 0:
                raise ActionError(f"nft rejects the rules: {shell.first_line(r.stderr)}")
        else:
            for prog in {r.backend for r in self.rules}:
                if not shell.have(f"{prog}-restore"):
                    raise ActionError(f"{prog}-restore: command not found")
        self._validate_persist()

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        # The id is in every rule's comment: an interrupted addition is undone by finding them.
        return {}, {"expr": self.expr, "backend": self.backend, **self._persist_json()}

    def _change(self) -> Change:
        self._transact_and_persist()
        installed = [r for r in list_rules(self.spec) if r.id == self.id]
        # The rules as the kernel lists them, for the record only: an undo finds them by their comment.
        return Change(after={**self._intent()[1], "rules": [r.to_json() for r in installed]}, count=len(installed),
                      summary=f"added {len(installed)} NOTRACK rules for '{self.expr}' "
                              f"in {self.spec.label()} (id {self.id})")


class RemoveNotrack(_RulesPlan):
    """Remove cttop's NOTRACK rules of the given change ids (or unique prefixes), or all of them (``ids=None``).

    Undoing it adds the same rules back. ``persist`` refreshes the nft file when
    there is one, so removed rules do not come back at boot.
    """

    kind = "notrack-remove"

    def __init__(self, spec: NetnsSpec, ids: Sequence[str] | None = None, *,
                 persist: P.PersistPaths | None = None, journal: Journal | None = None) -> None:
        super().__init__(spec, journal, None)
        if persist is not None and os.path.lexists(persist.nft_file):
            self.persist_file = persist.nft_file
        present = list_rules(spec)
        if ids is None:
            self.ids = sorted({r.id for r in present})
            if not self.ids:
                raise ActionError(f"no cttop NOTRACK rules in namespace {spec.label()}")
        else:
            self.ids = [_resolve_id(i, present, spec) for i in ids]
        self.rules = [r for r in present if r.id in self.ids]
        # What an undo adds back: each change's rules derived again from its expression.
        exprs = journaled_exprs(self.journal)
        self.groups = [{"id": i, "expr": exprs.get(i),
                        "backend": "nft" if any(r.backend == "nft" for r in self.rules if r.id == i) else "iptables"}
                       for i in self.ids]
        self.unknown = [str(g["id"]) for g in self.groups if g["expr"] is None]
        self.undoable = not self.unknown

    @classmethod
    def inverse_of_add(cls, record: Record, spec: NetnsSpec, journal: Journal, persist: P.PersistPaths,
                       force: bool) -> RemoveNotrack:
        """Remove the rules the live ruleset tags with the record's id (``force``: nothing to force here).

        With none left (the addition was cut off before nft ran, or they were removed since) the ruleset is
        as it was before: the undo removes nothing, and is recorded, so a plain `undo` goes on to older changes.
        """
        present = any(r.id == record.id for r in list_rules(spec))
        plan = cls(spec, [record.id] if present else [], journal=journal)
        plan.ids = [record.id]
        plan.groups = [{"id": record.id, "expr": record.after["expr"], "backend": record.after["backend"]}]
        plan.unknown = []
        plan.undoes = record.id
        recorded = record.after.get("persist_file")
        plan.persist_file = None if recorded is None else persist.in_force(recorded, persist.nft_file, record.id)
        return plan

    def warnings(self) -> list[str]:
        if not self.unknown or self.undoes is not None:
            return []
        return [(f"the rules of {', '.join(self.unknown)} were not added through the journal "
                 f"{self.journal.path}: this removal cannot be undone")]

    def _removes(self) -> list[NotrackRule]:
        return self.rules

    def describe(self) -> str:
        if self.undoes is not None and not self.rules:
            return (f"Undo change {self.undoes}: its NOTRACK rules are not in namespace {self.spec.label()} (cut off "
                    "before they were added, or removed since): nothing to remove, the change is marked undone")
        head = f"Undo change {self.undoes}: remove" if self.undoes else "Remove"
        lines = [(f"{head} cttop NOTRACK rules {', '.join(self.ids)} in namespace {self.spec.label()} "
                  f"({len(self.rules)} rules); their traffic is tracked again:")]
        lines += [f"    [{r.backend} {r.chain}] {r.rule}" for r in self.rules]
        if self.persist_file:
            lines.append(f"  refresh {self.persist_file}")
        return "\n".join(lines)

    def _validate(self) -> None:
        self._validate_persist()

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        return {"groups": self.groups, **self._persist_json()}, {"removed": len(self.rules)}

    def _change(self) -> Change:
        now = list_rules(self.spec)
        # Gone, or added since (an undo that found none, while the addition was still being made).
        changed = [r for r in self.rules if r not in now] + [r for r in now if r.id in self.ids and r not in self.rules]
        if changed:
            raise ActionError(f"NOTRACK rules of {changed[0].id} changed since they were listed; "
                              "nothing was changed: list them again")
        self._transact_and_persist()
        return Change(after={"removed": len(self.rules)}, count=len(self.rules),
                      summary=f"removed {len(self.rules)} NOTRACK rules ({', '.join(self.ids)}) "
                              f"in {self.spec.label()}")


class RestoreNotrack(_RulesPlan):
    """Undo of a removal: the rules of each removed change, derived again from its filter expression.

    Changes whose rules are present again are left alone. With all of them present (the removal was cut off
    before nft ran, or they were added back since) the undo adds nothing, and is recorded, so a plain `undo`
    goes on to older changes.
    """

    kind = AddNotrack.kind  # journaled as what it does: an add

    def __init__(self, spec: NetnsSpec, record: Record, journal: Journal, persist_file: str | None) -> None:
        super().__init__(spec, journal, persist_file)
        self.undoes = record.id
        self.removed: list[dict[str, Any]] = record.before["groups"]
        self.kept = self._present()
        self.groups = [g for g in self.removed if g["id"] not in self.kept]
        self.rules = [r for g in self.groups for r in derived_rules(g["id"], g["expr"], g["backend"])]
        # Adding them back breaks the NAT'd flows they match as adding them did: counted alike, now.
        self.nat_rows = nat_rows_matched(spec, [compile_filter(g["expr"]) for g in self.groups])

    def _present(self) -> set[str]:
        """Which of the removed changes have rules in the ruleset now."""
        return {r.id for r in list_rules(self.spec)} & {str(g["id"]) for g in self.removed}

    @classmethod
    def inverse_of_remove(cls, record: Record, spec: NetnsSpec, journal: Journal, persist: P.PersistPaths,
                          force: bool) -> RestoreNotrack:
        """From the record's checked groups (see schema); ``force``: nothing to force here."""
        recorded = record.before.get("persist_file")
        return cls(spec, record, journal,
                   None if recorded is None else persist.in_force(recorded, persist.nft_file, record.id))

    def _adds(self) -> list[NotrackRule]:
        return self.rules

    def describe(self) -> str:
        if not self.rules:
            return (f"Undo change {self.undoes}: the NOTRACK rules it removed are all in namespace "
                    f"{self.spec.label()} (it was cut off before they were removed, or they were added back since): "
                    "nothing to add back, the change is marked undone")
        lines = [(f"Undo change {self.undoes}: add back {len(self.rules)} NOTRACK rules "
                  f"in namespace {self.spec.label()}:")]
        lines += [f"    [{r.backend} {r.chain}] {r.rule}" for r in self.rules]
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        # Adding the rules back risks what adding them did: the operator's own SSH session, every host's traffic.
        first: list[str] = []
        for g in self.groups:
            flt = compile_filter(g["expr"])
            first += safety_warnings(self.spec, flt, alternatives_matches(flt.ast))
        return [*dict.fromkeys(first), *nat_warning(self.nat_rows), "untracked packets lose NAT and helpers again",
                *self._persist_warnings()]

    def _validate(self) -> None:
        now = self._present()
        if now - self.kept:
            raise ActionError(f"NOTRACK rules {min(now - self.kept)} are present again; "
                              f"undo of {self.undoes} would duplicate them")
        if self.kept - now:
            raise ActionError(f"NOTRACK rules of {min(self.kept - now)} changed since they were listed; "
                              "nothing was changed: list them again")
        self._validate_persist()

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        # The groups added back; with none to add, the removal's own (a record names at least one).
        return {}, {"groups": self.groups or self.removed, **self._persist_json()}

    def _change(self) -> Change:
        self._transact_and_persist()
        ids = {str(g["id"]) for g in self.groups}
        installed = [r for r in list_rules(self.spec) if r.id in ids]
        return Change(after=self._intent()[1], count=len(installed),
                      summary=f"added back {len(installed)} NOTRACK rules in {self.spec.label()}")


def _resolve_id(ident: str, present: list[NotrackRule], spec: NetnsSpec) -> str:
    ids = sorted({r.id for r in present})
    if ident in ids:
        return ident
    hits = [i for i in ids if i.startswith(ident)] if ident else []
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ActionError(f"NOTRACK id {ident!r} is ambiguous in namespace {spec.label()}: {', '.join(hits)}")
    raise ActionError(f"no cttop NOTRACK rules with id {ident!r} in namespace {spec.label()}")
