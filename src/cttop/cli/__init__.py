"""Command-line entry point.

Each command module registers its commands on ``app`` when imported. Only the
module of the command being run is imported: importing them all costs ~0.2 s
(prometheus_client, the lab, the actions), which is a fifth of a whole
`cttop snapshot` on a 262k-entry table and would lose the race against conntrack -L.
"""

from __future__ import annotations

import importlib
import os
import sys

from cttop.cli.status import INTERRUPTED
from cttop.termsafe import SafeStream

# command name -> module under cttop.cli that defines it
COMMANDS = {
    "snapshot": "snapshot_typer",
    "doctor": "doctor",
    "lab": "lab",
    "flush": "actions", "delete": "actions", "set": "actions", "undo": "actions", "journal": "actions",
    "tunables": "actions", "notrack": "actions",
    "namespaces": "host", "record": "recording", "replay": "recording", "export": "host",
    "events": "events", "expect": "expect",
}


def load_commands(argv: list[str]) -> None:
    name = next((a for a in argv if not a.startswith("-") or a == "--version"), None)
    if name == "--version":
        return  # printed and exited before any command is looked up
    modules = {COMMANDS[name]} if name in COMMANDS else set(COMMANDS.values())
    for m in sorted(modules):
        importlib.import_module(f"cttop.cli.{m}")


# typer's --show-completion and --install-completion detect the shell and ignore a shell named after them
# (from bash, `cttop --show-completion zsh` printed bash's script and `--install-completion fish` edited
# ~/.bashrc). This variable of typer's makes them options that take the shell's name instead.
NAMED_SHELL_VAR = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"
COMPLETION_OPTIONS = ("--show-completion", "--install-completion")


def names_a_shell(argv: list[str]) -> bool:
    """Whether a completion option is given a value (``--show-completion zsh`` or ``=zsh``)."""
    for i, a in enumerate(argv):
        if a.startswith(tuple(f"{o}=" for o in COMPLETION_OPTIONS)):
            return True
        if a in COMPLETION_OPTIONS:
            return i + 1 < len(argv) and not argv[i + 1].startswith("-")
    return False


COMPLETE_VAR = "_CTTOP_COMPLETE"  # click's protocol: a completing shell sets it and runs cttop


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:
        # Ctrl-C while the modules load (a tenth of a second and more on a busy box), before click's and the
        # TUI's own handling is in place: the shell's status, not a traceback. Hence app is imported here.
        sys.exit(INTERRUPTED)


def _main() -> None:
    completing = COMPLETE_VAR in os.environ
    # Every printer's text, and every message quoting a name, passes one filter on its way to the terminal
    # (the TUI draws on its own stream and sanitises what it draws). Not a completing shell's stdout: its
    # protocol needs the tab (fish: "value<TAB>help"), and the one name it offers, a namespace's, is escaped
    # where it is read (complete_netns).
    if not completing:
        sys.stdout = SafeStream(sys.stdout)  # type: ignore[assignment]
    sys.stderr = SafeStream(sys.stderr)  # type: ignore[assignment]
    if not completing and sys.argv[1:2] == ["snapshot"]:
        from cttop.cli.snapshot import quick

        if quick(sys.argv[2:]):  # without typer, where its words need none (cli/base.py)
            return
    from cttop.cli.app import app

    # A completing shell passes the words in the environment, not argv: every command module is loaded then,
    # so subcommands and their options complete.
    load_commands([] if completing else sys.argv[1:])
    if names_a_shell(sys.argv[1:]):
        os.environ[NAMED_SHELL_VAR] = "1"
    app(prog_name="cttop")
