"""The thread that builds flow indexes, so sorting and filtering a million flows never runs on the UI thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from cttop.errors import CttopError
from cttop.filter import OwnerSource
from cttop.live.index import FlowIndex, ViewSpec, build_index
from cttop.live.pager import Pager
from cttop.table.rates import FlowRate


@dataclass(frozen=True)
class IndexJob:
    records: Sequence[bytes]
    generation: int
    spec: ViewSpec
    anchor: int | None
    rates: Mapping[int, FlowRate] | None = None  # bytes and packets a second by flow key, for the rate sorts
    page: Pager | None = None  # a bounded view: the records are read from the kernel, not given


class Indexer:
    """Builds the latest submitted job; a newer submission cancels the build in progress."""

    def __init__(self, on_index: Callable[[FlowIndex], None], owners: OwnerSource | None = None) -> None:
        self._on_index = on_index
        self._owners = owners
        self._cv = threading.Condition()
        self._job: IndexJob | None = None
        self._submitted = 0  # sequence number of the newest job
        self._running = False
        self._stopped = False
        # The newest index and the snapshot it was built from, set together (one assignment).
        self.last: tuple[FlowIndex, Sequence[bytes]] | None = None
        self._thread = threading.Thread(target=self._run, name="cttop-indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._submitted += 1
            self._cv.notify()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._running or self._job is not None

    def cancel(self) -> None:
        """Stop the build in progress (at its next check) and drop a job not started."""
        with self._cv:
            self._job = None
            self._submitted += 1

    def submit(self, job: IndexJob) -> None:
        with self._cv:
            self._job = job
            self._submitted += 1
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._stopped:
                    self._cv.wait()
                job = self._job
                if self._stopped or job is None:
                    return
                self._job, seq = None, self._submitted
                self._running = True

            def cancelled(seq: int = seq) -> bool:
                return self._submitted != seq

            try:
                index, records = self._build(job, cancelled)
            finally:
                with self._cv:
                    self._running = False
            if index is not None:
                self.last = (index, records)
                self._on_index(index)
            # Not kept while this thread waits for the next job: a cancelled build's copy of the table would be.
            del job, index, records

    def _build(self, job: IndexJob, cancelled: Callable[[], bool]) -> tuple[FlowIndex | None, Sequence[bytes]]:
        if job.page is None:
            return build_index(job.records, job.spec, generation=job.generation, anchor=job.anchor,
                               cancelled=cancelled, owners=self._owners, rates=job.rates), job.records
        t0 = time.perf_counter()
        try:
            page = job.page.read(job.spec, self._owners, cancelled)
        except CttopError:
            # A dump that failed (interrupted by a table change, or the namespace going, which the collector's
            # own socket reports): the list keeps its last page, and the next job reads it again.
            return None, ()
        if page is None:
            return None, ()
        index = build_index(page.records, job.spec, generation=job.generation, anchor=job.anchor,
                            cancelled=cancelled, owners=self._owners)
        if index is None:
            return None, ()
        # Its time is the dump's too: what the next page is spaced by.
        return (replace(index, total=page.listed, paged=page.matched, paged_at=page.read_at,
                        seconds=time.perf_counter() - t0), page.records)
