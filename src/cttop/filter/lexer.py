"""Filter text to tokens, each remembering the column it started at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cttop.filter.errors import FilterError

# A word is anything an address, CIDR, port range, number with suffix or keyword can
# be made of, so `10.0.0.0/8`, `fe80::1`, `1000-2000`, `0x10/0xff` and `1Mi` are each
# one token, and so are process and container names such as `kube-proxy`, `pod:api-7d9`
# or `getty@tty1.service`. The class is spelled out so no non-ASCII letter or digit slips in.
WORD = r"[A-Za-z0-9_.:/@\-]+"
_TOKEN = re.compile(rf"(?P<ws>\s+)|(?P<op>&&|\|\||<=|>=|==|!=|[()!<>=])|(?P<word>{WORD})")


@dataclass(frozen=True, slots=True)
class Token:
    kind: Literal["word", "op", "end"]
    text: str
    col: int  # 1-based

    @property
    def key(self) -> str:
        """The text as a keyword: words are case-insensitive."""
        return self.text.lower() if self.kind == "word" else self.text


def tokenize(text: str) -> list[Token]:
    """Split ``text``; the list always ends with an ``end`` token one column past the text."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterError(f"unexpected character {text[pos]!r}", pos + 1)
        kind = m.lastgroup
        if kind == "op":
            tokens.append(Token("op", m.group(), pos + 1))
        elif kind == "word":
            tokens.append(Token("word", m.group(), pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens
