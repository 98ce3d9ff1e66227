"""Shell commands drawn so that pasting what is on screen runs exactly them.

People copy these lines into a shell or a runbook, so a line the terminal wraps
on its own (the tail of a long command at column 0, the tail of a ``# comment``
run as a command) is a hazard. Here every command starts its own line and a
long one is broken the way a person would type it: the line ends in a
backslash, which the shell removes together with the newline.

- Between words the break is `` \\`` and the next line is indented.
- Inside a single word (an ``nft`` rule in quotes is one word, often wider than
  an 80-column dialog) indentation would split the word, so the next line starts
  at column 0: inside single quotes the quote is closed before the backslash and
  reopened on the next line (``'abc'\\`` + ``'def'`` is ``abcdef``), since a
  backslash there is literal; elsewhere a bare ``\\`` continues the word.
- A comment goes on a line of its own starting with ``#``, above its command,
  and never shares a line with a command (the trailing ``   # why`` some
  commands carry is moved there).

:func:`shell_lines` does the layout; :class:`CommandBlock` is the widget that
draws it at its own width (the confirmation dialog and the doctor's fixes).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import ClassVar, Final, NamedTuple

from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from cttop.termsafe import safe_line

INDENT: Final = "    "  # continuation lines of a command broken between words
MIN_WIDTH: Final = 24  # narrower than this, lines may overflow rather than break into slivers

# Line kinds, for styling.
COMMAND: Final = "command"  # a command's first line
CONTINUED: Final = "continued"  # a later line of the same command
COMMENT: Final = "comment"

_QUOTES: Final = "'\""


class ShellLine(NamedTuple):
    text: str
    kind: str


def _quote_states(cmd: str) -> list[str]:
    """For each index, the quoting in force *before* that character: '', "'" or '"'.

    A backslash outside single quotes escapes the next character; ``#`` at the
    start of a word outside quotes starts a comment, which :func:`split_comment` handles.
    """
    states: list[str] = []
    state = ""
    escaped = False
    for c in cmd:
        states.append("\\" if escaped else state)
        if escaped:
            escaped = False
        elif c == "\\" and state != "'":
            escaped = True
        elif state == "" and c in _QUOTES:
            state = c
        elif state == c:
            state = ""
    return states


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its comment (from ``#``, '' when none), as the shell reads them."""
    states = _quote_states(line)
    for i, c in enumerate(line):
        if c == "#" and states[i] == "" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
    return line, ""


def comment_lines(comment: str, width: int) -> list[str]:
    """``comment`` as lines that each start with ``# `` and fit ``width`` (a long word may overflow)."""
    body = comment.lstrip("#").strip()
    if not body:
        return ["#"]
    return ["# " + part for part in textwrap.wrap(body, max(width, MIN_WIDTH) - 2, break_on_hyphens=False)]


def wrap_command(cmd: str, width: int) -> list[str]:
    """One command (no comment) as the lines described in the module's docstring, each within ``width``."""
    width = max(width, MIN_WIDTH)
    states = _quote_states(cmd)
    lines: list[str] = []
    start, head = 0, ""  # the next line: cmd[start:], after ``head`` (indentation and a reopened quote)
    while True:
        room = width - len(head)
        if len(cmd) - start <= room:
            lines.append(head + cmd[start:])
            return lines
        # Between words: the last unquoted space that leaves room for " \".
        spaces = [j for j in range(start + 1, min(start + room - 1, len(cmd))) if cmd[j] == " " and states[j] == ""]
        if spaces:
            j = spaces[-1]
            lines.append(head + cmd[start:j] + " \\")
            start, head = j + 1, INDENT
            continue
        # Inside a word: as far as fits, preferring just after a space (inside quotes) in the later half.
        limit = start + room - 2  # room for the closing quote and the backslash
        cuts = [j for j in range(start + 1, limit + 1) if _can_cut(cmd, states, j)]
        if not cuts:  # nowhere to cut within the width (a long run of escapes): let the line overflow
            lines.append(head + cmd[start:])
            return lines
        soft = [j for j in cuts if cmd[j - 1] == " " and j - start >= room // 2]
        j = (soft or cuts)[-1]
        if states[j] == "'":
            lines.append(head + cmd[start:j] + "'\\")
            start, head = j, "'"
        else:
            lines.append(head + cmd[start:j] + "\\")
            start, head = j, ""


def _can_cut(cmd: str, states: list[str], j: int) -> bool:
    """Whether a word may be continued on the next line before ``cmd[j]``."""
    if states[j] == "\\" or cmd[j - 1] == "\\":
        return False  # never between a backslash and what it escapes
    if states[j] == "'":
        return cmd[j] != "'"  # not at the closing quote: it would leave an empty '' behind
    return states[j] == '"' or cmd[j] not in _QUOTES + " "


def shell_lines(commands: Sequence[str], width: int) -> list[ShellLine]:
    """Every command from its own line, a comment above its command, at ``width`` columns.

    An entry may be a command, a command with a trailing ``# comment``, or a comment alone. An entry is
    never split at a newline inside it: commands quote names from the kernel, /proc and the journal, and a
    newline in one of those must not show as a second command, so it is escaped like every control character.
    """
    out: list[ShellLine] = []
    for entry in commands:
        cmd, comment = split_comment(safe_line(entry).strip())
        if comment:
            out += [ShellLine(c, COMMENT) for c in comment_lines(comment, width)]
        if cmd:
            wrapped = wrap_command(cmd, width)
            out.append(ShellLine(wrapped[0], COMMAND))
            out += [ShellLine(c, CONTINUED) for c in wrapped[1:]]
    return out


class CommandBlock(Widget):
    """Commands (and comments) laid out by :func:`shell_lines` at this widget's width, as tall as that takes.

    ``CommandBlock(plan.commands())``; :meth:`update` replaces them. Comments are dimmed and the
    continuation backslashes stand out, but neither by colour alone: both are characters on the line.
    """

    DEFAULT_CSS = """
    CommandBlock { width: 1fr; height: auto; }
    CommandBlock > .commands--comment { color: $text-muted; text-style: italic; }
    CommandBlock > .commands--marker { color: $accent; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"commands--comment", "commands--marker"}

    commands: reactive[tuple[str, ...]] = reactive((), layout=True)  # other commands, another height

    def __init__(self, commands: Sequence[str] = (), *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(CommandBlock.commands, tuple(commands))

    def update(self, commands: Sequence[str]) -> None:
        self.commands = tuple(commands)

    def lines(self, width: int | None = None) -> list[ShellLine]:
        return shell_lines(self.commands, self.content_size.width if width is None else width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(shell_lines(self.commands, width))

    def render(self) -> Text:
        comment = self.get_component_rich_style("commands--comment")
        marker = self.get_component_rich_style("commands--marker")
        t = Text()
        for i, (line, kind) in enumerate(self.lines()):
            if i:
                t.append("\n")
            if kind == COMMENT:
                t.append(line, comment)
            elif line.endswith("\\"):
                t.append(line[:-1])
                t.append("\\", marker)
            else:
                t.append(line)
        return t
