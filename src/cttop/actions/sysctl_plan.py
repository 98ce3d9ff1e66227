"""Set conntrack tunables in one namespace, optionally persisted, all or nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cttop.actions import persist as P
from cttop.actions import shell
from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Record
from cttop.actions.plan import Change, Plan
from cttop.actions.tunables import Tunable, lookup, parse_value, warnings_for
from cttop.errors import CttopError
from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsSpec


def _nf_conntrack_builtin() -> bool:
    # Loadable modules have an initstate file; built-in ones only their parameters.
    return os.path.isdir("/sys/module/nf_conntrack") and not os.path.exists("/sys/module/nf_conntrack/initstate")


def _writable_dir(path: str) -> bool:
    d = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(d):
        d = os.path.dirname(d)
    return os.access(d, os.W_OK)


class SetSysctls(Plan):
    """``values`` maps tunable names (as ``cttop tunables`` lists them) to new values.

    Bad names, non-integers and out-of-range values raise ActionError here, before
    anything is shown or changed. ``persist`` also writes the values to sysctl.d
    (hashsize: modprobe.d), merged into cttop's own files.
    """

    kind = "sysctl"

    def __init__(self, spec: NetnsSpec, values: Mapping[str, object], *,
                 persist: P.PersistPaths | None = None, journal: Journal | None = None) -> None:
        super().__init__(spec, journal)
        if not values:
            raise ActionError("nothing to set: give NAME=VALUE")
        self.tunables: dict[str, Tunable] = {}
        self.values: dict[str, int] = {}
        for raw, value in values.items():
            t = lookup(raw)
            if t.read_only:
                raise ActionError(f"{t.name}: {t.why_read_only}")
            self.tunables[t.name] = t
            self.values[t.name] = parse_value(t, str(value))
        self.current = sysctl.read(spec)
        # path -> key -> value; None removes the key (used by undo).
        self.edits: dict[str, dict[str, str | None]] = {}
        if persist is not None:
            for name, v in self.values.items():
                key = self.tunables[name].key()
                self.edits.setdefault(persist.file_for(key), {})[key] = str(v)
        self._file_texts: dict[str, str | None] = {}
        # For an undo: the values the undone change wrote, to tell if someone changed them since.
        self.owned: dict[str, str] = {}
        self._old: dict[str, str] = {}
        self._written: list[str] = []

    @classmethod
    def inverse(cls, record: Record, spec: NetnsSpec, journal: Journal) -> SetSysctls:
        """The plan that puts back what ``record`` changed: old values, and old lines of persisted files."""
        plan = cls(spec, record.before.get("values", {}), journal=journal)
        plan.edits = {path: dict(keys) for path, keys in record.before.get("persist", {}).items()}
        plan.undoes = record.id
        plan.owned = {k: str(v) for k, v in record.after.get("values", {}).items()}
        return plan

    def describe(self) -> str:
        head = f"Undo change {self.undoes}: restore" if self.undoes else "Set"
        lines = [f"{head} in namespace {self.spec.label()}:"]
        for name, v in self.values.items():
            t = self.tunables[name]
            default = f"   (default {t.default})" if t.default is not None else ""
            lines.append(f"  {name}: {self.current.get(name, '?')} -> {v}{default}")
        for path, keys in self.edits.items():
            changes = ", ".join(f"{k} = {v}" if v is not None else f"remove {k}" for k, v in keys.items())
            lines.append(f"  persist in {path}: {changes}")
        return "\n".join(lines)

    def commands(self) -> list[str]:
        out: list[str] = []
        for name, v in self.values.items():
            if name == "hashsize":
                out.append(shell.shown(self.spec, ["sh", "-c", f"echo {v} > {sysctl.HASHSIZE_PATH}"]))
            else:
                out.append(shell.shown(self.spec, ["sysctl", "-w", f"{sysctl.sysctl_key(name)}={v}"]))
        for path, text in self._new_texts().items():
            out.append(P.write_command(path, text))
        return out

    def warnings(self) -> list[str]:
        after = dict(self.current)
        after.update({n: str(v) for n, v in self.values.items()})
        out: list[str] = []
        for name, v in self.values.items():
            t = self.tunables[name]
            cur = self.current.get(name)
            if name in self.owned and cur is not None and cur != self.owned[name]:
                out.append(f"{name} is now {cur}, not the {self.owned[name]} cttop set: "
                           f"someone changed it since; undo writes {v} over it")
            elif cur == str(v):
                out.append(f"{name} is already {v}")
            if t.is_global:
                out.append(f"{name} is global: it applies to every namespace on this host")
            out.extend(warnings_for(t, v, after))
        if self.edits and not shell.is_initial(self.spec):
            out.append(f"persisted settings are applied at boot to the initial namespace, not to {self.spec.label()}")
        if any(P.HASHSIZE_KEY in keys for keys in self.edits.values()) and _nf_conntrack_builtin():
            out.append("nf_conntrack is built into this kernel, so modprobe.d is not read for it: "
                       "boot with nf_conntrack.hashsize=N on the kernel command line instead")
        return out

    def _new_texts(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for path, keys in self.edits.items():
            text = P.read_text(path)
            for key, value in keys.items():
                text = P.conf_set(text, key, value)
            out[path] = None if P.only_comments(text) else text
        return out

    def _validate(self) -> None:
        for name in self.values:
            ok, why = sysctl.writable(self.spec, name)
            if not ok:
                raise ActionError(f"{name} in namespace {self.spec.label()}: {why}")
        for path in self.edits:
            if not _writable_dir(path):
                raise ActionError(f"{path}: cannot be written by this user")

    def _change(self) -> Change:
        names = list(self.values)
        old = sysctl.read(self.spec, names)
        missing = [n for n in names if n not in old]
        if missing:
            raise ActionError(f"{missing[0]}: cannot be read in namespace {self.spec.label()}; nothing was changed")
        written: list[str] = []
        self._file_texts = {}
        try:
            for name in names:
                sysctl.write(self.spec, name, str(self.values[name]))
                written.append(name)
            new = sysctl.read(self.spec, names)
            persist_before: dict[str, dict[str, str | None]] = {}
            persist_after: dict[str, dict[str, str | None]] = {}
            for path, text in self._new_texts().items():
                before_text = P.read_text(path)
                persist_before[path] = {k: P.conf_get(path, k) for k in self.edits[path]}
                self._file_texts[path] = before_text
                P.write_text(path, text)
                persist_after[path] = dict(self.edits[path])
        except CttopError as e:
            problems = self._restore(old, written)
            raise ActionError(f"{e}; {problems or 'nothing was changed'}") from None
        self._old = old
        self._written = written
        summary = ", ".join(f"{n}={new.get(n)}" for n in names)
        return Change(before={"values": old, "persist": persist_before},
                      after={"values": new, "persist": persist_after},
                      summary=f"{'restored' if self.undoes else 'set'} {summary} in {self.spec.label()}",
                      count=len(names))

    def _restore(self, old: dict[str, str], written: list[str]) -> str:
        """Put back written files and values; returns what could not be put back ('' if all was)."""
        failed: list[str] = []
        for path, text in self._file_texts.items():
            try:
                P.write_text(path, text)
            except ActionError as e:
                failed.append(str(e))
        for name in reversed(written):
            try:
                sysctl.write(self.spec, name, old[name])
            except CttopError as e:
                failed.append(str(e))
        return ("ROLLBACK FAILED: " + "; ".join(failed)) if failed else ""

    def _rollback(self, change: Change) -> None:
        self._restore(self._old, self._written)
