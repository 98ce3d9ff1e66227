"""Fitting names into the panels' columns."""

from __future__ import annotations

import pytest

from cttop.ui import fmt


def test_truncate_middle_keeps_the_ends_that_tell_names_apart() -> None:
    keys = [f"10.77.1.2 → tcp/800{i}" for i in range(5)]
    cut = [fmt.truncate_middle(k, 11) for k in keys]
    assert len(set(cut)) == 5 and all(len(c) == 11 and "…" in c for c in cut), cut
    assert cut[1] == "10.77…/8001"
    assert fmt.truncate_middle("short", 11) == "short"
    assert fmt.truncate_middle("\x1b[2Jevil-process-name", 11) == "\\x1b[…-name"  # escaped before it is cut
    assert fmt.truncate_middle("netns:cttop-lab", 4) == "net…"


def test_truncate_pair_cuts_each_end_on_its_own_and_keeps_the_arrow() -> None:
    sep = " → "
    assert fmt.truncate_pair("10.77.1.2 → 10.77.2.2", sep, 21) == "10.77.1.2 → 10.77.2.2"
    assert fmt.truncate_pair("2001:db8:85a3::8a2e:370:7334 → 10.0.0.1", sep, 27) == "2001:db…370:7334 → 10.0.0.1"
    assert fmt.truncate_pair("10.0.0.1 → 2001:db8:85a3::8a2e:370:7334", sep, 27) == "10.0.0.1 → 2001:db…370:7334"
    both = fmt.truncate_pair("2001:db8:85a3::8a2e:370:7334 → 2001:db8:85a3::8a2e:370:1", sep, 27)
    assert both == "2001:…0:7334 → 2001:…:370:1" and len(both) == 27
    assert fmt.truncate_pair("\x1b[2J → b", sep, 30) == "\\x1b[2J → b"  # escaped, as every cell is
    assert fmt.truncate_pair("10.77.1.2 → 10.77.2.2", sep, 11) == "10.77…7.2.2"  # no room for two ends


LABS = ["cttop-lab-8cc360-router", "cttop-lab-c803c9-router", "cttop-lab-8cc360-client", "init"]


@pytest.mark.parametrize("width", range(5, 24))
def test_names_that_differ_stay_apart_when_cut(width: int) -> None:
    """Two labs' routers both read 'cttop…router' cut in their middle at 12: cut where they differ instead.
    Each cut is at most the width, and is the name's own text (its pieces in it, in order)."""
    cut = fmt.truncate_apart(LABS, width)
    assert len(set(cut)) == len(LABS), (width, cut)
    for name, c in zip(LABS, cut):
        assert len(c) <= width, (width, c)
        at = 0
        for piece in filter(None, c.split(fmt.ELLIPSIS)):
            at = name.index(piece, at) + len(piece)  # ValueError: not the name's own text
    # Those no other reads the same as keep the middle cut.
    assert cut[3] == fmt.truncate_middle("init", width) and cut[2] == fmt.truncate_middle(LABS[2], width)


def test_a_cut_that_reads_apart_already_is_the_middle_one() -> None:
    assert fmt.truncate_apart(["cttop-lab-8cc360-router", "docker-1234567890"], 12) == ["cttop…router", "docke…567890"]
    assert fmt.truncate_apart(["cttop-lab-8cc360-router", "cttop-lab-c803c9-router"], 12) == \
        ["…c360-router", "…03c9-router"]
    # Names the same at the end too: what follows where they part.
    assert fmt.truncate_apart(["common-1-part-long-end", "common-2-part-long-end"], 10) == ["…1-part-l…", "…2-part-l…"]
    # Control characters escaped before the cut, as truncate_middle does: what is shown is terminal-safe.
    assert fmt.truncate_apart(["evil\x1b[2J-a-tail-0", "evil\x1b[2J-b-tail-0"], 14) == ["…b[2J-a-tail-0", "…b[2J-b-tail-0"]
