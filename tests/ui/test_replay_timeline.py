"""The time line's arithmetic, and the replay keys staying out of a view that is no replay."""

from __future__ import annotations

from cttop.live.heaviest import GROUP_ORDER
from cttop.ui.app import CttopApp
from cttop.ui.timeline import Timeline, cell_of, clock, spark_cells
from tests.ui.fixed_source import FixedSource
from tests.ui.helpers import screen_text, wait_live


def test_clock() -> None:
    assert clock(0) == "0:00.0"
    assert clock(7.46) == "0:07.5"
    assert clock(754.0) == "12:34.0"
    assert clock(3723.9) == "1:02:03"
    assert clock(-1) == "0:00.0"


def test_spark_cells_hold_the_count_at_each_slices_end() -> None:
    samples = [(0.0, 5, 100), (1.0, 7, 100), (2.5, 1, 100), (3.9, 9, 100)]
    assert spark_cells(samples, 4.0, 4) == [7, 7, 1, 9]  # slices end at 1, 2, 3 and 4 s
    assert spark_cells(samples, 4.0, 2) == [7, 9]
    assert spark_cells([(0.5, 3, 10)], 4.0, 3) == [3, 3, 3]  # before the first sample: the first one
    assert spark_cells([], 4.0, 3) == [] and spark_cells(samples, 4.0, 0) == []


def test_cell_of_the_position() -> None:
    assert [cell_of(p, 10.0, 5) for p in (0.0, 1.9, 2.0, 9.99, 10.0, 11.0)] == [0, 0, 1, 4, 4, 4]
    assert cell_of(3.0, 0.0, 5) == 4


async def test_replay_keys_are_hidden_and_inert_without_a_replay_and_say_so() -> None:
    app = CttopApp(FixedSource())
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await wait_live(pilot, app)
        assert not app.query(Timeline)
        for action, params in (("seek", (-10,)), ("seek", (60,)), ("speed", (1,))):
            assert app.main.check_action(action, params) is False
        text = screen_text(app)
        assert ", -10 s" not in text and ". +10 s" not in text
        await pilot.press("comma", "full_stop", "less_than_sign", "greater_than_sign", "left_square_bracket",
                          "right_square_bracket")
        assert app.collector.seeking is None
        # Pressed, each says why it does nothing, as a change's key does in read-only mode: silence reads as a hang.
        assert [n.message for n in app._notifications] == [
            f"{what}: only in a replay (cttop replay FILE)"
            for what in ("-10 s", "+10 s", "-60 s", "+60 s", "Slower replay", "Faster replay")]
        assert "internal error" not in screen_text(app)
        assert not any(e.title.startswith("Replay") for e in app.main.palette())
        # No processes to ask either (not a live namespace): g cycles the tuple keys only.
        assert app.collector.group_order == GROUP_ORDER
        for _ in GROUP_ORDER:
            await pilot.press("g")
        assert app.group == GROUP_ORDER[0]
