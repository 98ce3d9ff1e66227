"""`cttop snapshot` read without typer (cli/base.quick_values) reads its words as typer does, or leaves them to
typer: held here to typer's own reading of the same words, over every pair of a pool of words and random
longer lines, hostile ones included."""

from __future__ import annotations

import random
import subprocess
import sys
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

import cttop.cli.snapshot_typer
from cttop.cli import load_commands
from cttop.cli.app import app
from cttop.cli.base import NETNS_OPTS, netns_spec, quick_values
from cttop.cli.snapshot import OPTS
from cttop.kernel.netns import NetnsSpec
from tests.conftest import run_cttop

WORDS: list[list[str]] = [
    [], ["--json"], ["--flows"], ["--netns", "web1"], ["--netns=a b"], ["--netns", "-x"], ["--netns="],
    ["--netns-path", "/proc/1/ns/net"], ["--netns-pid", "1"], ["-f", "udp dport 53"], ["--filter="],
    ["--filter=a=b"], ["--filter", "ü\x1b[2J\n"], ["-g", "dport"], ["--group-by=src"], ["--by", "bytes"],
    ["--top", "3"], ["-n", "2"], ["--seconds", "1"], ["--max-flows=5"], ["--json=1"], ["--", "x"], ["-fudp"],
    ["-f=udp"], ["--filt", "udp"], ["--help"], ["x"], ["--filter"], ["-g"], ["--JSON"], ["-"], ["--netns"],
]


def typer_reads(words: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[NetnsSpec, dict[str, Any]] | None:
    """What typer passes the command for ``words`` after ``cttop snapshot``, or None where it refuses them."""
    seen: list[tuple[NetnsSpec, dict[str, Any]]] = []
    monkeypatch.setattr(cttop.cli.snapshot_typer, "run", lambda spec, **values: seen.append((spec, values)))
    try:
        get_command(app).main(args=["--no-config", "snapshot", *words], prog_name="cttop", standalone_mode=False)
    except SystemExit:
        return None
    except Exception as e:  # click's own refusals (a missing value) in non-standalone mode
        if type(e).__name__ in {"NoSuchOption", "BadOptionUsage", "BadParameter", "MissingParameter", "UsageError",
                                "NoArgsIsHelpError"}:
            return None
        raise
    return seen[0] if seen else None  # --help prints and runs nothing


REFUSED = "refused"


def quick_reads(words: list[str]) -> tuple[NetnsSpec, dict[str, Any]] | str | None:
    """What the quick path passes the command, REFUSED where it refuses (two namespace options), None where it
    leaves the words to typer."""
    values = quick_values((*NETNS_OPTS, *OPTS), words)
    if values is None:
        return None
    try:
        spec = netns_spec(values.pop("netns"), values.pop("netns_pid"), values.pop("netns_path"))  # type: ignore[arg-type]
    except SystemExit:
        return REFUSED
    return spec, values


def lines() -> list[list[str]]:
    pairs = [a + b for a in WORDS for b in WORDS]
    rnd = random.Random(17)
    longer = [list(chain.from_iterable(rnd.sample(WORDS, rnd.randint(3, 6)))) for _ in range(400)]
    return pairs + longer


def test_quick_values_reads_as_typer_or_leaves_the_words_to_it(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    load_commands(["snapshot"])
    read = declined = 0
    for words in lines():
        quick = quick_reads(words)
        if quick is None:
            declined += 1
            continue
        read += 1
        assert typer_reads(words, monkeypatch) == (None if quick == REFUSED else quick), words
    capsys.readouterr()  # typer's refusals of the declined lines
    # Neither side vacuous: most lines of flags and text are read here, every number and oddity is not.
    assert read > 150 and declined > 500, (read, declined)


@pytest.mark.parametrize("words", [["--top", "3"], ["-n", "2"], ["--seconds", "1"], ["--max-flows=5"],
                                   ["--netns-pid", "1"], ["--json=1"], ["--", "x"], ["-fudp"], ["--filt", "udp"],
                                   ["--help"], ["--json", "--json"], ["--netns", "-x"], ["--filter"]])
def test_numbers_and_oddities_are_left_to_typer(words: list[str]) -> None:
    assert quick_values((*NETNS_OPTS, *OPTS), words) is None


def test_every_option_of_the_command_is_declared_once() -> None:
    flags = [f for o in (*NETNS_OPTS, *OPTS) for f in o.flags]
    assert len(flags) == len(set(flags))
    load_commands(["snapshot"])
    command = get_command(app).commands["snapshot"]  # type: ignore[attr-defined]
    typer_flags = {f for p in command.params for f in p.opts} - {"--help"}
    assert typer_flags == set(flags)


RUN = """
import sys
sys.argv = ['cttop', 'snapshot', '--netns', 'cttop-no-such-ns-q', '--json', *sys.argv[1:]]
from cttop.cli import main
try:
    main()
except SystemExit as e:
    print('exit', e.code)
print('typer loaded', 'typer' in sys.modules)
"""


def test_a_snapshot_that_needs_no_conversion_starts_without_typer_and_ends_as_typer_would() -> None:
    quick = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, timeout=60, check=False)
    typed = subprocess.run([sys.executable, "-c", RUN, "--top", "10"], capture_output=True, text=True, timeout=60, check=False)
    assert quick.stdout.splitlines()[-1] == "typer loaded False", quick.stdout
    assert typed.stdout.splitlines()[-1] == "typer loaded True", typed.stdout
    # The same one-line refusal and status either way.
    assert "cttop-no-such-ns-q" in quick.stderr and quick.stderr.count("\n") == 1
    assert (quick.stderr, quick.stdout.splitlines()[-2]) == (typed.stderr, typed.stdout.splitlines()[-2])


def test_the_config_is_read_alike(tmp_path: Path) -> None:
    """The quick start reads the config files as the root does (settle): a bad one is the same one-line refusal."""
    bad = tmp_path / "config.toml"
    bad.write_text('read_only = "x"\n')
    for config in (str(bad), str(tmp_path / "missing.toml")):
        env = {"CTTOP_CONFIG": config}
        quick, typed = run_cttop("snapshot", "--json", env=env), run_cttop("snapshot", "--json", "--top", "10", env=env)
        assert quick.returncode == typed.returncode == 2
        assert quick.stderr == typed.stderr and quick.stderr.count("\n") == 1 and config in quick.stderr
