"""Fuzzing the filter: any text gives a Filter or a FilterError, and the compiled
predicate and the kernel pushdown agree with slow reference evaluators."""

from __future__ import annotations

import itertools
import random
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cttop.filter import Filter, FilterError, compile_filter
from cttop.model import ROW_LEN, Row
from tests.unit.test_filter_support import ip, kernel_reference, reference

V4 = ["10.0.0.1", "10.0.0.2", "10.1.2.3", "172.16.5.4", "172.31.0.1", "192.168.1.1", "8.8.8.8", "0.0.0.0"]
V6 = ["fd00::1", "fd00::2", "2001:db8::1", "fe80::1", "::1", "a00::1"]
CIDRS = ["10.0.0.0/8", "10.0.0.0/31", "172.16.0.0/12", "192.168.1.0/24", "0.0.0.0/0", "10.0.0.1/32",
         "fd00::/8", "fc00::/7", "2001:db8::/32", "fe80::/10", "::/0", "a00::/8", "10.0.0.4/30"]
PORTS = [0, 22, 53, 80, 443, 1000, 1500, 2000, 65535]
PROTOS = [1, 2, 6, 17, 33, 47, 58, 132, 136]
PSTATES = [*range(12), 255]
MARKS = [0, 1, 0x10, 0x15, 0xFF, 0x1FF, 0xFFFFFFFF]
ZONES = [0, 1, 7]
TIMEOUTS = [0, 1, 29, 30, 31, 120, 999, 1000, 1024, 432000, 10**6, 1 << 20, 1 << 30]
COUNTS = [0, 1, 999, 1000, 1024, 10**6, 1 << 20, 3 * 10**9]


