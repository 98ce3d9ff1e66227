"""No dead or test-only code at module level: every function, class and constant the package defines is used by
the package itself (issue 12: what only tests call belongs in tests/).

Methods are not checked (Textual and the standard library call many by name); decorated functions are the
decorator's to call (typer commands); plain numbers are tables from the kernel's headers, kept whole.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cttop

PACKAGE = Path(cttop.__file__).parent


def kernel_number(value: ast.expr | None) -> bool:
    """A plain number (``10``, ``1 << 9``): a table copied from a kernel header stays whole, used or not."""
    if isinstance(value, ast.BinOp):
        return kernel_number(value.left) and kernel_number(value.right)
    return isinstance(value, ast.Constant) and isinstance(value.value, int)


def module_names(tree: ast.Module) -> list[tuple[str, int]]:
    """(name, line) of each undecorated function and class, and each constant, defined at module level."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.decorator_list:
            out.append((node.name, node.lineno))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and not kernel_number(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [(t.id, node.lineno) for t in targets if isinstance(t, ast.Name)]
    return [(n, line) for n, line in out if not n.startswith("__") and n != "main"]


def unused(sources: dict[str, str]) -> list[str]:
    """``path:line name`` of each module-level name no line of ``sources`` uses but its own definition."""
    where: dict[str, set[tuple[str, int]]] = {}  # word -> the lines it stands in
    for path, src in sources.items():
        for i, text in enumerate(src.splitlines(), 1):
            for word in re.findall(r"\w+", text):
                where.setdefault(word, set()).add((path, i))
    return [f"{path}:{at} {name}" for path, src in sources.items() if path.endswith(".py")
            for name, at in module_names(ast.parse(src)) if not where.get(name, set()) - {(path, at)}]


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*"))
            if p.suffix in (".py", ".tcss")}


def test_every_module_level_name_is_used_by_the_package() -> None:
    assert unused(package_sources()) == []


def test_the_check_finds_a_name_only_its_definition_uses() -> None:
    sources = package_sources()
    sources["kernel/framing.py"] += "\n\ndef only_tests_call_this() -> int:\n    return 1\n\nSPARE = frozenset({3})\n"
    assert [u.split()[1] for u in unused(sources)] == ["only_tests_call_this", "SPARE"]
