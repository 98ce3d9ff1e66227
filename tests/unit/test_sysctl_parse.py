"""One parser of sysctl integers (cttop.kernel.sysctl.as_int), used by every reader: the kernel's text, the
journal's values and what a person types all read the same way."""

from __future__ import annotations

import pytest

from cttop.actions.drift import same_value
from cttop.actions.errors import ActionError
from cttop.actions.tunables import TunableState, lookup, parse_value, warnings_for
from cttop.kernel.sysctl import as_int


@pytest.mark.parametrize("text, value", [
    ("262144", 262144), ("262144\n", 262144), (" 30 ", 30), ("040", 40), ("-1", -1), ("0", 0),
    (None, None), ("", None), ("abc", None), ("1.5", None), ("4096 87380 6291456", None), ("+5", None),
    ("1_000", None), ("١٢", None), ("9" * 5000, None),
])
def test_as_int(text: str | None, value: int | None) -> None:
    assert as_int(text) == value


@pytest.mark.parametrize("text", ["+5", "1_000", "١٢", "0x10"])
def test_typed_values_are_read_as_the_kernel_prints_them(text: str) -> None:
    # int() takes these; the kernel prints none of them, and what is written must be what was typed.
    with pytest.raises(ActionError, match="not an integer"):
        parse_value(lookup("udp_timeout"), text)


def test_every_reader_agrees() -> None:
    assert same_value("30", " 030\n") and not same_value("30", "31")
    assert same_value("4096 87380", "4096  87380")  # not a number: compared word by word
    t = lookup("max")
    assert TunableState(t, "262144", True, "", None).to_json()["value"] == 262144
    assert TunableState(t, "n/a", True, "", None).to_json()["value"] == "n/a"
    assert warnings_for(t, 10, {"nf_conntrack_count": " 500\n"})[0].startswith("nf_conntrack_max=10 is below the "
                                                                                 "current count 500")
    assert warnings_for(t, 10, {"nf_conntrack_count": "?"}) == []


@pytest.mark.parametrize("text, value", [("262144\n", 262144), ("1_000", None), ("+5", None)])
def test_the_namespace_list_reads_its_own_max_with_the_one_parser(monkeypatch: pytest.MonkeyPatch, text: str,
                                                                   value: int | None) -> None:
    """`cttop namespaces`' fallback for its own namespace (no CAP_NET_ADMIN) parses the max as every reader does."""
    from cttop.host import namespaces
    from cttop.kernel import sysctl
    monkeypatch.setattr(sysctl, "read", lambda spec, names=None: {"nf_conntrack_max": text})
    assert namespaces._read_proc()[1] == value
