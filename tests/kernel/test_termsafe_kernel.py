"""No raw control character reaches the terminal from a name, on the real kernel: processes named with
escape sequences (by prctl and by argv[0]) holding tracked connections, in a namespace and a cgroup
named the same way, and a journal whose records hold them. Text output shows them escaped, one line
per field; JSON keeps the raw names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.termsafe import safe_distinct, safe_line
from tests.conftest import CLI, sh
from tests.hostile import (
    COMM_NAME,
    HOSTILE_SUMMARY,
    HOSTILE_USER,
    RAW_CONTROL,
    Hostile,
    cgroup_of,
    forge_journal,
    hostile_namespace,
    raw_name,
)
from tests.kernel.test_host_export import free_port, wait_ready

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    with hostile_namespace() as h:
        yield h


def cttop(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run cttop; return its exit status and its output checked byte by byte: no C0 control but newline,
    no DEL, valid UTF-8 (no stray byte), and, decoded, no C1, bidi or separator character."""
    r = subprocess.run([*CLI, *args], capture_output=True, stdin=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})}, check=False)
    out: list[str] = []
    for name, data in (("stdout", r.stdout), ("stderr", r.stderr)):
        bad = sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})
        assert not bad, f"{name} of cttop {' '.join(args)} holds raw control bytes {bad}:\n{data!r}"
        text = data.decode("utf-8")  # strict: a lone 0xff would raise here
        m = RAW_CONTROL.search(text)
        assert m is None, f"{name} of cttop {' '.join(args)} holds {m.group()!r}:\n{text}"
        out.append(text)
    return r.returncode, out[0], out[1]


def test_the_holders_are_real_and_named_as_meant(hostile: Hostile) -> None:
    # The kernel's word: each holder has a tracked connection, and the names hold the sequences.
    for port in hostile.ports:
        lines = sh("conntrack", "-L", "-p", "tcp", "--dport", str(port), netns=hostile.netns).splitlines()
        assert len([ln for ln in lines if "ESTABLISHED" in ln]) == 1, lines
    names = [raw_name(p) for p in hostile.pids]
    assert names[0] == COMM_NAME.decode()
    assert names[1].startswith("ht-hostile-argv\x1b]0;PWNED\x07") and "\nTOTAL 0" in names[1]


def test_namespaces_prints_each_name_escaped_on_its_own_row(hostile: Hostile) -> None:
    rc, out, _ = cttop("namespaces")
    assert rc == 0
    label = safe_line(hostile.netns)
    assert "\\x1b]0;PWNED\\x07\\x1b[31m\\x9b\\u202e\\x0aTOTAL\\xff" in label  # what the reader sees
    rows = [ln for ln in out.splitlines() if ln.startswith(label)]
    assert len(rows) == 1, out
    # The namespace's process and its container are on the same row: no name broke it.
    assert safe_line(raw_name(hostile.lowest)) in rows[0]
    if hostile.cgroup is not None:
        assert safe_line(os.path.basename(cgroup_of(hostile.lowest))) in rows[0]
    # Nothing forged a row: only the real TOTAL line starts with TOTAL.
    assert sum(ln.startswith("TOTAL") for ln in out.splitlines()) == 1, out


def test_namespaces_json_keeps_the_raw_names_escaped_by_json(hostile: Hostile) -> None:
    rc, out, _ = cttop("namespaces", "--json")
    assert rc == 0
    assert "\\u001b]0;PWNED\\u0007" in out  # JSON's own escape, not ours
    inode = os.stat(f"/run/netns/{hostile.netns}").st_ino
    ns = next(n for n in json.loads(out)["namespaces"] if n["inode"] == inode)
    assert ns["names"] == [hostile.netns] and ns["label"] == hostile.netns
    assert ns["process"] == raw_name(hostile.lowest)
    if hostile.cgroup is not None:
        assert ns["container"] == os.path.basename(cgroup_of(hostile.lowest))


