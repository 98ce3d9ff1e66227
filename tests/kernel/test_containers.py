"""Container hosts: forwarded flows named by the container they come from, and the DNAT'd backend, in
snapshot, doctor and the exporter.

Real namespaces, veth, a bridge, nft NAT and real cgroups (tests/container_host.py).
The oracle is the kernel: `conntrack -L` in the host namespace by original source,
`/proc/PID/cgroup` for where each process sits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.actions.journal import Journal
from cttop.doctor import judge, observe
from cttop.kernel.netns import NetnsSpec
from cttop.lab.containers import VIP4
from tests.conftest import run_cttop, sh
from tests.container_host import SERVICE_PORT, SPRAY, WEB_OUT, ContainerHost, by_role, container_host
from tests.kernel.test_host_export import exported

pytestmark = pytest.mark.kernel

WEB = WEB_OUT + 1  # out, and one to the service


@pytest.fixture
def ch() -> Iterator[ContainerHost]:
    with container_host() as host:
        yield host


def snapshot_json(ch: ContainerHost, *args: str) -> dict:  # type: ignore[type-arg]
    r = run_cttop("snapshot", "--netns", ch.host, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_processes_sit_in_their_runtimes_cgroups(ch: ContainerHost) -> None:
    for role in ("web", "spray", "api"):
        with open(f"/proc/{ch.pids[role]}/cgroup") as f:
            text = f.read()
        assert ch.lab.cgroup(by_role(role)) in text, text
    assert len(ch.kernel_by_src("web")) == WEB and len(ch.kernel_by_src("spray")) == SPRAY


def test_snapshot_groups_forwarded_flows_by_container_with_the_kernels_numbers(ch: ContainerHost) -> None:
    top = {r["key"]: r for r in snapshot_json(ch, "--group-by", "container")["top"]["rows"]}
    assert top[ch.label("web")]["entries"] == len(ch.kernel_by_src("web")) == WEB
    assert top[ch.label("spray")]["entries"] == len(ch.kernel_by_src("spray")) == SPRAY
    assert top[ch.label("spray")]["filter"] == f"container {ch.label('spray')}"
    # The container's process holds the sockets, in the container's namespace: by process too.
    top = {r["key"]: r for r in snapshot_json(ch, "--group-by", "process")["top"]["rows"]}
    assert top[ch.process("web")]["entries"] == WEB
    assert top[ch.process("spray")]["entries"] == SPRAY
    assert top[ch.process("spray")]["filter"] == f"pid {ch.pids['spray']}"


def test_filter_container_selects_exactly_its_flows(ch: ContainerHost) -> None:
    snap = snapshot_json(ch, "--filter", f"container {ch.label('spray')}", "--flows")
    kernel = {ln.split("sport=")[1].split()[0] for ln in ch.kernel_by_src("spray")}
    assert snap["matched"] == SPRAY == len(kernel)
    assert {str(f["sport"]) for f in snap["flows"]} == kernel
    assert {f["src"] for f in snap["flows"]} == {by_role("spray").address}
    owners = [f["owner"] for f in snap["flows"]]
    assert {(o["container"], o["pid"], o["namespace"]) for o in owners} == \
        {(ch.label("spray"), ch.pids["spray"], ch.lab.ns("spray"))}
    # Human output, the same filter: one line a flow, each naming the container.
    r = run_cttop("snapshot", "--netns", ch.host, "--filter", f"container {ch.label('spray')}", "--flows")
    lines = [ln for ln in r.stdout.splitlines() if f"container={ch.label('spray')}" in ln]
    assert r.returncode == 0 and len(lines) == SPRAY


def test_a_dnat_flow_names_the_service_and_its_backend(ch: ContainerHost) -> None:
    kernel = ch.kernel_lines("-d", VIP4)
    assert len(kernel) == 1 and f"src={by_role('api').address} " in kernel[0].split("dport=")[1]  # the reply tuple
    snap = snapshot_json(ch, "--filter", "dnat", "--flows")
    (flow,) = [f for f in snap["flows"] if f["dst"] == VIP4]
    backend = flow["owner"]["backend"]
    assert backend == {"service": f"{VIP4}:{SERVICE_PORT}", "address": f"{by_role('api').address}:{SERVICE_PORT}",
                       "container": ch.label("api"), "namespace": ch.lab.ns("api")}
    # The flow itself is the client's: the container it comes from.
    assert flow["owner"]["container"] == ch.label("web") and flow["owner"]["pid"] == ch.pids["web"]
    assert ch.label("api").startswith("pod:api-")  # the pod's name, from the hostname the kubelet would write


def test_doctor_names_the_container_with_its_numbers(ch: ContainerHost) -> None:
    r = run_cttop("doctor", "--netns", ch.host, "--json", "--seconds", "0.2")
    report = json.loads(r.stdout)
    (share,) = [f for f in report["findings"] if f["code"] == "group-share"]
    top = share["data"]["tops"]["container"]
    assert (top["group"], top["entries"]) == (ch.label("spray"), len(ch.kernel_by_src("spray")))
    assert top["filter"] == f"container {ch.label('spray')}"


def test_doctors_fix_for_a_heavy_container_flushes_exactly_its_flows(ch: ContainerHost, tmp_path: Path) -> None:
    o = observe(NetnsSpec(name=ch.host), 0.2, journal=Journal(str(tmp_path)))
    # As if the table were small: the same flows, judged against a max they are a real share of
    # (the global max itself is left alone: other tests share it).
    o.max = SPRAY + WEB
    (f,) = [f for f in judge(o).findings if f.code == "group-share"]
    assert f.severity == "warning" and ch.label("spray") in f.title
    flush = f"--filter 'container {ch.label('spray')}'"
    assert any(c.startswith("cttop flush") and flush in c for c in f.commands), f.commands
    assert f.action is not None and f.action.kind == "flush"
    plan = f.action(Journal(str(tmp_path)))
    assert plan.count == SPRAY
    plan.apply()
    assert ch.kernel_by_src("spray") == [] and len(ch.kernel_by_src("web")) == WEB


def test_the_exporters_top_groups_can_be_keyed_by_container(ch: ContainerHost) -> None:
    families = exported("--netns", ch.host, "--group", "container", "--group", "src", "--no-namespaces")
    samples = families["cttop_top_group_entries"].samples
    by_container = {s.labels["key"]: s.value for s in samples if s.labels["group"] == "container"}
    assert by_container[ch.label("spray")] == len(ch.kernel_by_src("spray")) == SPRAY
    assert by_container[ch.label("web")] == len(ch.kernel_by_src("web")) == WEB
    by_src = {s.labels["key"]: s.value for s in samples if s.labels["group"] == "src"}
    assert by_src[by_role("spray").address] == SPRAY  # the same flows, by address


def test_a_client_from_outside_the_host_is_attributed_to_the_backend_pod_behind_the_service(
        ch: ContainerHost) -> None:
    """No namespace of the host holds the original source: the flow is the backend's, by its reply source
    after DNAT, and still shows the service it came in by."""
    client, sport = "192.0.2.7", 40123
    sh("conntrack", "-I", "-p", "udp", "-s", client, "-d", VIP4, "--sport", str(sport), "--dport", str(SERVICE_PORT),
       "-r", by_role("api").address, "-q", client, "--reply-port-src", str(SERVICE_PORT), "--reply-port-dst",
       str(sport), "-t", "600", "-u", "SEEN_REPLY,DST_NAT", netns=ch.host)
    assert len(ch.kernel_lines("-s", client)) == 1
    top = {r["key"]: r["entries"] for r in snapshot_json(ch, "--group-by", "container")["top"]["rows"]}
    assert top[ch.label("api")] == 1  # the one flow that came in through the service
    (flow,) = snapshot_json(ch, "--filter", f"src {client}", "--flows")["flows"]
    assert flow["owner"]["container"] == ch.label("api") and flow["owner"]["namespace"] == ch.lab.ns("api")
    assert flow["owner"]["backend"]["service"] == f"{VIP4}:{SERVICE_PORT}"
    assert flow["owner"]["backend"]["container"] == ch.label("api")
    # Its socket is the api pod's server, bound to the service's port in the pod's namespace.
    assert flow["owner"]["pid"] == ch.pids["api"]
