"""Text from the kernel, /proc, cgroups and files, made safe to draw on a terminal.

cttop runs as root and shows names that other users choose: a process's name
(``prctl(PR_SET_NAME)``, argv[0]), a cgroup or netns name, a pod's /etc/hostname,
a journal or recording someone edited. Written raw, ESC and C1 sequences retitle
the terminal, recolour or hide text and move the cursor; bidi overrides make a
name read differently from what it holds; a newline forges a line of output.

Each unsafe code point becomes a visible escape in Python's notation (``\\x1b``,
``\\x9b``, ``\\u202e``) rather than ``?``: the reader still sees what the name
really holds, two names differing only in control bytes stay apart, and the
text can be pasted into ``grep -P`` or a Python string to find the process. A
literal backslash is left as it is: doubling it would garble every path and
rule for the sake of a cosmetic ambiguity; where two names must never read
alike (a metric's labels), :func:`safe_distinct` doubles it. Lone surrogates
(bytes that were not UTF-8, decoded with ``surrogateescape`` as ``os`` and
psutil do) show as the byte they stand for, ``\\xff``, instead of crashing the
UTF-8 encoder.

JSON keeps the raw name for scripts: ``json.dumps`` escapes all of these itself
(``\u001b``), so its text holds none and passes :class:`SafeStream` unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, TextIO

# Unicode's format characters (category Cf, as of Unicode 14, Python 3.11's): the bidi marks, embeddings,
# overrides and isolates, which reorder text; and the zero-width and invisible ones (U+200B-D, U+2060-4, U+FEFF,
# the soft hyphen, the tags U+E0020-7F), which hide in a name: "ss\u200bhd" reads "sshd". An emoji joined by
# U+200D shows its escape too: a name that passes for another is worse than one shown plainly.
_FORMAT: Final = ("\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
                  "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
                  "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
# Besides those: C1 controls, DEL, and the line and paragraph separators (U+2028/9, line breaks to some
# renderers); lone surrogates; and the C0 controls, all (a line) or all but the newline (a block).
_OTHERS: Final = "\x7f-\x9f\u2028\u2029\ud800-\udfff"
_UNSAFE: Final = re.compile(f"[\x00-\x1f{_OTHERS}{_FORMAT}]")
_UNSAFE_BUT_NEWLINE: Final = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}{_FORMAT}]")
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPES: Final = range(0xDC80, 0xDD00)  # surrogateescape's stand-ins for the bytes 0x80-0xFF
_PRINTABLE_ASCII: Final = bytes(range(0x20, 0x7F))


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c in _SURROGATE_ESCAPES:
        return f"\\x{c - 0xDC00:02x}"
    if c < 0x100:
        return f"\\x{c:02x}"
    return f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def _plain(text: str, keep: str) -> bool:
    """Nothing to escape: printable (or ``keep``) only. A quick test before the regex, which takes 20 ns a
    character (`snapshot --json --flows` writes 100 MB at once): ASCII at memory speed, the rest by
    ``isprintable``, false for every character escaped here (and for a few harmless ones the regex passes)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII + keep.encode())
    return (text.replace(keep, "") if keep else text).isprintable()


def safe_line(text: object) -> str:
    """One field for one line (a name, an id, a rule): every control character escaped, newline and tab too.

    Anything but a string is shown as ``str()`` shows it: a damaged file's field of the wrong type still prints.
    """
    text = text if isinstance(text, str) else str(text)
    return text if _plain(text, "") else _UNSAFE.sub(_escape, text)


def safe_distinct(text: object) -> str:
    """:func:`safe_line`, but one to one: a literal backslash doubled first, so no name's escape reads as another
    name's literal text. For a value that must stay apart from every other, a metric's label: a namespace named
    ``e\\x1b`` (backslash, x, 1, b) and one named e and ESC were one series, twice in each scrape."""
    text = (text if isinstance(text, str) else str(text)).replace("\\", "\\\\")
    # A lone surrogate by its code point, not the byte it stands for: byte 0x9b of a name that is not UTF-8 and
    # U+009B of one that is would both read \x9b.
    return safe_line(_SURROGATES.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def safe_text(text: object) -> str:
    """A block of lines (a message, evidence, a whole printout): the same, but newlines stay newlines."""
    text = text if isinstance(text, str) else str(text)
    return text if _plain(text, "\n") else _UNSAFE_BUT_NEWLINE.sub(_escape, text)


class SafeStream:
    """A text stream that passes everything written to it through :func:`safe_text`.

    The CLI's stdout and stderr, so that no printer (and no message quoting a name)
    can reach the terminal with a raw control character, whoever wrote it. JSON
    printed through it is unchanged: ``json.dumps`` leaves no control character in
    its output. Bytes written to ``.buffer`` are not filtered; cttop writes none.
    """

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            # As a text stream does: click probes with write(b"") and would send bytes past the filter.
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.raw.write(safe_text(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:
        # flush, isatty, fileno, encoding...: the real stream's.
        return getattr(self.raw, name)
