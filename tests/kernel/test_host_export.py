"""`cttop export` as a real server on loopback, scraped over HTTP and parsed by prometheus_client's parsers."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from cttop.host.export import MAX_CLIENTS, NODE_STATS
from tests.conftest import CLI, add_netns, delete_netns, make_netns, sh
from tests.hostile import cgroup2_root, held_in
from tests.kernel.test_snapshot import INJECT
from tests.oracle import conntrack_count, conntrack_list, conntrack_stats, oracle_state

pytestmark = pytest.mark.kernel

TRAFFIC = """
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8080)); srv.listen(16)
def serve():
    while True:
        c, _ = srv.accept(); c.sendall(b"hi"); c.close()
threading.Thread(target=serve, daemon=True).start()
for _ in range(4):
    c = socket.create_connection(("127.0.0.1", 8080)); c.recv(2); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(6000, 6006):
    u.sendto(b"x", ("127.0.0.1", port))
"""


@dataclass
class Scraped:
    ns: str
    text: str
    openmetrics: str
    families: dict[str, Any]
    stats: dict[str, int]
    count: int
    max: int
    flows: list[dict[str, Any]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, accept: str | None = None) -> str:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()  # type: ignore[no-any-return]


def exported(*args: str) -> dict[str, Any]:
    """`cttop export ARGS` on a free port, scraped once when it is ready, then stopped: its metric families."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = subprocess.Popen([*CLI, "export", "--listen", f"127.0.0.1:{port}", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(url, proc)
        return {f.name: f for f in text_string_to_metric_families(fetch(url))}
    finally:
        proc.terminate()
        proc.wait(10)


def wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    # The exporter opens its port only after loading the table.
    for _ in range(1000):
        assert proc.poll() is None, proc.communicate()[1]
        try:
            fetch(url)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.02)
    raise AssertionError("the exporter never answered")


@pytest.fixture(scope="module")
def scraped() -> Iterator[Scraped]:
    """A namespace gone quiet after real traffic, invalid packets and injected entries, scraped once."""
    ns = make_netns()
    proc = None
    try:
        for args in INJECT:
            sh("conntrack", "-I", *args, netns=ns)
        for i in range(12):  # a heavy source for the top groups
            sh("conntrack", "-I", "-p", "udp", "-s", "10.3.3.3", "-d", "10.3.4.4", "--sport", str(2000 + i),
               "--dport", "53", "-t", "300", netns=ns)
        sh("python3", "-c", TRAFFIC, netns=ns)
        # SYN+FIN is a combination conntrack refuses to track: counted as invalid.
        sh("hping3", "-c", "3", "-i", "u1000", "-S", "-F", "-p", "8080", "127.0.0.1", netns=ns, check=False)
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        proc = subprocess.Popen(["cttop", "export", "--listen", f"127.0.0.1:{port}", "--netns", ns,
                                 "--top", "3", "--group", "src", "--group", "dport"],
                                stderr=subprocess.PIPE, text=True)
        wait_ready(url, proc)
        text = fetch(url)
        om = fetch(url, "application/openmetrics-text; version=1.0.0")
        stats, count, flows = conntrack_stats(ns), conntrack_count(ns), conntrack_list(ns)
        mx = int(sh("cat", "/proc/sys/net/netfilter/nf_conntrack_max", netns=ns))
        families = {f.name: f for f in text_string_to_metric_families(text)}
        yield Scraped(ns, text, om, families, stats, count, mx, flows)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        delete_netns(ns)


