"""Usage errors on every command are one line on stderr, like cttop's other errors, with the right exit code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from cttop.cli import load_commands
from cttop.cli.app import app
from tests.conftest import run_cttop


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


# --- numbers are written in ASCII digits ------------------------------------------------------------------------

# Digits of other scripts that int() and float() take: Arabic-Indic, fullwidth, Devanagari, and one mixed in.
FOREIGN_DIGITS = ("\u0663", "\uff13", "\u0969", "1\u0665")
FOREIGN_FLOAT = "\u0661.\u0665"  # ١.٥
# ASCII that int() or float() takes and a plain number is not: underscores, spaces around it, two signs.
NOT_PLAIN = ("1_000", " 5", "5 ", "\t5\n", "+-5", "0x10")
NOT_PLAIN_FLOAT = ("1_0.5", " 2.5", "2.5 ", "1e1_0", "1.5e 2")
# The words float() reads: no integer; a float option's own check refuses them, in words that give its range
# (--at, which has none, in its command: test_replay).
NOT_FINITE = ("inf", "-inf", "nan", "Infinity", "NaN")


def number_options(root: Any) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """(command path, command, option) for every option of every command, found in the app (a new one is checked
    too), whose value is an integer or a float, as click names its type (ranges included)."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), root)]
    while stack:
        path, cmd = stack.pop()
        for p in cmd.params:
            if re.search(r"\b(int|integer|float)\b", p.type.name):
                assert p.param_type_name == "option", (path, p.name)  # an argument would need its own case
                yield path, cmd, p
        stack += [((*path, name), sub) for name, sub in getattr(cmd, "commands", {}).items()]


def ascii_forms(p: Any) -> list[tuple[str, int | float]]:
    """Values written in ASCII the option takes, as text and as the number it is: its range's ends, or a
    negative and an exponent where it has none."""
    number: type[int] | type[float] = float if "float" in p.type.name else int
    low, high = getattr(p.type, "min", None), getattr(p.type, "max", None)
    forms = [(str(b), number(b)) for b in (low, high) if b is not None]
    if low is not None and low >= 0:
        forms.append((f"+{low}", number(low)))  # one sign
    if low is None:
        forms.append(("-3", number(-3)))
    if number is float and (low is None or low <= 25) and (high is None or 25 <= high):
        forms += [("2.5e1", 25.0), ("25.", 25.0), ("250E-1", 25.0)]
    if number is float and (low is None or low <= 0.5) and (high is None or 0.5 <= high):
        forms.append((".5", 0.5))
    return forms


def out_of_range(p: Any) -> list[str]:
    """ASCII values past the option's range, which its range check still refuses."""
    low, high = getattr(p.type, "min", None), getattr(p.type, "max", None)
    return [str(v) for v in ((low - 1) if low is not None else None, (high + 1) if high is not None else None)
            if v is not None]


def test_every_number_option_takes_ascii_digits_only(capsys: pytest.CaptureFixture[str]) -> None:
    """`snapshot --top ٣` listed 3 groups: int() and float() take any script's digits, and `1_000`, ` 5` or `inf`.
    Every int and float option of every command refuses them in one line naming the option and the value (the
    command's usage status), and still takes plain ASCII, its range checked as before. The commands' bodies are
    replaced: only parsing is tried."""
    load_commands([])
    root = typer.main.get_command(app)
    ran: dict[tuple[str, ...], dict[str, Any]] = {}

    def stub(path: tuple[str, ...], cmd: Any) -> None:
        cmd.callback = lambda **kwargs: ran.__setitem__(path, kwargs)
        for name, sub in getattr(cmd, "commands", {}).items():
            stub((*path, name), sub)

    stub((), root)

    def run(path: tuple[str, ...], cmd: Any, option: str, value: str) -> tuple[int | str | None, str]:
        # What the command needs besides the option to get to its body: its required arguments and options.
        required = [a for q in cmd.params if q.required
                    for a in (["x"] if q.param_type_name == "argument" else [q.opts[0], "x"])]
        ran.clear()
        with pytest.raises(SystemExit) as e:
            root.main([*path, option, value, *required], prog_name="cttop")
        return e.value.code, capsys.readouterr().err

    found = []
    for path, cmd, p in number_options(root):
        option = max(p.opts, key=len)
        found.append((*path, option))
        usage = getattr(root.commands[path[0]], "usage_exit", 2) if path else 2
        is_float = "float" in p.type.name
        for value in (*FOREIGN_DIGITS, *NOT_PLAIN, *((FOREIGN_FLOAT, *NOT_PLAIN_FLOAT) if is_float else NOT_FINITE)):
            code, err = run(path, cmd, option, value)
            assert "Traceback" not in err and path not in ran, (path, option, value, err)
            [line] = err.splitlines()
            assert code == usage and line.startswith("cttop: ") and f"'{option}'" in line, (path, option, line)
            assert f"{value!r} is not a number in ASCII digits" in line, line
        for text, number in ascii_forms(p):
            code, err = run(path, cmd, option, text)
            assert (code, err) == (0, ""), (path, option, text, err)
            got = ran[path][p.name]
            assert got == number and type(got) is type(number), (path, option, text, got)
        for text in out_of_range(p) + (list(NOT_FINITE) if is_float and getattr(p.type, "min", None) is not None
                                       else []):
            code, err = run(path, cmd, option, text)
            assert code == usage and "is not in the range" in err and path not in ran, (path, option, text, err)
    # The enumeration is not empty: the options this was written for are in it.
    assert {("snapshot", "--top"), ("snapshot", "--netns-pid"), ("replay", "--speed"), ("replay", "--at"),
            ("--interval",), ("export", "--max-namespaces"), ("lab", "--duration")} <= set(found), found


def test_a_foreign_digit_is_one_line_from_the_command_too() -> None:
    """The same refusal from cttop as run, through its own streams: one line, exit 2, no traceback."""
    r = run_cttop("replay", "--speed", FOREIGN_FLOAT, "/nonexistent/rec.cttop")
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == (f"cttop: replay: Invalid value for '--speed': {FOREIGN_FLOAT!r} is not a number in ASCII "
                        "digits (0-9); see cttop replay --help\n")
