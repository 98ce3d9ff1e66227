"""Dumps read ahead lower the interpreter's switch interval while they run; overlapping ones put it back once."""

from __future__ import annotations

import sys

from cttop.kernel.ctnetlink import FAST_SWITCHING, _FastSwitching


def test_overlapping_dumps_put_the_switch_interval_back() -> None:
    before = sys.getswitchinterval()
    try:
        # Two dumps that overlap, the first ending before the second: the interval stays low until both end.
        FAST_SWITCHING.__enter__()
        assert sys.getswitchinterval() == _FastSwitching.FAST
        FAST_SWITCHING.__enter__()
        FAST_SWITCHING.__exit__(None, None, None)
        assert sys.getswitchinterval() == _FastSwitching.FAST
        FAST_SWITCHING.__exit__(None, None, None)
        assert sys.getswitchinterval() == before
    finally:
        sys.setswitchinterval(before)
