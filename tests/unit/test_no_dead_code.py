"""No dead or test-only code at module level: every function, class and constant the package defines is used by
the package itself (issue 12: what only tests call belongs in tests/).

The methods and properties of module-level classes too, but for what others call by name: a base class's method
overridden, Textual's handlers, actions and watchers (``on_``, ``action_``, ``watch_``), http.server's request
methods (``do_``), and :data:`CALLED_BY_NAME`. Decorated functions are the decorator's to call (typer commands);
plain numbers are tables from the kernel's headers, kept whole.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import cttop

PACKAGE = Path(cttop.__file__).parent

# Methods called by a protocol no base class declares, and by whom.
CALLED_BY_NAME = {
    "writelines": "termsafe.SafeStream's, as a text stream's: else __getattr__ would hand out the raw stream's",
}
# What Python calls a method through: plain, or one of these decorators.
METHOD_DECORATORS = {"property", "cached_property", "staticmethod", "classmethod"}
# Textual calls on_*, _on_*, action_* and watch_* by their names; http.server do_<request method>.
BY_CONVENTION = ("on_", "_on_", "action_", "watch_", "do_")


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
    """``path:line name`` of each module-level name, method and property no line of ``sources`` uses but its own
    definition."""
    where: dict[str, set[tuple[str, int]]] = {}  # word -> the lines it stands in
    for path, src in sources.items():
        for i, text in enumerate(src.splitlines(), 1):
            for word in re.findall(r"\w+", text):
                where.setdefault(word, set()).add((path, i))
    return [f"{path}:{at} {name}" for path, src in sources.items() if path.endswith(".py")
            for tree in [ast.parse(src)] for name, at in module_names(tree) + class_methods(path, tree)
            if not where.get(name, set()) - {(path, at)}]


def class_methods(path: str, tree: ast.Module) -> list[tuple[str, int]]:
    """(name, line) of each method and property of the module's classes that no one calls by name (above)."""
    if path == "__main__.py":  # (importing it runs the CLI)
        return []
    module = importlib.import_module("cttop." + path.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
    out = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = getattr(module, node.name).__mro__[1:]
        for fn in node.body:
            if (isinstance(fn, ast.FunctionDef) and not fn.name.startswith("__")
                    and all(isinstance(d, ast.Name) and d.id in METHOD_DECORATORS for d in fn.decorator_list)
                    and not fn.name.startswith(BY_CONVENTION) and fn.name not in CALLED_BY_NAME
                    and not any(fn.name in vars(b) for b in bases)):
                out.append((fn.name, fn.lineno))
    return out


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*"))
            if p.suffix in (".py", ".tcss")}


def test_every_module_level_name_and_method_is_used_by_the_package() -> None:
    assert unused(package_sources()) == []


def test_the_check_finds_a_name_only_its_definition_uses() -> None:
    sources = package_sources()
    sources["kernel/framing.py"] += "\n\ndef only_tests_call_this() -> int:\n    return 1\n\nSPARE = frozenset({3})\n"
    assert [u.split()[1] for u in unused(sources)] == ["only_tests_call_this", "SPARE"]


def test_the_check_finds_a_method_or_property_only_its_definition_uses() -> None:
    sources = package_sources()
    sources["termsafe.py"] = sources["termsafe.py"].replace(
        "    def writelines(", "    @property\n    def never_read(self) -> int:\n        return 1\n\n"
        "    def only_tests_call_this(self) -> None:\n        pass\n\n    def writelines(")
    assert [u.split()[1] for u in unused(sources)] == ["never_read", "only_tests_call_this"]
