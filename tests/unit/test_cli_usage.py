"""Usage errors on every command are one line on stderr, like cttop's other errors, with the right exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cttop.cli import load_commands
from cttop.cli.app import app


@pytest.mark.parametrize(("args", "says", "code"), [
    (["snapshot", "--top", "0"], "cttop: snapshot: Invalid value for '--top' / '-n': 0 is not in the range x>=1; "
                                 "see cttop snapshot --help", 2),
    (["snapshot", "--bogus"], "cttop: snapshot: No such option: --bogus; see cttop snapshot --help", 2),
    (["bogus"], "cttop: No such command 'bogus'; see cttop --help", 2),
    (["--frobnicate"], "cttop: No such option: --frobnicate; see cttop --help", 2),
    (["notrack", "add"], "cttop: notrack: Missing argument 'EXPR'; see cttop notrack --help", 2),
    (["lab", "--cleanup"], "cttop: lab: Option '--cleanup' requires an argument; see cttop lab --help", 2),
    (["doctor", "--bogus"], "cttop: doctor: No such option: --bogus; see cttop doctor --help", 3),
])
def test_usage_errors_are_one_line(args: list[str], says: str, code: int) -> None:
    load_commands([])  # every command module
    r = CliRunner().invoke(app, args)
    assert (r.exit_code, r.stderr.strip(), r.stdout) == (code, says, "")



# Every command that takes the namespace options: the option before them in its --help (where they have always
# been), and the arguments it requires.
NETNS_COMMANDS: dict[tuple[str, ...], tuple[str | None, list[str]]] = {
    (): (None, []), ("flush",): (None, []), ("delete",): (None, []), ("set",): (None, ["a=1"]),
    ("undo",): (None, []), ("tunables",): (None, []), ("doctor",): (None, []), ("snapshot",): (None, []),
    ("record",): ("--dump-interval", ["-o", "x"]), ("export",): ("--listen", []),
    ("notrack", "add"): (None, ["udp"]), ("notrack", "list"): (None, []), ("notrack", "remove"): ("--all", []),
}


@pytest.mark.parametrize("command", list(NETNS_COMMANDS), ids=lambda c: " ".join(c) or "cttop")
def test_the_namespace_options_in_every_command(command: tuple[str, ...]) -> None:
    load_commands([])
    runner = CliRunner()
    before, required = NETNS_COMMANDS[command]
    help_text = runner.invoke(app, [*command, "--help"]).stdout
    options = [help_text.index(o) for o in ("--netns <str>", "--netns-pid <int>", "--netns-path <str>")]
    assert options == sorted(options) and "Network namespace of this process." in help_text
    if before is not None:
        assert help_text.index(before) < options[0]
    r = runner.invoke(app, [*command, *required, "--netns", "a", "--netns-pid", "1"])
    code = 3 if command == ("doctor",) else 2  # doctor: a usage error is no verdict, "unknown"
    says = "cttop: --netns, --netns-pid and --netns-path are exclusive: give one"
    assert (r.exit_code, r.stderr.strip(), r.stdout) == (code, says, "")


@pytest.mark.parametrize(("option", "value"), [("--netns", "web"), ("--netns-pid", "1"),
                                               ("--netns-path", "/proc/1/ns/net")])
def test_namespace_options_before_the_command_name_are_refused(option: str, value: str) -> None:
    load_commands([])
    r = CliRunner().invoke(app, [option, value, "journal"])
    assert (r.exit_code, r.stderr.strip()) == (2, f"cttop: put {option} after the command name: cttop journal "
                                                  f"{option} …")


def test_record_to_dash_is_refused_not_a_file_named_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    load_commands(["record"])
    r = CliRunner().invoke(app, ["record", "-o", "-", "--duration", "1"])
    assert (r.exit_code, r.stderr.strip()) == (2, "cttop: record --output -: a recording is written to a file; "
                                                  "give its path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("set",), ("undo",), ("notrack", "add"), ("notrack", "remove"), ("replay",)])
def test_arguments_read_in_capitals_in_the_usage_line(command: tuple[str, ...]) -> None:
    """Arguments are named as the options' values are (N, FILE), not by the Python parameter (`{file}`)."""
    load_commands([])
    r = CliRunner().invoke(app, [*command, "--help"])
    usage = next(line for line in r.stdout.splitlines() if line.startswith("Usage:"))
    words = usage.split()[2 + len(command):]
    assert words[0] == "[OPTIONS]" and len(words) == 2 and words[1] == words[1].upper(), usage


@pytest.mark.parametrize("text", ["\u0663", "\u0663s", "1\u0665m", "\uff13"])
def test_a_duration_is_written_in_ascii_digits(text: str) -> None:
    """`record --duration ٣` recorded 3 s: other scripts' digits are refused as other bad durations are."""
    load_commands([])
    r = CliRunner().invoke(app, ["record", "-o", "/nonexistent/x", "--duration", text])
    assert r.exit_code == 2 and f"--duration {text!r}: give a duration" in r.stderr, r.stderr
