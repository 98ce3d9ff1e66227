"""Number, duration, bar and endpoint formatting shared by the panels. Plain strings only:
styling is the panels' business, and nothing here interprets markup.

:func:`truncate` fits every list cell and group key to its width, so it is also where they are made safe to
draw: names in them come from /proc and cgroups (cttop.termsafe).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from cttop.model import AF_INET6, ICMP_PROTOS, PORTED_PROTOS, addr_text
from cttop.termsafe import safe_line

SPARKS: Final = "▁▂▃▄▅▆▇█"
ELLIPSIS: Final = "…"


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def si(n: float | None, unit: str = "") -> str:
    """1234567 → '1.2M': for bytes and packets, where magnitude matters more than digits."""
    if n is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{suffix}{unit}" if v < 100 else f"{v:.0f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def counter(n: float | None, unread: bool) -> str:
    """A flow's bytes or packets: ``?`` while not read yet, ``-`` when the flow has none (accounting off)."""
    return "?" if n is None and unread else si(n)


def rate(per_s: float | None) -> str:
    """Per second; ``?`` until known (a rate needs two readings)."""
    if per_s is None:
        return "?"
    if per_s == 0:
        return "0/s"
    if per_s < 10:
        return f"{per_s:.1f}/s"
    return f"{si(per_s)}/s"


def duration(seconds: float) -> str:
    """Compact, at most six characters: 42s, 12m05, 5h02m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{duration(seconds)} ago"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of full blocks and light shade, readable on the Linux console font too."""
    if width <= 0:
        return ""
    full = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * full + "░" * (width - full)


def sparkline(values: list[int] | tuple[int, ...], width: int, min_span: float = 1.0) -> str:
    """The last ``width`` values, scaled between their minimum and maximum.

    ``min_span`` keeps noise flat: a table wobbling by a few entries out of a
    million should not draw as a mountain range.
    """
    vals = list(values)[-width:] if width > 0 else []
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = max(hi - lo, min_span)
    if span <= 0:
        return SPARKS[0] * len(vals)
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * (len(SPARKS) - 1) + 0.5))] for v in vals)


def truncate(text: str, width: int) -> str:
    """``text`` as one terminal-safe line of at most ``width`` characters, cut with an ellipsis."""
    text = safe_line(text)
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def truncate_middle(text: str, width: int) -> str:
    """``text`` as one terminal-safe line of at most ``width`` characters, cut in the middle: names that share a
    beginning (``10.77.1.2 → tcp/8001``, ``10.77.1.2 → tcp/8002``) stay apart by their ends."""
    text = safe_line(text)
    if len(text) <= width:
        return text
    if width < 5:
        return truncate(text, width)
    head = (width - 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def truncate_apart(texts: Sequence[str], width: int) -> list[str]:
    """Each of ``texts`` as :func:`truncate_middle` cuts it, except where two different ones would read the same
    so cut: two labs' routers (``cttop-lab-8cc360-router``, ``cttop-lab-c803c9-router``) were both
    ``cttop…router`` at 12, the tag that tells them apart cut away. Each of those keeps its end instead where the
    ends differ (``…c360-router``: the role and most of the tag), else what follows the first character that
    is not the others' (``…8cc360-xx…``)."""
    safe = [safe_line(t) for t in texts]
    cuts = [truncate_middle(t, width) for t in safe]
    read_as: dict[str, set[str]] = {}
    for t, cut in zip(safe, cuts):
        read_as.setdefault(cut, set()).add(t)
    out = []
    for t, cut in zip(safe, cuts):
        others = read_as[cut] - {t}
        if not others or width < 5:
            out.append(cut)
            continue
        tail = t[len(t) - (width - 1):]
        if all(not o.endswith(tail) for o in others):
            out.append(ELLIPSIS + tail)
            continue
        parts = max(len(os.path.commonprefix([t, o])) for o in others)  # the first character not theirs
        out.append(ELLIPSIS + t[parts:parts + width - 2] + ELLIPSIS)
    return out


def truncate_pair(text: str, sep: str, width: int) -> str:
    """``text``, two ends joined by ``sep`` (``10.77.1.2 → 10.77.2.2``), as one terminal-safe line of at most
    ``width`` characters: each end cut in its own middle and the separator kept, so both ends stay readable. An
    end shorter than half the room stays whole and gives the other what it leaves."""
    text = safe_line(text)
    left, found, right = text.partition(sep)
    room = width - len(sep)
    if not found or len(text) <= width or room < 10:
        return truncate_middle(text, width)
    half = room // 2
    left_w = len(left) if len(left) <= half else room - min(len(right), room - half)
    return truncate_middle(left, left_w) + sep + truncate_middle(right, room - left_w)


def endpoint(family: int, proto: int, addr: bytes, port: int, width: int | None = None,
             name: str | None = None) -> str:
    """'10.0.0.1:443', '[2001:db8::1]:443', or just the address for protocols without ports; ``name``
    (the address's reverse DNS name, made terminal-safe here) stands in for the address when given.

    Shortened to ``width`` in the middle of the address, so the port always stays readable.
    """
    a = addr_text(addr) if name is None else safe_line(name)
    if proto in PORTED_PROTOS:
        host = f"[{a}]" if family == AF_INET6 and name is None else a
        tail = f":{port}"
    else:
        host, tail = a, ""
    text = host + tail
    if width is None or len(text) <= width:
        return text
    room = width - len(tail) - 1
    if room < 4:
        return truncate(text, width)
    head = (room + 1) // 2
    return host[:head] + ELLIPSIS + host[len(host) - (room - head):] + tail


def icmp_text(proto: int, dport: int, sport: int) -> str:
    """ICMP's type/code and echo id, which live in the port fields of the row."""
    if proto not in ICMP_PROTOS:
        return ""
    return f"type {dport >> 8} code {dport & 0xFF} id {sport}"
