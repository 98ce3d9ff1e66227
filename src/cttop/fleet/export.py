"""``cttop export``: conntrack metrics for Prometheus, through prometheus_client's custom collectors.

Names and types of the ``node_nf_conntrack_*`` family match node_exporter's
conntrack collector (gauges, counters included, summed over CPUs), so existing
dashboards and alerts keep working; node_exporter reads them from /proc in its
own namespace, this reads them over ctnetlink in any. cttop's own metrics add
what node_exporter cannot see: entries per state, the evictable (non-ASSURED)
count, every namespace against the shared max, and the heaviest groups.

Cardinality is bounded: states are a fixed set, top groups are ``top`` keys per
group, and namespaces beyond ``max_namespaces`` are summed into one series.

Kernel counters are read at scrape time. Per-state and top-group values come
from a table kept current by events; the kernel sends no events for flows
created before anyone listened (nf_conntrack_events=2), so it is also redumped
every ``resync`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from cttop.errors import CttopError
from cttop.fleet.namespaces import list_namespaces, totals
from cttop.kernel import nlconst as C
from cttop.kernel.ctnetlink import Ctnetlink, sum_cpus
from cttop.kernel.netns import NetnsSpec
from cttop.source import LiveSource
from cttop.table.groups import GROUPS
from cttop.table.store import FlowTable, GroupRow

# node_exporter's conntrack collector: (stat name, help).
NODE_STATS: Final = (
    ("found", "Searched entries that were found (conntrack -S found), summed over CPUs."),
    ("invalid", "Packets conntrack could not track, summed over CPUs."),
    ("ignore", "Packets that already had a conntrack entry attached, summed over CPUs."),
    ("insert", "Entries inserted into the table, summed over CPUs."),
    ("insert_failed", "Entries whose insertion failed (e.g. clashing tuples), summed over CPUs."),
    ("drop", "Packets dropped because a new entry could not be made (e.g. table full), summed over CPUs."),
    ("early_drop", "Non-assured entries evicted to make room for new ones, summed over CPUs."),
    ("search_restart", "Table lookups restarted by a hash resize or a moved entry, summed over CPUs."),
)
EXTRA_STATS: Final = tuple(n for n in C.STATS_CPU_NAMES.values() if n not in dict(NODE_STATS))
DEFAULT_GROUPS: Final = ("src", "dport")
OTHER_NAMESPACES: Final = "(other)"


@dataclass(frozen=True)
class TableView:
    flows: int
    by_state: dict[str, int]
    evictable: int
    top: dict[str, list[GroupRow]]
    resyncs: int


class TableFollower:
    """One namespace's flow table, kept current by events on a thread, redumped after losses and periodically."""

    def __init__(self, spec: NetnsSpec, groups: Sequence[str] = DEFAULT_GROUPS, top: int = 10,
                 resync: float = 60.0) -> None:
        for g in groups:
            if g not in GROUPS:
                raise CttopError(f"export: unknown group {g!r}: choose from {', '.join(GROUPS)}")
        self.spec = spec
        self.groups = tuple(groups)
        self.top_n = top
        self.resync = resync
        self.resyncs = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._source = LiveSource(spec)
        self._table = FlowTable(track=self.groups)
        self._loaded = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Subscribe and load the table now (so the first scrape is complete), then follow on a thread."""
        self._source.subscribe()
        self._load()
        self._thread = threading.Thread(target=self._run, name="cttop-export-table", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        table = FlowTable(track=self.groups)
        table.apply_dump(self._source.dump())
        with self._lock:
            self._table = table
        self._loaded = time.monotonic()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._follow()
                except CttopError:
                    # A failed read leaves the last table in place; try again shortly.
                    self._stop.wait(1.0)
                    self._loaded = 0.0
        finally:
            self._source.close()

    def _follow(self) -> None:
        batch = self._source.events(0.5)
        if batch.lost or time.monotonic() - self._loaded >= self.resync:
            self._load()
            self.resyncs += 1
        elif batch.events:
            with self._lock:
                self._table.apply_events(batch.events)

    def view(self) -> TableView:
        with self._lock:
            t = self._table
            return TableView(len(t), dict(t.by_state), t.evictable,
                             {g: t.top(g, self.top_n) for g in self.groups}, self.resyncs)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        else:
            self._source.close()


class ConntrackCollector(Collector):
    """The metrics of one scrape; kernel counters are read now, the rest from the follower."""

    def __init__(self, spec: NetnsSpec, follower: TableFollower | None = None, namespaces: bool = True,
                 max_namespaces: int = 256) -> None:
        self.spec = spec
        self.follower = follower
        self.namespaces = namespaces
        self.max_namespaces = max_namespaces
        self._lock = threading.Lock()  # one scrape at a time on the ctnetlink socket
        self._ct = Ctnetlink(spec)

    def close(self) -> None:
        self._ct.close()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            stats = self._ct.stats()
            cpu = sum_cpus(self._ct.stats_cpu())
        yield GaugeMetricFamily("node_nf_conntrack_entries",
                                "Conntrack entries in the table now (this namespace).", value=stats.count)
        yield GaugeMetricFamily("node_nf_conntrack_entries_limit",
                                "Size limit of the conntrack table (nf_conntrack_max, shared by all namespaces).",
                                value=stats.max)
        for name, doc in NODE_STATS:
            yield GaugeMetricFamily(f"node_nf_conntrack_stat_{name}", doc, value=cpu[name])
        for name in EXTRA_STATS:
            yield GaugeMetricFamily(f"cttop_nf_conntrack_stat_{name}",
                                    f"conntrack -S {name}, summed over CPUs.", value=cpu[name])
        if self.follower is not None:
            yield from self._table_metrics(self.follower.view())
        if self.namespaces:
            yield from self._namespace_metrics()

    def _table_metrics(self, v: TableView) -> Iterator[Metric]:
        g = GaugeMetricFamily("cttop_entries_by_state", "Conntrack entries per protocol and state.",
                              labels=["proto", "state"])
        for key, n in sorted(v.by_state.items()):
            proto, state = key.split(":", 1)
            g.add_metric([proto, state], n)
        yield g
        yield GaugeMetricFamily("cttop_evictable_entries",
                                "Entries that are not ASSURED: what early_drop may evict when the table is full.",
                                value=v.evictable)
        top = GaugeMetricFamily("cttop_top_group_entries",
                                "Entries of the heaviest groups (a bounded number per group key).",
                                labels=["group", "key"])
        for group, rows in v.top.items():
            for r in rows:
                top.add_metric([group, r.text], r.entries)
        yield top
        yield CounterMetricFamily("cttop_table_resyncs", "Full redumps of the followed table (losses and periodic).",
                                  value=v.resyncs)

    def _namespace_metrics(self) -> Iterator[Metric]:
        nss = list_namespaces()
        t = totals(nss)
        ranked = sorted((n for n in nss if n.count is not None), key=lambda n: -(n.count or 0))
        shown, rest = ranked[:self.max_namespaces], ranked[self.max_namespaces:]
        entries = GaugeMetricFamily("cttop_namespace_entries", "Conntrack entries per network namespace.",
                                    labels=["namespace", "container"])
        drop = GaugeMetricFamily("cttop_namespace_stat_drop", "conntrack -S drop per network namespace.",
                                 labels=["namespace", "container"])
        early = GaugeMetricFamily("cttop_namespace_stat_early_drop",
                                  "conntrack -S early_drop per network namespace.", labels=["namespace", "container"])
        for n in shown:
            labels = [n.label, n.container or ""]
            entries.add_metric(labels, n.count or 0)
            drop.add_metric(labels, n.drop or 0)
            early.add_metric(labels, n.early_drop or 0)
        if rest:
            labels = [OTHER_NAMESPACES, ""]
            entries.add_metric(labels, sum(n.count or 0 for n in rest))
            drop.add_metric(labels, sum(n.drop or 0 for n in rest))
            early.add_metric(labels, sum(n.early_drop or 0 for n in rest))
        yield entries
        yield drop
        yield early
        yield GaugeMetricFamily("cttop_namespaces", "Network namespaces found.", value=t.namespaces)
        yield GaugeMetricFamily("cttop_node_entries",
                                "Conntrack entries summed over every namespace: the node's real use of the max.",
                                value=t.count)
        if t.share is not None:
            yield GaugeMetricFamily("cttop_node_fill_ratio", "cttop_node_entries / nf_conntrack_max.",
                                    value=t.share)


@dataclass
class Exporter:
    collector: ConntrackCollector
    follower: TableFollower | None
    server: object
    thread: threading.Thread

    def close(self) -> None:
        shutdown = getattr(self.server, "shutdown", None)
        if shutdown is not None:
            shutdown()
        if self.follower is not None:
            self.follower.stop()
        self.collector.close()


def serve(spec: NetnsSpec, host: str, port: int, table: bool = True, groups: Sequence[str] = DEFAULT_GROUPS,
          top: int = 10, namespaces: bool = True, max_namespaces: int = 256, resync: float = 60.0) -> Exporter:
    """Start serving ``/metrics`` on ``host:port``; the table is loaded before the port opens."""
    follower = TableFollower(spec, groups, top, resync) if table else None
    collector = ConntrackCollector(spec, follower, namespaces, max_namespaces)
    try:
        if follower is not None:
            follower.start()
        registry = CollectorRegistry(auto_describe=False)  # describing would cost a scrape
        registry.register(collector)
        try:
            server, thread = start_http_server(port, host, registry)
        except OSError as e:
            raise CttopError(f"export: cannot listen on {host}:{port}: {e.strerror}") from None
    except BaseException:
        if follower is not None:
            follower.stop()
        collector.close()
        raise
    return Exporter(collector, follower, server, thread)
