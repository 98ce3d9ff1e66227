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
