"""The filter language, one test per word and operator, on constructed flow rows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cttop.errors import CttopError
from cttop.filter import Filter, FilterError, compile_filter, parse
from cttop.filter.ast import Addr, All, And, Compare, Family, Flag, Mark, Not, Or, Port, Proto, State, Zone
from cttop.model import AF_INET, AF_INET6, IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY, NO_PSTATE, Row
from tests.unit.test_filter_support import ip, reference, row

REPLIED = IPS_CONFIRMED | IPS_SEEN_REPLY
ASSURED = REPLIED | IPS_ASSURED


def matches(text: str, r: Row) -> bool:
    f = compile_filter(text)
    got = f.match(r)
    assert got is reference(f.ast, r), f"{text!r}: predicate and reference disagree on {r}"
    assert f.select([r]) == ([r] if got else [])
    return got


# -- addresses ---------------------------------------------------------------

def test_host_matches_any_of_the_four_addresses() -> None:
    nat = row("10.0.0.1", "10.0.0.2", rsrc="192.168.1.5", rdst="172.16.0.9")
    for addr in ("10.0.0.1", "10.0.0.2", "192.168.1.5", "172.16.0.9"):
        assert matches(f"host {addr}", nat)
    assert not matches("host 10.0.0.3", nat)


def test_src_and_dst_look_at_the_original_tuple_only() -> None:
    r = row("10.0.0.1", "10.0.0.2", rsrc="192.168.1.5", rdst="172.16.0.9")
    assert matches("src 10.0.0.1", r)
    assert not matches("src 10.0.0.2", r)
    assert matches("dst 10.0.0.2", r)
    assert not matches("dst 10.0.0.1", r)
    assert not matches("src 172.16.0.9", r)  # the reply destination is not the source
    assert not matches("dst 192.168.1.5", r)


def test_src_host_and_dst_host_are_tcpdump_spellings_of_src_and_dst() -> None:
    assert parse("src host 10.0.0.1") == parse("src 10.0.0.1")
    assert parse("dst host 10.0.0.1") == parse("dst 10.0.0.1")
    assert matches("dst host 10.0.0.2", row())


def test_net_matches_a_network_on_any_address() -> None:
    assert matches("net 10.0.0.0/8", row("10.9.9.9", "8.8.8.8"))
    assert matches("net 10.0.0.0/8", row("8.8.8.8", "10.9.9.9"))
    assert matches("net 10.0.0.0/8", row("8.8.8.8", "1.1.1.1", rsrc="10.1.1.1"))
    assert not matches("net 10.0.0.0/8", row("11.0.0.1", "9.255.255.255"))


def test_src_net_and_dst_net() -> None:
    r = row("192.168.7.3", "10.2.3.4")
    assert matches("src net 192.168.0.0/16", r)
    assert not matches("dst net 192.168.0.0/16", r)
    assert matches("dst net 10.2.0.0/16", r)
    assert not matches("src net 10.2.0.0/16", r)


def test_prefix_with_a_partial_byte() -> None:
    assert matches("net 172.16.0.0/12", row("172.31.255.255", "1.1.1.1"))
    assert matches("net 172.16.0.0/12", row("172.16.0.0", "1.1.1.1"))
    assert not matches("net 172.16.0.0/12", row("172.32.0.0", "1.1.1.1"))
    assert not matches("net 172.16.0.0/12", row("172.15.255.255", "1.1.1.1"))
    assert matches("src net 10.0.0.128/25", row("10.0.0.200", "1.1.1.1"))
    assert not matches("src net 10.0.0.128/25", row("10.0.0.127", "1.1.1.1"))


@pytest.mark.parametrize("text", ["net 10.1.2.3/8", "src net 10.0.0.1/8", "dst net 10.0.0.1/8", "src 10.0.0.1/8",
                                  "net 172.16.0.1/12", "net fd00::1/8", "dst fc01::/7"])
def test_net_with_host_bits_set_is_an_error_as_in_tcpdump(text: str) -> None:
    # Not silently widened to the network: a flush or NOTRACK of it would act on the whole of it.
    addr = text.rsplit(" ", 1)[1]
    with pytest.raises(FilterError) as e:
        parse(text)
    assert e.value.message.startswith(f"non-network bits set in '{addr}'")
    assert e.value.column == text.index(addr) + 1


@pytest.mark.parametrize(("text", "network"), [("host 10.0.0.1/8", "net 10.0.0.0/8"),
                                               ("host 10.0.0.0/8", "net 10.0.0.0/8"),
                                               ("src host 10.0.0.1/24", "src net 10.0.0.0/24"),
                                               ("dst host 192.168.1.0/24", "dst net 192.168.1.0/24"),
                                               ("host fd00::1/64", "net fd00::/64"),
                                               ("udp and host 10.0.0.1/0", "net 0.0.0.0/0")])
def test_host_with_a_prefix_is_an_error_naming_the_network_form(text: str, network: str) -> None:
    with pytest.raises(FilterError) as e:
        parse(text)
    assert e.value.message == f"host takes an address; for a network use '{network}'"
    assert e.value.column == text.index("/") + 1  # at the /len, the part host refuses


def test_a_full_length_prefix_is_the_address_itself() -> None:
    assert parse("host 10.0.0.1/32") == parse("host 10.0.0.1")
    assert parse("src host fd00::1/128") == parse("src fd00::1")
    assert parse("net 10.0.0.1") == Addr("host", ip("10.0.0.1"), 32, AF_INET)


def test_bare_src_and_dst_take_a_network_with_its_host_bits_clear() -> None:
    assert parse("src 10.0.0.0/8") == parse("src net 10.0.0.0/8") == Addr("src", ip("10.0.0.0"), 8, AF_INET)
    assert parse("dst fd00::/8") == parse("dst net fd00::/8")
    assert matches("src 10.0.0.0/8", row("10.200.0.1", "1.1.1.1"))


def test_zero_length_prefix_matches_its_family_only() -> None:
    assert matches("net 0.0.0.0/0", row("1.2.3.4", "5.6.7.8"))
    assert not matches("net 0.0.0.0/0", row("fd00::1", "fd00::2"))
    assert matches("net ::/0", row("fd00::1", "fd00::2"))


def test_ipv4_prefix_never_matches_an_ipv6_address_with_the_same_leading_bytes() -> None:
    # 0a00::/8 starts with byte 10, like 10.0.0.0/8.
    assert not matches("net 10.0.0.0/8", row("a00::1", "a00::2"))
    assert not matches("net a00::/8", row("10.0.0.1", "10.0.0.2"))


def test_ipv6_host_and_net() -> None:
    r = row("fd00::1", "2001:db8::53", rsrc="2001:db8::53", rdst="fd00::1")
    assert matches("host fd00::1", r)
    assert matches("dst 2001:db8::53", r)
    assert not matches("src 2001:db8::53", r)
    assert matches("src net fd00::/8", r)
    assert matches("net 2001:db8::/32", r)
    assert not matches("net 2001:db9::/32", r)
    assert matches("src net fc00::/7", r)  # partial byte: fd = 1111 1101
    assert not matches("host 10.0.0.1", r)


# -- ports -------------------------------------------------------------------

def test_port_matches_either_original_port() -> None:
    assert matches("port 53", row(sport=40000, dport=53))
    assert matches("port 40000", row(sport=40000, dport=53))
    assert not matches("port 54", row(sport=40000, dport=53))


def test_sport_and_dport() -> None:
    r = row(sport=40000, dport=53)
    assert matches("sport 40000", r)
    assert not matches("sport 53", r)
    assert matches("dport 53", r)
    assert not matches("dport 40000", r)


def test_ports_are_the_original_tuple_ones() -> None:
    # DNAT 80 -> 8080: the reply source port is 8080, the original dport 80.
    r = row(proto=6, sport=40000, dport=80, rsport=8080)
    assert matches("dport 80", r)
    assert not matches("port 8080", r)


def test_src_port_and_dst_port_are_sport_and_dport() -> None:
    assert parse("src port 5") == Port("sport", 5, 5)
    assert parse("dst port 5") == Port("dport", 5, 5)
    assert matches("dst port 53", row())


def test_port_range_is_inclusive() -> None:
    assert parse("port 1000-2000") == Port("port", 1000, 2000)
    for port, hit in ((999, False), (1000, True), (1500, True), (2000, True), (2001, False)):
        assert matches("dport 1000-2000", row(sport=1, dport=port)) is hit


@pytest.mark.parametrize("proto", [6, 17, 33, 132, 136])
def test_ports_match_protocols_with_ports(proto: int) -> None:
    assert matches("dport 53", row(proto=proto, dport=53))


@pytest.mark.parametrize("proto", [1, 58, 47])
def test_ports_never_match_protocols_without_ports(proto: int) -> None:
    # ICMP keeps its id and type<<8|code where ports would be.
    r = row(proto=proto, sport=53, dport=53)
    assert not matches("port 53", r)
    assert not matches("sport 53", r)
    assert not matches("dport 0-65535", r)


# -- protocols and families ----------------------------------------------------

@pytest.mark.parametrize("name, num", [("tcp", 6), ("udp", 17), ("icmp", 1), ("icmpv6", 58), ("sctp", 132),
                                       ("dccp", 33), ("gre", 47), ("udplite", 136), ("igmp", 2)])
def test_protocol_names(name: str, num: int) -> None:
    assert parse(name) == Proto(num)
    assert matches(name, row(proto=num))
    assert not matches(name, row(proto=num + 1))


def test_proto_number_and_name() -> None:
    assert matches("proto 47", row(proto=47))
    assert not matches("proto 47", row(proto=17))
    assert parse("proto udp") == Proto(17)
    assert parse("proto 0x11") == Proto(17)


@pytest.mark.parametrize("word", ["ip", "ipv4"])
def test_ipv4(word: str) -> None:
    assert parse(word) == Family(AF_INET)
    assert matches(word, row("10.0.0.1", "10.0.0.2"))
    assert not matches(word, row("fd00::1", "fd00::2"))


@pytest.mark.parametrize("word", ["ip6", "ipv6"])
def test_ipv6(word: str) -> None:
    assert parse(word) == Family(AF_INET6)
    assert matches(word, row("fd00::1", "fd00::2"))
    assert not matches(word, row("10.0.0.1", "10.0.0.2"))


# -- conntrack state and flags ---------------------------------------------------

def test_state_names_tcp_states() -> None:
    est = row(proto=6, pstate=3, status=ASSURED)
    assert matches("state established", est)
    assert not matches("state time_wait", est)
    assert matches("state time_wait", row(proto=6, pstate=7, status=ASSURED))
    assert matches("state syn_sent", row(proto=6, pstate=1))


def test_state_established_covers_sctp_too() -> None:
    assert matches("state established", row(proto=132, pstate=4, status=ASSURED))
    assert not matches("state established", row(proto=132, pstate=3, status=ASSURED))


def test_state_is_case_insensitive_and_takes_dashes() -> None:
    assert parse("state TIME_WAIT") == parse("state time-wait") == State("TIME_WAIT")
    assert matches("STATE Established", row(proto=6, pstate=3))


def test_state_of_stateless_protocols_comes_from_status() -> None:
    assert matches("state unreplied", row(status=IPS_CONFIRMED))
    assert not matches("state unreplied", row(status=REPLIED))
    assert matches("state replied", row(status=REPLIED))
    assert not matches("state replied", row(status=ASSURED))
    assert matches("state assured", row(status=ASSURED))


def test_state_unreplied_does_not_match_a_tcp_flow_that_has_a_tcp_state() -> None:
    assert not matches("state unreplied", row(proto=6, pstate=1, status=IPS_CONFIRMED))
    # ...unless the kernel sent no protocol info for it.
    assert matches("state unreplied", row(proto=6, pstate=NO_PSTATE, status=IPS_CONFIRMED))


def test_state_none_and_unknown_pstate() -> None:
    assert matches("state none", row(proto=33, pstate=0))
    assert not matches("state none", row(proto=33, pstate=42))  # shown as "42"


def test_assured() -> None:
    assert matches("assured", row(proto=6, pstate=3, status=ASSURED))
    assert not matches("assured", row(status=REPLIED))


def test_unreplied_and_replied() -> None:
    assert matches("unreplied", row(status=IPS_CONFIRMED))
    assert not matches("unreplied", row(status=REPLIED))
    assert matches("replied", row(status=REPLIED))
    assert not matches("replied", row(status=IPS_CONFIRMED))
    # Unlike "state unreplied", the flag looks at the bit whatever the protocol.
    assert matches("unreplied", row(proto=6, pstate=1, status=IPS_CONFIRMED))


def test_snat_dnat_nat() -> None:
    plain = row("10.0.0.1", "8.8.8.8")
    snat = row("10.0.0.1", "8.8.8.8", rdst="203.0.113.1")
    dnat = row("203.0.113.7", "203.0.113.1", rsrc="10.0.0.5")
    masq_port = row("10.0.0.1", "8.8.8.8", rdport=61000)  # same address, port rewritten
    both = row("10.0.0.1", "203.0.113.1", rsrc="10.0.0.5", rdst="203.0.113.2")
    for text, hits in (("snat", {"snat", "masq_port", "both"}), ("dnat", {"dnat", "both"}),
                       ("nat", {"snat", "dnat", "masq_port", "both"})):
        for name, r in (("plain", plain), ("snat", snat), ("dnat", dnat), ("masq_port", masq_port),
                        ("both", both)):
            assert matches(text, r) is (name in hits), (text, name)


def test_port_rewrite_is_no_nat_for_protocols_without_ports() -> None:
    assert not matches("nat", row(proto=1, sport=7, dport=8 << 8, rsport=0, rdport=9))


def test_mark() -> None:
    assert matches("mark 16", row(mark=16))
    assert matches("mark 0x10", row(mark=16))
    assert not matches("mark 16", row(mark=17))
    assert parse("mark 7") == Mark(7, 0xFFFFFFFF)


def test_mark_with_mask() -> None:
    assert parse("mark 0x10/0xf0") == Mark(0x10, 0xF0)
    assert matches("mark 0x10/0xf0", row(mark=0x1F))
    assert matches("mark 0x10/0xf0", row(mark=0xF10))
    assert not matches("mark 0x10/0xf0", row(mark=0x20))
    assert matches("mark 0/0", row(mark=12345))


def test_zone() -> None:
    assert matches("zone 7", row(zone=7))
    assert not matches("zone 7", row(zone=0))
    assert matches("zone 0", row(zone=0))


# -- comparisons ---------------------------------------------------------------

@pytest.mark.parametrize("op, hits", [("<", {10}), ("<=", {10, 30}), (">", {60}), (">=", {30, 60}),
                                      ("=", {30}), ("==", {30}), ("!=", {10, 60})])
def test_timeout_comparisons(op: str, hits: set[int]) -> None:
    for t in (10, 30, 60):
        assert matches(f"timeout {op} 30", row(timeout=t)) is (t in hits)
        assert matches(f"timeout{op}30", row(timeout=t)) is (t in hits)


def test_bytes_sum_both_directions() -> None:
    r = row(counters=(1, 600, 1, 500))
    assert matches("bytes == 1100", r)
    assert matches("bytes > 1000", r)
    assert not matches("bytes > 1100", r)


def test_packets_sum_both_directions() -> None:
    r = row(counters=(3, 600, 4, 500))
    assert matches("packets = 7", r)
    assert not matches("packets < 7", r)


@pytest.mark.parametrize("text", ["bytes >= 0", "bytes != 5", "bytes < 1G", "packets >= 0", "packets != 1"])
def test_flows_without_counters_never_match_byte_or_packet_comparisons(text: str) -> None:
    assert not matches(text, row(counters=None))
    assert matches(text, row(counters=(0, 0, 0, 0)))


@pytest.mark.parametrize("text, value", [("1k", 1000), ("2K", 2000), ("1M", 10**6), ("3G", 3 * 10**9),
                                         ("1Ki", 1024), ("2Mi", 2 << 20), ("1Gi", 1 << 30), ("17", 17)])
def test_size_suffixes(text: str, value: int) -> None:
    assert parse(f"bytes > {text}") == Compare("bytes", ">", value)
    assert matches(f"bytes >= {text}", row(counters=(1, value, 0, 0)))
    assert not matches(f"bytes >= {text}", row(counters=(1, value - 1, 0, 0)))


def test_single_equals_is_stored_as_double() -> None:
    assert parse("timeout = 5") == Compare("timeout", "==", 5)


# -- combining -----------------------------------------------------------------

def test_and() -> None:
    for text in ("udp and dport 53", "udp && dport 53"):
        assert matches(text, row(proto=17, dport=53))
        assert not matches(text, row(proto=6, dport=53))
        assert not matches(text, row(proto=17, dport=54))


def test_or() -> None:
    for text in ("dport 53 or dport 853", "dport 53 || dport 853"):
        assert matches(text, row(dport=53))
        assert matches(text, row(dport=853))
        assert not matches(text, row(dport=54))


def test_not() -> None:
    for text in ("not udp", "!udp", "! udp"):
        assert matches(text, row(proto=6))
        assert not matches(text, row(proto=17))


def test_juxtaposition_means_and() -> None:
    assert parse("udp dport 53") == And((Proto(17), Port("dport", 53, 53)))
    assert parse("tcp port 80 and not src net 10.0.0.0/8") == parse(
        "tcp and port 80 and not src net 10.0.0.0/8")
    r = row("192.168.0.1", "1.1.1.1", proto=6, dport=80)
    assert matches("tcp port 80 and not src net 10.0.0.0/8", r)
    assert not matches("tcp port 80 and not src net 10.0.0.0/8", row("10.0.0.1", "1.1.1.1", proto=6, dport=80))


def test_not_binds_tighter_than_and() -> None:
    assert parse("not tcp and port 80") == And((Not(Proto(6)), Port("port", 80, 80)))
    assert parse("not tcp port 80") == And((Not(Proto(6)), Port("port", 80, 80)))
    assert matches("not tcp and port 80", row(proto=17, dport=80))
    assert not matches("not tcp and port 80", row(proto=6, dport=81))


def test_and_binds_tighter_than_or_and_an_and_after_an_or_needs_parentheses() -> None:
    assert parse("udp and port 53 or tcp") == Or((And((Proto(17), Port("port", 53, 53))), Proto(6)))
    assert not matches("udp and port 53 or tcp", row(proto=17, dport=1))
    # Juxtaposition is one tcpdump primitive ("udp port 53"), so it binds tighter than or either way.
    assert parse("tcp or udp port 53") == Or((Proto(6), And((Proto(17), Port("port", 53, 53)))))
    assert matches("tcp or udp port 53", row(proto=6, dport=1))
    # tcpdump reads this as "(tcp or udp) and port 53": refused rather than read differently.
    for text, col in (("tcp or udp and port 53", 12), ("tcp || udp && port 53", 12),
                      ("assured or (nat) or tcp AND udp", 25)):
        with pytest.raises(FilterError) as e:
            parse(text)
        assert e.value.column == col and "needs parentheses" in e.value.message
    assert parse("(tcp or udp) and port 53") == And((Or((Proto(6), Proto(17))), Port("port", 53, 53)))
    assert parse("tcp or (udp and port 53)") == Or((Proto(6), And((Proto(17), Port("port", 53, 53)))))


def test_parentheses_override_precedence() -> None:
    assert parse("(tcp or udp) and port 53") == And((Or((Proto(6), Proto(17))), Port("port", 53, 53)))
    assert not matches("(tcp or udp) port 53", row(proto=6, dport=1))
    assert matches("(tcp or udp) port 53", row(proto=6, dport=53))
    assert matches("not (tcp or udp)", row(proto=1))
    assert not matches("not (tcp or udp)", row(proto=17))


def test_nested_and_or_are_flattened() -> None:
    assert parse("tcp and (udp and icmp)") == And((Proto(6), Proto(17), Proto(1)))
    assert parse("(tcp or udp) or icmp") == Or((Proto(6), Proto(17), Proto(1)))


def test_double_negation() -> None:
    assert matches("not not udp", row(proto=17))
    assert matches("!!udp", row(proto=17))
    assert not matches("!!udp", row(proto=6))


def test_keywords_are_case_insensitive() -> None:
    assert parse("UDP AND DPORT 53 OR Not Tcp") == parse("udp and dport 53 or not tcp")


@pytest.mark.parametrize("text", ["", " ", "\t\n  "])
def test_empty_filter_matches_everything(text: str) -> None:
    f = compile_filter(text)
    assert f.is_all and f.ast == All() and f.kernel is None
    assert f.match(row()) and f.match(row("fd00::1", "fd00::2", proto=58))
    assert f.text == text


def test_filter_attributes() -> None:
    f = compile_filter("udp dport 53")
    assert isinstance(f, Filter)
    assert f.text == "udp dport 53"
    assert f.ast == And((Proto(17), Port("dport", 53, 53)))
    assert not f.is_all
    assert f.match(row()) is True
    assert f.match(row(dport=54)) is False


def test_select_keeps_matching_rows_in_order() -> None:
    rows = [row(dport=p, flow_id=i) for i, p in enumerate((53, 80, 53, 443, 53))]
    f = compile_filter("dport 53")
    assert f.select(rows) == [r for r in rows if f.match(r)] == [rows[0], rows[2], rows[4]]
    assert f.select(iter(rows)) == f.select(rows)


def test_flag_and_state_ast() -> None:
    assert parse("assured") == Flag("assured")
    assert parse("state established") == State("ESTABLISHED")
    assert parse("zone 3") == Zone(3)


# -- errors --------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("prot 6", "filter: unknown word 'prot' at column 1"),
    ("udp and dport x", "filter: unknown service 'x' at column 15"),
    ("udp and dport 5x", "filter: expected a port number at column 15"),
    ("tcp and port", "filter: expected a port number at column 13"),
    ("port 70000", "filter: port out of range '70000' (0-65535) at column 6"),
    ("port 99999", "filter: port out of range '99999' (0-65535) at column 6"),
    ("udp sport 53-99999", "filter: port out of range '53-99999' (0-65535) at column 11"),
    ("port 2000-1000", "filter: bad port range '2000-1000' at column 6"),
    ("(tcp or udp", "filter: unbalanced parenthesis at column 1"),
    ("tcp or udp)", "filter: unbalanced parenthesis at column 11"),
    ("tcp and )", "filter: unbalanced parenthesis at column 9"),
    ("host 10.0.0.300", "filter: bad address '10.0.0.300' at column 6"),
    ("net 10.0.0.0/33", "filter: bad address '10.0.0.0/33' at column 5"),
    ("src net fd00::/129", "filter: bad address 'fd00::/129' at column 9"),
    ("host", "filter: expected an address after 'host' at column 5"),
    ("src and tcp", "filter: expected an address after 'src' at column 5"),
    ("bytes > x", "filter: expected a value after '>' at column 9"),
    ("timeout >", "filter: expected a value after '>' at column 10"),
    ("bytes > 1X", "filter: expected a value after '>' at column 9"),
    ("bytes 100", "filter: expected a comparison after 'bytes' at column 7"),
    ("tcp > 5", "filter: unexpected '>' at column 5"),
    ("and tcp", "filter: unexpected 'and' at column 1"),
    ("tcp and", "filter: expected an expression after 'and' at column 8"),
    ("tcp or or udp", "filter: expected an expression after 'or' at column 8"),
    ("not", "filter: expected an expression after 'not' at column 4"),
    ("()", "filter: expected an expression after '(' at column 2"),
    ("tcp & udp", "filter: unexpected character '&' at column 5"),
    ("udp dport 53 é", "filter: unexpected character 'é' at column 14"),
    ("state bogus", "filter: unknown state 'bogus' at column 7"),
    ("state", "filter: expected a state name after 'state' at column 6"),
    ("mark x", "filter: bad mark 'x' at column 6"),
    ("mark 0x100000000", "filter: bad mark '0x100000000' at column 6"),
    ("mark 0x1ff/0xff", "filter: mark 0x1ff has bits outside mask 0xff at column 6"),
    ("zone 65536", "filter: bad zone '65536' at column 6"),
    ("proto 256", "filter: bad protocol '256' at column 7"),
    ("proto", "filter: expected a protocol after 'proto' at column 6"),
    ("(" * 65 + "tcp" + ")" * 65, "filter: too deeply nested at column 65"),
])
def test_error_messages_point_at_the_column(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    assert str(info.value) == message
    assert info.value.column == int(message.rsplit(" ", 1)[1])
    assert "\n" not in str(info.value)


def test_filter_error_is_a_cttop_error() -> None:
    with pytest.raises(CttopError):
        parse("bogus")


def test_nesting_up_to_the_limit_works() -> None:
    assert matches("(" * 64 + "udp" + ")" * 64, row())
    assert matches("not " * 63 + "tcp", row(proto=17))
    assert matches("not " * 64 + "tcp", row(proto=6))


def test_long_flat_expressions_compile() -> None:
    text = " or ".join(f"dport {p}" for p in range(2000))
    assert matches(text, row(dport=1999))
    assert not matches(text, row(dport=2000))


def test_filter_package_does_not_import_textual() -> None:
    code = "import sys, cttop.filter; sys.exit('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_service_names_and_tcpdump_spellings() -> None:
    assert parse("port https") == Port("port", 443, 443)
    assert parse("udp dport domain") == And((Proto(17), Port("dport", 53, 53)))
    assert parse("src port ssh") == Port("sport", 22, 22)
    assert parse("icmp6") == parse("icmpv6") == Proto(58)
    with pytest.raises(FilterError) as e:
        parse("tcp port no-such-service")
    assert (e.value.column, e.value.message) == (10, "unknown service 'no-such-service'")
