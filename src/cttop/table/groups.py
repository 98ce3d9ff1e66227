"""Group keys for the "heaviest tuples" aggregate: how a row maps to a group, and how a group prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

from cttop.model import (
    PORTED_PROTOS,
    R_DPORT,
    R_DST,
    R_MARK,
    R_PROTO,
    R_PSTATE,
    R_SPORT,
    R_SRC,
    R_STATUS,
    R_ZONE,
    Row,
    addr_text,
    proto_name,
    state_key,
)

GroupKey = Any
PAIR_SEP: Final = " → "  # between the two ends of a pair group's text


def _port(proto: int, port: int) -> tuple[int, int] | None:
    return (proto, port) if proto in PORTED_PROTOS else None


def _port_text(k: tuple[int, int] | None) -> str:
    return "-" if k is None else f"{proto_name(k[0])}/{k[1]}"


@dataclass(frozen=True)
class GroupDef:
    name: str
    title: str
    key: Callable[[Row], GroupKey]
    text: Callable[[GroupKey], str]
    # The filter expression selecting exactly this group's flows, for "select a
    # group to filter the list" and for NOTRACK; None where no filter word fits.
    filter: Callable[[GroupKey], str | None]
    # The row fields the key reads, and no other: rows alike in these share a key. A dump is counted by them in C
    # (kernel/_counts.c) and the key called once per distinct set; None where the key reads more than the row.
    reads: tuple[int, ...] | None = None
    pair: bool = False  # its text is two ends joined by PAIR_SEP (a source and where it went)


def _pfilter(k: tuple[int, int] | None, word: str) -> str | None:
    return None if k is None else f"{proto_name(k[0])} {word} {k[1]}"


# Keys that are fields of the row are itemgetters, not lambdas: every event computes the shown group's key.
GROUPS: Final[dict[str, GroupDef]] = {g.name: g for g in (
    GroupDef("src", "source", itemgetter(R_SRC), addr_text, lambda k: f"src {addr_text(k)}", (R_SRC,)),
    GroupDef("dst", "destination", itemgetter(R_DST), addr_text, lambda k: f"dst {addr_text(k)}", (R_DST,)),
    GroupDef("dport", "dest port", lambda r: _port(r[R_PROTO], r[R_DPORT]), _port_text,
             lambda k: _pfilter(k, "dport"), (R_PROTO, R_DPORT)),
    GroupDef("sport", "source port", lambda r: _port(r[R_PROTO], r[R_SPORT]), _port_text,
             lambda k: _pfilter(k, "sport"), (R_PROTO, R_SPORT)),
    GroupDef("proto", "protocol", itemgetter(R_PROTO), proto_name, lambda k: f"proto {k}", (R_PROTO,)),
    GroupDef("state", "state", state_key, str, lambda k: f"{k.split(':')[0]} state {k.split(':')[1].lower()}",
             (R_PROTO, R_PSTATE, R_STATUS)),
    GroupDef("src-dport", "source → dest port",
             lambda r: (r[R_SRC], _port(r[R_PROTO], r[R_DPORT])),
             lambda k: f"{addr_text(k[0])}{PAIR_SEP}{_port_text(k[1])}",
             lambda k: None if k[1] is None else f"src {addr_text(k[0])} and {_pfilter(k[1], 'dport')}",
             (R_SRC, R_PROTO, R_DPORT), pair=True),
    GroupDef("pair", "source → destination", itemgetter(R_SRC, R_DST),
             lambda k: f"{addr_text(k[0])}{PAIR_SEP}{addr_text(k[1])}",
             lambda k: f"src {addr_text(k[0])} and dst {addr_text(k[1])}", (R_SRC, R_DST), pair=True),
    GroupDef("mark", "mark", itemgetter(R_MARK), lambda k: f"{k:#x}" if k else "0", lambda k: f"mark {k}",
             (R_MARK,)),
    GroupDef("zone", "zone", itemgetter(R_ZONE), str, lambda k: f"zone {k}", (R_ZONE,)),
)}
