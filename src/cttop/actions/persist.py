"""Files that make a change survive a reboot: sysctl.d, modprobe.d and cttop's nft file.

cttop edits only its own files, and only the lines of the keys it sets, so a
line someone else added to the same file stays. Files are replaced by rename so
a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from dataclasses import dataclass

from cttop.actions.errors import ActionError

HASHSIZE_KEY = "hashsize"


@dataclass(frozen=True)
class PersistPaths:
    """Where persisted settings go; ``under(D)`` puts the usual /etc layout below D (tests use a tmp dir)."""

    sysctl_file: str = "/etc/sysctl.d/90-cttop.conf"
    modprobe_file: str = "/etc/modprobe.d/cttop.conf"
    nft_file: str = "/etc/nftables.d/cttop.nft"

    @classmethod
    def under(cls, etc_dir: str) -> PersistPaths:
        return cls(sysctl_file=os.path.join(etc_dir, "sysctl.d", "90-cttop.conf"),
                   modprobe_file=os.path.join(etc_dir, "modprobe.d", "cttop.conf"),
                   nft_file=os.path.join(etc_dir, "nftables.d", "cttop.nft"))

    def file_for(self, key: str) -> str:
        return self.modprobe_file if key == HASHSIZE_KEY else self.sysctl_file


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ActionError(f"{path}: {e.strerror}") from None


def write_text(path: str, text: str | None) -> None:
    """Replace the file atomically with ``text``; None removes it."""
    if text is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ActionError(f"{path}: {e.strerror}") from None
        return
    d = os.path.dirname(path) or "."
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".cttop-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise ActionError(f"{path}: {e.strerror}") from None


def _sysctl_line_key(line: str) -> str | None:
    s = line.strip()
    if not s or s[0] in "#;" or "=" not in s:
        return None
    return s.split("=", 1)[0].strip().lstrip("-").replace("/", ".")


def sysctl_get(text: str | None, key: str) -> str | None:
    """The value the file gives ``key`` (the last line wins, as for sysctl), or None."""
    found = None
    for line in (text or "").splitlines():
        if _sysctl_line_key(line) == key:
            found = line.split("=", 1)[1].strip()
    return found


def sysctl_set(text: str | None, key: str, value: str | None) -> str:
    """``text`` with ``key = value`` in place of its first line (others for it dropped), or removed if None."""
    out: list[str] = []
    placed = value is None
    for line in (text or "").splitlines():
        if _sysctl_line_key(line) == key:
            if not placed:
                out.append(f"{key} = {value}")
                placed = True
            continue
        out.append(line)
    if not placed:
        if not out:
            out.append("# Written by cttop; it edits only the lines of the keys it sets.")
        out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


_OPTIONS = re.compile(r"^\s*options\s+nf_conntrack(\s|$)")


def modprobe_get(text: str | None, param: str = HASHSIZE_KEY) -> str | None:
    found = None
    for line in (text or "").splitlines():
        if _OPTIONS.match(line):
            for word in line.split()[2:]:
                if word.startswith(param + "="):
                    found = word.split("=", 1)[1]
    return found


def modprobe_set(text: str | None, value: str | None, param: str = HASHSIZE_KEY) -> str:
    """``text`` with ``options nf_conntrack param=value`` merged into its options line, or the param removed."""
    out: list[str] = []
    placed = value is None
    for line in (text or "").splitlines():
        if not _OPTIONS.match(line):
            out.append(line)
            continue
        words = [w for w in line.split() if not w.startswith(param + "=")]
        if not placed:
            words.append(f"{param}={value}")
            placed = True
        if len(words) > 2:
            out.append(" ".join(words))
    if not placed:
        if not out:
            out.append("# Written by cttop; it edits only the options it sets.")
        out.append(f"options nf_conntrack {param}={value}")
    return "\n".join(out) + "\n"


def conf_get(path: str, key: str) -> str | None:
    text = read_text(path)
    return modprobe_get(text) if key == HASHSIZE_KEY else sysctl_get(text, key)


def conf_set(text: str | None, key: str, value: str | None) -> str:
    return modprobe_set(text, value) if key == HASHSIZE_KEY else sysctl_set(text, key, value)


def only_comments(text: str | None) -> bool:
    """Whether nothing but comments is left, so cttop's own file can go."""
    return all(not line.strip() or line.lstrip()[0] in "#;" for line in (text or "").splitlines())


def write_command(path: str, text: str | None) -> str:
    """The one shell line that leaves ``path`` holding exactly ``text`` (or removes it)."""
    if text is None:
        return shlex.join(["rm", "-f", path])
    lines = text.rstrip("\n").split("\n")
    cmd = shlex.join(["printf", "%s\\n", *lines]) + " > " + shlex.quote(path)
    d = os.path.dirname(path)
    if d and not os.path.isdir(d):
        cmd = shlex.join(["mkdir", "-p", d]) + " && " + cmd
    return cmd
