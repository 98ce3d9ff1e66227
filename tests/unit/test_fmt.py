"""Fitting names into the panels' columns."""

from __future__ import annotations

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
