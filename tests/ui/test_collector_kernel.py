"""The collector on a real namespace: a big first dump, packed as it arrives, with progress frames."""

from __future__ import annotations

import threading

import pytest

import cttop.live.collector as collector_module
from benchmarks.common import synthetic_rows
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.live.collector import Collector
from cttop.live.frame import FAILED, LIVE, LOADING, Frame
from cttop.sources.live import LiveSource
from tests.conftest import sh

pytestmark = pytest.mark.kernel

ENTRIES = 20_000


def test_progress_frames_during_the_dump_leave_its_stream_alone(netns: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A progress frame while the dump arrives must not send requests on the dump's socket
    (their replies would land inside the dump: "kernel said Success")."""
    with Ctnetlink(NetnsSpec(name=netns)) as ct:
        assert ct.create(synthetic_rows(ENTRIES)) == ENTRIES
    monkeypatch.setattr(collector_module, "LOAD_CHUNK", 500)
    monkeypatch.setattr(collector_module, "LOAD_REPORT_EVERY", 0.0)  # a frame after every batch
    frames: list[Frame] = []
    settled = threading.Event()

    def on_frame(f: Frame) -> None:
        frames.append(f)
        if f.phase in (LIVE, FAILED):
            settled.set()

    c = Collector(LiveSource(NetnsSpec(name=netns)), on_frame=on_frame, on_index=lambda _: None, interval=0.2)
    c.start()
    try:
        assert settled.wait(60), "the collector never finished its first load"
        progress = [f.note for f in frames if f.phase == LOADING and f.note.startswith("loaded ")]
        final = next(f for f in frames if f.phase in (LIVE, FAILED))
        assert final.phase == LIVE, final.note
        assert len(progress) >= 5, progress  # the dump really was interleaved with progress frames
        kernel = int(sh("conntrack", "-C", netns=netns).strip())
        assert len(c.table) == kernel == ENTRIES
    finally:
        c.stop()