def test_snapshot_names_the_namespace_escaped_and_json_keeps_it(hostile: Hostile) -> None:
    rc, out, err = cttop("snapshot", "--netns", hostile.netns)
    assert rc == 0, err
    count = int(sh("conntrack", "-C", netns=hostile.netns))
    assert out.splitlines()[0].startswith(f"namespace {safe_line(hostile.netns)}: {count} of ")
    rc, out, err = cttop("snapshot", "--netns", hostile.netns, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["netns"] == hostile.netns and doc["count"] == count


def test_snapshot_by_process_and_its_flows_keep_each_name_on_its_line(hostile: Hostile) -> None:
    """The heaviest-process rows and each flow's ``owner=``: a newline in a process's name must not forge a
    row (SafeStream keeps newlines, so these printers escape the names themselves)."""
    rc, out, err = cttop("snapshot", "--netns", hostile.netns, "--group-by", "process", "--flows")
    assert rc == 0, err
    lines = out.splitlines()
    assert not any(ln.lstrip().startswith("TOTAL") for ln in lines), out
    for pid in hostile.pids:
        name = safe_line(raw_name(pid))
        assert "\\x0a" in name or "\n" not in raw_name(pid)
        assert len([ln for ln in lines if ln.startswith(f"  {name}[{pid}]")]) == 1, out  # its group's row
        flows = [ln for ln in lines if f"owner={name}[{pid}]" in ln]
        assert flows and all(" → " in ln and "timeout=" in ln for ln in flows), out  # each a whole flow line


def test_an_error_quoting_a_hostile_name_is_one_escaped_line(hostile: Hostile) -> None:
    missing = hostile.netns + "-gone"
    rc, out, err = cttop("snapshot", "--netns", missing)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cttop: ") and safe_line(missing) in err, err


def test_doctor_names_the_namespace_escaped(hostile: Hostile) -> None:
    _, out, _ = cttop("doctor", "--netns", hostile.netns, "--seconds", "0.2")
    assert out.splitlines()[0].startswith(f"cttop doctor: namespace {safe_line(hostile.netns)}, watched"), out


@pytest.fixture
def forged_state(hostile: Hostile, tmp_path: Path) -> Path:
    """A private state dir (root's, 0700) holding the forged journal; the value set dies with the namespace."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    forge_journal(state, hostile.netns)
    return state


def test_journal_prints_forged_fields_escaped_and_json_keeps_them(forged_state: Path, hostile: Hostile) -> None:
    rc, out, _ = cttop("journal", env={"CTTOP_STATE_DIR": str(forged_state)})
    assert rc == 0
    shown = [safe_line(HOSTILE_USER), safe_line(HOSTILE_SUMMARY), safe_line(hostile.netns)]
    assert all(s in out for s in shown), out  # the record was printed, escaped
    assert not any(ln.lstrip().startswith("forged line") for ln in out.splitlines()), out
    rc, out, _ = cttop("journal", "--json", env={"CTTOP_STATE_DIR": str(forged_state)})
    assert rc == 0
    recs = json.loads(out)
    assert recs and recs[0]["user"] == HOSTILE_USER and recs[0]["netns"] == hostile.netns


def test_the_exporter_serves_the_names_escaped(hostile: Hostile) -> None:
    """Prometheus' text format escapes only backslash, quote and newline: the rest is cttop's to escape, or
    `curl /metrics` on a terminal runs the sequences (and a non-UTF-8 byte would fail the scrape)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = subprocess.Popen([*CLI, "export", "--netns", hostile.netns, "--listen", f"127.0.0.1:{port}",
                             "--group", "container"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(url, proc)
        with urllib.request.urlopen(url, timeout=10) as r:
            data = r.read()
    finally:
        proc.terminate()
        proc.wait(10)
    bad = sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})
    assert not bad, data
    text = data.decode("utf-8")
    assert RAW_CONTROL.search(text) is None
    quoted = safe_distinct(hostile.netns).replace("\\", "\\\\")  # the text format's own escape of the backslash
    assert f'cttop_namespace_entries{{netns="{quoted}"' in text, text
    if hostile.cgroup is not None:  # the holders' container is named after their hostile cgroup
        keys = re.findall(r'cttop_top_group_entries\{group="container",key="((?:[^"\\]|\\.)*)"\}', text)
        assert any("\\\\x1b[31mevil" in k for k in keys), keys
