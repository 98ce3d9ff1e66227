"""Usage errors on every command are one line on stderr, like cttop's other errors, with the right exit code."""

from __future__ import annotations

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
    (["notrack", "add"], "cttop: notrack: Missing argument 'expr'; see cttop notrack --help", 2),
    (["lab", "--cleanup"], "cttop: lab: Option '--cleanup' requires an argument; see cttop lab --help", 2),
    (["doctor", "--bogus"], "cttop: doctor: No such option: --bogus; see cttop doctor --help", 3),
])
def test_usage_errors_are_one_line(args: list[str], says: str, code: int) -> None:
    load_commands([])  # every command module
    r = CliRunner().invoke(app, args)
    assert (r.exit_code, r.stderr.strip(), r.stdout) == (code, says, "")
