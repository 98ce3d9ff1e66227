"""Filter text to a syntax tree, by recursive descent.

    expr := and ( ("or" | "||") and )*
    and  := not ( ["and" | "&&"] not )*        juxtaposition is "and"
    not  := ("not" | "!") not | "(" expr ")" | term

``and`` binds tighter than ``or``, as in most languages, but tcpdump gives them equal
precedence, left to right: it reads ``tcp or udp and port 53`` as ``(tcp or udp) and
port 53``. A filter that selects flows to flush must not mean one thing to the person
and another to cttop, so an explicit ``and`` after an ``or`` at the same level is an
error asking for parentheses. (``a and b or c`` reads the same both ways, and
juxtaposition, ``udp port 53``, is one tcpdump primitive.)
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Literal, NoReturn

from cttop.filter.ast import (
    Addr,
    All,
    And,
    Compare,
    Family,
    Flag,
    Mark,
    Node,
    Not,
    Or,
    Owned,
    Port,
    Proto,
    State,
    Zone,
)
from cttop.filter.errors import FilterError
from cttop.filter.lexer import Token, tokenize
from cttop.model import AF_INET, AF_INET6, PROTO_NUMBERS, PSTATE_NAMES, STATUS_STATES

# Parentheses and negations may nest this deep; far past any real filter, and well
# short of where Python's own recursion (here and in compile()) would give out.
MAX_DEPTH = 64
MAX_PORT = 65535

STATE_NAMES = frozenset(n for names in PSTATE_NAMES.values() for n in names) | frozenset(STATUS_STATES)
FLAGS = ("assured", "unreplied", "replied", "snat", "dnat", "nat")
PROTO_ALIASES = {"icmp6": "icmpv6"}  # tcpdump's spelling
FAMILIES = {"ip": int(AF_INET), "ipv4": int(AF_INET), "ip6": int(AF_INET6), "ipv6": int(AF_INET6)}
COMPARE_FIELDS = ("timeout", "bytes", "packets")
OWNER_WORDS = ("pid", "process", "container", "owned", "forwarded")
COMPARE_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "==", "==": "==", "!=": "!="}
SUFFIXES = {"": 1, "k": 1000, "m": 10**6, "g": 10**9, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30}

_AND = ("and", "&&")
_OR = ("or", "||")
_NOT = ("not", "!")
_RESERVED = frozenset(_AND + _OR + _NOT)
_PORTS = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_UINT = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_SERVICE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_SIZE = re.compile(r"([0-9]+)(|[kKmMgG]|[kKmMgG][iI])")


def parse(text: str, owners: bool = False) -> Node:
    """The syntax tree of ``text``; ``All()`` for empty or blank text. Raises FilterError.

    ``owners`` says whether the caller can tell who owns a flow; without it the
    owner words are an error at their column, not a filter that silently matches nothing.
    """
    if not text or text.isspace():
        return All()
    return _Parser(text, owners).parse()


def _fail(message: str, tok: Token) -> NoReturn:
    raise FilterError(message, tok.col)


class _Parser:
    def __init__(self, text: str, owners: bool) -> None:
        self.toks = tokenize(text)
        self.owners = owners
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            _fail("unbalanced parenthesis" if tok.text == ")" else f"unexpected {tok.text!r}", tok)
        return node

    def expr(self) -> Node:
        node, _ = self.conj()
        items = [node]
        while self.peek().key in _OR:
            self.take()
            node, explicit_and = self.conj()
            if explicit_and is not None:
                _fail(f"{explicit_and.text!r} after 'or' needs parentheses (tcpdump reads 'a or b and c' "
                      "as '(a or b) and c')", explicit_and)
            items.append(node)
        return _flat(Or, items)

    def conj(self) -> tuple[Node, Token | None]:
        """The conjunction, and its first explicit ``and`` token (None if it only juxtaposes)."""
        items = [self.neg()]
        explicit: Token | None = None
        while True:
            tok = self.peek()
            if tok.key in _AND:
                explicit = explicit or tok
                self.take()
            elif not _starts_term(tok):
                break
            items.append(self.neg())
        return _flat(And, items), explicit

    def neg(self) -> Node:
        tok = self.peek()
        if tok.key in _NOT:
            self.take()
            self.nest(tok)
            item = self.neg()
            self.depth -= 1
            return Not(item)
        if tok.text == "(":
            self.take()
            self.nest(tok)
            node = self.expr()
            if self.peek().text != ")":
                _fail("unbalanced parenthesis", tok)
            self.take()
            self.depth -= 1
            return node
        if tok.kind == "word" and tok.key not in _RESERVED:
            self.take()
            return self.term(tok)
        if tok.text == ")" and self.depth == 0:
            _fail("unbalanced parenthesis", tok)
        if self.i == 0:
            _fail(f"unexpected {tok.text!r}", tok)
        self.expected("an expression", tok)

    def nest(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            _fail("too deeply nested", tok)

    def expected(self, what: str, tok: Token) -> NoReturn:
        _fail(f"expected {what} after {self.toks[self.i - 1].text!r}", tok)

    # -- terms -----------------------------------------------------------------

    def term(self, tok: Token) -> Node:
        word = tok.key
        if word in ("host", "net"):
            return self.addr("host", "host" if word == "host" else "net")
        if word in ("src", "dst"):
            # tcpdump's "src port", "src host" and "src net" are accepted as well.
            qualifier = self.peek().key
            if qualifier == "port":
                self.take()
                return self.port("sport" if word == "src" else "dport")
            kind: Literal["host", "net", "either"] = "either"
            if qualifier in ("host", "net"):
                self.take()
                kind = "host" if qualifier == "host" else "net"
            return self.addr("src" if word == "src" else "dst", kind)
        if word in ("port", "sport", "dport"):
            return self.port("port" if word == "port" else "sport" if word == "sport" else "dport")
        word = PROTO_ALIASES.get(word, word)
        if word in PROTO_NUMBERS:
            return Proto(PROTO_NUMBERS[word])
        if word == "proto":
            return self.proto()
        if word in FAMILIES:
            return Family(FAMILIES[word])
        if word == "state":
            return self.state()
        if word in FLAGS:
            return Flag(word)  # type: ignore[arg-type]  # checked by the line above
        if word == "mark":
            return self.mark()
        if word == "zone":
            return self.zone()
        if word in COMPARE_FIELDS:
            return self.compare(word)  # type: ignore[arg-type]
        if word in OWNER_WORDS:
            return self.owner(tok)
        _fail(f"unknown word {tok.text!r}", tok)

    def value(self, what: str) -> Token:
        """The word that must come next, or a failure naming ``what`` was expected."""
        tok = self.peek()
        if tok.kind != "word" or tok.key in _RESERVED:
            self.expected(what, tok)
        return self.take()

    def addr(self, field: Literal["host", "src", "dst"], kind: Literal["host", "net", "either"]) -> Addr:
        """An address, or with ``/len`` a network, as tcpdump takes them.

        ``host`` takes only an address and ``net`` refuses a network with host bits
        set (tcpdump's "non-network bits set"): ``host 10.0.0.1/8`` or ``net 10.0.0.1/8``
        would otherwise widen silently to all of 10.0.0.0/8, which a flush or a
        NOTRACK rule then acts on. Bare ``src``/``dst`` take either, under the same rule.
        """
        tok = self.value("an address")
        text, slash, plen = tok.text.partition("/")
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            _fail(f"bad address {tok.text!r}", tok)
        bits = ip.max_prefixlen
        if not slash:
            return Addr(field, ip.packed, bits, _family(ip))
        if not plen.isdigit() or int(plen) > bits:
            _fail(f"bad address {tok.text!r}", tok)
        net = ipaddress.ip_network((ip, int(plen)), strict=False)
        if kind == "host" and net.prefixlen < bits:  # a full-length prefix is the address itself
            # Point at the "/len": the address itself is fine.
            raise FilterError(f"host takes an address; for a network use '{_net_word(field)} {net}'",
                              tok.col + len(text))
        if net.network_address != ip:
            _fail(f"non-network bits set in {tok.text!r} (the network is {net})", tok)
        return Addr(field, ip.packed, net.prefixlen, _family(ip))

    def port(self, field: Literal["port", "sport", "dport"]) -> Port:
        tok = self.peek()
        if tok.kind == "word" and _SERVICE.fullmatch(tok.text) and tok.key not in _RESERVED:
            self.take()
            n = _service_port(tok.key)
            if n is None:
                _fail(f"unknown service {tok.text!r}", tok)
            return Port(field, n, n)
        m = _PORTS.fullmatch(tok.text) if tok.kind == "word" else None
        if m is None:
            _fail("expected a port number", tok)
        self.take()
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if lo > MAX_PORT or hi > MAX_PORT:
            _fail(f"port out of range {tok.text!r} (0-{MAX_PORT})", tok)
        if lo > hi:
            _fail(f"bad port range {tok.text!r}", tok)
        return Port(field, lo, hi)

    def proto(self) -> Proto:
        tok = self.value("a protocol")
        if tok.key in PROTO_NUMBERS:
            return Proto(PROTO_NUMBERS[tok.key])
        return Proto(self.uint(tok, tok.text, 255, "protocol"))

    def state(self) -> State:
        tok = self.value("a state name")
        name = tok.text.upper().replace("-", "_")
        if name not in STATE_NAMES:
            _fail(f"unknown state {tok.text!r}", tok)
        return State(name)

    def uint(self, tok: Token, text: str, limit: int, what: str) -> int:
        """``text`` (part of ``tok``) as decimal or 0x hex, at most ``limit``."""
        if not _UINT.fullmatch(text) or (n := int(text, 16 if text[:2] in ("0x", "0X") else 10)) > limit:
            _fail(f"bad {what} {tok.text!r}", tok)
        return n

    def mark(self) -> Mark:
        tok = self.value("a mark")
        text, slash, mtext = tok.text.partition("/")
        value = self.uint(tok, text, 0xFFFFFFFF, "mark")
        mask = self.uint(tok, mtext, 0xFFFFFFFF, "mark") if slash else 0xFFFFFFFF
        if value & ~mask:
            # The kernel compares mark & mask with the value as given, so such a
            # filter could never match; say so rather than show an empty table.
            _fail(f"mark {text} has bits outside mask {mtext}", tok)
        return Mark(value, mask)

    def zone(self) -> Zone:
        tok = self.value("a zone number")
        return Zone(self.uint(tok, tok.text, 0xFFFF, "zone"))

    def owner(self, tok: Token) -> Owned:
        word = tok.key
        if not self.owners:
            _fail(f"{tok.text!r} needs the flows' owners, known only from a live namespace's sockets", tok)
        if word == "pid":
            v = self.value("a process id")
            return Owned("pid", self.uint(v, v.text, 0x7FFFFFFF, "process id"))
        if word in ("process", "container"):
            # Names as shown (case kept): process names and units are case-sensitive.
            return Owned(word, self.value(f"a {word} name").text)  # type: ignore[arg-type]
        return Owned(word, None)  # type: ignore[arg-type]  # owned / forwarded

    def compare(self, field: Literal["timeout", "bytes", "packets"]) -> Compare:
        op = self.peek()
        if op.kind != "op" or op.text not in COMPARE_OPS:
            self.expected("a comparison", op)
        self.take()
        tok = self.peek()
        m = _SIZE.fullmatch(tok.text) if tok.kind == "word" else None
        if m is None:
            self.expected("a value", tok)
        self.take()
        return Compare(field, COMPARE_OPS[op.text], int(m.group(1)) * SUFFIXES[m.group(2).lower()])


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return FAMILIES["ipv4" if ip.version == 4 else "ipv6"]


def _net_word(field: Literal["host", "src", "dst"]) -> str:
    """How to say "a network" for an address term: ``net``, ``src net`` or ``dst net``."""
    return "net" if field == "host" else f"{field} net"


def _service_port(name: str) -> int | None:
    """A service name's port, as tcpdump takes ``port https``: TCP's entry, else UDP's."""
    for proto in ("tcp", "udp"):
        try:
            return socket.getservbyname(name, proto)
        except OSError:
            continue
    return None


def _starts_term(tok: Token) -> bool:
    """Whether ``tok`` can begin an operand, which makes juxtaposition an "and"."""
    return tok.text in ("(", "!") or tok.kind == "word" and tok.key not in _AND + _OR


def _flat(kind: type[And] | type[Or], items: list[Node]) -> Node:
    """One node for one item; nested nodes of the same kind merged, since and/or associate."""
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))
