"""Files that make a change survive a reboot: sysctl.d, modprobe.d and cttop's nft file.

cttop edits only its own files, and only the lines of the keys it sets, so a
line someone else added to the same file stays. Files are replaced by rename so
a crash leaves the old or the new file, never half of one; the new one keeps the
old one's mode. A file or directory someone else could have planted (a symbolic
link, another user's file, a group/world-writable directory) is refused, never
written through: see :mod:`cttop.actions.safeopen`.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import stat
from dataclasses import dataclass

from cttop.actions import safeopen
from cttop.actions.errors import ActionError
from cttop.safefs import OPEN_FLAGS

HASHSIZE_KEY = "hashsize"
# Where each file goes below the persist directory (/etc unless --persist-dir says otherwise).
SYSCTL_LAYOUT = "sysctl.d/90-cttop.conf"
MODPROBE_LAYOUT = "modprobe.d/cttop.conf"
NFT_LAYOUT = "nftables.d/cttop.nft"
DEFAULT_DIR = "/etc"
# cttop's files are a few lines; a bigger one is not a config cttop edits.
MAX_CONF_BYTES = 1 << 20
# The host's own nftables.conf, read only to see whether it includes cttop's file. Hand-kept rulesets are
# kilobytes; past this it is not read, and the 'loads at boot only if included' warning stands.
MAX_BOOT_CONF_BYTES = 1 << 20
# nft's include statement (nft(8): include "filename") opening its line; a '#' after it starts a comment.
_NFT_INCLUDE = re.compile(r'^\s*include\s+"([^"]*)"\s*;?\s*(#.*)?$')


@dataclass(frozen=True)
class PersistPaths:
    """Where persisted settings go; ``under(D)`` puts the usual /etc layout below D (tests use a tmp dir)."""

    sysctl_file: str = f"{DEFAULT_DIR}/{SYSCTL_LAYOUT}"
    modprobe_file: str = f"{DEFAULT_DIR}/{MODPROBE_LAYOUT}"
    nft_file: str = f"{DEFAULT_DIR}/{NFT_LAYOUT}"

    @classmethod
    def under(cls, etc_dir: str) -> PersistPaths:
        return cls(sysctl_file=os.path.join(etc_dir, SYSCTL_LAYOUT),
                   modprobe_file=os.path.join(etc_dir, MODPROBE_LAYOUT),
                   nft_file=os.path.join(etc_dir, NFT_LAYOUT))

    def file_for(self, key: str) -> str:
        return self.modprobe_file if key == HASHSIZE_KEY else self.sysctl_file

    def in_force(self, recorded: str, expected: str, change_id: str) -> str:
        """``expected`` (one of these paths), once ``recorded`` (a path from the journal) is the same file.

        The journal only says which of cttop's files a change persisted to; the path
        written is always one of these, never one read back.
        """
        if recorded != expected:
            base = persist_dir_of(recorded)
            hint = f": pass --persist-dir {base}" if base is not None and base != DEFAULT_DIR else ""
            raise ActionError(f"change {change_id} persisted to {recorded}, but cttop writes {expected} here{hint}")
        return expected


def persist_dir_of(path: str, layout: str | None = None) -> str | None:
    """The persist directory ``path`` is cttop's file in (for ``layout``, or any), or None if it is no such file."""
    if not os.path.isabs(path) or os.path.normpath(path) != path:
        return None
    for lay in (layout,) if layout else (SYSCTL_LAYOUT, MODPROBE_LAYOUT, NFT_LAYOUT):
        if path.endswith("/" + lay):
            return path[:-len(lay) - 1] or "/"
    return None


def _existing(dir_fd: int, name: str, path: str) -> os.stat_result | None:
    """The file's own stat (not a link's target), refused unless cttop could have made it; None if missing."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return safeopen.check_stat(st, "", path)


def read_text(path: str) -> str | None:
    d, name = os.path.split(path)
    try:
        dir_fd = safeopen.open_dir(d, "directory")
        if dir_fd is None:
            return None
        try:
            fd = safeopen.open_at(dir_fd, name, os.O_RDONLY, "", path)
        except FileNotFoundError:
            return None
        finally:
            os.close(dir_fd)
        try:
            data = safeopen.read_all(fd, MAX_CONF_BYTES, "", path)
        finally:
            os.close(fd)
        return data.decode()
    except UnicodeDecodeError:
        raise ActionError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ActionError(f"{path}: {e.strerror}") from None


def check_writable(path: str) -> None:
    """Refuse now what :func:`write_text` would refuse: a link, someone else's file or directory, no permission."""
    d, name = os.path.split(path)
    dir_fd = safeopen.open_dir(d, "directory")
    if dir_fd is None:
        parent = os.path.dirname(d)
        while parent != os.path.dirname(parent) and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        d = parent
    else:
        try:
            _existing(dir_fd, name, path)
        finally:
            os.close(dir_fd)
    if not os.access(d, os.W_OK):
        raise ActionError(f"{path}: cannot be written by this user")


