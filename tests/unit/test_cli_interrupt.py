"""Ctrl-C while cttop's modules load ends it with the shell's status for SIGINT, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Ctrl-C arrives while the named module is being imported: the finder raises what the signal would.
CODE = """
import importlib.abc, sys
class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == module:
            raise KeyboardInterrupt
        return None
sys.meta_path.insert(0, CtrlC())
module, sys.argv = sys.argv[1], ["cttop", *sys.argv[2:]]
from cttop.cli import main
main()
"""


@pytest.mark.parametrize(("module", "argv"), [
    ("cttop.cli.app", ["snapshot", "--top", "3"]),  # the CLI's root, which every command read by typer needs
    ("cttop.cli.base", ["snapshot"]),  # what a command read without typer needs (cli/base.py)
    ("cttop.cli.snapshot", ["snapshot"]),  # the command's own module
    ("cttop.cli.host", ["namespaces"]),
    ("typer", ["--version"]),
])
def test_ctrl_c_while_modules_load_is_status_130_and_no_traceback(module: str, argv: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", CODE, module, *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr
