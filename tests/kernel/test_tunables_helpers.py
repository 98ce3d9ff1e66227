"""The expectation limit and the helpers' module parameters in `cttop tunables`, against /proc/sys and /sys/module."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from cttop.actions.tunables import default_expect_max
from tests.conftest import run_cttop, sh

pytestmark = pytest.mark.kernel


def tunables(ns: str, state_dir: Path) -> dict[str, dict[str, object]]:
    r = run_cttop("tunables", "--netns", ns, "--json", "--state-dir", str(state_dir))
    assert r.returncode == 0, r.stderr
    return {t["name"]: t for t in json.loads(r.stdout)}


def helper_files() -> dict[str, str]:
    """``nf_conntrack_ftp.ports`` → the file's content, for every helper parameter the kernel has."""
    out = {}
    for path in glob.glob("/sys/module/nf_conntrack_*/parameters/*"):
        mod = path.split("/")[3]
        out[f"{mod}.{os.path.basename(path)}"] = Path(path).read_text().strip()
    return out


def test_expect_max_is_shown_global_and_read_only_outside_the_initial_namespace(netns: str, tmp_path: Path) -> None:
    t = tunables(netns, tmp_path)["nf_conntrack_expect_max"]
    actual = int(sh("cat", "/proc/sys/net/netfilter/nf_conntrack_expect_max", netns=netns))
    hashsize = int(Path("/sys/module/nf_conntrack/parameters/hashsize").read_text())
    assert t["value"] == actual and t["global"] is True
    assert t["default"] == default_expect_max() and default_expect_max(hashsize) == max(1, hashsize // 256) * 4
    assert t["writable"] is False and "initial namespace" in str(t["why_not"])
    r = run_cttop("set", "--netns", netns, f"nf_conntrack_expect_max={actual + 1}", "--yes",
                  "--state-dir", str(tmp_path))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert int(sh("cat", "/proc/sys/net/netfilter/nf_conntrack_expect_max", netns=netns)) == actual


def test_helper_parameters_equal_sys_module(netns: str, tmp_path: Path) -> None:
    files = helper_files()
    if not files:
        pytest.skip("this kernel has no conntrack helper with module parameters")
    shown = {n: t for n, t in tunables(netns, tmp_path).items() if "." in n}
    assert set(shown) == set(files)
    for name, text in files.items():
        t = shown[name]
        assert str(t["value"]) == text, name
        assert t["writable"] is False and t["global"] is True and "module parameter" in str(t["why_not"])
    # setting one is refused in one line, and the file is unchanged
    name = next(iter(sorted(files)))
    r = run_cttop("set", f"{name}=1", "--yes", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith(f"cttop: {name} is read-only: a helper's module parameter")
    assert helper_files()[name] == files[name]
