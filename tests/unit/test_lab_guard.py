"""The table-full lab's memory guard, with the table's max injected: no namespace is made."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cttop.lab.scenarios import FILL_LIMIT, check_fill
from cttop.lab.topology import LabError


def test_a_max_up_to_the_limit_fills() -> None:
    check_fill(262144, force=False)
    check_fill(FILL_LIMIT, force=False)


def test_a_bigger_max_is_refused_with_its_memory_cost_and_the_ways_on() -> None:
    with pytest.raises(LabError) as e:
        check_fill(4 * FILL_LIMIT, force=False)
    message = str(e.value)
    assert "\n" not in message
    assert "4194304" in message and "1280 MiB" in message
    assert "--force" in message and f"nf_conntrack_max to {FILL_LIMIT}" in message


def test_force_takes_the_memory() -> None:
    check_fill(4 * FILL_LIMIT, force=True)


def test_no_limit_cannot_fill() -> None:
    with pytest.raises(LabError, match="cannot fill"):
        check_fill(0, force=True)


def test_the_cli_refuses_before_building_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.cli import load_commands
    from cttop.cli.app import app
    from cttop.lab import session, topology

    load_commands(["lab"])
    monkeypatch.setattr(session.sysctl, "read_int", lambda spec, name: 4 * FILL_LIMIT)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    built: list[object] = []
    monkeypatch.setattr(topology, "create", built.append)
    r = CliRunner().invoke(app, ["lab", "--scenario", "table-full", "--no-ui"])
    assert r.exit_code == 2
    [line] = r.stderr.strip().splitlines()
    assert "MiB of kernel memory" in line and "--force" in line
    assert built == []