def _pool(n: int, seed: int) -> list[Row]:
    """Rows drawn from small value sets, so that terms from the same sets hit them."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        v6 = rnd.random() < 0.4
        addrs = [ip(a) for a in (V6 if v6 else V4)]
        src, dst = rnd.choice(addrs), rnd.choice(addrs)
        sport, dport = rnd.choice(PORTS), rnd.choice(PORTS)
        nat = rnd.random() < 0.3
        rsrc, rdst = (rnd.choice(addrs), rnd.choice(addrs)) if nat else (dst, src)
        rsport, rdport = (rnd.choice(PORTS), rnd.choice(PORTS)) if nat else (dport, sport)
        counters = [rnd.choice(COUNTS) for _ in range(4)] if rnd.random() < 0.7 else [None] * 4
        r = (i, socket.AF_INET6 if v6 else socket.AF_INET, rnd.choice(PROTOS), rnd.choice(PSTATES),
             rnd.randrange(64), src, dst, sport, dport, rsrc, rdst, rsport, rdport, rnd.choice(TIMEOUTS),
             rnd.choice(MARKS), rnd.choice(ZONES), 1, *counters, 0, 0)
        assert len(r) == ROW_LEN
        out.append(r)
    return out


POOL = _pool(1500, seed=20240601)


def _ports() -> list[str]:
    return [str(p) for p in PORTS] + [f"{a}-{b}" for a, b in itertools.combinations(PORTS, 2)]


# Every term the grammar has, over the value sets the row pool is drawn from.
ALL_TERMS = list(dict.fromkeys(
    [f"host {a}" for a in V4 + V6]
    + [f"{w} {a}" for w in ("src", "dst", "src host", "dst host") for a in V4 + V6]
    + [f"{w} {c}" for w in ("net", "src net", "dst net") for c in CIDRS]
    + [f"{w} {p}" for w in ("port", "sport", "dport", "src port", "dst port") for p in _ports()]
    + ["tcp", "udp", "icmp", "icmpv6", "sctp", "dccp", "gre", "udplite", "igmp", "proto 2", "proto 0x11",
       "proto 255", "ip", "ipv4", "ip6", "ipv6", "assured", "unreplied", "replied", "snat", "dnat", "nat"]
    + [f"state {s}" for s in ("established", "time_wait", "syn_sent", "syn_sent2", "close", "unreplied", "replied",
                              "assured", "none", "closed", "cookie_wait", "heartbeat_acked", "open", "invalid",
                              "Close", "TIME-WAIT")]
    + [f"mark {hex(v & m)}/{hex(m)}" for v in MARKS for m in MARKS] + [f"mark {m}" for m in MARKS]
    + [f"zone {z}" for z in ZONES]
    + [f"{f} {op} {v}" for f in ("timeout", "bytes", "packets") for op in ("<", "<=", ">", ">=", "=", "==", "!=")
       for v in ("0", "1", "30", "999", "1k", "1K", "1Ki", "1M", "1Mi", "3G", "1Gi")]
))
TERMS = st.sampled_from(ALL_TERMS)
ROWS = st.lists(st.sampled_from(POOL), min_size=1, max_size=30)


def test_every_term_equals_the_reference_on_the_row_pool() -> None:
    wrong = []
    for text in ALL_TERMS:
        f = compile_filter(text)
        hits = f.select(POOL)
        expected = [r for r in POOL if reference(f.ast, r)]
        if hits != expected or [r for r in POOL if f.match(r)] != expected:
            wrong.append(text)
    assert not wrong


def test_the_row_pool_exercises_the_terms() -> None:
    # A term no row matches, or every row matches, tests little; few may be so.
    trivial = [t for t in ALL_TERMS if len(compile_filter(t).select(POOL)) in (0, len(POOL))]
    assert len(trivial) < len(ALL_TERMS) // 20, trivial


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # An explicit "and" after an "or" at one level is refused (tcpdump would read it otherwise), so
    # the left side of an "and" is parenthesised, and so is the right side of an "or".
    return st.one_of(
        st.builds("({}) {} {}".format, children, st.sampled_from(["and", "&&", "AND"]), children),
        st.builds("{} {} ({})".format, children, st.sampled_from(["or", "||", "Or"]), children),
        st.builds("({}) {}".format, children, children),
        st.builds("{}{}".format, st.sampled_from(["not ", "!", "! ", "NOT "]), children),
        children.map("({})".format),
    )


EXPRESSIONS = st.recursive(TERMS, _combine, max_leaves=10)

TOKENS = st.sampled_from([
    "host", "src", "dst", "net", "port", "sport", "dport", "proto", "state", "mark", "zone", "timeout", "bytes",
    "packets", "tcp", "udp", "icmp", "ipv6", "ip", "assured", "nat", "and", "or", "not", "&&", "||", "!", "(",
    ")", "<", "<=", ">", ">=", "=", "==", "!=", "10.0.0.1", "10.0.0.0/8", "fd00::/8", "::", "53", "1000-2000",
    "2000-1000", "70000", "0x10/0xf0", "0x", "1k", "1Mi", "established", "-", "/", ":", ".", "1.2.3.4/",
    "x", "é", "&", "|", "0", "00", "TIME-WAIT", "999999999999999999999",
])


def _check(text: str) -> Filter | None:
    try:
        f = compile_filter(text)
    except FilterError as e:
        assert 1 <= e.column <= len(text) + 1
        assert "\n" not in str(e) and str(e).startswith("filter: ")
        return None
    assert isinstance(f, Filter)
    return f


@settings(max_examples=500)
@given(st.text())
def test_any_text_gives_a_filter_or_a_filter_error(text: str) -> None:
    _check(text)


@settings(max_examples=500)
@given(st.text(alphabet="hostdrcpnaumkezi0123456789.:/-()!&|<>= xfM", max_size=40))
def test_text_near_the_grammar_gives_a_filter_or_a_filter_error(text: str) -> None:
    _check(text)


@settings(max_examples=500)
@given(st.lists(TOKENS, max_size=12), st.sampled_from([" ", ""]), ROWS)
def test_token_sequences_give_a_filter_or_a_filter_error(tokens: list[str], sep: str, sample: list[Row]) -> None:
    f = _check(sep.join(tokens))
    if f is not None:
        for r in sample:
            assert f.match(r) is reference(f.ast, r)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, ROWS)
def test_compiled_predicate_equals_the_reference(text: str, sample: list[Row]) -> None:
    f = compile_filter(text)
    for r in sample:
        assert f.match(r) is reference(f.ast, r), (text, r)
    assert f.select(sample) == [r for r in sample if reference(f.ast, r)]


# Terms the kernel may take, so that random conjunctions of them push a lot down.
KERNEL_TERMS = st.sampled_from(
    [t for t in ALL_TERMS if compile_filter(t).kernel is not None]
    + [f"{w} {p}" for w in ("sport", "dport") for p in PORTS]
    + ["not assured", "not replied", "!unreplied", "tcp", "udp", "sctp"])


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(KERNEL_TERMS, KERNEL_TERMS, TERMS, EXPRESSIONS), min_size=1, max_size=5), ROWS)
def test_pushdown_never_loses_a_flow_and_exact_means_equal(terms: list[str], sample: list[Row]) -> None:
    f = compile_filter(" and ".join(f"({t})" for t in terms))
    if f.kernel is None:
        return
    for r in sample:
        kernel, python = kernel_reference(f.kernel, r), f.match(r)
        assert kernel or not python, (f.text, f.kernel, r)
        if f.kernel.exact:
            assert kernel == python, (f.text, f.kernel, r)


def test_every_pair_of_kernel_words_pushes_down_soundly() -> None:
    words = ["tcp", "udp", "sctp", "icmp", "ipv4", "ipv6", "src 10.0.0.1", "dst 10.0.0.2", "src fd00::1",
             "sport 53", "dport 53", "dport 80", "sport 1000-2000", "mark 0x10/0xf0", "mark 1", "zone 0", "zone 7",
             "assured", "replied", "unreplied", "not assured", "not replied", "state assured"]
    rows = POOL[:400]
    exact = 0
    for a, b in itertools.product(words, repeat=2):
        f = compile_filter(f"{a} {b}")
        if f.kernel is None:
            continue
        kernel = [r for r in rows if kernel_reference(f.kernel, r)]
        python = f.select(rows)
        assert set(map(id, python)) <= set(map(id, kernel)), f.text
        if f.kernel.exact:
            exact += 1
            assert kernel == python, f.text
    assert exact > 250


def test_every_pushable_term_is_exact_on_the_row_pool() -> None:
    pushed = 0
    for text in ALL_TERMS:
        f = compile_filter(text)
        if f.kernel is not None:
            pushed += 1
            assert f.kernel.exact, text
            assert [r for r in POOL if kernel_reference(f.kernel, r)] == f.select(POOL), text
    assert pushed > 50
