"""Where the live view's data comes from: the kernel, or a recording being replayed.

Everything above this line (the collector, the TUI, doctor, export) reads through a
:class:`Source`, so a recorded session replays through exactly the same code as a
live one, and UI tests can use a fixed source.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final, Protocol

from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import Ctnetlink, Stats
from cttop.kernel.events import EventBatch, EventSocket
from cttop.kernel.netns import NetnsSpec
from cttop.model import Row


# The event socket's receive buffer, a limit the kernel fills only while the collector is behind. Under
# churn the kernel's garbage collector ends expired entries in bursts (40-50k DESTROY events at once
# under a 10k/s UDP flood, ~640 bytes each): 16 MiB overflowed (ENOBUFS, and a resync) on such bursts.
EVENT_RCVBUF: Final = 64 << 20


class Source(Protocol):
    label: str  # what the header shows: namespace name, or the recording's file name
    live: bool  # False for replays: actions are refused

    def subscribe(self) -> None:
        """Start receiving events; called before the first dump so nothing falls between."""

    def dump(self) -> list[Row]: ...

    def dump_chunks(self) -> Iterator[list[Row]]:
        """The dump as it arrives, so a big table is never held as rows all at once."""
        ...

    def events(self, timeout: float) -> EventBatch: ...

    def stats(self) -> Stats: ...

    def stats_cpu(self) -> list[dict[str, int]]: ...

    def sysctls(self) -> dict[str, str]: ...

    def now(self) -> float: ...

    def close(self) -> None: ...


class LiveSource:
    """The kernel, in one namespace. Use from a single worker thread."""

    live = True

    def __init__(self, spec: NetnsSpec = NetnsSpec()) -> None:
        self.spec = spec
        self.label = spec.label()
        self.ct = Ctnetlink(spec)
        # The count is read on every frame, also while a dump streams in on self.ct: a socket of its own.
        self.counts = Ctnetlink(spec)
        self.ev: EventSocket | None = None

    def subscribe(self) -> None:
        if self.ev is None:
            self.ev = EventSocket(self.spec, rcvbuf=EVENT_RCVBUF)

    def dump(self) -> list[Row]:
        return self.ct.dump()

    def dump_chunks(self) -> Iterator[list[Row]]:
        return self.ct.dump_chunks()

    def events(self, timeout: float) -> EventBatch:
        if self.ev is None:
            time.sleep(timeout)
            return EventBatch()
        return self.ev.read(timeout)

    def stats(self) -> Stats:
        return self.counts.stats()

    def stats_cpu(self) -> list[dict[str, int]]:
        return self.counts.stats_cpu()

    def sysctls(self) -> dict[str, str]:
        return sysctl.read(self.spec)

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        self.ct.close()
        self.counts.close()
        if self.ev is not None:
            self.ev.close()
