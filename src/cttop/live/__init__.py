"""The live side of the TUI, without any UI: the collector thread that owns the source and
the flow table, the indexer thread that sorts and filters flows for the virtual list, and
the immutable snapshots (:class:`Frame`, :class:`FlowIndex`) they hand to the app.
"""

from cttop.live.collector import Collector
from cttop.live.frame import Frame, Pressure, StateRow
from cttop.live.index import SORTS, FlowIndex, ViewSpec

__all__ = ["SORTS", "Collector", "FlowIndex", "Frame", "Pressure", "StateRow", "ViewSpec"]
