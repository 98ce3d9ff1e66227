"""The tunables catalogue: names, validation, warnings and the RAM-derived defaults."""

from __future__ import annotations

import pytest

from cttop.actions.errors import ActionError
from cttop.actions.tunables import assignments, default_hashsize, lookup, parse_value, warnings_for

GiB = 1 << 30


@pytest.mark.parametrize("spelling", ["nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout",
                                      "udp_timeout", " udp_timeout "])
def test_names_in_any_usual_spelling(spelling: str) -> None:
    assert lookup(spelling).name == "nf_conntrack_udp_timeout"


def test_catalogue_entries() -> None:
    assert lookup("max").is_global and lookup("hashsize").is_global
    assert lookup("buckets").read_only
    assert lookup("acct").choices == (0, 1) and lookup("events").choices == (0, 1, 2)
    assert lookup("tcp_timeout_established").default == 432000
    assert lookup("udp_timeout").is_timeout and not lookup("tcp_loose").is_timeout
    assert lookup("hashsize").key() == "hashsize"
    assert lookup("max").key() == "net.netfilter.nf_conntrack_max"


@pytest.mark.parametrize("name", ["nope", "nf_conntrack_count", "checksum", "../../etc/passwd", "net.core.somaxconn"])
def test_unknown_names_refused(name: str) -> None:
    with pytest.raises(ActionError, match="not a conntrack tunable"):
        lookup(name)


@pytest.mark.parametrize("name, text, message", [
    ("udp_timeout", "abc", "not an integer"),
    ("udp_timeout", "1.5", "not an integer"),
    ("udp_timeout", "", "not an integer"),
    ("udp_timeout", "-1", "out of range 0..2147483"),
    ("udp_timeout", "2147484", "out of range"),
    ("max", "-5", "out of range 0..2147483647"),
    ("hashsize", "0", "out of range 1.."),
    ("acct", "2", "must be one of 0, 1"),
    ("events", "3", "must be one of 0, 1, 2"),
])
def test_bad_values_refused_in_one_line(name: str, text: str, message: str) -> None:
    with pytest.raises(ActionError) as e:
        parse_value(lookup(name), text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_good_values() -> None:
    assert parse_value(lookup("udp_timeout"), " 10 ") == 10
    assert parse_value(lookup("events"), "2") == 2


def test_assignments_keyed_by_the_sysctl_they_name() -> None:
    assert assignments([("udp_timeout", "40"), ("max", " 300000")]) == \
        {"nf_conntrack_udp_timeout": "40", "nf_conntrack_max": "300000"}
    assert assignments([("udp_timeout", "40"), ("nf_conntrack_udp_timeout", "040")]) == \
        {"nf_conntrack_udp_timeout": "40"}  # the same value twice says nothing twice


@pytest.mark.parametrize("second", ["udp_timeout", "nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout"])
def test_one_sysctl_given_two_values_is_refused(second: str) -> None:
    with pytest.raises(ActionError) as e:
        assignments([("udp_timeout", "40"), (second, "50")])
    assert str(e.value) == f"nf_conntrack_udp_timeout given twice (udp_timeout=40, {second}=50): give it once"


def test_warnings() -> None:
    cur = {"nf_conntrack_count": "5000", "nf_conntrack_max": "262144", "hashsize": "262144"}
    assert any("below the current count 5000" in w for w in warnings_for(lookup("max"), 4000, cur))
    assert not any("count" in w for w in warnings_for(lookup("max"), 6000, cur))
    assert any("no limit" in w for w in warnings_for(lookup("max"), 0, cur))
    assert any("far below nf_conntrack_max/4" in w for w in warnings_for(lookup("max"), 4_000_000, cur))
    assert any("far below nf_conntrack_max/4" in w for w in warnings_for(lookup("hashsize"), 1024, cur))
    assert not any("far below" in w for w in warnings_for(lookup("hashsize"), 65536, cur))
    assert any("far below the default 432000" in w
               for w in warnings_for(lookup("tcp_timeout_established"), 600, cur))
    assert warnings_for(lookup("tcp_timeout_established"), 86400, cur) == []
    assert warnings_for(lookup("udp_timeout"), 10, cur) == []
    assert any("at once" in w for w in warnings_for(lookup("udp_timeout"), 0, cur))
    assert any("less protection" in w for w in warnings_for(lookup("tcp_be_liberal"), 1, cur))
    assert any("stop seeing" in w for w in warnings_for(lookup("events"), 0, cur))


def test_default_hashsize_follows_the_kernel_formula() -> None:
    assert default_hashsize(24 * GiB) == 262144
    assert default_hashsize(2 * GiB) == 65536
    assert default_hashsize(512 << 20) == 4096  # 512 MiB / 16 KiB / 8 bytes per bucket
    assert default_hashsize(16 << 20) == 1024  # never below 1024
