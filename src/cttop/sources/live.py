"""Where the live view's data comes from: the kernel, or a recording being replayed.

Everything above this line (the collector, the TUI, doctor, export) reads through a
:class:`Source`, so a recorded session replays through exactly the same code as a
live one, and UI tests can use a fixed source.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Protocol

from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import Ctnetlink, Stats
from cttop.kernel.events import EventBatch, EventSocket
from cttop.kernel.netns import NetnsSpec
from cttop.model import Row

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts
    from cttop.kernel.decode import Holder


# The event socket's receive buffer, a limit the kernel fills only while the collector is behind. Under
# churn the kernel's garbage collector ends expired entries in bursts (40-50k DESTROY events at once
# under a 10k/s UDP flood, ~640 bytes each): 16 MiB overflowed (ENOBUFS, and a resync) on such bursts.
EVENT_RCVBUF: Final = 64 << 20


class Playback(Protocol):
    """A recording's play clock, what a source that can seek offers (the UI's replay keys and time line)."""

    @property
    def start(self) -> float: ...  # the recording's first second, wall clock

    @property
    def duration(self) -> float: ...

    @property
    def position(self) -> float: ...  # seconds from the start

    @property
    def paused(self) -> bool: ...

    @property
    def speed(self) -> float: ...

    @property
    def at_end(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_speed(self, speed: float) -> None: ...

    def seek(self, t: float) -> None: ...

    def timeline(self) -> list[tuple[float, int, int]]: ...


class Source(Protocol):
    label: str  # what the header shows: namespace name, or the recording's file name
    live: bool  # False for replays: actions are refused

    # What the source supports, declared, so that no caller asks which kind of source it holds.
    @property
    def spec(self) -> NetnsSpec | None:
        """The namespace read, where owners (processes) and /proc/net/stat can be asked; None: a recording."""
        ...

    @property
    def events_overflow(self) -> bool:
        """Whether events left unread are lost (a kernel socket's buffer): then they are read during dumps."""
        ...

    @property
    def playback(self) -> Playback | None:
        """The play clock, for a source that can be paused and seeked; None for the kernel's present."""
        ...

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
    events_overflow = True
    playback = None

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

    def dump_held(self, counts: Counts, hold: Holder) -> Iterator[None]:
        """The dump read straight into a held table (table.store's Loading), a step a chunk: no row a flow but
        for the few the compiled walk leaves to Python. Only the kernel's source has this: the collector uses it
        where the table and the accelerator allow (FlowTable.loading), and dump_chunks otherwise."""
        return self.ct.dump_held(counts, hold)

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
