"""The architecture's one hard rule: only cttop.ui may import textual (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import cttop

NON_UI = ("cttop.kernel", "cttop.table", "cttop.filter", "cttop.actions", "cttop.live", "cttop.doctor",
          "cttop.owners", "cttop.sources", "cttop.host", "cttop.lab", "cttop.model", "cttop.errors")


def non_ui_modules() -> list[str]:
    names = []
    for m in pkgutil.walk_packages(cttop.__path__, "cttop."):
        if m.name.startswith(NON_UI):
            names.append(m.name)
    return names


def test_engine_modules_never_import_textual() -> None:
    mods = non_ui_modules()
    assert "cttop.kernel.decode" in mods and "cttop.table.store" in mods
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods) + \
        "print(sorted(k for k in sys.modules if k == 'textual' or k.startswith('textual.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_import_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts: the layers of docs/ARCHITECTURE.md, and textual only in cttop.ui."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    r = subprocess.run([lint, "--no-cache"], capture_output=True, text=True, check=False,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout, r.stdout[-2000:]
