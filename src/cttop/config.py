"""The config file: ``/etc/cttop/config.toml``, then the user's ``config.toml``; flags override both.

A config file is trusted like cttop's state (README, "Security model"): it must be a regular file owned by
root or the running user, not group/world-writable, and is never followed through a symlink. A file that
breaks any rule, or holds bad TOML, an unknown key or a bad value, stops cttop with one line naming the file,
the line and the key: running on defaults is the person's choice (``cttop --no-config``), never a fallback.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from cttop.errors import CttopError
from cttop.safefs import OPEN_FLAGS, untrusted

SYSTEM_PATH: Final = "/etc/cttop/config.toml"
CONFIG_ENV: Final = "CTTOP_CONFIG"  # one file instead of both (tests, or a box's own place)
MAX_BYTES: Final = 64 * 1024  # bounded input: a config is a few lines
INTERVAL_RANGE: Final = (0.1, 3600.0)  # seconds between refreshes of the live view
DEFAULT_INTERVAL: Final = 1.0
DEFAULT_GROUP: Final = "src"  # the first group key of the live view and of one-shot commands
# The most flows the live view holds as records (~250 bytes each with the list's index) before it counts them
# without holding them: half a million keeps the view within ~200 MB whatever the table (197 MB held at 499,000,
# 118 MB bounded at a million: README, issue 17).
MAX_FLOWS: Final = 500_000
NO_CONFIG_HINT: Final = "fix it, or run cttop --no-config for the defaults"


@dataclass(frozen=True)
class Settings:
    """What the config files and flags decided; ``origin`` says where each key from a file was set."""

    read_only: bool = False
    interval: float = DEFAULT_INTERVAL
    mouse: bool = True
    group_by: str = DEFAULT_GROUP  # the live view's first group key (one-shot commands do not read it)
    theme: str | None = None  # a Textual theme name, checked when the live view starts
    resolve: bool = False  # the live view starts with reverse DNS on (R toggles it)
    # Over this many flows the live view counts the table without holding it (0: always hold it).
    max_flows: int = MAX_FLOWS
    origin: Mapping[str, str] = field(default_factory=dict)

    def override(self, **flags: Any) -> Settings:
        """These settings with every flag that was given (not None) on top."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})

    def fail(self, key: str, what: str) -> ConfigError:
        """The one-line error for a value that is only found bad later (the theme, by the TUI)."""
        return _error(f"{self.origin.get(key, 'config')}: {key}", what)


class ConfigError(CttopError):
    pass


def _error(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where}: {what}; {NO_CONFIG_HINT}")


def _kind(v: object) -> str:
    """The TOML type of a bad value, with the value if short (repr escapes control characters)."""
    if isinstance(v, bool):
        return f"{str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, str):
        return f"the string {v!r}" if len(v) <= 40 else "a long string"
    return "an array" if isinstance(v, list) else "a table" if isinstance(v, dict) else "a date/time"


def _check_bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, got {_kind(v)}")
    return v


def _check_interval(v: object) -> float:
    lo, hi = INTERVAL_RANGE
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number of seconds, got {_kind(v)}")
    if not lo <= v <= hi:
        raise ValueError(f"{v} is out of range ({lo} to {hi:g} seconds)")
    return float(v)


def _check_max_flows(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected a number of flows, got {_kind(v)}")
    if v < 0:
        raise ValueError(f"{v} is negative (0 holds every flow)")
    return v


def _check_group(v: object) -> str:
    # Imported here: only a config that names a group pays for the group tables.
    from cttop.owners.groups import OWNER_GROUPS
    from cttop.table.groups import GROUPS

    names = (*GROUPS, *OWNER_GROUPS)
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {_kind(v)}")
    if v not in names:
        raise ValueError(f"{v!r} is not a group key (choose from {', '.join(names)})")
    return v


def _check_theme(v: object) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a theme name, got {_kind(v)}")
    return v


CHECKS: Final = {"read_only": _check_bool, "interval": _check_interval, "mouse": _check_bool,
                 "group_by": _check_group, "theme": _check_theme, "resolve": _check_bool,
                 "max_flows": _check_max_flows}


def default_paths(env: Mapping[str, str] = os.environ) -> list[str]:
    """The files read, lowest precedence first: ``$CTTOP_CONFIG`` alone, or the system's then the user's."""
    if env.get(CONFIG_ENV):
        return [env[CONFIG_ENV]]
    xdg = env.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):
        return [SYSTEM_PATH, os.path.join(xdg, "cttop", "config.toml")]
    # The running user's home from the password database, not $HOME: under `sudo -E` HOME is still the
    # caller's, whose file root would then refuse (not root's, not its own).
    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:  # a uid with no entry (a container's --user, DynamicUser without nss-systemd): no home
        return [SYSTEM_PATH]
    return [SYSTEM_PATH, os.path.join(home, ".config", "cttop", "config.toml")]


