"""A replay's seeks, asked for from the UI thread and carried out on the collector's.

Why a module of its own: the replay answers a seek with ``lost=True``, its way of asking
for a redump. Taken from the collector's thread right after the seek, that answer is
known to be the seek's and not a recorded kernel loss, so only real losses are counted
as "events lost". That reasoning, and the pending seek, live here; the collector only
redumps when :meth:`Seeks.take` says a seek was made.
"""

from __future__ import annotations

import threading

from cttop.sources.live import Source


class Seeks:
    """The seek the UI asked for and the worker has not made yet."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._to: float | None = None

    @property
    def pending(self) -> float | None:
        """Where a seek not yet carried out is going, if one is."""
        return self._to

    def ask(self, seconds: float) -> None:
        """From any thread: seek to ``seconds`` from the start (clamped by the replay) on the next tick."""
        if self.source.playback is None:
            raise TypeError("only a replay can seek")
        with self._lock:
            self._to = seconds

    def take_startup(self) -> None:
        """A seek made before the view opened (cttop replay --at) is carried out by the replay's first
        data call, which answers lost=True. The start-up dump is the redump that asks for, and it holds
        whatever this call hands out: take the answer here, uncounted."""
        if self.source.playback is not None:
            self.source.events(0.0)

    def take(self) -> bool:
        """On the worker: carry out the pending seek, if any; True if so (the table must then be redumped)."""
        playback, t = self.source.playback, self._to
        if playback is None or t is None:
            return False
        playback.seek(t)
        with self._lock:
            if self._to == t:  # a newer one waits for the next tick
                self._to = None
        # The replay does the seek on its next data call and answers that call with lost=True, asking for a
        # redump. Made here, right after the seek, that call's answer is the seek's: the redump follows, and
        # nothing is counted as lost.
        self.source.events(0.0)
        return True
