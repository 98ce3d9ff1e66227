"""The filter's syntax tree: frozen, hashable nodes that the compiler and pushdown walk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias


@dataclass(frozen=True, slots=True)
class All:
    """The empty filter: matches every flow."""


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class Addr:
    """An address or network; a plain address is a full-length prefix.

    ``host`` matches any of the four addresses (both tuples), ``src``/``dst`` the
    original tuple. ``network`` has its host bits cleared.
    """

    field: Literal["host", "src", "dst"]
    network: bytes
    prefixlen: int
    family: int


@dataclass(frozen=True, slots=True)
class Port:
    """Original-tuple port in ``lo..hi``; only protocols with ports can match."""

    field: Literal["port", "sport", "dport"]
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class Proto:
    num: int


@dataclass(frozen=True, slots=True)
class Family:
    af: int


@dataclass(frozen=True, slots=True)
class State:
    """A name as ``model.state_name`` gives it, upper-case."""

    name: str


@dataclass(frozen=True, slots=True)
class Flag:
    name: Literal["assured", "unreplied", "replied", "snat", "dnat", "nat"]


@dataclass(frozen=True, slots=True)
class Mark:
    """Matches when ``mark & mask == value``; the parser keeps ``value`` inside ``mask``."""

    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class Zone:
    n: int


@dataclass(frozen=True, slots=True)
class Compare:
    """``op`` is one of ``< <= > >= == !=`` (``=`` is stored as ``==``)."""

    field: Literal["timeout", "bytes", "packets"]
    op: str
    value: int


@dataclass(frozen=True, slots=True)
class Owned:
    """Who owns the flow: a process by ``pid`` or ``name``, a ``container`` by name; ``owned`` (some local
    process holds it) and ``forwarded`` (no end is local) have no value. Only views that know the
    namespace's sockets can evaluate these (see ``compile.OwnerSource``)."""

    field: Literal["pid", "process", "container", "owned", "forwarded"]
    value: int | str | None


Node: TypeAlias = All | And | Or | Not | Addr | Port | Proto | Family | State | Flag | Mark | Zone | Compare | Owned