def load(paths: list[str], *, required: bool = False) -> Settings:
    """Read ``paths`` in order (later files win, key by key). A missing file is skipped unless ``required``."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in paths:
        text = read_trusted(path, required=required)
        if text is None:
            continue
        for key, (value, line) in parse(path, text).items():
            values[key], origin[key] = value, f"{path}:{line}"
    return Settings(**values, origin=origin)


def load_default() -> Settings:
    env = os.environ
    return load(default_paths(env), required=bool(env.get(CONFIG_ENV)))


def read_trusted(path: str, *, required: bool = False) -> str | None:
    """The file's text, or None when it does not exist (and is not required); ConfigError if not trusted."""
    try:
        fd = os.open(path, os.O_RDONLY | OPEN_FLAGS)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such config file ({CONFIG_ENV} names it)") from None
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _error(path, "a symlink; config files are not followed through symlinks") from None
        if e.errno == errno.ENOTDIR and not required:
            return None
        raise _error(path, f"cannot read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _error(path, "not a regular file")
        problem = untrusted(st)
        if problem is not None:
            raise _error(path, f"{problem}: not trusted")
        data = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise _error(path, f"larger than {MAX_BYTES // 1024} KiB: not a cttop config")
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise _error(f"{path}:{line}", "not UTF-8 text") from None


def parse(path: str, text: str) -> dict[str, tuple[Any, int]]:
    """Each key's checked value and line; ConfigError naming the file, the line and the key otherwise."""
    import tomllib  # only paid when a config file exists

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)|\(at end of document\)", str(e))
        lines = text.splitlines()
        if m and m.group(1):
            line = int(m.group(1))
        else:  # a value left open at the end: tomllib names no line; the last one with something on it is nearest
            line = next((i for i in range(len(lines), 0, -1) if lines[i - 1].strip()), 1)
        named = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", lines[line - 1] if line <= len(lines) else "")
        what = str(e)[:m.start()].strip() if m else str(e)
        what += " at the end of the file" if m and not m.group(1) else ""
        raise _error(f"{path}:{line}" + (f": {named.group(1)}" if named else ""), f"not valid TOML ({what})") from None
    except RecursionError:
        # tomllib recurses once a nested array or table: a kilobyte of brackets exhausts the stack. The line
        # that opens the most is where the nesting is.
        lines = text.splitlines() or [""]
        line = max(range(len(lines)), key=lambda i: lines[i].count("[") + lines[i].count("{")) + 1
        raise _error(f"{path}:{line}", "not valid TOML (values nested too deeply)") from None
    out: dict[str, tuple[Any, int]] = {}
    for key, value in doc.items():
        line = _line_of(text, key)
        if key not in CHECKS:
            raise _error(f"{path}:{line}: {key}", f"unknown key (known: {', '.join(CHECKS)})")
        try:
            out[key] = (CHECKS[key](value), line)
        except (TypeError, ValueError) as e:
            raise _error(f"{path}:{line}: {key}", str(e)) from None
    return out


def _line_of(text: str, key: str) -> int:
    """The line a top-level key is set on (tomllib keeps no positions): ``key =``, ``key.x =`` or ``[key]``."""
    k = re.escape(key)
    m = re.search(rf"^[ \t]*(?:\[[ \t]*)?(?:{k}|\"{k}\"|'{k}')[ \t]*[=.\]]", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else 1


_active = Settings()


def activate(settings: Settings) -> None:
    """Make ``settings`` the process's (the CLI does, once it has read the files and the flags)."""
    global _active
    _active = settings


def active() -> Settings:
    """The settings in force: the defaults until the CLI activates others (library use reads no file)."""
    return _active
