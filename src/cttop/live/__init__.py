"""The live side of the TUI, without any UI: the collector thread that owns the source and
the flow table, the indexer thread that sorts and filters flows for the virtual list, and
the immutable snapshots (:class:`Frame`, :class:`FlowIndex`) they hand to the app; and
``snapshot``, the one-look that ``cttop snapshot`` prints. Nothing is re-exported here, so
``cttop snapshot`` does not pay for importing the collector.
"""
