"""Paragraphs with a hanging indent, laid out at the width they are drawn at.

A warning after its ``!``, a NOTRACK rule after its ``[nft pre]``: the lines a long one wraps onto start under
its text, so they do not read as the next item, as they did at the left edge. Textual's own wrap cannot indent a
continuation, and where a word folded at the right edge is followed by another too long for a line, it leaves a
blank line between them (Textual 8.2's ``Content.wrap``, rich's ``Text.wrap`` alike). :mod:`textwrap` does
neither, but counts characters: a wide one (CJK, an emoji in a namespace's name) takes two cells, and its line
overflowed. So the wrap is :mod:`textwrap`'s, measured in terminal cells (:func:`wrap_cells`).

:class:`Hanging` is a Rich renderable, so a ``Static`` holds it: Textual asks it for its lines at the widget's
width, for its height and for its drawing alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, NamedTuple

from rich.cells import cell_len, chop_cells
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

# How far in from its own start a line with no marker goes on: further than the lines under it, which a plan
# indents by 2 (at 2, "Stop tracking … in namespace" went on level with the "4 rules in nft table…" after it).
HANG: Final = 4


class Para(NamedTuple):
    """One paragraph: ``lead`` (a marker, a label) once, then ``body`` wrapped under the body's own start, or
    ``hang`` columns further in.

    Both are drawn as given: make text from the kernel, /proc or a file terminal-safe first (cttop.termsafe).
    """

    lead: str
    body: str
    lead_style: str = ""
    style: str = ""
    hang: int = 0


def indented(line: str) -> Para:
    """A line of its own, its leading spaces its lead: it goes on HANG columns in from where its text starts, so
    its continuation does not read as the next line (a plan's rule under "4 rules in nft table…")."""
    body = line.lstrip(" ")
    return Para(line[:len(line) - len(body)], body, hang=HANG)


def para_lines(p: Para, width: int) -> list[str]:
    """``p`` as lines of at most ``width`` cells (its lead may overflow a narrower width): the first starts with
    the lead, the rest are indented under the body's start (and ``hang``), but by at most half the width, so a long
    lead (``[iptables PREROUTING]``) leaves its body room. A word longer than a line is cut across lines; no line is
    blank, unless the paragraph is."""
    width = max(1, width)
    lead = cell_len(p.lead)
    indent = min(lead + p.hang, width // 2)
    lines = wrap_cells(p.body, width, lead, indent)
    if not lines:
        return [p.lead]
    return [p.lead + lines[0], *(" " * indent + line for line in lines[1:])]


_WORDS = re.compile(r"(\s+)")
_SPACE = re.compile(r"\s")


def wrap_cells(text: str, width: int, first: int, rest: int) -> list[str]:
    """``text`` in lines, the first to go ``first`` cells in and the others ``rest``, none past ``width`` cells
    with its indent: :func:`textwrap.wrap` (tabs expanded, whitespace made spaces, words split only at it, a
    word longer than a line cut to fill it, spaces dropped at the ends of lines but the first's start), measured
    in terminal cells. Lines are returned without their indents. A character wider than a line's room goes on a
    line of its own, the one overflow there can be."""
    chunks = [c for c in _WORDS.split(_SPACE.sub(" ", text.expandtabs())) if c]
    chunks.reverse()  # popped from the end
    lines: list[str] = []
    while chunks:
        if lines and chunks[-1].isspace():
            chunks.pop()
            continue
        room = width - (rest if lines else first)
        parts: list[str] = []
        used = 0
        while chunks and used + cell_len(chunks[-1]) <= room:
            used += cell_len(chunks[-1])
            parts.append(chunks.pop())
        if chunks and cell_len(chunks[-1]) > room:  # longer than a line: what fits here, the rest on the next
            head = next(piece for piece in chop_cells(chunks[-1], max(1, room - used)) if piece)
            if not parts or cell_len(head) <= room - used:
                parts.append(head)
                chunks[-1] = chunks[-1][len(head):]
                if not chunks[-1]:
                    chunks.pop()
        while parts and parts[-1].isspace():
            parts.pop()
        if parts:
            lines.append("".join(parts))
    return lines


class Hanging:
    """Paragraphs, each from its own line, with a hanging indent (:func:`para_lines`)."""

    def __init__(self, paras: Iterable[Para]) -> None:
        self.paras = tuple(paras)

    @property
    def plain(self) -> str:
        """Each paragraph on one line, unwrapped: the dialog's text as a whole (ConfirmScreen.text)."""
        return "\n".join(p.lead + p.body for p in self.paras)

    def text(self, width: int) -> Text:
        # The lines fit already; rich draws this Text itself, and cuts only a lead wider than the width.
        t = Text(no_wrap=True, overflow="ellipsis")
        for i, p in enumerate(self.paras):
            for j, line in enumerate(para_lines(p, width)):
                if i or j:
                    t.append("\n")
                if j == 0:
                    t.append(p.lead, p.lead_style)
                    line = line[len(p.lead):]
                t.append(line, p.style)
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.text(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((cell_len(p.lead + p.body) for p in self.paras), default=0)
        return Measurement(min(widest, 1), min(widest, options.max_width))