def sample_value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The one sample of family ``name`` with ``labels`` (a counter's sample is ``name_total``)."""
    matches = [x.value for x in families[name].samples if x.name in (name, f"{name}_total") and all(
        x.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def value(s: Scraped, name: str, **labels: str) -> float:
    return sample_value(s.families, name, **labels)


def test_node_exporter_names_types_and_values(scraped: Scraped) -> None:
    assert value(scraped, "node_nf_conntrack_entries") == scraped.count == len(scraped.flows)
    assert value(scraped, "node_nf_conntrack_entries_limit") == scraped.max
    for name in NODE_STATS:
        fam = scraped.families[f"node_nf_conntrack_stat_{name}"]
        assert fam.type == "gauge"  # as node_exporter types them
        if name in scraped.stats:  # conntrack -S no longer prints `ignore`
            assert fam.samples[0].value == scraped.stats[name], name
    assert scraped.stats["invalid"] > 0 and scraped.stats["insert"] > 0
    for name in ("chaintoolong", "clash_resolve", "error"):
        assert value(scraped, f"cttop_nf_conntrack_stat_{name}") == scraped.stats[name]


def test_per_state_and_evictable_equal_the_kernel(scraped: Scraped) -> None:
    want = Counter(f"{f['proto']}:{oracle_state(f)}" for f in scraped.flows)
    # conntrack(8) calls a protocol it has no name for "unknown"; cttop gives its number.
    got = {f"{'unknown' if x.labels['proto'].isdigit() else x.labels['proto']}:{x.labels['state']}": x.value
           for x in scraped.families["cttop_entries_by_state"].samples}
    assert got == want
    evictable = sum(1 for f in scraped.flows if "ASSURED" not in f["flags"])
    assert value(scraped, "cttop_evictable_entries") == evictable


def test_top_groups_are_bounded_and_exact(scraped: Scraped) -> None:
    samples = scraped.families["cttop_top_group_entries"].samples
    by_src = Counter(f["orig"]["src"] for f in scraped.flows)
    src = {x.labels["key"]: x.value for x in samples if x.labels["group"] == "src"}
    assert len(src) == 3
    assert src["10.3.3.3"] == 12 == by_src.most_common(1)[0][1]
    for key, n in src.items():
        assert by_src[key] == n
    assert sorted(src.values(), reverse=True) == [n for _, n in by_src.most_common(3)]
    assert len([x for x in samples if x.labels["group"] == "dport"]) <= 3


def test_the_namespace_is_listed_with_its_count(scraped: Scraped) -> None:
    assert value(scraped, "cttop_namespace_entries", netns=scraped.ns) == scraped.count
    assert value(scraped, "cttop_namespace_stat_drop", netns=scraped.ns) == scraped.stats["drop"]
    assert value(scraped, "cttop_namespace_stat_early_drop", netns=scraped.ns) == scraped.stats["early_drop"]
    assert scraped.families["cttop_namespace_entries"].type == "gauge"
    for name in ("cttop_namespace_stat_drop", "cttop_namespace_stat_early_drop"):
        assert scraped.families[name].type == "counter"  # monotonic per namespace: rate() applies
    # Labels that Kubernetes service discovery and prometheus-operator would rename or overwrite.
    for fam in scraped.families.values():
        for x in fam.samples:
            assert not {"namespace", "container"} & x.labels.keys(), x
    node = value(scraped, "cttop_node_entries")
    assert node == sum(x.value for x in scraped.families["cttop_namespace_entries"].samples)
    assert value(scraped, "cttop_node_fill_ratio") == node / scraped.max


def test_health_says_every_part_was_read(scraped: Scraped) -> None:
    assert value(scraped, "cttop_up") == 1
    for part in ("stats", "table", "namespaces"):
        assert value(scraped, "cttop_collection_errors", part=part) == 0
    assert scraped.families["cttop_collection_errors"].type == "counter"
    assert value(scraped, "cttop_last_success_timestamp_seconds") > 0


def test_the_readme_rules_use_series_the_exporter_serves(scraped: Scraped) -> None:
    served = {x.name for f in scraped.families.values() for x in f.samples}
    with open(Path(__file__).parents[2] / "README.md") as f:
        exprs = [line.split("expr:", 1)[1] for line in f if line.strip().startswith("expr:")]
    used = {m for e in exprs for m in re.findall(r"\b(?:cttop|node_nf)_[a-z_]+", e)}
    assert len(exprs) >= 4 and used
    assert used <= served, used - served


def test_openmetrics_when_asked(scraped: Scraped) -> None:
    assert scraped.openmetrics.rstrip().endswith("# EOF")
    fams = {f.name: f for f in parse_openmetrics(scraped.openmetrics)}
    assert fams["node_nf_conntrack_entries"].samples[0].value == scraped.count
    assert fams["cttop_table_resyncs"].type == "counter"


def test_listen_errors_are_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(["cttop", "export", "--listen", f"127.0.0.1:{port}", "--no-table", "--no-namespaces"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].startswith(f"cttop: export: cannot listen on 127.0.0.1:{port}: ")
    r = subprocess.run(["cttop", "export", "--listen", "nonsense"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--listen 'nonsense'" in r.stderr
    for host in ("a..b", "a" * 64):  # labels IDNA cannot encode: a traceback before
        r = subprocess.run(["cttop", "export", "--listen", f"{host}:1", "--no-table", "--no-namespaces"],
                           capture_output=True, text=True, timeout=60, check=False)
        assert (r.returncode, r.stderr) == (2, f"cttop: export: cannot listen on {host}:1: not a host name\n")
    r = subprocess.run(["cttop", "export", "--listen", "127.0.0.1:\u0669\u0664\u0666\u0669"], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "give HOST:PORT" in r.stderr


def test_exporter_follows_new_flows() -> None:
    """After start, entries made in the namespace reach the per-state metric through events."""
    ns = make_netns()
    proc = None
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        proc = subprocess.Popen(["cttop", "export", "--listen", f"127.0.0.1:{port}", "--netns", ns,
                                 "--no-namespaces"], stderr=subprocess.PIPE, text=True)
        wait_ready(url, proc)
        for i in range(9):
            sh("conntrack", "-I", "-p", "tcp", "-s", f"10.2.0.{i + 1}", "-d", "10.2.1.1", "--sport", "1",
               "--dport", "2", "--state", "ESTABLISHED", "-t", "300", netns=ns)
        # Events arrive asynchronously: poll until the followed table has caught up.
        seen = None
        for _ in range(500):
            fams = {f.name: f for f in text_string_to_metric_families(fetch(url))}
            seen = {x.labels["state"]: x.value for x in fams["cttop_entries_by_state"].samples}
            if seen.get("ESTABLISHED") == 9:
                break
            time.sleep(0.02)
        assert seen == {"ESTABLISHED": 9.0}
        assert conntrack_count(ns) == 9
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        delete_netns(ns)


def scrape(url: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(fetch(url))}


def test_a_bounded_exporter_counts_a_table_it_does_not_hold() -> None:
    """Over --max-flows the followed table is counted, not held: the same series, equal to the kernel's, through
    events that move flows between states and end them."""
    ns = make_netns()
    proc = None
    try:
        for i in range(12):
            sh("conntrack", "-I", "-p", "udp", "-s", "10.3.3.3", "-d", "10.3.4.4", "--sport", str(2000 + i),
               "--dport", "53", "-t", "300", netns=ns)
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        proc = subprocess.Popen(["cttop", "export", "--listen", f"127.0.0.1:{port}", "--netns", ns,
                                 "--no-namespaces", "--max-flows", "5", "--group", "src", "--group", "container"],
                                stderr=subprocess.PIPE, text=True)
        wait_ready(url, proc)
        fams = scrape(url)
        assert sample_value(fams, "cttop_table_bounded") == 1
        # Made after the exporter subscribed, so their updates and ends come as events.
        for i in range(9):
            sh("conntrack", "-I", "-p", "tcp", "-s", f"10.2.0.{i + 1}", "-d", "10.2.1.1", "--sport", "1",
               "--dport", "2", "--state", "SYN_SENT", "-t", "300", netns=ns)
        for i in range(4):
            sh("conntrack", "-U", "-p", "tcp", "-s", f"10.2.0.{i + 1}", "--state", "ESTABLISHED",
               "-u", "SEEN_REPLY,ASSURED", netns=ns)
        sh("conntrack", "-D", "-p", "tcp", "-s", "10.2.0.9", netns=ns)
        flows = conntrack_list(ns)
        want = Counter(f"{f['proto']}:{oracle_state(f)}" for f in flows)
        got: dict[str, float] = {}
        for _ in range(500):
            fams = scrape(url)
            got = {f"{x.labels['proto']}:{x.labels['state']}": x.value
                   for x in fams["cttop_entries_by_state"].samples}
            if got == want:
                break
            time.sleep(0.02)
        assert got == want and sum(want.values()) == len(flows) == 20
        assert sample_value(fams, "cttop_evictable_entries") == sum("ASSURED" not in f["flags"] for f in flows)
        top = {(x.labels["group"], x.labels["key"]): x.value for x in fams["cttop_top_group_entries"].samples}
        assert top[("src", "10.3.3.3")] == 12
        assert sum(v for (g, _k), v in top.items() if g == "container") == 20  # every flow is someone's
        assert sample_value(fams, "cttop_table_resyncs") == 0  # all of it through events, no redump
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        delete_netns(ns)


def test_a_deleted_namespace_is_reported_down_not_served_stale() -> None:
    """The exporter's sockets keep a deleted namespace alive and quiet: its last values must not be served."""
    ns = make_netns()
    proc = None
    try:
        inject_count = 4
        for i in range(inject_count):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.6.0.{i + 1}", "-d", "10.6.1.1", "--sport", "1",
               "--dport", "2", "-t", "300", netns=ns)
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        # --max-namespaces 1: the other namespaces on the host fall into (other), for entries only.
        proc = subprocess.Popen(["cttop", "export", "--listen", f"127.0.0.1:{port}", "--netns", ns,
                                 "--max-namespaces", "1"], stderr=subprocess.PIPE, text=True)
        wait_ready(url, proc)
        before = scrape(url)
        assert sample_value(before, "cttop_up") == 1
        assert sample_value(before, "node_nf_conntrack_entries") == inject_count
        last_success = sample_value(before, "cttop_last_success_timestamp_seconds")
        assert len(before["cttop_namespace_stat_drop"].samples) == 1
        assert len(before["cttop_namespace_stat_early_drop"].samples) == 1
        entries = {x.labels["netns"] for x in before["cttop_namespace_entries"].samples}
        assert "(other)" in entries and len(entries) == 2
        assert not any(x.labels["netns"] == "(other)" for x in before["cttop_namespace_stat_drop"].samples)

        delete_netns(ns)
        after = scrape(url)
        assert sample_value(after, "cttop_up") == 0
        for gone in ("node_nf_conntrack_entries", "node_nf_conntrack_stat_drop", "cttop_entries_by_state",
                     "cttop_evictable_entries"):
            assert gone not in after, gone
        assert sample_value(after, "cttop_collection_errors", part="stats") == 1
        assert sample_value(after, "cttop_collection_errors", part="table") == 1
        assert sample_value(after, "cttop_collection_errors", part="namespaces") == 0
        assert sample_value(after, "cttop_last_success_timestamp_seconds") == last_success
        assert ns not in {x.labels["netns"] for x in after["cttop_namespace_entries"].samples}
        again = scrape(url)
        assert sample_value(again, "cttop_up") == 0
        assert sample_value(again, "cttop_collection_errors", part="stats") == 2
    finally:
        if proc is not None:
            proc.terminate()
            _out, err = proc.communicate(timeout=30)
        delete_netns(ns)
    # Said once on stderr, not once per scrape.
    assert err.count(f"namespace {ns} is gone") == 2, err  # stats and table


# --- the HTTP side: one path, and no waiting on slow clients --------------------------------------------

@dataclass
class Running:
    ns: str
    base: str
    proc: subprocess.Popen[str]


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    """An exporter on a namespace holding real flows, left running for the tests to connect to."""
    ns = make_netns()
    proc = None
    try:
        for i in range(5):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.8.0.{i + 1}", "-d", "10.8.1.1", "--sport", "1",
               "--dport", "2", "-t", "300", netns=ns)
        port = free_port()
        proc = subprocess.Popen(["cttop", "export", "--listen", f"127.0.0.1:{port}", "--netns", ns,
                                 "--no-namespaces"], stderr=subprocess.PIPE, text=True)
        wait_ready(f"http://127.0.0.1:{port}/metrics", proc)
        yield Running(ns, f"http://127.0.0.1:{port}", proc)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        delete_netns(ns)


def get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def entries(text: str) -> float:
    return sample_value({f.name: f for f in text_string_to_metric_families(text)}, "node_nf_conntrack_entries")


def test_metrics_only_at_the_metrics_path(running: Running) -> None:
    status, ctype, body = get(f"{running.base}/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert entries(body.decode()) == conntrack_count(running.ns) == 5
    assert get(f"{running.base}/metrics?name[]=x")[0] == 200  # a query string is still the path
    status, _ctype, body = get(f"{running.base}/metrics", "HEAD")
    assert status == 200 and body == b""
    # "/" points at the metrics, for a person with a browser; it is no scrape.
    status, ctype, body = get(f"{running.base}/")
    assert status == 200 and ctype.startswith("text/plain") and b"/metrics" in body and b"# HELP" not in body
    for path in ("/foo", "/metricsx", "/metrics/", "/favicon.ico", "/metrics/../metrics2", "/METRICS"):
        status, _ctype, body = get(f"{running.base}{path}")
        assert status == 404 and b"# HELP" not in body, path
    assert get(f"{running.base}/metrics", "POST")[0] == 501


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (waiting for it at most a generous while)."""
    sock.settimeout(60)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_slow_request_heads_are_dropped_without_holding_up_scrapes(running: Running) -> None:
    host, port = running.base.removeprefix("http://").rsplit(":", 1)
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 400 + b"\r\n\r\n"
    sent: list[int] = []

    def dribble(sock: socket.socket) -> None:
        """A byte at a time, a tenth of a second apart: the whole head would take 40 s."""
        n = 0
        try:
            for i in range(len(head)):
                sock.send(head[i:i + 1])
                n += 1
                if select.select([sock], [], [], 0.1)[0]:
                    break  # the server closed it (or answered, which the test fails on)
        except OSError:
            pass
        sent.append(n)

    with socket.create_connection((host, int(port))) as silent, \
            socket.create_connection((host, int(port))) as slow:
        t = threading.Thread(target=dribble, args=(slow,))
        t.start()
        try:
            # Both are connected and unanswered: a scrape still gets its answer, and the kernel's count.
            status, _ctype, body = get(f"{running.base}/metrics")
            assert status == 200 and entries(body.decode()) == conntrack_count(running.ns)
            assert closed_by_server(silent)
        finally:
            t.join(timeout=120)
        assert sent and sent[0] < len(head)  # cut off before the head was in
        assert closed_by_server(slow)
    assert get(f"{running.base}/metrics")[0] == 200


def test_connections_past_the_cap_are_closed_and_the_cap_frees(running: Running) -> None:
    host, port = running.base.removeprefix("http://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(MAX_CLIENTS)]
    try:
        with socket.create_connection((host, int(port))) as extra:
            assert closed_by_server(extra)
        for s in idle:
            assert closed_by_server(s)  # each dropped when its time for a head ran out
    finally:
        for s in idle:
            s.close()
    assert get(f"{running.base}/metrics")[0] == 200


@pytest.fixture
def busy_netns() -> Iterator[str]:
    """A namespace with injected entries and real loopback TCP/UDP flows, gone quiet (test_binary, test_export_unit)."""
    ns = make_netns("cttop-busy")
    try:
        for args in INJECT:
            sh("conntrack", "-I", *args, netns=ns)
        sh(sys.executable, "-c", TRAFFIC, netns=ns)
        yield ns
    finally:
        delete_netns(ns)


def test_two_namespaces_whose_names_read_alike_are_two_series() -> None:
    """A namespace named e and ESC, and one named with the escape's literal text: two series each, not the same
    labels twice (one's drops hidden behind the other's)."""
    tag = f"cttop-twin-{uuid.uuid4().hex[:6]}-e"
    twins = [tag + "\x1b", tag + "\\x1b"]
    for name in twins:
        add_netns(name)
    try:
        families = exported("--no-table")
    finally:
        for name in twins:
            delete_netns(name)
    for family in ("cttop_namespace_entries", "cttop_namespace_stat_drop"):
        labels = [x.labels["netns"] for x in families[family].samples if x.labels["netns"].startswith(tag)]
        assert sorted(labels) == sorted([tag + "\\x1b", tag + "\\\\x1b"]), (family, labels)


def test_two_namespaces_of_one_container_are_two_series() -> None:
    """A container's process that makes a namespace of its own (a sandboxing browser, docker in docker): both
    namespaces were labelled by the container alone, the same labels twice in one scrape (and one row said twice by
    `cttop namespaces`); each is now named with its process too."""
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2")
    cid = uuid.uuid4().hex * 2
    scope = f"cttop-test-{cid[:6]}.slice/docker-{cid}.scope"
    with held_in(root, scope) as first, held_in(root, scope) as second:
        families = exported("--no-table")
    owner = f"docker:{cid[:12]}"
    for family in ("cttop_namespace_entries", "cttop_namespace_stat_drop"):
        labels = sorted((x.labels["netns"], x.labels["netns_owner"]) for x in families[family].samples
                        if x.labels["netns_owner"] == owner)
        assert labels == sorted([(f"{owner} pid:{first}", owner), (f"{owner} pid:{second}", owner)]), family
