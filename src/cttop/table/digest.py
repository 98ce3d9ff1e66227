"""What a bounded view keeps of each flow: the fields an update can change, 12 bytes a slot.

A bounded view (:class:`cttop.table.tally.FlowTally`) holds no flow records, yet its state
counts must stay exact: an UPDATE event carries a flow's new state but not the one it is
counted under. So every flow keeps a digest: its state, status, mark and zone, interned as
one code (a table has a few dozen distinct ones), under its flow key.

A dict of a million int keys costs ~80 bytes a flow before any value; this is an open-addressing
table in two flat arrays (a 64-bit key and a 32-bit code a slot, at most LOAD full), 20 to 40 bytes a
flow, probed linearly, and emptied by shifting back, so no tombstone ever lengthens a probe.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Final, Protocol

from cttop.kernel import native

Shape = tuple[object, ...]  # pstate, status, mark, zone; then, while owners are counted, the flow's owner
LOAD: Final = 0.6  # the most slots in use before the arrays double
_MIN_SLOTS: Final = 1024


def slots_for(n: int, load: float = LOAD, least: int = _MIN_SLOTS) -> int:
    """The slots (a power of two, at least ``least``) of an open-addressing table that holds ``n`` keys at most
    ``load`` full: sized once for a dump's count, it never doubles (and reads every key again) while filled."""
    slots = least
    while slots * load < n:
        slots *= 2
    return slots


class DigestTable(Protocol):
    """What a tally asks of its digests: :class:`Digests`, or the compiled one (native ``Digests``)."""

    def __len__(self) -> int: ...
    def get(self, key: int) -> Shape | None: ...
    def put(self, key: int, shape: Shape) -> Shape | None: ...
    def put_many(self, keys: Iterable[int], shapes: Iterable[Shape]) -> None: ...
    def pop(self, key: int) -> Shape | None: ...


def digests(expect: int = 0) -> DigestTable:
    """A digest table for ``expect`` flows: the compiled one where it was built (a Python put is ~1 µs a flow,
    ~1.1 s of a million-flow first frame under cProfile), else :class:`Digests`, its reference."""
    if native.DEFAULT is not None:
        return native.DEFAULT.Digests(slots_for(expect), LOAD)  # type: ignore[no-any-return]
    return Digests(expect)


class Digests:
    """flow key -> Shape. Code 0 marks an empty slot, so shapes are numbered from 1."""

    def __init__(self, expect: int = 0) -> None:
        self._shapes: list[Shape | None] = [None]
        self._code: dict[Shape, int] = {}
        self._n = 0
        self._alloc(slots_for(expect))

    def _alloc(self, slots: int) -> None:
        self._keys = array("Q", bytes(8 * slots))
        self._codes = array("I", bytes(4 * slots))
        self._mask = slots - 1
        self._grow_at = int(slots * LOAD)

    def __len__(self) -> int:
        return self._n

    # A key's home slot is (key ^ key >> 32) & mask, written out where used: the low half of a flow key is
    # the conntrack id, a hash already, the high half a hash of the tuple.

    def get(self, key: int) -> Shape | None:
        keys, codes, mask = self._keys, self._codes, self._mask
        i = (key ^ key >> 32) & mask
        while code := codes[i]:
            if keys[i] == key:
                return self._shapes[code]
            i = (i + 1) & mask
        return None

    def put(self, key: int, shape: Shape) -> Shape | None:
        """Store ``shape`` under ``key``; the shape it had, or None for a new key."""
        code = self._code.get(shape)
        if code is None:
            code = self._code[shape] = len(self._shapes)
            self._shapes.append(shape)
        keys, codes, mask = self._keys, self._codes, self._mask
        i = (key ^ key >> 32) & mask
        while was := codes[i]:
            if keys[i] == key:
                codes[i] = code
                return self._shapes[was]
            i = (i + 1) & mask
        keys[i], codes[i] = key, code
        self._n += 1
        if self._n > self._grow_at:
            self._rehash(2 * (mask + 1))
        return None

    def put_many(self, keys: Iterable[int], shapes: Iterable[Shape]) -> None:
        """:meth:`put` each key's shape, the two in step."""
        put = self.put
        for key, shape in zip(keys, shapes, strict=True):
            put(key, shape)

    def pop(self, key: int) -> Shape | None:
        """Remove ``key``; the shape it had, or None if it was not there."""
        keys, codes, mask = self._keys, self._codes, self._mask
        i = (key ^ key >> 32) & mask
        while was := codes[i]:
            if keys[i] == key:
                break
            i = (i + 1) & mask
        else:
            return None
        # Shift back the entries after it whose probe passed through slot i, so every probe still finds
        # its key before the first empty slot.
        j = i
        while True:
            j = (j + 1) & mask
            code = codes[j]
            if not code:
                break
            k = keys[j]
            home = (k ^ k >> 32) & mask
            if (j - home) & mask >= (j - i) & mask:
                keys[i], codes[i] = k, code
                i = j
        codes[i] = 0
        self._n -= 1
        return self._shapes[was]

    def _rehash(self, slots: int) -> None:
        old_keys, old_codes = self._keys, self._codes
        self._alloc(slots)
        keys, codes, mask = self._keys, self._codes, self._mask
        for k, code in zip(old_keys, old_codes):
            if code:
                i = (k ^ k >> 32) & mask
                while codes[i]:
                    i = (i + 1) & mask
                keys[i], codes[i] = k, code
