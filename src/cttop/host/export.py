"""``cttop export``: conntrack metrics for Prometheus, through prometheus_client's custom collectors.

Names and types of the ``node_nf_conntrack_*`` family match node_exporter's
conntrack collector (gauges, counters included, summed over CPUs), so existing
dashboards and alerts keep working; node_exporter reads them from /proc in its
own namespace, this reads them over ctnetlink in any. cttop's own metrics add
what node_exporter cannot see: entries per state, the evictable (non-ASSURED)
count, every namespace against the shared max, and the heaviest groups.

Cardinality is bounded: states are a fixed set, top groups are ``top`` keys per
group (``container`` among them: the container, pod or unit each flow belongs to,
forwarded flows by the namespace they come from, ranked at scrape time), and namespaces beyond ``max_namespaces`` are summed into one entries series,
``netns="(other)"``. Their drop counters are not summed: a sum over a changing set
of namespaces goes down when one leaves, which rate() reads as a counter reset.

Health: ``cttop_up`` is 1 only when every part of this scrape was read. A part
that fails (the namespace deleted or replaced, a read refused, the followed
table's reads failing) serves none of its series, never the last values as if
current; ``cttop_collection_errors_total{part}`` counts the failures and
``cttop_last_success_timestamp_seconds`` says when all parts last succeeded.

Kernel counters are read at scrape time. Per-state and top-group values come
from a table kept current by events; the kernel sends no events for flows
created before anyone listened (nf_conntrack_events=2), so it is also redumped
every ``resync`` seconds.
"""

from __future__ import annotations

import gzip
import io
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry

from cttop.errors import CttopError
from cttop.host.containers import host_owners
from cttop.host.namespaces import Namespace, list_namespaces, totals
from cttop.kernel import nlconst as C
from cttop.kernel.ctnetlink import Ctnetlink, sum_cpus
from cttop.kernel.netns import NetnsError, NetnsSpec
from cttop.live.counters import PRESSURE
from cttop.live.owner_top import PackedOwners
from cttop.sources.live import LiveSource
from cttop.table.groups import GROUPS
from cttop.table.store import FlowTable, GroupRow
from cttop.table.tally import FlowTally
from cttop.termsafe import safe_distinct

# The counters node_exporter's conntrack collector exports, under its names (node_nf_conntrack_stat_NAME).
NODE_STATS: Final = ("found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop", "search_restart")
EXTRA_STATS: Final = tuple(n for n in C.STATS_CPU_NAMES.values() if n not in NODE_STATS)
# What one count means, for the counters the Pressure panel does not show (its own meanings are PRESSURE's).
COUNTS: Final = {
    "found": "a lookup found its entry",
    "ignore": "a packet already had a conntrack entry attached",
    "insert": "an entry was inserted into the table",
}
DEFAULT_GROUPS: Final = ("src", "dport")
# Owner keys the exporter ranks too; a process (a pid) would churn a new series per restart.
EXPORTED_OWNER_GROUPS: Final = ("container",)
EXPORT_GROUP_KEYS: Final = (*GROUPS, *EXPORTED_OWNER_GROUPS)
OTHER_NAMESPACES: Final = "(other)"
RESYNC_DUTY: Final = 20  # the followed table is redumped no more often than this many times what a dump costs


def stat_help(name: str) -> str:
    """A per-CPU counter's HELP: its conntrack -S name, and what it counts where cttop says so."""
    meaning = PRESSURE.get(name) or COUNTS.get(name)
    return f"conntrack -S {name}, summed over CPUs" + (f"; each one: {meaning}." if meaning else ".")


@dataclass(frozen=True)
class TableView:
    flows: int
    by_state: dict[str, int]
    evictable: int
    top: dict[str, list[GroupRow]]
    resyncs: int
    error: str | None  # why the table is not current, if it is not
    bounded: bool = False  # over --max-flows: counted, not held


