"""A recording of a throwaway namespace, replayed in the app: paused, seeked, played to the end.

The recording goes through three phases, each followed by a quiet spell: 10 UDP
flows, then 20 TCP flows more, then 5 of those deleted (10, 30, then 25
entries; the count passes through no phase's value after that phase). The
kernel's own list (`conntrack -L`) is taken in each quiet spell. At a position
in a phase's spell the screen must show that phase's flows and the count the
recording's stats sample holds there, and never "events lost", however often
the view seeks.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cttop.model import R_ID
from cttop.sources.replay.index import Recording, StatsSample
from cttop.sources.replay.playback import ReplaySource
from cttop.table.packing import unpack
from cttop.ui.app import CttopApp
from cttop.ui.screens.help import HelpScreen
from cttop.ui.timeline import Timeline, clock
from tests.conftest import delete_netns, make_netns, sh
from tests.ui.helpers import screen_text, wait_for, wait_live

pytestmark = pytest.mark.kernel

QUIET = 2.5  # seconds after each phase: the recorder takes stats every second


@dataclass(frozen=True)
class Recorded:
    path: Path
    phases: list[set[int]]  # the kernel's flow ids in each phase's quiet spell


def kernel_ids(ns: str) -> set[int]:
    return {int(line.rsplit("id=", 1)[1].split()[0])
            for line in sh("conntrack", "-L", "-o", "id", netns=ns).splitlines() if "id=" in line}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    ns = make_netns()
    path = tmp_path_factory.mktemp("replay") / "phases.cttop"
    rec = None
    try:
        rec = subprocess.Popen(["cttop", "record", "--netns", ns, "-o", str(path), "--dump-interval", "3s"],
                               stderr=subprocess.PIPE, text=True)
        for _ in range(1000):  # the recorder creates the file once subscribed to events
            if path.exists():
                break
            assert rec.poll() is None, rec.communicate()[1]
            time.sleep(0.01)
        # The file appears once subscribed; its first keyframe dump follows. A flow made before that dump ends may
        # be in it, and the recording would not begin empty (a race the seek-to-start test lost under load).
        time.sleep(1.0)  # an empty namespace's keyframe takes milliseconds
        phases = []
        for i in range(10):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.1.0.{i + 1}", "-d", "10.9.0.53", "--sport", "5000",
               "--dport", "53", "-t", "600", netns=ns)
        time.sleep(QUIET)
        phases.append(kernel_ids(ns))
        for i in range(20):
            sh("conntrack", "-I", "-p", "tcp", "-s", f"10.2.0.{i + 1}", "-d", "10.9.0.80", "--sport", "4000",
               "--dport", "443", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "600", netns=ns)
        time.sleep(QUIET)
        phases.append(kernel_ids(ns))
        for i in range(5):
            sh("conntrack", "-D", "-s", f"10.2.0.{i + 1}", netns=ns)
        time.sleep(QUIET)
        phases.append(kernel_ids(ns))
        rec.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, err
        assert [len(p) for p in phases] == [10, 30, 25]
        yield Recorded(path, phases)
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        delete_netns(ns)


def quiet_sample(rec: Recording, count: int) -> StatsSample:
    """The last stats sample holding ``count`` that followed one holding it too: inside the phase's
    quiet spell, a second or more after its last change (whose events are recorded by then)."""
    stable = [s for prev, s in zip(rec.stats, rec.stats[1:]) if prev.count == s.count == count]
    assert stable, f"no two stats samples in a row hold {count}"
    return stable[-1]


def ids_shown(app: CttopApp) -> set[int]:
    return {unpack(r)[R_ID] for r in app.main.flow_list.records}


def timeline_text(app: CttopApp) -> str:
    """The screen's second line: the time line, under the status line."""
    return screen_text(app).splitlines()[1]


def sample_at(rec: Recording, t: float) -> StatsSample:
    """The stats sample in force at absolute time ``t``: the last one taken at or before it."""
    before = [s for s in rec.stats if s.t <= t]
    assert before, f"no stats sample before {t - rec.start:.3f} s"
    return before[-1]


async def settled(pilot, app: CttopApp) -> float:  # type: ignore[no-untyped-def]
    """Until the seek is done and the frame and flow list on screen are of where the replay stands;
    that position (seconds from the start). A seek lands at its target, or just past it when the
    target falls inside a keyframe dump, which the replay reads whole."""
    replay = app.source
    assert isinstance(replay, ReplaySource)
    start = replay.recording.start

    def done() -> bool:
        frame, index = app.shown_frame, app.shown_index
        return (app.collector.seeking is None and frame is not None
                and abs(frame.time - start - replay.position) < 1e-6
                and index is not None and index.generation == app.collector.table.generation)

    await wait_for(pilot, done, "the view where the replay stands")
    assert app.shown_frame is not None
    return app.shown_frame.time - start


async def test_paused_seeks_show_what_the_recording_holds_there(recorded: Recorded) -> None:
    rec = Recording.open(str(recorded.path))
    replay = ReplaySource(str(recorded.path), paused=True)
    app = CttopApp(replay, interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_live(pilot, app)
        assert app.query_one(Timeline) is not None
        assert "process" not in app.collector.group_order  # a replay has no processes
        # Later phases first: every seek but the first goes backwards.
        for phase in (2, 0, 1):
            want = recorded.phases[phase]
            target = quiet_sample(rec, len(want)).t - rec.start + 1e-3
            app.collector.seek(target)  # what the , . < > keys call, at a chosen position
            position = await settled(pilot, app)
            assert target - 1e-5 <= position < target + 1.0  # epoch-scale floats: ~1e-7 apart
            sample = sample_at(rec, rec.start + position)
            shows = f" {clock(position)} / {clock(rec.duration)}"
            await wait_for(pilot, lambda shows=shows: shows in timeline_text(app), f"the time line at {shows}")
            text = screen_text(app)
            assert ids_shown(app) == want
            assert sample.count == len(want)
            assert f"{sample.count:,} / {sample.max:,}" in text
            assert f"Flows {len(want)} " in text
            assert "PAUSED" in text
            assert "events lost" not in text
            assert app.shown_frame is not None and app.shown_frame.lost == 0
        assert replay.paused and not app.paused  # p-style pause is the replay's clock, not a frozen view


async def test_keys_seek_and_play_to_the_end(recorded: Recorded) -> None:
    rec = Recording.open(str(recorded.path))
    replay = ReplaySource(str(recorded.path), paused=True)
    app = CttopApp(replay, interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_live(pilot, app)
        assert replay.paused and replay.position < 1.0  # opened paused, at its first keyframe
        # A replay's keys lead the footer (drawn a moment after the first frame, on a busy machine).
        await wait_for(pilot, lambda: ", -10 s" in screen_text(app).splitlines()[-1], "the footer")
        assert ". +10 s" in screen_text(app).splitlines()[-1]
        await pilot.press("full_stop", "full_stop")  # forward 20 s: past the end (about 9 s), so to the end
        assert await settled(pilot, app) == pytest.approx(rec.duration)
        assert ids_shown(app) == recorded.phases[2]
        await pilot.press("comma")  # back 10 s: before the start, so to the start
        position = await settled(pilot, app)
        assert position < 1.0  # the first keyframe dump, at most
        assert ids_shown(app) == set()  # the namespace was empty when recording began
        shows = f" {clock(position)} / {clock(rec.duration)}"
        await wait_for(pilot, lambda: shows in timeline_text(app), f"the time line at {shows}")
        assert "events lost" not in screen_text(app)

        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert replay.speed == 8.0
        await pilot.press("p")
        assert not replay.paused
        await wait_for(pilot, lambda: replay.at_end, "the replay's end")
        assert await settled(pilot, app) == pytest.approx(rec.duration)
        assert ids_shown(app) == recorded.phases[2]
        shows = f"END {clock(rec.duration)} / {clock(rec.duration)}"
        await wait_for(pilot, lambda: shows in timeline_text(app), f"the time line at {shows}")
        text = screen_text(app)
        assert f"{rec.stats[-1].count:,} / " in text
        assert "events lost" not in text
        assert app.shown_frame is not None and app.shown_frame.lost == 0


async def test_a_seek_before_the_view_opens_is_no_loss(recorded: Recorded) -> None:
    """`cttop replay --at T` seeks before the app starts: the view opens at T, with nothing lost."""
    rec = Recording.open(str(recorded.path))
    want = recorded.phases[1]
    target = quiet_sample(rec, len(want)).t - rec.start + 1e-3
    replay = ReplaySource(str(recorded.path), paused=True)
    replay.seek(target)
    app = CttopApp(replay, interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        position = await settled(pilot, app)
        assert target - 1e-5 <= position < target + 1.0
        assert ids_shown(app) == want
        assert f"{len(want)} / " in screen_text(app)
        assert "events lost" not in screen_text(app)
        assert app.shown_frame is not None and app.shown_frame.lost == 0


async def test_help_in_a_replay_lists_its_timeline_keys_and_no_changes(recorded: Recorded) -> None:
    app = CttopApp(ReplaySource(str(recorded.path), paused=True), interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_live(pilot, app)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = str(app.screen.query_one("#help-text").render())
    for line in ("  ,               -10 s", "  .               +10 s", "  [               Slower replay"):
        assert line in text
    assert "Replay" in text and "Remediation" not in text and "Doctor" not in text
    assert "full_stop" not in text and "left_square_bracket" not in text
