"""What a journal record of each kind may hold. A record that holds anything else is *damaged*: listed as
such, and nothing (undo, drift, the rules screen) acts on it.

The journal is a file, so a record is what anyone who could write that file
says it is. Undo is derived from the fields checked here, never replayed:

- ``sysctl``: tunable names from cttop's catalogue, values integers in the
  tunable's range; persisted keys are those tunables' keys, and each persisted
  path must be cttop's own file of the right kind (undo then writes the file in
  force, never the path read back);
- ``notrack-add`` / ``notrack-remove``: change ids of eight hex digits, a filter
  expression that parses and translates to NOTRACK matches (undo re-derives the
  rules from it; rule text is never read back from the journal), a known backend;
- ``delete`` / ``flush``: cannot be undone.

Text fields (description, summary, netns, user, commands, warnings) are only ever shown, never acted on,
and every display escapes them (cttop.termsafe): a change made in a namespace whose name holds control
characters is a real change and stays undoable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cttop.actions import persist as P
from cttop.actions.flows import DeleteFlows, FlushFlows
from cttop.actions.journal import Record
from cttop.actions.notrack.match import alternatives_matches
from cttop.actions.notrack.plans import AddNotrack, RemoveNotrack
from cttop.actions.notrack.rules import BACKENDS
from cttop.actions.sysctl_plan import SetSysctls
from cttop.actions.tunables import Tunable, catalogue_entry, plain_value
from cttop.errors import CttopError
from cttop.filter import compile_filter

ID = re.compile(r"[0-9a-f]{8}")
BOOT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # /proc/sys/kernel/random/boot_id
# Far beyond what a person types or a change holds; bounds the work of checking a forged record.
MAX_EXPR = 4096
MAX_ITEMS = 256


class Damaged(Exception):
    """Why a record cannot be acted on."""


def damage(rec: Record) -> str | None:
    """Why ``rec`` is damaged, or None when every field its kind's undo and listings use is sound."""
    try:
        _common(rec)
        check = _KINDS.get(rec.kind)
        if check is None:
            raise Damaged(f"unknown kind {rec.kind[:40]!r}")
        check(rec)
    except Damaged as e:
        return str(e)
    return None


def change_id(v: object, what: str) -> str:
    if not isinstance(v, str) or not ID.fullmatch(v):
        raise Damaged(f"{what} is not a change id")
    return v


def _common(rec: Record) -> None:
    change_id(rec.id, "id")
    if rec.undoes is not None and change_id(rec.undoes, "undoes") == rec.id:
        raise Damaged("it undoes itself")
    if rec.undoes is not None and rec.undoable:
        raise Damaged("an undo marked undoable")
    if rec.netns_inode <= 0 or rec.uid < 0 or rec.count < 0:
        raise Damaged("a negative inode, uid or count")
    if rec.netns_cookie is not None and not 0 < rec.netns_cookie < 1 << 64:
        raise Damaged("a namespace cookie out of range")
    if rec.boot_id is not None and not BOOT_ID.fullmatch(rec.boot_id):
        raise Damaged("a boot id that is not one")


def _dict(v: object, what: str) -> dict[str, Any]:
    if not isinstance(v, dict) or len(v) > MAX_ITEMS:
        raise Damaged(f"{what} is not a mapping")
    return v


def _tunable(name: object) -> Tunable:
    t = catalogue_entry(name) if isinstance(name, str) else None
    if t is None or t.read_only:
        raise Damaged(f"{str(name)[:60]!r} is not a tunable cttop sets")
    return t


def _value(t: Tunable, v: object) -> None:
    if not plain_value(t, v):
        raise Damaged(f"{t.name}: {str(v)[:40]!r} is not an integer in {t.lo}..{t.hi}")


def tunable_of_key(key: object) -> Tunable:
    """The tunable a persisted key (``net.netfilter.X`` or ``hashsize``) sets."""
    name = key if key == P.HASHSIZE_KEY else key.removeprefix("net.netfilter.") if isinstance(key, str) else None
    t = _tunable(name)
    if t.key() != key:
        raise Damaged(f"{str(key)[:60]!r} is not a key cttop persists")
    return t


def _sysctl_side(d: dict[str, Any], side: str) -> tuple[set[str], dict[str, set[str]]]:
    values = _dict(d.get("values", {}), f"{side} values")
    for name, v in values.items():
        _value(_tunable(name), v)
    files: dict[str, set[str]] = {}
    for path, keys in _dict(d.get("persist", {}), f"{side} persist").items():
        for key, v in _dict(keys, f"{side} persist of a file").items():
            t = tunable_of_key(key)
            layout = P.MODPROBE_LAYOUT if key == P.HASHSIZE_KEY else P.SYSCTL_LAYOUT
            if P.persist_dir_of(path, layout) is None:
                raise Damaged(f"{path[:80]!r} is not the file cttop persists {key} in")
            if v is not None:
                _value(t, v)
        files[path] = set(keys)
    return set(values), files


def _sysctl(rec: Record) -> None:
    before = _sysctl_side(rec.before, "before")
    if before != _sysctl_side(rec.after, "after"):
        raise Damaged("before and after name different values or files")
    if not before[0]:
        raise Damaged("no values")


def expr(v: object) -> str:
    """A filter expression NOTRACK rules can be derived from again."""
    if not isinstance(v, str) or len(v) > MAX_EXPR:
        raise Damaged("expr is not a filter expression")
    try:
        alternatives_matches(compile_filter(v).ast)
    except CttopError as e:
        raise Damaged(f"expr {v[:60]!r}: {e}") from None
    return v


def _nft_file(d: dict[str, Any]) -> None:
    path = d.get("persist_file")
    if path is not None and (not isinstance(path, str) or P.persist_dir_of(path, P.NFT_LAYOUT) is None):
        raise Damaged(f"{str(path)[:80]!r} is not cttop's nft file")


def groups(v: object, undoable: bool) -> list[dict[str, Any]]:
    """The rule groups of a removal (or of its undo): id, expression, backend each."""
    if not isinstance(v, list) or not v or len(v) > MAX_ITEMS:
        raise Damaged("groups is not a list of rule groups")
    for g in v:
        g = _dict(g, "a rule group")
        change_id(g.get("id"), "a group's id")
        if g.get("backend") not in BACKENDS:
            raise Damaged("a group's backend is not nft or iptables")
        if g.get("expr") is not None or undoable:
            expr(g.get("expr"))
    return v


def _notrack_add(rec: Record) -> None:
    if rec.undoes is None:
        expr(rec.after.get("expr"))
        if rec.after.get("backend") not in BACKENDS:
            raise Damaged("backend is not nft or iptables")
    else:
        groups(rec.after.get("groups"), True)
    _nft_file(rec.after)


def _notrack_remove(rec: Record) -> None:
    groups(rec.before.get("groups"), rec.undoable)
    _nft_file(rec.before)


def _not_undoable(rec: Record) -> None:
    if rec.undoable:
        raise Damaged(f"a {rec.kind} marked undoable")


_KINDS: dict[str, Callable[[Record], None]] = {
    SetSysctls.kind: _sysctl,
    AddNotrack.kind: _notrack_add,
    RemoveNotrack.kind: _notrack_remove,
    DeleteFlows.kind: _not_undoable,
    FlushFlows.kind: _not_undoable,
}
