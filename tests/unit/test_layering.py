"""The architecture's hard rules: only cttop.ui may import textual, the layers hold, no import cycles
(docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys

import grimp
import pytest

import cttop

NON_UI = ("cttop.kernel", "cttop.table", "cttop.filter", "cttop.actions", "cttop.live", "cttop.doctor",
          "cttop.owners", "cttop.sources", "cttop.host", "cttop.lab", "cttop.model", "cttop.errors", "cttop.config",
          "cttop.termsafe", "cttop.safefs")


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


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # Function-level imports count (they are cycles all the same, just deferred); TYPE_CHECKING ones do not.
    return grimp.build_graph("cttop", exclude_type_checking_imports=True)


def import_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The strongly connected components of cttop's modules that hold more than one module."""
    ours = {m for m in graph.modules if m.startswith("cttop")}
    reach = {m: graph.find_upstream_modules(m) & ours for m in ours}  # what each imports, transitively
    cycles = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in ours}
    return sorted((c for c in cycles if len(c) > 1), key=sorted)


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    # The graph is the one the check needs: a function-level import is in it, a TYPE_CHECKING one is not.
    assert graph.direct_import_exists(importer="cttop.ui", imported="cttop.ui.app")  # run_tui's, in the function
    assert not graph.direct_import_exists(importer="cttop.ui.access", imported="cttop.ui.app")
    assert [sorted(c) for c in import_cycles(graph)] == []


def test_one_rule_judges_every_file_cttop_reads(graph: grimp.ImportGraph) -> None:
    """Whose file cttop may believe is cttop.safefs's alone: the config and the lab ask it, not the actions
    (which once held it, and the config restated it in words of its own)."""
    for user in ("cttop.config", "cttop.lab.containers", "cttop.actions.safeopen"):
        assert graph.direct_import_exists(importer=user, imported="cttop.safefs"), user
    assert not graph.chain_exists(importer="cttop.lab", imported="cttop.actions", as_packages=True)
    assert not graph.chain_exists(importer="cttop.config", imported="cttop.actions", as_packages=True)


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check can fail: a widget importing the app (as the screens once did, in a function) is a cycle."""
    graph = grimp.build_graph("cttop", exclude_type_checking_imports=True)  # its own: this one is changed
    graph.add_import(importer="cttop.ui.flows", imported="cttop.ui.app")
    assert any({"cttop.ui.app", "cttop.ui.flows"} <= c for c in import_cycles(graph))


PACKAGE = os.path.dirname(cttop.__file__)


def package_lines(top: str = PACKAGE) -> list[tuple[str, int, str]]:
    out = []
    for folder, _dirs, files in os.walk(top):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    out += [(os.path.relpath(path, top), i, line) for i, line in enumerate(f, 1)]
    return out


def framing_outside(lines: list[tuple[str, int, str]]) -> list[str]:
    """Lines outside kernel/framing.py that restate netlink's layout: a header struct, the 4-byte alignment
    or padding to it (the two hot loops inline it, saying so), a header's length as a bare 16."""
    layout = re.compile(r'Struct\("<(IHHII|IHH|HH)"\)|& ~3|-\w+ % 4\b'
                        r'|\b16\b.*\b(length|off)\b|\b(length|off)\b.*\b16\b')
    return [f"{p}:{i}: {text.strip()}" for p, i, text in lines
            if p != os.path.join("kernel", "framing.py") and layout.search(text.split("#")[0])
            and "framing.align, inlined" not in text]


def test_netlink_framing_is_framings_alone() -> None:
    """Issue 12: every reader walks netlink buffers with kernel/framing.py, or against its constants."""
    assert framing_outside(package_lines()) == []
    planted = [("sources/replay/reader.py", 1, "        off += (length + 3) & ~3"),
               ("kernel/attrs.py", 2, 'NLA = struct.Struct("<HH")'), ("x.py", 3, "    if off + 16 > len(data):"),
               ("sources/record.py", 4, '            chunks.append(data + b"\\0" * (-n % 4))')]
    assert len(framing_outside(planted)) == 4


def test_no_private_typer_or_click_imports() -> None:
    """Not in the package, nor in what builds and tests it (the man page generator once used typer._click)."""
    private = re.compile(r"^\s*(from|import)\s+(typer|click)(\.\w+)*(\._|\s+import\s+(\w+\s*,\s*)*_)")
    root = os.path.dirname(PACKAGE.rstrip(os.sep))
    found = [f"{p}:{i}" for top in (PACKAGE, *(os.path.join(root, "..", d) for d in ("scripts", "tests", "benchmarks")))
             for p, i, text in package_lines(top) if private.match(text)]
    assert found == []
    assert private.match("from typer._click import Context") and private.match("from typer import _click as click")
    assert not private.match("from typer import Context")


def test_no_code_outside_sources_asks_which_source_it_holds() -> None:
    """A Source declares what it supports (spec, playback, events_overflow); nobody tests its class."""
    concrete = re.compile(r"isinstance\([^)]*\b(LiveSource|ReplaySource|FixedSource)\b|type\(\w*source\w*\) is")
    assert [f"{p}:{i}" for p, i, text in package_lines()
            if not p.startswith("sources" + os.sep) and concrete.search(text)] == []
    assert concrete.search("if isinstance(self.source, ReplaySource):")


def test_the_kernel_sockets_are_used_through_their_apis() -> None:
    """Issue 12: the recorder once reached into EventSocket's and Ctnetlink's sockets; only kernel/ touches them."""
    reach = re.compile(r"\.sock\b")
    assert [f"{p}:{i}" for p, i, text in package_lines()
            if not p.startswith("kernel" + os.sep) and reach.search(text.split("#")[0])] == []
    assert reach.search("select.select([ev.sock], [], [], wait)")
