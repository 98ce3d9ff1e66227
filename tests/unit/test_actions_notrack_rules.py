"""Filter expressions translated to NOTRACK matches: both directions, nft text, iptables arguments."""

from __future__ import annotations

import pytest

from cttop.actions.errors import ActionError
from cttop.actions.notrack.match import alternatives_matches, iptables_matches, matches, nft_match, notrack_filter
from cttop.actions.notrack.plans import AddNotrack
from cttop.filter import compile_filter
from cttop.kernel.netns import NetnsSpec


def nft(text: str) -> list[str]:
    return [nft_match(m) for m in matches(compile_filter(text).ast)]


def ipt(text: str) -> list[tuple[str, list[str]]]:
    return [x for m in matches(compile_filter(text).ast) for x in iptables_matches(m)]


@pytest.mark.parametrize("text, rules", [
    ("udp dport 53", ["udp dport 53", "udp sport 53"]),
    ("tcp sport 1000-2000", ["tcp sport 1000-2000", "tcp dport 1000-2000"]),
    ("src 10.0.0.1 and tcp dport 80", ["ip saddr 10.0.0.1 tcp dport 80", "ip daddr 10.0.0.1 tcp sport 80"]),
    ("dst net 10.1.0.0/16 udp", ["ip daddr 10.1.0.0/16 meta l4proto udp", "ip saddr 10.1.0.0/16 meta l4proto udp"]),
    ("ipv6 and dst fd00::1", ["ip6 daddr fd00::1", "ip6 saddr fd00::1"]),
    ("ipv4 and icmp", ["meta nfproto ipv4 meta l4proto icmp"]),
    ("mark 0x10/0xff udp", ["meta l4proto udp meta mark & 0xff == 0x10"]),
    ("mark 7 udp", ["meta l4proto udp meta mark 0x7"]),
    # A port without protocol: any protocol with ports both backends can match.
    ("dport 53", ["meta l4proto { tcp, udp, sctp } th dport 53", "meta l4proto { tcp, udp, sctp } th sport 53"]),
    # Either side: one rule per side, and the mirror of each is already among them.
    ("udp port 53", ["udp sport 53", "udp dport 53"]),
    ("host 10.0.0.1 and udp", ["ip saddr 10.0.0.1 meta l4proto udp", "ip daddr 10.0.0.1 meta l4proto udp"]),
])
def test_nft_rules_cover_both_directions(text: str, rules: list[str]) -> None:
    assert nft(text) == rules


def test_two_hosts_keep_only_the_satisfiable_pairings() -> None:
    assert nft("host 10.0.0.1 and host 10.0.0.2") == ["ip saddr 10.0.0.1 ip daddr 10.0.0.2",
                                                       "ip saddr 10.0.0.2 ip daddr 10.0.0.1"]


@pytest.mark.parametrize("text, reason", [
    ("tcp or udp", "'or'"),
    ("not udp", "'not'"),
    ("state established", "state"),
    ("assured", "status flags"),
    ("snat", "status flags"),
    ("zone 3", "zone"),
    ("bytes > 1000", "counters"),
    ("", "empty"),
    ("udp and tcp", "contradictory"),
    ("ipv6 and src 10.0.0.1", "contradictory"),
    ("icmp and dport 5", "no ports"),
    ("gre and port 1", "no ports"),
    ("ipv6 and icmp", "does not exist"),
])
def test_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ActionError) as e:
        matches(compile_filter(text).ast)
    assert reason in str(e.value)
    assert "\n" not in str(e.value)


def test_three_hosts_can_match_no_packet() -> None:
    with pytest.raises(ActionError, match="contradictory"):
        matches(compile_filter("host 10.0.0.1 and host 10.0.0.2 and host 10.0.0.3").ast)


def test_iptables_arguments() -> None:
    assert ipt("udp dport 53") == [
        ("iptables", ["-p", "udp", "-m", "udp", "--dport", "53"]),
        ("ip6tables", ["-p", "udp", "-m", "udp", "--dport", "53"]),
        ("iptables", ["-p", "udp", "-m", "udp", "--sport", "53"]),
        ("ip6tables", ["-p", "udp", "-m", "udp", "--sport", "53"]),
    ]
    assert ipt("src 10.0.0.0/8 and tcp dport 80-90") == [
        ("iptables", ["-s", "10.0.0.0/8", "-p", "tcp", "-m", "tcp", "--dport", "80:90"]),
        ("iptables", ["-d", "10.0.0.0/8", "-p", "tcp", "-m", "tcp", "--sport", "80:90"]),
    ]
    assert ipt("icmp") == [("iptables", ["-p", "icmp"])]
    assert ipt("icmpv6 and mark 0x1/0xf") == [("ip6tables", ["-p", "ipv6-icmp", "-m", "mark", "--mark", "0x1/0xf"])]
    bare = ipt("ipv4 and dport 53")
    assert [a[a.index("-p") + 1] for _, a in bare] == ["tcp", "udp", "sctp", "tcp", "udp", "sctp"]
    assert {p for p, _ in bare} == {"iptables"}


