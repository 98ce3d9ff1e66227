"""The hanging-indent wrap measures terminal cells: a wide character (CJK, an emoji in a namespace's name or a
filter) takes two, and a line wrapped by characters overflowed its width by as many as it held."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from cttop.ui.hanging import HANG, Hanging, Para, para_lines

WIDE = [
    Para("! ", "namespace 名前空間テスト holds 漢字漢字漢字漢字 flows from 🐳🐳 docker-web1 and 🚀 k8s"),
    Para("[nft pre] ", "ip saddr 10.0.0.1 notrack comment \"cttop 容器网络命名空间 ✅ done\"", hang=HANG),
    Para("", "漢" * 40),  # one word longer than a line: cut across lines, each a whole character
    Para("名前: ", "アプリ " * 12),  # a wide lead: its body's continuation goes under the body, in cells
]


@pytest.mark.parametrize("width", [7, 9, 12, 20, 33, 60])
@pytest.mark.parametrize("p", WIDE)
def test_wide_characters_never_overflow_a_line(p: Para, width: int) -> None:
    lines = para_lines(p, width)
    # A lead wider than the width overflows it, with the one character after it (the documented exception).
    first = width if cell_len(p.lead) + 2 <= width else cell_len(p.lead) + 2
    assert cell_len(lines[0]) <= first, lines[0]
    assert all(cell_len(line) <= width for line in lines[1:]), [(cell_len(x), x) for x in lines]
    assert lines[0].startswith(p.lead) and all(line.strip() for line in lines)
    # Nothing lost or doubled: the words come back in order (a long one from its pieces).
    assert "".join("".join(line.split()) for line in lines) == "".join((p.lead + p.body).split())


def test_a_continuation_hangs_under_the_body_in_cells_not_characters() -> None:
    lines = para_lines(Para("名前: ", "アプリ " * 12), 30)
    assert len(lines) > 1 and all(line.startswith(" " * 6 + "アプリ") for line in lines[1:]), lines


def test_the_drawn_text_fits_the_width_too() -> None:
    text = Hanging(WIDE).text(20)
    assert all(cell_len(line) <= 20 for line in text.plain.split("\n")), text.plain


# Printable ASCII with spaces, tabs and hyphens in it: what the dialogs held before.
ASCII_BODY = st.text(st.sampled_from("ab cd-\tefg hij klmnopqrstuvwxyz0123456789.:/\"  "), max_size=90)


@given(lead=st.sampled_from(["", "! ", "[nft pre] ", "[iptables PREROUTING] "]), body=ASCII_BODY,
       hang=st.sampled_from([0, HANG]), spare=st.integers(2, 60))
def test_ascii_wraps_as_textwrap_did(lead: str, body: str, hang: int, spare: int) -> None:
    """Where each character is a cell, the lines are textwrap's (the 80x24 snapshots did not move), but for the
    trailing spaces textwrap left where it cut a long word, which draw as nothing."""
    body = body.lstrip()
    width = len(lead) + spare
    indent = min(len(lead) + hang, width // 2)
    old = textwrap.wrap(body, width, initial_indent=" " * len(lead), subsequent_indent=" " * indent,
                        break_on_hyphens=False)
    expected = [lead + old[0][len(lead):], *old[1:]] if old else [lead]
    assert [x.rstrip() for x in para_lines(Para(lead, body, hang=hang), width)] == [x.rstrip() for x in expected]
