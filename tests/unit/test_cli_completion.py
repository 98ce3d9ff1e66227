"""Shell completion: the script typer prints, run in a real bash; the protocol zsh and fish speak; namespace
names for --netns; and a command that does not complete still loads only its own module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cttop.cli.base import complete_netns
from tests.conftest import CLI, delete_netns, make_netns, run_cttop

BIN = os.path.dirname(CLI[0])  # .venv/bin: where `cttop` is, as a shell finds it


def bash(script: str, home: Path | None = None) -> str:
    """Run ``script`` in a bash that finds this cttop on PATH; ``; true`` keeps bash from exec-ing the last
    command, so typer's shell detection finds bash as cttop's parent."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **({"HOME": str(home)} if home else {})}
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script + "; true"], capture_output=True, text=True,
                       env=env, check=True)
    return r.stdout


def complete_in_bash(words: list[str], home: Path | None = None) -> list[str]:
    """What the script from `cttop --show-completion` offers for the last word, run as bash runs it on Tab."""
    arr = " ".join(f"'{w}'" for w in words)
    out = bash(f'eval "$(cttop --show-completion)"; COMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; '
               f'_cttop_completion cttop \'{words[-1]}\' \'{words[-2]}\'; printf "%s\\n" "${{COMPREPLY[@]}}"', home)
    return [w for w in out.splitlines() if w]


def test_bash_completes_commands_and_their_options() -> None:
    # Each command lives in a module loaded only when that command runs: completing must load them all.
    assert complete_in_bash(["cttop", "sna"]) == ["snapshot"]
    assert complete_in_bash(["cttop", "n"]) == ["namespaces", "notrack"]
    assert complete_in_bash(["cttop", "export", "--li"]) == ["--listen"]
    assert complete_in_bash(["cttop", "snapshot", "--net"]) == ["--netns", "--netns-pid", "--netns-path"]
    assert "--no-mouse" in complete_in_bash(["cttop", "--no-"])


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_speak_the_same_protocol(shell: str) -> None:
    env = {"_CTTOP_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": "cttop record --dur",
           "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    r = run_cttop(env=env)
    assert r.returncode == 0, r.stderr
    assert "--duration" in r.stdout and "--dump-interval" not in r.stdout
    script = run_cttop("--show-completion", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode != 0  # the shell must be named when it cannot be detected
    named = subprocess.run([*CLI, "--show-completion", shell], capture_output=True, text=True, check=False,
                           env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert named.returncode == 0 and f"_CTTOP_COMPLETE=complete_{shell}" in named.stdout


def test_install_completion_writes_the_script_bash_then_sources(tmp_path: Path) -> None:
    out = bash("cttop --install-completion", tmp_path)
    script = tmp_path / ".bash_completions" / "cttop.sh"
    assert out.startswith(f"bash completion installed in {script}")
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    assert bash(f"source {tmp_path}/.bashrc; complete -p cttop", tmp_path).strip() == \
        "complete -o default -F _cttop_completion cttop"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_shell_named_after_the_option_wins_over_the_detected_one(shell: str, tmp_path: Path) -> None:
    # Run from bash, as a person setting up another shell's completion would: typer detects bash.
    first_line = {"bash": "_cttop_completion() {", "zsh": "#compdef cttop", "fish": "complete --command cttop"}
    for form in ([f"--show-completion {shell}"], [f"--show-completion={shell}"]):
        assert bash(f"cttop {form[0]}").startswith(first_line[shell]), form
    out = bash(f"cttop --install-completion {shell}", tmp_path)
    installed = {"bash": ".bash_completions/cttop.sh", "zsh": ".zfunc/_cttop",
                 "fish": ".config/fish/completions/cttop.fish"}
    assert f"completion installed in {tmp_path / installed[shell]}\n" in out, out
    assert [p for p in installed.values() if (tmp_path / p).exists()] == [installed[shell]]


def test_an_unknown_shell_is_one_line_and_exit_2() -> None:
    r = subprocess.run(["bash", "-c", "cttop --show-completion tcsh; true"], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}, check=False)
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("cttop: Invalid value for '--show-completion': 'tcsh' is not one of"), r.stderr


def test_fish_gets_each_commands_help_after_a_tab(tmp_path: Path) -> None:
    # fish's protocol: "value<TAB>help" per line; an escaped tab would make the help part of the value.
    env = {"_CTTOP_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "cttop sna",
           "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    r = run_cttop(env=env)
    assert r.returncode == 0 and r.stdout.startswith("snapshot\tPrint the table's fill"), r.stdout
    fish = shutil.which("fish")
    if fish is None:
        print("fish is not installed: the protocol above is checked, not a real fish")
        return
    out = subprocess.run([fish, "--no-config", "-c", "cttop --show-completion fish | source; complete -C 'cttop sna'"],
                         capture_output=True, text=True, check=True,  # fish makes its dirs in HOME: a private one
                         env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path),
                              "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
                         ).stdout
    assert out.split("\t")[0] == "snapshot", out


def test_a_namespace_name_is_completed_with_its_control_characters_escaped(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # The completing shell prints what it is given: a name someone chose is escaped, as everywhere cttop prints.
    for name in ("web1", "evil\x1b]0;pwned\x07", "web2"):
        (tmp_path / name).touch()
    monkeypatch.setattr(sys.modules["cttop.cli.base"], "NETNS_RUN_DIR", str(tmp_path))
    assert complete_netns("") == ["evil\\x1b]0;pwned\\x07", "web1", "web2"]
    assert complete_netns("we") == ["web1", "web2"]

@pytest.mark.kernel
def test_netns_completes_the_named_namespaces() -> None:
    # A prefix of this run's own: another run of this test at the same time makes namespaces too.
    prefix = f"cttop-compl{uuid.uuid4().hex[:6]}"
    names = sorted(make_netns(prefix) for _ in range(2))
    typed = names[0].rsplit("-", 1)[0]  # the prefix as made (a side-by-side run puts its own before it)
    try:
        for words in (["cttop", "--netns", typed], ["cttop", "snapshot", "--netns", typed],
                      ["cttop", "export", "--netns", typed]):
            assert complete_in_bash(words) == names, words
        assert complete_in_bash(["cttop", "snapshot", "--netns", names[1]]) == [names[1]]
    finally:
        for n in names:
            delete_netns(n)


def test_a_command_that_does_not_complete_loads_only_its_own_module() -> None:
    code = ("import sys; sys.argv = ['cttop', 'snapshot', '--top', '0']\nfrom cttop.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('cttop.cli.')))")
    r = subprocess.run([CLI[0], "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "['cttop.cli.app', 'cttop.cli.base', 'cttop.cli.snapshot', 'cttop.cli.snapshot_typer', 'cttop.cli.status']"
