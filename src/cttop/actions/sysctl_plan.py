"""Set conntrack tunables in one namespace, optionally persisted, all or nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cttop.actions import persist as P
from cttop.actions import shell
from cttop.actions.drift import SYSCTL_KIND, same_value
from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Record
from cttop.actions.plan import Change, Plan
from cttop.actions.tunables import Tunable, lookup, parse_value, plain_value, warnings_for
from cttop.errors import CttopError
from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsSpec


def _nf_conntrack_builtin() -> bool:
    # Loadable modules have an initstate file; built-in ones only their parameters.
    return os.path.isdir("/sys/module/nf_conntrack") and not os.path.exists("/sys/module/nf_conntrack/initstate")


def set_command(spec: NetnsSpec, name: str, value: int | str) -> str:
    """The shell line that sets tunable ``name`` in ``spec``'s namespace, as a confirmation shows it."""
    if name == "hashsize":
        # A module parameter, not a sysctl: its file is written, through a shell for the redirection.
        return shell.shown(spec, ["sh", "-c", f"echo {value} > {sysctl.HASHSIZE_PATH}"])
    return shell.shown(spec, ["sysctl", "-w", f"{sysctl.sysctl_key(name)}={value}"])


class SetSysctls(Plan):
    """``values`` maps tunable names (as ``cttop tunables`` lists them) to new values.

    Bad names, non-integers and out-of-range values raise ActionError here, before
    anything is shown or changed. ``persist`` also writes the values to sysctl.d
    (hashsize: modprobe.d), merged into cttop's own files.
    """

    kind = SYSCTL_KIND

    def __init__(self, spec: NetnsSpec, values: Mapping[str, object], *,
                 persist: P.PersistPaths | None = None, journal: Journal | None = None) -> None:
        super().__init__(spec, journal)
        if not values:
            raise ActionError("nothing to set: give NAME=VALUE")
        self.tunables: dict[str, Tunable] = {}
        self.values: dict[str, int] = {}
        for raw, value in values.items():
            t = lookup(raw)
            self.tunables[t.name] = t
            self.values[t.name] = parse_value(t, str(value))
        self.current = sysctl.read(spec)
        # path -> key -> value; None removes the key (used by undo).
        self.edits: dict[str, dict[str, str | None]] = {}
        if persist is not None:
            for name, v in self.values.items():
                key = self.tunables[name].key()
                self.edits.setdefault(persist.file_for(key), {})[key] = str(v)
        # For an undo: what the undone change set (values, and keys in files), restored only while still so.
        self.owned: dict[str, str] = {}
        self.owned_files: dict[str, dict[str, str | None]] = {}
        self.force = False
        self._old: dict[str, str] = {}
        self._file_texts: dict[str, str | None] = {}
        self._written: list[str] = []
        self._files_written: dict[str, list[str]] = {}  # path -> the directories its write made

    @classmethod
    def inverse(cls, record: Record, spec: NetnsSpec, journal: Journal, persist: P.PersistPaths,
                force: bool) -> SetSysctls:
        """The plan that puts back what ``record`` changed, from its checked fields (see schema).

        The files written are ``persist``'s, once the record's paths are found to be the same.
        """
        plan = cls(spec, record.before["values"], journal=journal)
        for path, keys in record.before.get("persist", {}).items():
            for key, old in keys.items():
                target = persist.in_force(path, persist.file_for(key), record.id)
                plan.edits.setdefault(target, {})[key] = None if old is None else str(int(old))
                plan.owned_files.setdefault(target, {})[key] = record.after["persist"][path][key]
        plan.undoes = record.id
        plan.owned = dict(record.after["values"])
        plan.force = force
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
        out = [set_command(self.spec, name, v) for name, v in self.values.items()]
        try:
            texts = self._new_texts()
        except ActionError as e:
            # A file cttop will refuse to write (a link, someone else's): said here, refused by check() and apply().
            return [*out, f"# not written: {e}"]
        return out + [P.write_command(path, text) for path, text in texts.items()]

    def warnings(self) -> list[str]:
        after = dict(self.current)
        after.update({n: str(v) for n, v in self.values.items()})
        out: list[str] = []
        for name, v in self.values.items():
            t = self.tunables[name]
            cur = self.current.get(name)
            if name in self.owned and cur is not None and not self._as_set_or_before(cur, self.owned[name], str(v)):
                out.append(f"{name} is {cur} now, not the {self.owned[name]} change {self.undoes} set: "
                           f"changed since; undo writes {v} over it")
            elif cur == str(v):
                out.append(f"{name} is already {v}")
            if t.is_global:
                out.append(f"{name} is global: it applies to every namespace on this host")
            out.extend(warnings_for(t, v, after))
        if self.edits and not self.spec.is_initial():
            out.append(f"persisted settings are applied at boot to the initial namespace, not to {self.spec.label()}")
        if any(P.HASHSIZE_KEY in keys for keys in self.edits.values()) and _nf_conntrack_builtin():
            out.append("nf_conntrack is built into this kernel, so modprobe.d is not read for it: "
                       "boot with nf_conntrack.hashsize=N on the kernel command line instead")
        return out

    def _new_texts(self, texts: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
        """Each persisted file's new text (None: remove it), from ``texts`` or the files as they are now."""
        out: dict[str, str | None] = {}
        for path, keys in self.edits.items():
            text = texts[path] if texts is not None else P.read_text(path)
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
            P.check_writable(path)
        if self.undoes is not None:
            self._unchanged_since()

    def _as_set_or_before(self, now: str | None, set_: str | None, before: str | None) -> bool:
        return same_value(now, set_) or same_value(now, before)

    def _unchanged_since(self) -> None:
        """An undo restores only what still holds the value the change set (or already the one before), unless forced."""
        if self.force:
            return
        now = sysctl.read(self.spec, list(self.values))
        for name, value in self.values.items():
            self._refuse_changed(name, now.get(name), self.owned[name], str(value))
        for path, keys in self.edits.items():
            text = P.read_text(path)
            for key, old in keys.items():
                self._refuse_changed(f"{key} in {path}", P.conf_get(text, key), self.owned_files[path][key], old)

    def _refuse_changed(self, what: str, now: str | None, set_: str | None, back: str | None) -> None:
        if not self._as_set_or_before(now, set_, back):
            raise ActionError(f"{what} changed since change {self.undoes}: it is {_shown(now)} now, not the "
                              f"{_shown(set_)} that change set; --force restores {_shown(back)} anyway")

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        names = list(self.values)
        old = sysctl.read(self.spec, names)
        missing = [n for n in names if n not in old]
        if missing:
            raise ActionError(f"{missing[0]}: cannot be read in namespace {self.spec.label()}; nothing was changed")
        self._old = old
        self.current.update(old)  # what describe() and warnings() say "from", as the record's before
        self._file_texts = {path: P.read_text(path) for path in self.edits}
        persist_before: dict[str, dict[str, str | None]] = {}
        for path, keys in self.edits.items():
            persist_before[path] = {k: self._restorable(path, k) for k in keys}
        intended = {"values": {n: str(v) for n, v in self.values.items()},
                    "persist": {path: dict(keys) for path, keys in self.edits.items()}}
        return {"values": old, "persist": persist_before}, intended

    def _restorable(self, path: str, key: str) -> str | None:
        """The file's value for ``key`` now, which an undo must be able to write back as it is."""
        v = P.conf_get(self._file_texts[path], key)
        t = next(t for t in self.tunables.values() if t.key() == key)
        if v is not None and not plain_value(t, v):
            raise ActionError(f"{path}: {key} = {v!r} is not a value cttop could put back: fix that line first; "
                              "nothing was changed")
        return v

    def _change(self) -> Change:
        names = list(self.values)
        self._written, self._files_written = [], {}
        try:
            for name in names:
                sysctl.write(self.spec, name, str(self.values[name]))
                self._written.append(name)
            new = sysctl.read(self.spec, names)
            for path, text in self._new_texts(self._file_texts).items():
                self._files_written[path] = P.write_text(path, text)
        except CttopError as e:
            problems = self._restore()
            raise ActionError(f"{e}; {problems or 'nothing was changed'}") from None
        summary = ", ".join(f"{n}={new.get(n)}" for n in names)
        return Change(after={"values": new, "persist": {path: dict(keys) for path, keys in self.edits.items()}},
                      summary=f"{'restored' if self.undoes else 'set'} {summary} in {self.spec.label()}",
                      count=len(names))

    def _restore(self) -> str:
        """Put back written files and values; returns what could not be put back ('' if all was)."""
        failed: list[str] = []
        for path, made in self._files_written.items():
            try:
                P.put_back(path, self._file_texts[path], made)
            except ActionError as e:
                failed.append(str(e))
        for name in reversed(self._written):
            try:
                sysctl.write(self.spec, name, self._old[name])
            except CttopError as e:
                failed.append(str(e))
        return ("ROLLBACK FAILED: " + "; ".join(failed)) if failed else ""

    def _rollback(self, change: Change) -> str:
        return self._restore()


def _shown(v: str | None) -> str:
    return "unset" if v is None else v
