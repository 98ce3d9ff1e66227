"""The single-file binary (scripts/build-binary.sh), built once per session and run where there is no Python:
a private mount namespace hides every Python install and this venv, and the environment is emptied (env -i).
Its snapshot is checked against conntrack -L in a throwaway namespace with real flows."""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.test_config_cli import live_view_output
from tests.kernel.test_host_export import busy_netns  # noqa: F401  (a fixture)
from tests.kernel.test_snapshot import INJECT
from tests.oracle import conntrack_count, conntrack_list, oracle_state

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
SBIN_PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"  # what root's shell (and sudo's secure_path) gives: nft, ip


@pytest.fixture(scope="session")
def binary() -> Iterator[Path]:
    """dist/cttop built from this checkout into a temporary directory (a minute or two), once per session."""
    tmp = Path(tempfile.mkdtemp(prefix="cttop-binary-"))
    try:
        r = subprocess.run([str(ROOT / "scripts" / "build-binary.sh"), str(tmp / "dist")], capture_output=True,
                           text=True, env={**os.environ, "PYTHON": sys.executable, "CTTOP_BUILD_DIR": str(tmp / "b")},
                           check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        yield tmp / "dist" / "cttop"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def python_dirs() -> list[str]:
    """Every place a Python interpreter could find its standard library or packages on this box."""
    dirs = [*glob.glob("/usr/lib/python3*"), *glob.glob("/usr/local/lib/python3*"), sys.base_prefix, sys.prefix]
    return sorted({d for d in dirs if os.path.isdir(d) and d not in ("/usr", "/usr/local")})


def no_python_argv(*argv: str, keep: str = "") -> list[str]:
    """``argv`` with an empty environment (but ``keep``, NAME=VALUE words) in a mount namespace where no
    Python install is visible."""
    hide = "".join(f"mount -t tmpfs -o ro,mode=000 none {d} && " for d in python_dirs())
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{hide}exec /usr/bin/env -i {keep} "$@"',
            "sh", *argv]


def without_python(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(no_python_argv(*argv), capture_output=True, text=True, cwd="/", check=False)


def test_the_sandbox_really_has_no_python() -> None:
    assert python_dirs()  # at least this venv and its base are hidden
    for python in {sys.executable, os.path.realpath(sys.executable), shutil.which("python3") or "/usr/bin/python3"}:
        r = without_python(python, "-c", "import json")
        assert r.returncode != 0, python


def test_the_binary_carries_the_compiled_decoder(binary: Path) -> None:
    """PyInstaller follows decode.py's import of the extension (src/cttop/kernel/_ctdecode.c) into the archive."""
    r = subprocess.run([str(Path(sys.executable).parent / "pyi-archive_viewer"), "--recursive", "--brief",
                        str(binary)], capture_output=True, text=True, check=True)
    assert re.search(r"^\s*cttop/kernel/_ctdecode\.cpython-\S+\.so$", r.stdout, re.MULTILINE), r.stdout[-2000:]


def test_version(binary: Path) -> None:
    r = without_python(str(binary), "--version")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"cttop {importlib.metadata.version('cttop')}\n", "")



def test_snapshot_equals_conntrack(binary: Path, busy_netns: str) -> None:
    for _ in range(5):  # the table must hold still across the three reads
        before = conntrack_list(busy_netns)
        r = without_python(str(binary), "snapshot", "--netns", busy_netns, "--json", "--group-by", "dport",
                           "--top", "100")
        after = conntrack_list(busy_netns)
        if sorted(f["id"] for f in before) == sorted(f["id"] for f in after):
            break
    assert r.returncode == 0, r.stderr
    snap, oracle = json.loads(r.stdout), after
    assert snap["count"] == snap["listed"] == len(oracle) == conntrack_count(busy_netns) >= len(INJECT) + 4
    name = lambda f: str(f["protonum"]) if f["proto"] == "unknown" else f["proto"]
    assert snap["by_proto"] == dict(Counter(map(name, oracle)))
    assert snap["by_state"] == dict(Counter(f"{name(f)}:{oracle_state(f)}" for f in oracle))
    assert snap["evictable"] == sum("ASSURED" not in f["flags"] for f in oracle)
    ports = Counter(f"{f['proto']}/{f['orig']['dport']}" for f in oracle if "dport" in f["orig"])
    assert {x["key"]: x["entries"] for x in snap["top"]["rows"] if x["key"] != "-"} == dict(ports)


def test_the_live_view_draws_from_the_binary(binary: Path, netns: str) -> None:
    """Textual's and cttop's stylesheets are data files that no import pulls in: without them in the bundle
    the live view stops before it draws."""
    out = live_view_output(["--netns", netns], {}, cli=no_python_argv(str(binary), keep="TERM=xterm-256color"))
    assert b"Fill" in out and b"Pressure" in out


def test_the_lab_runs_its_traffic_from_the_binary(binary: Path) -> None:
    """The lab starts its generators as `sys.executable -m cttop.lab...`: in the binary, the binary itself.
    (Not in the sandbox: namespaces that `ip netns add` mounts in a private mount namespace stay there.)"""
    lab = lambda *args: subprocess.run(["env", "-i", SBIN_PATH, str(binary), "lab", *args], capture_output=True,
                                       text=True, cwd="/", check=False)
    r = lab("--no-ui", "--duration", "3", "--keep")
    m = re.search(r"cttop lab --cleanup (\S+)", r.stderr)
    try:
        assert r.returncode == 0 and m, r.stderr
        router = f"cttop-lab-{m.group(1)}-router"
        assert conntrack_count(router) > 10  # flows the generators made, read by conntrack itself
    finally:
        if m:
            lab("--cleanup", m.group(1))
    assert not [n for n in os.listdir("/run/netns") if m and m.group(1) in n]


def test_the_man_page_ships_beside_it(binary: Path) -> None:
    assert (binary.parent / "cttop.1").read_text() == (ROOT / "man" / "cttop.1").read_text()


def glibc_floor(path: Path) -> tuple[int, ...]:
    """The newest GLIBC_ symbol version the bootloader or any bundled library asks for."""
    from PyInstaller.archive.readers import PKG_ITEM_BINARY, CArchiveReader

    archive = CArchiveReader(str(path))
    worst: tuple[int, ...] = ()
    with tempfile.TemporaryDirectory() as d:
        lib = Path(d) / "lib"
        for name in [None, *(n for n, entry in archive.toc.items() if entry[4] == PKG_ITEM_BINARY)]:
            if name is not None:
                lib.write_bytes(archive.extract(name))
            out = subprocess.run(["objdump", "-T", str(path if name is None else lib)], capture_output=True,
                                 text=True, check=True).stdout
            for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out):
                worst = max(worst, tuple(map(int, v.split("."))))
    return worst


def test_the_readme_states_the_glibc_floor(binary: Path) -> None:
    floor = ".".join(map(str, glibc_floor(binary)))
    print(f"glibc floor: {floor}")
    assert f"glibc {floor} or newer" in (ROOT / "README.md").read_text()
