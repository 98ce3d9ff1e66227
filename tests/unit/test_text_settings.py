"""Textual draws a rich ``Text`` that a widget renders or a ``Static`` holds by the widget's CSS (``text-wrap``,
``text-overflow``): the Text's own ``no_wrap``, ``overflow`` and ``end`` are dropped on the way
(``Content.from_rich_text``). Set anyway, they read as if they cut the rows, which cttop does itself. Only a Text
that rich draws itself (a renderable's ``__rich_console__``) keeps them."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from rich.console import Console
from rich.segment import Segment

import cttop.ui
from cttop.ui.hanging import Hanging, Para

UI = Path(cttop.ui.__file__).parent
DROPPED = {"no_wrap", "overflow", "end"}
# Yielded from a rich renderable's __rich_console__: rich draws it, and cuts a lead wider than the width by these.
RICH_DRAWN = {"hanging.py"}


def test_no_text_is_given_settings_textual_drops() -> None:
    found = []
    for path in sorted(UI.rglob("*.py")):
        if path.name in RICH_DRAWN:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Text":
                dropped = sorted(k.arg for k in node.keywords if k.arg in DROPPED)
                if dropped:
                    found.append(f"{path.relative_to(UI)}:{node.lineno} {dropped}")
    assert found == [], found


def test_the_rich_drawn_text_keeps_them() -> None:
    """The exception is real: rich draws a Hanging's Text itself, and cuts a lead wider than the width on its own
    line rather than wrap it onto the next (which would read as the body's continuation)."""
    console = Console(width=12, file=io.StringIO(), color_system=None)
    lines = console.render_lines(Hanging([Para("[iptables PREROUTING] ", "notrack")]), pad=False)
    assert [Segment.get_line_length(line) for line in lines] == [12, 12], lines  # the lead, then "otrack"
    assert "".join(seg.text for seg in lines[0]).endswith("…")
