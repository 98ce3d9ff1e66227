"""External commands (nft, iptables) run inside a namespace, and the shell line a person would type.

A child process inherits the network namespace of the thread that forks it, so
running the command on :func:`cttop.kernel.netns.run_in`'s thread puts it in the
target namespace without ``ip netns exec``; the shown command spells that prefix
out so it can be pasted into a runbook.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

from cttop.actions.errors import ActionError
from cttop.kernel.netns import NetnsSpec, run_in


def prefix(spec: NetnsSpec) -> list[str]:
    """The words that run a command in ``spec``'s namespace from a shell."""
    if spec.name is not None:
        return ["ip", "netns", "exec", spec.name]
    if spec.pid is not None:
        return ["nsenter", "-t", str(spec.pid), "-n"]
    if spec.path is not None:
        return ["nsenter", f"--net={spec.path}"]
    return []


def shown(spec: NetnsSpec, argv: list[str]) -> str:
    return shlex.join(prefix(spec) + argv)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def run(spec: NetnsSpec, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``spec``'s namespace; a missing program is an ActionError, a failure is returned."""

    def go() -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                                  check=False)
        except FileNotFoundError:
            raise ActionError(f"{argv[0]}: command not found") from None
        except subprocess.TimeoutExpired:
            raise ActionError(f"{argv[0]}: no answer within 60 s") from None

    return run_in(spec, go)


def first_line(text: str) -> str:
    """The first non-empty line of a tool's error output, for a one-line message."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "failed"


def cttop_command(spec: NetnsSpec, command: list[str], rest: list[str] | None = None) -> str:
    """``cttop COMMAND --netns … REST``, quoted for a shell: the namespace option goes after the command name,
    as cttop wants it."""
    return shlex.join(["cttop", *command, *spec.argv(), *(rest or [])])
