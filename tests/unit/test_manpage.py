"""The man page is the CLI's own help: regenerated here and compared with the shipped one, so it cannot drift;
and the wheel installs it where man finds it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import typer.main
from typer.core import TyperGroup

from cttop.cli import load_commands
from cttop.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "man" / "cttop.1"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_manpage", ROOT / "scripts" / "gen-manpage.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_page_is_what_the_help_generates_now() -> None:
    assert generator().page() == SHIPPED.read_text(), \
        "man/cttop.1 is stale: run .venv/bin/python scripts/gen-manpage.py and commit it"


def test_every_command_and_option_is_in_the_page() -> None:
    text = SHIPPED.read_text().replace("\\-", "-")
    load_commands([])
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="cttop")
    stack = [(root, ctx)]
    seen = 0
    while stack:
        cmd, c = stack.pop()
        if c.parent is not None:
            assert f'.SS "{c.command_path} ' in text, c.command_path
        for p in cmd.get_params(c):
            for opt in getattr(p, "opts", []):
                if opt.startswith("-"):
                    assert opt in text, (c.command_path, opt)
                    seen += 1
        if isinstance(cmd, TyperGroup):
            for name in cmd.list_commands(c):
                sub = cmd.get_command(c, name)
                assert sub is not None
                stack.append((sub, typer.Context(sub, info_name=name, parent=c)))
    assert seen > 50 and ".SS \"cttop notrack add " in text and "--no-mouse" in text


def test_the_wheel_installs_the_page_under_share_man(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("cttop-*.whl")
    with zipfile.ZipFile(wheel) as z:
        [name] = [n for n in z.namelist() if n.endswith("/share/man/man1/cttop.1")]
        assert name.split("/", 1)[0].endswith(".data") and z.read(name) == SHIPPED.read_bytes()
