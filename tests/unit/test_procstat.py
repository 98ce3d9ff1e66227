"""/proc/net/stat/nf_conntrack parsing: columns by the header, summed over CPUs, bad files named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cttop.kernel import nlconst as C
from cttop.kernel.procstat import ProcStatError, parse

# As 6.x prints it (this header and spacing copied from a 6.18 kernel): clash_resolve and chaintoolong
# sit where searched and delete_list were, under new words.
HEAD_6 = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop "
          "icmp_error  expect_new expect_create expect_delete search_restart")
# As 4.x/5.x print it: the same number of columns, the old words.
HEAD_5 = ("entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop "
          "icmp_error  expect_new expect_create expect_delete search_restart")


def line(values: list[int]) -> str:
    return f"{values[0]:08x}  " + " ".join(f"{v:08x}" for v in values[1:])


def cpu_values(cpu: int, entries: int) -> list[int]:
    """Column i of CPU c holds (i + 1) * 100 + c, so every column and CPU adds up to something distinct."""
    return [entries] + [(i + 1) * 100 + cpu for i in range(1, 17)]


def test_6x_header_maps_to_the_ctnetlink_names_and_sums_cpus() -> None:
    text = "\n".join([HEAD_6, line(cpu_values(0, 0x40)), line(cpu_values(1, 0x40)), line(cpu_values(2, 0x40))])
    s = parse(text + "\n")
    assert s.count == 0x40  # printed once per CPU line, never summed
    col = {w: i for i, w in enumerate(HEAD_6.split())}
    for word, name in (("drop", "drop"), ("early_drop", "early_drop"), ("insert_failed", "insert_failed"),
                       ("clashres", "clash_resolve"), ("chainlength", "chaintoolong"), ("icmp_error", "error"),
                       ("search_restart", "search_restart"), ("found", "found")):
        i = col[word]
        assert s.totals[name] == 3 * (i + 1) * 100 + (0 + 1 + 2), word
    assert "searched" not in s.totals and "delete_list" not in s.totals
    assert "expect_new" not in s.totals  # not a CTA_STATS_CPU counter
    shaped = s.as_cpu_totals()
    assert set(shaped) == set(C.STATS_CPU_NAMES.values())
    assert shaped["searched"] == 0 and shaped["drop"] == s.totals["drop"]


def test_older_header_keeps_its_own_words() -> None:
    s = parse("\n".join([HEAD_5, line(cpu_values(0, 7))]))
    col = {w: i for i, w in enumerate(HEAD_5.split())}
    assert s.count == 7
    assert s.totals["searched"] == (col["searched"] + 1) * 100
    assert s.totals["delete_list"] == (col["delete_list"] + 1) * 100
    assert "clash_resolve" not in s.totals and s.as_cpu_totals()["clash_resolve"] == 0


def test_a_reordered_header_is_followed() -> None:
    words = HEAD_6.split()
    words[9], words[10] = words[10], words[9]  # drop before insert_failed
    s = parse("\n".join([" ".join(words), line(cpu_values(0, 1))]))
    assert s.totals["drop"] == 10 * 100 and s.totals["insert_failed"] == 11 * 100


@pytest.mark.parametrize(("text", "msg"), [
    ("", "empty"),
    ("00000001 00000002\n", "line 1 is not the header"),
    (HEAD_6 + "\n", "no CPU lines"),
    (HEAD_6 + "\n00000001 00000002\n", "line 2 has 2 columns, the header 17"),
    (HEAD_6 + "\n" + line(cpu_values(0, 1)).replace("00000", "zzzzz", 1) + "\n", "line 2 is not hex numbers"),
])
def test_bad_files_are_one_line_naming_the_file_and_line(text: str, msg: str) -> None:
    with pytest.raises(ProcStatError) as e:
        parse(text, "/proc/net/stat/nf_conntrack")
    assert str(e.value).startswith("/proc/net/stat/nf_conntrack: ") and msg in str(e.value)
    assert "\n" not in str(e.value)


@given(st.text(max_size=400))
def test_garbage_never_raises_anything_else(text: str) -> None:
    try:
        parse(text)
    except ProcStatError:
        pass
