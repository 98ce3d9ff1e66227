"""The type stub of the compiled accelerator (kernel/_ctdecode.pyi) against the module built from the C sources.

mypy reads only the stub, so a method the C added, dropped or changed goes unchecked (or is hidden behind a
``type: ignore``) until the stub says the same. Both ways: each public name of the module and of each of its
classes is in the stub and each the stub declares is in the module; where a C docstring opens with the
signature (``groups(i=0) -> ...``), the stub's parameters have the same names, and the same ones are optional.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import cttop

STUB = Path(cttop.__file__).parent / "kernel" / "_ctdecode.pyi"

# Parameters, as a C docstring or the stub gives them: the name, with "*" before a star-argument's and "="
# after an optional one's.
Params = list[str]


def built() -> ModuleType:
    return pytest.importorskip("cttop.kernel._ctdecode",
                               reason="the compiled accelerator is not built (`pip install -e .` builds it)")


def doc_params(name: str, doc: str | None) -> Params | None:
    """The parameters of ``name(a, b=0, *c, d[, e])`` opening ``doc``; None where the doc opens otherwise."""
    if not doc or not doc.startswith(name + "("):
        return None
    pieces: list[tuple[str, bool]] = []  # (text, whether it began inside [ ]: optional)
    text, parens, brackets, began_in_brackets = "", 0, 0, False
    for ch in doc[len(name) + 1:]:
        if ch == ")" and parens == 0:
            break
        if ch == "," and parens == 0:
            pieces.append((text, began_in_brackets))
            text, began_in_brackets = "", brackets > 0
            continue
        parens += (ch == "(") - (ch == ")")  # an annotation's own, as in "positions: array('I')"
        brackets += (ch == "[") - (ch == "]")
        if ch not in "[]":
            text += ch
    pieces.append((text, began_in_brackets))
    out = []
    for piece, optional in pieces:
        param = piece.split(":")[0].split("=")[0].strip()
        if param:
            out.append(param + ("=" if optional or "=" in piece else ""))
    return out


def stub_params(fn: ast.FunctionDef, method: bool) -> Params:
    """The parameters of a stub ``def``, less a method's ``self``."""
    a = fn.args
    positional = a.posonlyargs + a.args
    if method:
        positional = positional[1:]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [p.arg + ("=" if d is not None else "") for p, d in zip(positional, defaults, strict=True)]
    if a.vararg is not None:
        out.append("*" + a.vararg.arg)
    out += [p.arg + ("=" if d is not None else "") for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    return out


def stub_members(body: list[ast.stmt]) -> dict[str, ast.FunctionDef | None]:
    """The public names a stub module or class body declares: each ``def`` (the last of an @overload run), class
    and bare annotation (``API: int``); aliases (``Shape = ...``) are the stub's own, not the module's."""
    out: dict[str, ast.FunctionDef | None] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
        elif isinstance(node, ast.AnnAssign) and node.value is None and isinstance(node.target, ast.Name):
            out[node.target.id] = None
    return {name: fn for name, fn in out.items() if not name.startswith("_") or name == "__init__"}


def mismatches(stub: str, module: ModuleType) -> list[str]:
    """Each way the stub's text and the module differ, one line each; [] when they agree."""
    out = []

    def compare(where: str, declared: dict[str, ast.FunctionDef | None], documented: dict[str, Params | None],
                method: bool) -> None:
        """``documented``: each public name of the module or class, and the parameters its C docstring gives."""
        public, names = set(declared) - {"__init__"}, set(documented) - {"__init__"}
        out.extend(f"{where}{n}: in the module, not the stub" for n in sorted(names - public))
        out.extend(f"{where}{n}: in the stub, not the module" for n in sorted(public - names))
        for name, fn in declared.items():
            params = documented.get(name)
            if fn is not None and params is not None and stub_params(fn, method) != params:
                out.append(f"{where}{name}: the stub takes {stub_params(fn, method)}, the C {params}")

    tree = ast.parse(stub)
    compare("", stub_members(tree.body),
            {n: doc_params(n, getattr(v, "__doc__", None)) for n, v in vars(module).items() if not n.startswith("_")},
            method=False)
    for node in tree.body:
        cls = getattr(module, node.name, None) if isinstance(node, ast.ClassDef) else None
        if isinstance(node, ast.ClassDef) and isinstance(cls, type):
            documented = {n: doc_params(n, v.__doc__) for n, v in vars(cls).items() if not n.startswith("_")}
            documented["__init__"] = doc_params(node.name, cls.__doc__)  # the class's docstring: how it is made
            compare(f"{node.name}.", stub_members(node.body), documented, method=True)
    return out


def test_the_stub_declares_what_the_compiled_module_has() -> None:
    assert mismatches(STUB.read_text(), built()) == []


def test_the_check_finds_a_stub_behind_the_c() -> None:
    """The stub as it was when Counts had grown ngroups() and groups(i), Records timeouts(at) and Counts
    Counts(*groups): each is found."""
    stale = (STUB.read_text()
             .replace("    def ngroups(self) -> int: ...\n", "")
             .replace("def groups(self, i: int = 0, /)", "def groups(self)")
             .replace("def __init__(self, *groups: tuple[int, ...])", "def __init__(self, reads: tuple[int, ...])")
             .replace("    def timeouts(self, at: tuple[tuple[int, int], ...], /)", "    def _gone(self)")
             + "\nSPARE: int\n")
    assert mismatches(stale, built()) == [
        "SPARE: in the stub, not the module",
        "Records.timeouts: in the module, not the stub",
        "Counts.ngroups: in the module, not the stub",
        "Counts.__init__: the stub takes ['reads'], the C ['*groups']",
        "Counts.groups: the stub takes [], the C ['i=']",
    ]