class TableFollower:
    """One namespace's flow table, kept current by events on a thread, redumped after losses and periodically."""

    def __init__(self, spec: NetnsSpec, groups: Sequence[str] = DEFAULT_GROUPS, top: int = 10,
                 resync: float = 60.0, max_flows: int | None = None) -> None:
        self.spec = spec
        self.groups = tuple(g for g in groups if g in GROUPS)
        self.owner_groups = tuple(g for g in groups if g in EXPORTED_OWNER_GROUPS)
        self._owners = host_owners(spec) if self.owner_groups else None
        self._packed: PackedOwners | None = None
        self.top_n = top
        self.resync = resync
        # Over this many flows the table is counted, not held (table.tally): a Kubernetes node's millions of
        # flows would keep most of a gigabyte in an exporter that runs for good. None: always held.
        self.max_flows = max_flows
        self._cost = 0.0  # what the last dump took: redumps are spaced by it too
        self.resyncs = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._source = LiveSource(spec)
        self._table = FlowTable(track=self.groups)
        self._loaded = 0.0
        self._error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Subscribe and load the table now (so the first scrape is complete), then follow on a thread."""
        self._source.subscribe()
        self._load()
        self._thread = threading.Thread(target=self._run, name="cttop-export-table", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        """A fresh table from a dump read a chunk at a time (never the whole table as rows)."""
        t0 = time.monotonic()
        count = self._source.stats().count
        table: FlowTable
        if self.max_flows is not None and count > self.max_flows:
            owners = (self._owners.group_defs()[self.owner_groups[0]]
                      if self._owners is not None and self.owner_groups else None)
            table = FlowTally(track=self.groups, expect=count, owners=owners)
        else:
            table = FlowTable(track=self.groups)
        for rows in self._source.dump_chunks():
            table.extend(rows)
        with self._lock:
            self._table = table
            self._error = None
        self._loaded = time.monotonic()
        self._cost = self._loaded - t0

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._follow()
                except CttopError as e:
                    # Flagged so the collector stops serving the table; the next success (a full redump) clears it.
                    with self._lock:
                        self._error = f"table: {e}"
                    self._stop.wait(1.0)
                    self._loaded = 0.0
        finally:
            self._source.close()

    def _follow(self) -> None:
        batch = self._source.events(0.5)
        if batch.lost or batch.dropped or time.monotonic() - self._loaded >= max(self.resync, RESYNC_DUTY * self._cost):
            self._load()
            self.resyncs += 1
        elif batch.events:
            with self._lock:
                self._table.apply_events(batch.events)

    def view(self) -> TableView:
        packed = self._packed_owners()
        with self._lock:
            t = self._table
            top = {g: t.top(g, self.top_n) for g in self.groups}
            records = t.records() if packed is not None else []
            view = TableView(len(t), dict(t.by_state), t.evictable, top, self.resyncs, self._error,
                             bounded=t.bounded)
            if isinstance(t, FlowTally) and self._owners is not None:  # it counts them itself
                defs = self._owners.group_defs()
                top.update({g: t.owner_top(defs[g], self.top_n) for g in self.owner_groups})
                packed = None
        if packed is not None:  # ranked outside the lock: the follower thread need not wait a whole pass
            top.update({g: packed.top(records, g, self.top_n) for g in self.owner_groups})
        return view

    def _packed_owners(self) -> PackedOwners | None:
        """The owners index keyed for ranking records, refreshed on its own interval."""
        if self._owners is None:
            return None
        self._owners.refresh_if_due()
        if self._packed is None or self._packed.at != self._owners.index.at:
            self._packed = PackedOwners(self._owners.index)
        return self._packed

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
        self._lock = threading.Lock()  # one scrape at a time on the ctnetlink socket and the health state
        self._ct = Ctnetlink(spec)
        self._inode = spec.inode()
        self._parts = {"stats": self._kernel_metrics}
        if follower is not None:
            self._parts["table"] = self._table_metrics
        if namespaces:
            self._parts["namespaces"] = self._namespace_metrics
        self._errors = dict.fromkeys(self._parts, 0)
        self._failing: dict[str, str] = {}
        self._last_success: float | None = None

    def close(self) -> None:
        self._ct.close()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            metrics: list[Metric] = []
            failing: dict[str, str] = {}
            for part, read in self._parts.items():
                try:
                    metrics.extend(read())
                except (CttopError, OSError) as e:
                    failing[part] = str(e)
                    self._errors[part] += 1
            self._report(failing)
            if not failing:
                self._last_success = time.time()
            metrics.extend(self._health_metrics(not failing))
        yield from metrics

    def _report(self, failing: dict[str, str]) -> None:
        """One stderr line when a part starts failing (or its reason changes) and one when it recovers."""
        for part, why in failing.items():
            if self._failing.get(part) != why:
                print(f"cttop export: {part}: {why}; its series are left out", file=sys.stderr, flush=True)
        for part in self._failing.keys() - failing.keys():
            print(f"cttop export: {part}: read again", file=sys.stderr, flush=True)
        self._failing = failing

    def _health_metrics(self, up: bool) -> Iterator[Metric]:
        yield GaugeMetricFamily("cttop_up", "1 if every part of this scrape was read; 0 if one failed and its series "
                                            "are left out (see cttop_collection_errors_total).", value=int(up))
        errors = CounterMetricFamily("cttop_collection_errors", "Scrapes in which this part could not be read.",
                                     labels=["part"])
        for part, n in self._errors.items():
            errors.add_metric([part], n)
        yield errors
        if self._last_success is not None:
            yield GaugeMetricFamily("cttop_last_success_timestamp_seconds",
                                    "When every part of a scrape was last read (Unix time).", value=self._last_success)

    def _check_namespace(self) -> None:
        """Refuse to read through sockets on a namespace that was deleted or replaced: it is no longer the one asked
        for (the sockets keep the old one alive, quiet and unreachable)."""
        try:
            now: int | None = self.spec.inode()
        except NetnsError:
            now = None
        if now != self._inode:
            raise CttopError(f"namespace {self.spec.label()} is gone (deleted or replaced since the exporter "
                             f"opened it; restart the exporter to follow a new one)")

    def _kernel_metrics(self) -> list[Metric]:
        self._check_namespace()
        stats = self._ct.stats()
        cpu = sum_cpus(self._ct.stats_cpu())
        return list(self._kernel_families(stats.count, stats.max, cpu))

    def _kernel_families(self, count: int, mx: int, cpu: dict[str, int]) -> Iterator[Metric]:
        yield GaugeMetricFamily("node_nf_conntrack_entries",
                                "Conntrack entries in the table now (this namespace).", value=count)
        yield GaugeMetricFamily("node_nf_conntrack_entries_limit",
                                "Size limit of the conntrack table (nf_conntrack_max, shared by all namespaces).",
                                value=mx)
        for name in NODE_STATS:
            yield GaugeMetricFamily(f"node_nf_conntrack_stat_{name}", stat_help(name), value=cpu[name])
        for name in EXTRA_STATS:
            yield GaugeMetricFamily(f"cttop_nf_conntrack_stat_{name}", stat_help(name), value=cpu[name])

    def _table_metrics(self) -> list[Metric]:
        assert self.follower is not None  # a part only when following
        self._check_namespace()
        v = self.follower.view()
        if v.error is not None:
            raise CttopError(v.error)
        return list(self._table_families(v))

    def _table_families(self, v: TableView) -> Iterator[Metric]:
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
                top.add_metric([group, safe_distinct(r.text)], r.entries)
        yield top
        yield CounterMetricFamily("cttop_table_resyncs", "Full redumps of the followed table (losses and periodic).",
                                  value=v.resyncs)
        yield GaugeMetricFamily("cttop_table_bounded", "1 while the followed table is over --max-flows: its flows "
                                "are counted (states, top groups), not held.", value=int(v.bounded))

    def _namespace_metrics(self) -> list[Metric]:
        return list(self._namespace_families(list_namespaces()))

    def _namespace_families(self, nss: list[Namespace]) -> Iterator[Metric]:
        t = totals(nss)
        ranked = sorted((n for n in nss if n.count is not None), key=lambda n: -(n.count or 0))
        shown, rest = ranked[:self.max_namespaces], ranked[self.max_namespaces:]
        # Not `namespace`/`container`: Kubernetes and prometheus-operator set those as target labels.
        names = ["netns", "netns_owner"]
        entries = GaugeMetricFamily("cttop_namespace_entries", "Conntrack entries per network namespace; beyond "
                                    "--max-namespaces summed into netns=\"(other)\".", labels=names)
        drop = CounterMetricFamily("cttop_namespace_stat_drop", "conntrack -S drop per network namespace (the "
                                   "--max-namespaces busiest only).", labels=names)
        early = CounterMetricFamily("cttop_namespace_stat_early_drop", "conntrack -S early_drop per network "
                                    "namespace (the --max-namespaces busiest only).", labels=names)
        for n in shown:
            # Names others choose (netns, cgroup): the text format escapes only \\, \" and newline, so ESC would
            # reach whoever curls /metrics to a terminal, and a non-UTF-8 byte would fail the whole scrape.
            labels = [safe_distinct(n.label), safe_distinct(n.container or "")]
            entries.add_metric(labels, n.count or 0)
            drop.add_metric(labels, n.drop or 0)
            early.add_metric(labels, n.early_drop or 0)
        if rest:
            entries.add_metric([OTHER_NAMESPACES, ""], sum(n.count or 0 for n in rest))
        yield entries
        yield drop
        yield early
        yield GaugeMetricFamily("cttop_namespaces", "Network namespaces found.", value=t.namespaces)
        yield GaugeMetricFamily("cttop_namespaces_unreadable", "Namespaces whose counters could not be read (left "
                                "out of every cttop_namespace_* and cttop_node_* value).", value=t.unreadable)
        yield GaugeMetricFamily("cttop_node_entries",
                                "Conntrack entries summed over every namespace: the node's total, in the one shared "
                                "hash table.", value=t.count)
        if t.share is not None:
            yield GaugeMetricFamily("cttop_node_fill_ratio", "cttop_node_entries / nf_conntrack_max: the node's total "
                                    "against the max. Not where drops start: the kernel holds each namespace's own "
                                    "count to the max.", value=t.share)


# --- the HTTP side -------------------------------------------------------------------------------------
# Its own small server rather than prometheus_client's, which answers every path with the metrics (each a
# scrape's worth of kernel reads, and a mistyped metrics_path in a scrape config that never shows) and waits
# for a request's head forever, a thread held per silent connection.

METRICS_PATH: Final = "/metrics"
HEAD_TIMEOUT: Final = 5.0  # seconds a connection has to send its whole request head, however it trickles in
SEND_TIMEOUT: Final = 30.0  # and then to take the answer
MAX_CLIENTS: Final = 64  # connections served at once (a thread each); more are closed as they come
# "/" says where the metrics are, for whoever opens the port in a browser (node_exporter shows a page there too).
INDEX: Final = f"cttop exporter: the metrics are at {METRICS_PATH}\n".encode()


class _Deadline(io.RawIOBase):
    """A socket to read from until a deadline: each read waits only for what is left of it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request head took too long")
        self._sock.settimeout(left)
        return self._sock.recv_into(buf)


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def setup(self) -> None:
        super().setup()
        # The stdlib reads the head through rfile and drops the connection on TimeoutError.
        self.rfile = io.BufferedReader(_Deadline(self.connection, time.monotonic() + HEAD_TIMEOUT))

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        self.connection.settimeout(SEND_TIMEOUT)
        path = self.path.split("?", 1)[0]
        headers: list[tuple[str, str]] = []
        if path == METRICS_PATH:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            data = encoder(self.server.registry)
            if gzip_accepted(self.headers.get("Accept-Encoding", "")):
                data = gzip.compress(data)
                headers.append(("Content-Encoding", "gzip"))
            status = 200
        elif path == "/":
            status, content_type, data = 200, "text/plain; charset=utf-8", INDEX
        else:
            status, content_type = 404, "text/plain; charset=utf-8"
            data = f"not found: the metrics are at {METRICS_PATH}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def version_string(self) -> str:
        return "cttop-export"  # not the Python version the stdlib would add

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        """Silent: a scrape every 15 s would fill the log, and a client's mistakes are not the exporter's."""


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = MAX_CLIENTS  # socketserver's 5 would drop SYNs (a second's retry) on a burst

    def __init__(self, address: tuple[Any, ...], family: int, registry: CollectorRegistry) -> None:
        self.address_family = family
        self.registry = registry
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # a flood of connections costs a thread each: past the cap, none
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _listen(host: str, port: int, registry: CollectorRegistry) -> _MetricsServer:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        return _MetricsServer(address, family, registry)
    except OSError as e:
        raise CttopError(f"export: cannot listen on {host}:{port}: {e.strerror}") from None
    except UnicodeError:  # a name the resolver cannot even encode: an empty or over-long label (a..b)
        raise CttopError(f"export: cannot listen on {host}:{port}: not a host name") from None


