"""The terminal sanitiser: what it escapes, how it spells it, and what it leaves alone."""

from __future__ import annotations

import io
import json
import os
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cttop.termsafe import SafeStream, safe_distinct, safe_line, safe_text

# What a terminal must never receive raw from a name: C0 (ESC, BEL, CR, BS...), DEL, C1 (CSI, OSC, ST...),
# the format characters (bidi controls, zero-width ones), the line/paragraph separators, and lone surrogates
# (not encodable as UTF-8).
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FORMAT = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]


def unsafe(ch: str) -> bool:
    c = ord(ch)
    return (c < 0x20 or 0x7F <= c <= 0x9F or unicodedata.category(ch) == "Cf" or ch in "\u2028\u2029"
            or 0xD800 <= c <= 0xDFFF)


def test_an_osc_title_and_a_colour_sequence_become_visible_escapes() -> None:
    name = "evil\x1b]0;owned\x07\x1b[31mred"
    assert safe_line(name) == r"evil\x1b]0;owned\x07\x1b[31mred"


def test_c1_controls_are_escaped_by_their_code_point() -> None:
    # U+009B is CSI on its own, U+009D is OSC: 8-bit terminals act on them like ESC [ and ESC ].
    assert safe_line("a\x9b31mb\x9d0;t\x9c") == r"a\x9b31mb\x9d0;t\x9c"
    assert safe_line("\x7f\x80\x9f") == r"\x7f\x80\x9f"


def test_every_c0_control_is_escaped_in_a_line_newline_and_tab_too() -> None:
    c0 = "".join(chr(c) for c in range(0x20))
    assert safe_line(c0) == "".join(f"\\x{c:02x}" for c in range(0x20))


def test_a_block_keeps_its_newlines_and_nothing_else() -> None:
    assert safe_text("one\ntwo\x1b[2J\r\tthree\n") == "one\ntwo\\x1b[2J\\x0d\\x09three\n"


def test_bidi_overrides_and_isolates_are_escaped() -> None:
    # "txt.exe" written as U+202E "exe.txt": the override would show it reversed.
    assert safe_line("\u202eexe.txt") == r"\u202eexe.txt"
    assert safe_line(BIDI) == "".join(f"\\u{ord(c):04x}" for c in BIDI)
    assert safe_line("a\u2028b\u2029c") == r"a\u2028b\u2029c"


def test_undecodable_bytes_show_as_the_byte_and_never_crash_the_encoder() -> None:
    name = os.fsdecode(b"bad\xff\xc3name")  # what os.listdir and psutil hand over for invalid UTF-8
    shown = safe_line(name)
    assert shown == r"bad\xff\xc3name"
    shown.encode("utf-8")  # strict: raises on any surrogate left
    # Surrogates that no byte stands for (not from surrogateescape) still come out encodable.
    assert safe_line("\ud800x\udc00") == r"\ud800x\udc00"


@pytest.mark.parametrize("text", ["café", "Grüße", "中文进程", "процесс", "🙂 emoji", "nginx: worker",
                                  "docker:web-1", "kubepods-pod1234.slice", "C:\\path\\x1b-literally"])
def test_ordinary_text_is_returned_unchanged(text: str) -> None:
    assert safe_line(text) == text
    assert safe_text(text) == text


@given(st.text())
def test_nothing_unsafe_survives_and_the_output_is_printable_utf8(text: str) -> None:
    for out in (safe_line(text), safe_text(text)):
        out.encode("utf-8")
        bad = [c for c in out if unsafe(c) and c != "\n"]
        assert not bad, (text, out)
    assert "\n" not in safe_line(text)


@given(st.text())
def test_safe_characters_pass_through_in_order(text: str) -> None:
    # Removing the escapes' expansions is not possible in general (a literal backslash is kept), but the
    # safe characters must come out in order: the output is the input with each unsafe one replaced.
    kept = "".join(c for c in text if not unsafe(c))
    out = safe_line(text)
    it = iter(out)
    assert all(c in it for c in kept), (text, out)
    assert len(out) >= len(text)


def test_zero_width_characters_cannot_make_a_name_pass_for_another() -> None:
    # Each hides between two letters: a process named so reads "sshd" on a terminal.
    for ch in "\u200b\u200c\u200d\u2060\ufeff\xad":
        spelt = f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}"
        assert safe_line(f"ss{ch}hd") == f"ss{spelt}hd"
    assert safe_line("ss\U000e0068d") == "ss\\U000e0068d"  # a tag character, spelt out beyond the BMP
    # An emoji built with a joiner shows it: what the name holds, not what it resembles.
    assert safe_line("👩\u200d💻") == "👩\\u200d💻"