# --- a top-level 'or': one rule set per alternative (tagged flows of several services) ------------

TWO_SERVICES = "udp dst 10.1.0.53 dport 53 or tcp dst 10.1.0.1 dport 443"


def test_each_alternative_of_an_or_gets_its_own_matches_in_order() -> None:
    got = [nft_match(m) for m in alternatives_matches(compile_filter(TWO_SERVICES).ast)]
    assert got == ["ip daddr 10.1.0.53 udp dport 53", "ip saddr 10.1.0.53 udp sport 53",
                   "ip daddr 10.1.0.1 tcp dport 443", "ip saddr 10.1.0.1 tcp sport 443"]


def test_alternatives_that_overlap_give_each_match_once() -> None:
    # Two tagged flows of one service, and an alternative that is the other's reply direction.
    text = "udp dst 10.1.0.53 dport 53 or udp dst 10.1.0.53 dport 53 or udp src 10.1.0.53 sport 53"
    got = [nft_match(m) for m in alternatives_matches(compile_filter(text).ast)]
    assert got == ["ip daddr 10.1.0.53 udp dport 53", "ip saddr 10.1.0.53 udp sport 53"]


def test_without_or_alternatives_are_the_plain_matches() -> None:
    ast = compile_filter("host 10.0.0.1 and udp").ast
    assert alternatives_matches(ast) == matches(ast)


@pytest.mark.parametrize("text, reason", [
    ("udp dport 53 or state established", "state"),  # every alternative must be translatable
    ("udp and (dport 53 or dport 54)", "'or'"),  # an 'or' inside an 'and' has no rule-list form
    ("udp dport 53 or not tcp", "'not'"),
])
def test_an_or_with_an_untranslatable_alternative_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ActionError) as e:
        alternatives_matches(compile_filter(text).ast)
    assert reason in str(e.value)


def test_add_notrack_of_an_or_is_one_change_with_exact_nft_commands() -> None:
    plan = AddNotrack(NetnsSpec(name="lab"), TWO_SERVICES, backend="nft", nat_rows=0)
    tag = f"cttop:{plan.id}"
    assert {r.id for r in plan.rules} == {plan.id}  # one comment: undo removes all of them together
    assert [(r.chain, r.rule) for r in plan.rules] == [
        (chain, f'{m} notrack comment "{tag}"')
        for m in ("ip daddr 10.1.0.53 udp dport 53", "ip saddr 10.1.0.53 udp sport 53",
                  "ip daddr 10.1.0.1 tcp dport 443", "ip saddr 10.1.0.1 tcp sport 443")
        for chain in ("pre", "out")]
    ns = "ip netns exec lab"
    assert plan.commands()[3:] == [
        f"{ns} nft 'add rule inet cttop {r.chain} {r.rule}'" for r in plan.rules]
    assert "Stop tracking 'udp dst 10.1.0.53 dport 53 or tcp dst 10.1.0.1 dport 443'" in plan.describe()
    assert "8 rules in nft table inet cttop" in plan.describe()


def test_add_notrack_of_an_or_with_iptables_commands() -> None:
    plan = AddNotrack(NetnsSpec(name="lab"), TWO_SERVICES, backend="iptables", nat_rows=0)
    tail = f"-m comment --comment cttop:{plan.id} -j CT --notrack"
    v4 = [r for r in plan.commands() if r.startswith("ip netns exec lab iptables ")]
    assert v4 == [f"ip netns exec lab iptables -t raw -I {chain} {m} {tail}"
                  for m in ("-d 10.1.0.53 -p udp -m udp --dport 53", "-s 10.1.0.53 -p udp -m udp --sport 53",
                            "-d 10.1.0.1 -p tcp -m tcp --dport 443", "-s 10.1.0.1 -p tcp -m tcp --sport 443")
                  for chain in ("PREROUTING", "OUTPUT")]


@pytest.mark.parametrize("text", ["container docker:spray", "process nginx and udp dport 53", "udp dport 53 or pid 42",
                                  "forwarded"])
def test_an_owner_is_refused_for_what_a_rule_matches_not_as_unknown_here(text: str) -> None:
    """NOTRACK on a heaviest container group said "'container' needs the flows' owners, known only from a live
    namespace's sockets", in a live namespace: the reason is that a rule sees a packet before any owner is known."""
    for build in (lambda: notrack_filter(text), lambda: AddNotrack(NetnsSpec(name="lab"), text, backend="nft")):
        with pytest.raises(ActionError) as e:
            build()
        said = str(e.value)
        assert said.startswith("NOTRACK rules cannot match on owners (pid, process, container, owned, forwarded)")
        assert "use the group's addresses instead" in said and "live namespace" not in said
