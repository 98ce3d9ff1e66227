"""`cttop snapshot` read without typer (its words need no conversion, cli/base.py) prints what the same command
read by typer prints, on a real table: the same JSON and the same text, checked against `conntrack -L`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import delete_netns, make_netns, sh
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

# --top 10 is the default: it changes nothing but sends the words through typer (a number needs its checks).
THROUGH_TYPER = ("--top", "10")


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    name = make_netns("cttop-snapquick")
    try:
        for i in range(24):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.32.0.{i % 6 + 1}", "-d", "10.32.1.1", "--sport",
               str(2000 + i), "--dport", "53", "-t", "600", netns=name)
        for i in range(12):
            sh("conntrack", "-I", "-p", "tcp", "-s", "10.32.0.9", "-d", "10.32.1.2", "--sport", str(3000 + i),
               "--dport", "443", "--state", "ESTABLISHED" if i % 2 else "SYN_SENT", "-t", "600", netns=name)
        yield name
    finally:
        delete_netns(name)


def run(ns: str, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["cttop", "snapshot", "--netns", ns, *words], capture_output=True, text=True, timeout=60, check=False)


def without_timeouts(out: str) -> dict[str, Any]:
    snap = json.loads(out)
    for f in snap.get("flows", []):
        f.pop("timeout")  # counts down between the two runs
    return snap


@pytest.mark.parametrize("words", [["--json"], ["--json", "-g", "dport"], ["--json", "--filter", "udp"],
                                   ["--json", "--flows", "-f", "tcp"], [], ["-g", "dport", "--by", "entries"],
                                   ["--filter", "udp and src 10.32.0.1"]])
def test_the_quick_start_prints_what_typer_does(ns: str, words: list[str]) -> None:
    quick, typed = run(ns, *words), run(ns, *words, *THROUGH_TYPER)
    assert (quick.returncode, quick.stderr) == (typed.returncode, typed.stderr) == (0, "")
    if "--json" in words:
        assert without_timeouts(quick.stdout) == without_timeouts(typed.stdout)
        oracle = conntrack_list(ns, "extended,id")
        assert json.loads(quick.stdout)["count"] == len(oracle) == 36
    else:
        assert quick.stdout == typed.stdout
        assert quick.stdout.startswith(f"namespace {ns}: 36 of ")


def test_a_bad_word_is_refused_alike(ns: str) -> None:
    quick, typed = run(ns, "-g", "nope"), run(ns, "-g", "nope", *THROUGH_TYPER)
    assert quick.returncode == typed.returncode == 2
    assert quick.stderr == typed.stderr and quick.stderr.count("\n") == 1 and "'nope'" in quick.stderr
    assert quick.stdout == typed.stdout == ""
