"""In a replay, "events lost" counts the losses the recording holds, never the view's own seeks.

The recording is written with the real writer from real kernel bytes (tests/fixtures), with
one recorded event loss (ENOBUFS, followed by its resync dump) at 2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cttop.model import R_ID
from cttop.sources import record as R
from cttop.sources.replay.playback import ReplaySource
from cttop.table.packing import unpack
from cttop.ui.app import CttopApp
from tests.ui.helpers import screen_text, wait_for, wait_live
from tests.unit.test_replay import (
    DUMP,
    EVENTS,
    Builder,
    decoded,
    dump_rows,
    table_after,
)


@pytest.fixture
def lossy(tmp_path: Path) -> str:
    path = tmp_path / "lossy.cttop"
    b = Builder(path)
    b.at(0).keyframe(DUMP[:8]).at(1).events(EVENTS[:10])
    b.at(2).write(R.K_LOST).dump(DUMP).at(3).events(EVENTS[10:20])
    b.at(10).keyframe(DUMP[8:]).at(11).events(EVENTS[20:])
    b.at(12).close()
    return str(path)


def ids_shown(app: CttopApp) -> set[int]:
    return {unpack(r)[R_ID] for r in app.main.flow_list.records}


async def seek_and_settle(pilot, app: CttopApp, replay: ReplaySource, t: float) -> None:  # type: ignore[no-untyped-def]
    app.collector.seek(t)
    start = replay.recording.start

    def done() -> bool:
        frame, index = app.shown_frame, app.shown_index
        return (app.collector.seeking is None and frame is not None and abs(frame.time - start - t) < 1e-6
                and index is not None and index.generation == app.collector.table.generation)

    await wait_for(pilot, done, f"the view at {t} s")


async def test_seeks_across_a_recorded_loss_count_nothing(lossy: str) -> None:
    replay = ReplaySource(lossy, paused=True)
    app = CttopApp(replay, interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await seek_and_settle(pilot, app, replay, 5.0)  # past the loss: its resync dump, then events
        want = table_after(dump_rows(DUMP), decoded(EVENTS[10:20]))
        assert ids_shown(app) == {r[R_ID] for r in want.rows()}
        for t in (11.5, 0.5, 5.0, 1.5):
            await seek_and_settle(pilot, app, replay, t)
        assert ids_shown(app) == {r[R_ID] for r in table_after(dump_rows(DUMP[:8]), decoded(EVENTS[:10])).rows()}
        assert app.shown_frame is not None and app.shown_frame.lost == 0
        assert "events lost" not in screen_text(app)


async def test_playing_through_a_recorded_loss_shows_it(lossy: str) -> None:
    replay = ReplaySource(lossy, speed=64.0)
    app = CttopApp(replay, interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.time - replay.recording.start
                       >= 3.0, "the replay past its recorded loss")
        assert app.shown_frame is not None and app.shown_frame.lost == 1
        assert "events lost, resynced ×1" in screen_text(app)


async def test_a_paused_replay_is_not_redumped_against_its_stale_stats(lossy: str) -> None:
    # The recording's last stats sample (8 entries, at its keyframe) lags the table at 5 s (18 flows, after the
    # resync dump and events). Taken for drift, it made the view redump the same rows ten times a second.
    replay = ReplaySource(lossy, paused=True)
    app = CttopApp(replay, interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await seek_and_settle(pilot, app, replay, 5.0)
        assert replay.stats().count != len(app.collector.table)  # the lag this test is about
        generation, seq = app.collector.table.generation, app.shown_frame.seq if app.shown_frame else 0
        await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.seq >= seq + 10,
                       "ten more frames")
        assert app.collector.table.generation == generation
