"""`cttop export` as a real server on loopback, scraped over HTTP and parsed by prometheus_client's parsers."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from cttop.fleet.export import NODE_STATS
from tests.conftest import delete_netns, make_netns, sh
from tests.kernel.test_snapshot import INJECT, oracle_state
from tests.oracle import conntrack_count, conntrack_list, conntrack_stats

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


def value(s: Scraped, name: str, **labels: str) -> float:
    matches = [x.value for x in s.families[name].samples if x.name == name and all(
        x.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_node_exporter_names_types_and_values(scraped: Scraped) -> None:
    assert value(scraped, "node_nf_conntrack_entries") == scraped.count == len(scraped.flows)
    assert value(scraped, "node_nf_conntrack_entries_limit") == scraped.max
    for name, _doc in NODE_STATS:
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
    assert value(scraped, "cttop_namespace_entries", namespace=scraped.ns) == scraped.count
    assert value(scraped, "cttop_namespace_stat_drop", namespace=scraped.ns) == scraped.stats["drop"]
    assert value(scraped, "cttop_namespace_stat_early_drop", namespace=scraped.ns) == scraped.stats["early_drop"]
    node = value(scraped, "cttop_node_entries")
    assert node == sum(x.value for x in scraped.families["cttop_namespace_entries"].samples)
    assert value(scraped, "cttop_node_fill_ratio") == node / scraped.max


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
