"""What the commands share without typer: the one-line error and its exit (``fail``, ``guarded``), options
declared as data (``Opt``) and read without typer (``quick_values``), the namespace options, ``--filter``, and
the root's settings.

Why without typer: typer and the click it vendors are ~40 ms of CPU at every start, and ``cttop snapshot`` runs
from scripts every few seconds on a box whose table is full and whose cores are busy (~0.7 s in all at 262k
entries). A command whose words need no conversion (flags, and options taking text) runs straight from here;
any other word, ``--help`` included, goes through typer, which builds its options from the same ``Opt``
declarations (cli/app.py, ``typer_params``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

from cttop import config
from cttop.cli.status import INTERRUPTED
from cttop.errors import CttopError
from cttop.kernel.netns import NETNS_RUN_DIR, NetnsSpec
from cttop.termsafe import safe_line

if TYPE_CHECKING:  # the filter's parser loads only for a filter given (~10 ms of a start)
    from cttop.filter import Filter, OwnerSource

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``cttop: message`` on stderr and exit; never a traceback. One line, whatever names it quotes."""
    print(f"cttop: {safe_line(message)}", file=sys.stderr)
    raise SystemExit(code)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn CttopError (bad input, refused operation) into a one-line error and exit 2."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CttopError as e:
            fail(str(e))
        except KeyboardInterrupt:
            raise SystemExit(INTERRUPTED) from None

    return wrapper


@dataclass(frozen=True)
class Opt:
    """One option of a command, as data: typer's option is made from it (cli/app.py, ``typer_params``), and
    :func:`quick_values` reads it where typer is not loaded."""

    name: str  # the command's parameter
    flags: tuple[str, ...]  # a bool's flag sets it (there is no --no- form)
    kind: type  # bool, str, int or float
    default: object
    help: str
    metavar: str | None = None
    low: float | None = None  # the range a number is checked against
    high: float | None = None
    complete: Callable[[str], list[str]] | None = None  # the shell's completions of a partial value


# The kinds quick_values reads: a number needs typer's conversion and checks (ASCII digits, the range, nan).
_TEXT_KINDS = (bool, str)


def quick_values(opts: Sequence[Opt], args: Sequence[str]) -> dict[str, object] | None:
    """Each option's value from ``args`` read as typer reads them, or None where that takes typer.

    Read here: ``--flag``, ``--opt VALUE``, ``--opt=VALUE`` and ``-o VALUE``, each option once, for flags and
    options taking text. None for anything else (a number, ``--help``, an unknown word, an option twice, a
    value that starts with ``-``, ``--``): typer then reads the words, with its own checks and messages. A
    test holds this to typer's reading of the same words."""
    by_flag = {f: o for o in opts for f in o.flags}
    values = {o.name: o.default for o in opts}
    seen: set[str] = set()
    i = 0
    while i < len(args):
        word, given = args[i], None
        if word.startswith("--") and "=" in word:
            word, given = word.split("=", 1)
        o = by_flag.get(word)
        if o is None or o.name in seen or o.kind not in _TEXT_KINDS:
            return None
        seen.add(o.name)
        if o.kind is bool:
            if given is not None:
                return None
            values[o.name] = True
        else:
            if given is None:
                i += 1
                if i == len(args) or args[i].startswith("-"):
                    return None
                given = args[i]
            values[o.name] = given
        i += 1
    return values


def complete_netns(incomplete: str) -> list[str]:
    """The named namespaces (`ip netns list`) starting with what was typed, for shell completion; a name's
    control characters escaped, since the shell prints what it is offered."""
    try:
        return sorted(safe_line(n) for n in os.listdir(NETNS_RUN_DIR) if n.startswith(incomplete))
    except OSError:
        return []  # no named namespace yet, or not allowed to look: nothing to offer


# The options that choose a namespace, declared once: every command that takes them says so with
# @netns_options() (cli/app.py) and receives the NetnsSpec they name.
NETNS_OPTS = (
    Opt("netns", ("--netns",), str, None, "Network namespace by name, as `ip netns list` shows it.",
        complete=complete_netns),
    Opt("netns_pid", ("--netns-pid",), int, None, "Network namespace of this process."),
    Opt("netns_path", ("--netns-path",), str, None, "Network namespace by path (e.g. /proc/PID/ns/net)."),
)


def netns_spec(name: str | None, pid: int | None, path: str | None, usage_exit: int = 2) -> NetnsSpec:
    if sum(x is not None for x in (name, pid, path)) > 1:
        fail("--netns, --netns-pid and --netns-path are exclusive: give one", usage_exit)
    return NetnsSpec(name=name, pid=pid, path=path).pinned()  # what it names now, for the command's whole run


def filter_uses_owners(text: str) -> bool:
    """Whether ``--filter`` names owners (pid, process...); a blank one loads no parser."""
    if not text.strip():
        return False
    from cttop.filter import parse, uses_owners  # the parser loads only for a filter given (~10 ms of a start)

    return uses_owners(parse(text, owners=True))


def command_filter(text: str, spec: NetnsSpec, owners: OwnerSource | None = None) -> Filter:
    """``--filter`` of a one-shot command. The owner words (``pid``, ``process``...) work: the
    namespaces' sockets are read once, now (unless the caller did, into ``owners``), and only
    when the filter uses them."""
    from cttop.filter import compile_filter

    if not filter_uses_owners(text):
        return compile_filter(text)
    if owners is None:
        from cttop.host.containers import host_owners  # psutil and socket dumps: only for filters that ask

        fresh = host_owners(spec)
        fresh.refresh()
        owners = fresh
    return compile_filter(text, owners)


def settle(no_config: bool = False, **flags: object) -> config.Settings:
    """The settings the config files (unless ``no_config``) and the root's ``flags`` (None: not given) make,
    made the process's."""
    settings = config.Settings() if no_config else guarded(config.load_default)()
    settings = settings.override(**flags)
    config.activate(settings)
    return settings
