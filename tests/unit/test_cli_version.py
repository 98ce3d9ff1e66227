"""`cttop --version`: the installed package's version, one line, exit 0, whatever else is on the line."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import run_cttop

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_package_metadata_and_pyproject() -> None:
    r = run_cttop("--version")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"cttop {importlib.metadata.version('cttop')}\n"
    # The metadata is pyproject's version: an editable install that went stale would show here.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert r.stdout == f"cttop {pyproject}\n"


@pytest.mark.parametrize("args", [["--version", "snapshot"], ["--no-config", "--version"],
                                  ["--version", "--netns", "x"]])
def test_version_wins_over_the_rest_of_the_line(args: list[str]) -> None:
    r = run_cttop(*args, env={"CTTOP_CONFIG": "/nonexistent/config.toml"})
    assert (r.returncode, r.stdout.count("\n"), r.stderr) == (0, 1, "")
    assert r.stdout.startswith("cttop ")


def test_version_loads_no_command_module() -> None:
    code = ("import sys; sys.argv = ['cttop', '--version']\nfrom cttop.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('cttop.cli.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == [f"cttop {importlib.metadata.version('cttop')}", "['cttop.cli.app', 'cttop.cli.base', 'cttop.cli.status']"]