@dataclass
class Exporter:
    collector: ConntrackCollector
    follower: TableFollower | None
    server: _MetricsServer
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.follower is not None:
            self.follower.stop()
        self.collector.close()


def serve(spec: NetnsSpec, host: str, port: int, table: bool = True, groups: Sequence[str] = DEFAULT_GROUPS,
          top: int = 10, namespaces: bool = True, max_namespaces: int = 256, resync: float = 60.0,
          max_flows: int | None = None) -> Exporter:
    """Start serving ``/metrics`` on ``host:port``; the table is loaded before the port opens."""
    for g in groups:  # checked with or without the table, so a bad --group is never ignored
        if g not in EXPORT_GROUP_KEYS:
            raise CttopError(f"--group {g!r}: not a group key (choose from {', '.join(EXPORT_GROUP_KEYS)})")
    follower = TableFollower(spec, groups, top, resync, max_flows) if table else None
    collector = ConntrackCollector(spec, follower, namespaces, max_namespaces)
    try:
        if follower is not None:
            follower.start()
        registry = CollectorRegistry(auto_describe=False)  # describing would cost a scrape
        registry.register(collector)
        server = _listen(host, port, registry)
        thread = threading.Thread(target=server.serve_forever, name="cttop-export-http", daemon=True)
        thread.start()
    except BaseException:
        if follower is not None:
            follower.stop()
        collector.close()
        raise
    return Exporter(collector, follower, server, thread)
