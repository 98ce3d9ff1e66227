"""Encode a kernel-side filter (what ``cttop.filter`` can push down) as ctnetlink attributes.

The same attributes select entries for a dump and, on kernels since 2024, for a
flush: mark/mask, zone, status/mask and an original-tuple match flagged by CTA_FILTER.
"""

from __future__ import annotations

from typing import Protocol

from cttop.kernel import nlconst as C
from cttop.kernel.attrs import be, nest, nla


class KernelFilterLike(Protocol):
    # Read-only members, so frozen dataclasses (cttop.filter.KernelFilter) satisfy it.
    @property
    def family(self) -> int | None: ...

    @property
    def proto(self) -> int | None: ...

    @property
    def src(self) -> bytes | None: ...

    @property
    def dst(self) -> bytes | None: ...

    @property
    def sport(self) -> int | None: ...

    @property
    def dport(self) -> int | None: ...

    @property
    def mark(self) -> int | None: ...

    @property
    def mark_mask(self) -> int | None: ...

    @property
    def zone(self) -> int | None: ...

    @property
    def status(self) -> int | None: ...

    @property
    def status_mask(self) -> int | None: ...


def encode_filter(f: KernelFilterLike) -> bytes:
    out = b""
    if f.mark is not None:
        out += nla(C.CTA_MARK, be("I", f.mark))
        out += nla(C.CTA_MARK_MASK, be("I", 0xFFFFFFFF if f.mark_mask is None else f.mark_mask))
    if f.status is not None:
        out += nla(C.CTA_STATUS, be("I", f.status))
        out += nla(C.CTA_STATUS_MASK, be("I", 0xFFFFFFFF if f.status_mask is None else f.status_mask))
    if f.zone is not None:
        out += nla(C.CTA_ZONE, be("H", f.zone))
    flags, ip, l4 = 0, b"", b""
    v6 = f.family == 10
    if f.src is not None:
        flags |= C.CTA_FILTER_FLAG_CTA_IP_SRC
        ip += nla(C.CTA_IP_V6_SRC if v6 else C.CTA_IP_V4_SRC, f.src)
    if f.dst is not None:
        flags |= C.CTA_FILTER_FLAG_CTA_IP_DST
        ip += nla(C.CTA_IP_V6_DST if v6 else C.CTA_IP_V4_DST, f.dst)
    if f.proto is not None:
        flags |= C.CTA_FILTER_FLAG_CTA_PROTO_NUM
        l4 += nla(C.CTA_PROTO_NUM, bytes([f.proto]))
        if f.sport is not None:
            flags |= C.CTA_FILTER_FLAG_CTA_PROTO_SRC_PORT
            l4 += nla(C.CTA_PROTO_SRC_PORT, be("H", f.sport))
        if f.dport is not None:
            flags |= C.CTA_FILTER_FLAG_CTA_PROTO_DST_PORT
            l4 += nla(C.CTA_PROTO_DST_PORT, be("H", f.dport))
    if flags:
        parts = ([nest(C.CTA_TUPLE_IP, ip)] if ip else []) + ([nest(C.CTA_TUPLE_PROTO, l4)] if l4 else [])
        out += nest(C.CTA_TUPLE_ORIG, *parts)
        out += nest(C.CTA_FILTER, nla(C.CTA_FILTER_ORIG_FLAGS, flags.to_bytes(4, "little")),
                    nla(C.CTA_FILTER_REPLY_FLAGS, (0).to_bytes(4, "little")))
    return out