def write_text(path: str, text: str | None) -> list[str]:
    """Replace the file atomically with ``text``, keeping its mode; None removes it. Returns the directories it
    made, for :func:`put_back`. A write that fails takes them back itself, as it does its temporary file (a full
    disk left an empty sysctl.d/ behind)."""
    d, name = os.path.split(path)
    made: list[str] = []
    try:
        # A removal makes no directory (`notrack remove --all` made /etc/nftables.d/ to remove nothing from it).
        dir_fd = safeopen.open_dir(d, "directory", None if text is None else 0o755, made)
        if dir_fd is None:
            return made  # no directory, so no file to remove
        try:
            _replace(dir_fd, name, path, text)
        finally:
            os.close(dir_fd)
    except BaseException as e:
        safeopen.remove_made(made, "directory")
        if isinstance(e, OSError):
            raise ActionError(f"{path}: {e.strerror}") from None
        raise
    return made


def put_back(path: str, text: str | None, made: list[str]) -> None:
    """Undo a :func:`write_text` whose change is rolled back: ``path`` holding ``text`` again (None: gone), and
    the directories that write made gone with it, while empty (a rollback after the journal failed left them)."""
    write_text(path, text)
    safeopen.remove_made(made, "directory")


TMP_INFIX, TMP_BYTES = ".cttop-", 4  # .NAME.cttop-0123abcd: a new file's text, until it is renamed over NAME


def _remove_stale(dir_fd: int, name: str) -> None:
    """The temporary files of a write to ``name`` that was killed before its rename (SIGKILL, power loss): each
    a regular file of this user's, made under the journal's lock as this write is, so no write now owns it."""
    stale = re.compile(rf"\.{re.escape(name)}{re.escape(TMP_INFIX)}[0-9a-f]{{{2 * TMP_BYTES}}}")
    with os.scandir(dir_fd) as entries:
        names = [e.name for e in entries if stale.fullmatch(e.name)]
    for n in names:
        st = os.stat(n, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
            os.unlink(n, dir_fd=dir_fd)


def _replace(dir_fd: int, name: str, path: str, text: str | None) -> None:
    old = _existing(dir_fd, name, path)
    if text is None:
        if old is not None:
            os.unlink(name, dir_fd=dir_fd)
            os.fsync(dir_fd)
        return
    _remove_stale(dir_fd, name)
    tmp = f".{name}{TMP_INFIX}{secrets.token_hex(TMP_BYTES)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        try:
            safeopen.write_all(fd, text.encode())
            os.fchmod(fd, stat.S_IMODE(old.st_mode) if old is not None else 0o644)
            if old is not None and os.geteuid() == 0:
                os.fchown(fd, old.st_uid, old.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.fsync(dir_fd)


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


def conf_get(text: str | None, key: str) -> str | None:
    """The value the file's ``text`` gives ``key`` (a sysctl key, or hashsize in modprobe.d)."""
    return modprobe_get(text) if key == HASHSIZE_KEY else sysctl_get(text, key)


def conf_set(text: str | None, key: str, value: str | None) -> str:
    return modprobe_set(text, value) if key == HASHSIZE_KEY else sysctl_set(text, key, value)


def only_comments(text: str | None) -> bool:
    """Whether nothing but comments is left, so cttop's own file can go."""
    return all(not line.strip() or line.lstrip()[0] in "#;" for line in (text or "").splitlines())


def nft_includes(text: str, path: str) -> bool:
    """Whether an nft file's ``text`` has ``include "<path>"``: the path in a comment, or in an include
    commented out, is not an include."""
    return any((m := _NFT_INCLUDE.match(line)) is not None and m.group(1) == path for line in text.splitlines())


def boot_includes(conf: str, path: str) -> bool:
    """Whether the nft file ``conf`` (the one loaded at boot) includes ``path``; False when that cannot be
    told: ``conf`` unreadable, not a file cttop may believe (a link, a FIFO, a device, someone else's: the
    rule of :func:`cttop.actions.safeopen.check_stat`), or past MAX_BOOT_CONF_BYTES."""
    try:
        # OPEN_FLAGS: a FIFO put there is opened without waiting for a writer, and then refused as no file.
        fd = os.open(conf, os.O_RDONLY | OPEN_FLAGS)
    except OSError:
        return False
    try:
        safeopen.check_stat(os.fstat(fd), "", conf)
        data = safeopen.read_all(fd, MAX_BOOT_CONF_BYTES, "", conf)
    except (OSError, ActionError):
        return False
    finally:
        os.close(fd)
    return nft_includes(data.decode(errors="replace"), path)


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