def test_every_format_character_of_this_python_is_escaped() -> None:
    # The escaped set is written out for the Unicode version Python 3.11 knows; a newer Python's additions
    # fail here, not on a terminal.
    for ch in FORMAT:
        for fn in (safe_line, safe_text):
            out = fn(f"a{ch}b")
            assert ch not in out and out.startswith("a\\"), (hex(ord(ch)), out)


def test_the_stream_filters_every_write_and_keeps_the_line_structure() -> None:
    raw = io.StringIO()
    out = SafeStream(raw)  # type: ignore[arg-type]
    print("netns \x1b]0;x\x07name", file=out)  # type: ignore[arg-type]
    out.writelines(["a\x9bb\n", "c\n"])
    out.flush()
    assert raw.getvalue() == "netns \\x1b]0;x\\x07name\na\\x9bb\nc\n"
    assert out.encoding == raw.encoding  # anything else is the real stream's


def test_json_through_the_stream_is_unchanged_and_keeps_the_raw_name() -> None:
    name = "evil\x1b]0;t\x07\x9b\u202e" + os.fsdecode(b"\xff")
    doc = json.dumps({"process": name}, indent=2)
    raw = io.StringIO()
    SafeStream(raw).write(doc)  # type: ignore[arg-type]
    assert raw.getvalue() == doc
    assert json.loads(raw.getvalue())["process"] == name


def test_a_field_of_the_wrong_type_still_prints() -> None:
    # A damaged journal line may hold a number or null where a name belongs.
    assert safe_line(42) == "42" and safe_line(None) == "None" and safe_text(["a\x1b"]) == "['a\\x1b']"


def test_a_list_cell_is_escaped_before_it_is_cut_to_width() -> None:
    from cttop.ui.fmt import truncate

    assert truncate("\x1b]0;t\x07name", 10) == "\\x1b]0;t\\…"
    assert truncate("a\nb", 10) == "a\\x0ab"


def test_the_stream_refuses_bytes_as_a_text_stream_does() -> None:
    # click decides a stream takes bytes when write(b"") does not raise, then writes bytes to it.
    with pytest.raises(TypeError):
        SafeStream(io.StringIO()).write(b"")  # type: ignore[arg-type]


def test_the_cli_help_is_text_through_the_filter() -> None:
    import subprocess
    import sys

    code = "import sys; sys.argv = ['cttop', '--help']; from cttop.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("Usage: cttop [OPTIONS] COMMAND"), r.stdout[:200]


@pytest.mark.parametrize("fn", [safe_line, safe_text])
def test_every_unsafe_code_point_is_caught_amid_ascii_and_amid_other_text(fn) -> None:  # type: ignore[no-untyped-def]
    # Both the quick test for plain text (ASCII, then isprintable) and the regex must catch each one.
    unsafe_points = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x61C, 0x200E, 0x200F, *range(0x2028, 0x202F),
                                      *range(0x2066, 0x206A), 0xD800, 0xDBFF, 0xDC00, 0xDCFF, 0xDFFF)]
    for ch in unsafe_points:
        if ch == "\n" and fn is safe_text:
            continue
        for text in (f"a{ch}b", f"→{ch}é"):
            out = fn(text)
            assert ch not in out and "\\" in out, (hex(ord(ch)), text, out)


def test_distinct_names_stay_distinct_where_they_must() -> None:
    """A metric's label: ESC and the literal text of its escape are two names, two series; safe_line shows both
    alike (by design, for reading), safe_distinct keeps them apart and is as safe."""
    esc, literal = "e\x1b", "e\\x1b"
    assert safe_line(esc) == safe_line(literal)
    assert safe_distinct(esc) == "e\\x1b" and safe_distinct(literal) == "e\\\\x1b"
    names = [esc, literal, "e\\", "e\\\\", "e\\\\x1b", "e\\\x1b", "a\\b", "a\u202eb", "a\\u202eb", "\x9b", "\udc9b"]
    assert len({safe_distinct(n) for n in names}) == len(names)
    assert all(safe_line(safe_distinct(n)) == safe_distinct(n) for n in names)  # nothing left to escape


ANY_CHARACTER = st.text(st.characters(exclude_categories=()))  # lone surrogates too (os's undecodable bytes)


@given(ANY_CHARACTER, ANY_CHARACTER)
def test_safe_distinct_is_one_to_one(a: str, b: str) -> None:
    assert (safe_distinct(a) == safe_distinct(b)) == (a == b)
