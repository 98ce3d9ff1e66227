"""The config file: where it is read from, precedence (system < user < flags), and every way it can be bad."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cttop import config
from cttop.cli import load_commands
from cttop.cli.app import app
from cttop.config import ConfigError, Settings, default_paths, load
from cttop.kernel.netns import NetnsSpec
from tests.conftest import run_cttop


@pytest.fixture(autouse=True)
def restore_active() -> Iterator[None]:
    yield
    config.activate(Settings())


def write(path: Path, text: str, mode: int = 0o644) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


# --- where ---------------------------------------------------------------------------------

def test_system_then_user_under_xdg_config_home() -> None:
    assert default_paths({"XDG_CONFIG_HOME": "/x/conf"}) == ["/etc/cttop/config.toml", "/x/conf/cttop/config.toml"]


def test_user_file_defaults_to_the_running_users_home_not_home_env() -> None:
    home = pwd.getpwuid(os.geteuid()).pw_dir
    for env in ({}, {"HOME": "/elsewhere"}, {"XDG_CONFIG_HOME": "relative/ignored"}):
        assert default_paths(env) == ["/etc/cttop/config.toml", f"{home}/.config/cttop/config.toml"]


def test_a_uid_with_no_passwd_entry_has_only_the_system_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert default_paths({}) == ["/etc/cttop/config.toml"]
    assert default_paths({"XDG_CONFIG_HOME": "/x"}) == ["/etc/cttop/config.toml", "/x/cttop/config.toml"]


def test_cttop_config_replaces_both() -> None:
    assert default_paths({"CTTOP_CONFIG": "/t/c.toml", "XDG_CONFIG_HOME": "/x"}) == ["/t/c.toml"]


# --- precedence ----------------------------------------------------------------------------

def test_user_overrides_system_key_by_key_and_origin_names_file_and_line(tmp_path: Path) -> None:
    system = write(tmp_path / "system.toml", 'read_only = true\ninterval = 5\ntheme = "nord"\n')
    user = write(tmp_path / "user.toml", '# mine\n\ninterval = 0.5\nmouse = false\ngroup_by = "dport"\n')
    s = load([system, str(tmp_path / "absent.toml"), user])
    assert (s.read_only, s.interval, s.mouse, s.group_by, s.theme) == (True, 0.5, False, "dport", "nord")
    assert s.origin == {"read_only": f"{system}:1", "interval": f"{user}:3", "theme": f"{system}:3",
                        "mouse": f"{user}:4", "group_by": f"{user}:5"}


def test_no_file_is_the_defaults() -> None:
    assert load(["/nonexistent/cttop.toml"]) == Settings()


def test_flags_override_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live view is started with the files' settings, each flag given on top (run_tui reads them)."""
    cfg = write(tmp_path / "c.toml", "interval = 5\nmouse = false\nread_only = true\n")
    seen: list[tuple[bool, Settings]] = []
    monkeypatch.setattr("cttop.ui.run_tui", lambda spec, read_only: seen.append((read_only, config.active())))
    monkeypatch.setattr("cttop.actions.plan._read_only_forced", False)  # the callback may force it
    load_commands([])
    for args, want in (([], (True, 5.0, False)),
                       (["--interval", "2", "--mouse", "--no-read-only"], (False, 2.0, True)),
                       (["-i", "1", "--no-mouse"], (True, 1.0, False)),  # a flag equal to the default still wins
                       (["--no-config"], (False, 1.0, True))):
        r = CliRunner(env={"CTTOP_CONFIG": cfg}).invoke(app, args)
        assert r.exit_code == 0, r.output
        ro, s = seen.pop()
        assert (ro, s.interval, s.mouse) == want, args
        assert s.read_only == ro


def test_run_tui_applies_interval_theme_group_and_mouse(monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.ui import app as ui_app
    from cttop.ui import run_tui
    from tests.ui.fixed_source import FixedSource

    ran: dict[str, object] = {}

    def fake_run(self: ui_app.CttopApp, *, mouse: bool = True) -> None:
        ran.update(theme=self.theme, mouse=mouse, group=self.group, interval=self.collector.interval)

    monkeypatch.setattr(ui_app.CttopApp, "run", fake_run)
    monkeypatch.setattr("cttop.ui.need_terminal", lambda: None)  # the test has no terminal; run is faked
    config.activate(Settings(interval=2.5, mouse=False, group_by="dport", theme="nord"))
    run_tui(None, source=FixedSource())  # type: ignore[arg-type]
    assert ran == {"theme": "nord", "mouse": False, "group": "dport", "interval": 2.5}


def test_resolve_from_the_file_or_the_flag_starts_the_view_with_names(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.live.resolve import Resolver
    from cttop.ui import app as ui_app
    from tests.ui.fixed_source import FixedSource

    cfg = write(tmp_path / "c.toml", "resolve = true\n")
    started: list[bool] = []

    def fake_run(self: ui_app.CttopApp, *, mouse: bool = True) -> None:
        started.append(self.resolver is not None)
        self.set_resolve(False)  # its threads stop

    monkeypatch.setattr(ui_app.CttopApp, "run", fake_run)
    monkeypatch.setattr("cttop.ui.need_terminal", lambda: None)
    monkeypatch.setattr("cttop.ui.LiveSource", lambda spec: FixedSource())
    monkeypatch.setattr(ui_app, "Resolver", lambda: Resolver(["127.0.0.1"]))  # never asked: run is faked
    load_commands([])
    for args, want in (([], True), (["--no-resolve"], False), (["--no-config"], False),
                       (["--no-config", "--resolve"], True)):
        r = CliRunner(env={"CTTOP_CONFIG": cfg}).invoke(app, args)
        assert r.exit_code == 0, r.output
        assert started.pop() is want, args


def test_an_unknown_theme_is_one_error_naming_where_it_was_set(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.ui import run_tui
    from tests.ui.fixed_source import FixedSource

    monkeypatch.setattr("cttop.ui.need_terminal", lambda: None)  # the test has no terminal; it fails before run

    cfg = write(tmp_path / "c.toml", 'mouse = true\ntheme = "no-such-theme"\n')
    config.activate(load([cfg]))
    with pytest.raises(ConfigError, match=rf"^{cfg}:2: theme: 'no-such-theme' is not a theme \(choose from .*nord"):
        run_tui(None, source=FixedSource())  # type: ignore[arg-type]


# --- bad files: one line naming the file, the line and the key; exit 2; nothing runs ---------------

BAD = [
    ("bad TOML", "read_only = true\nmouse = \n", ":2: mouse: not valid TOML (Invalid value)"),
    # tomllib gives no line for a value left open at the end: the last line with something on it
    ("open at the end", "read_only = true\nmouse = [\n\n",
     ":2: mouse: not valid TOML (Invalid value at the end of the file)"),
    ("string open at the end", 'theme = """nord\n',
     ":1: theme: not valid TOML (Unterminated string at the end of the file)"),
    ("unknown key", "# c\nread_only = true\ncolour = 'red'\n",
     ":3: colour: unknown key (known: read_only, interval, mouse, group_by, theme, resolve, max_flows)"),
    ("a table", "[ui]\nmouse = false\n", ":1: ui: unknown key"),
    ("wrong type", 'interval = 1\nmouse = "no"\n', ":2: mouse: expected true or false, got the string 'no'"),
    ("wrong type, number", "read_only = 1\n", ":1: read_only: expected true or false, got the number 1"),
    ("bool is no number", "interval = true\n", ":1: interval: expected a number of seconds, got true"),
    ("max_flows not a count", "max_flows = 1.5\n", ":1: max_flows: expected a number of flows, got the number 1.5"),
    ("max_flows negative", "max_flows = -5\n", ":1: max_flows: -5 is negative (0 holds every flow)"),
    ("out of range", "\n\ninterval = 0\n", ":3: interval: 0 is out of range (0.1 to 3600 seconds)"),
    ("out of range, high", "interval = 3601\n", ":1: interval: 3601 is out of range"),
    ("no such group", 'group_by = "nope"\n', ":1: group_by: 'nope' is not a group key (choose from src, dst"),
    ("empty theme", 'theme = ""\n', ":1: theme: expected a theme name, got the string ''"),
    ("control characters shown escaped", 'mouse = "\\u001b[31m"\n',
     r":1: mouse: expected true or false, got the string '\x1b[31m'"),
    # tomllib recurses once a level: a kilobyte of brackets exhausted the stack, a traceback of 3,000 lines
    ("nested too deeply", "read_only = true\nmouse = " + "[" * 500 + "]" * 500 + "\n",
     ":2: not valid TOML (values nested too deeply)"),
    ("inline tables nested too deeply", "mouse = " + "{a = " * 500 + "1" + "}" * 500 + "\n",
     ":1: not valid TOML (values nested too deeply)"),
]


@pytest.mark.parametrize(("text", "says"), [(t, s) for _, t, s in BAD], ids=[i for i, _, _ in BAD])
def test_bad_file_is_one_line_exit_2(tmp_path: Path, text: str, says: str) -> None:
    cfg = write(tmp_path / "config.toml", text)
    r = run_cttop("namespaces", env={"CTTOP_CONFIG": cfg})
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"cttop: {cfg}{says}")
    assert r.stderr.rstrip().endswith("; fix it, or run cttop --no-config for the defaults")


def test_no_config_runs_on_the_defaults_despite_a_bad_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.toml", "colour = 'red'\n")
    r = run_cttop("--no-config", "--version", env={"CTTOP_CONFIG": cfg})
    assert r.returncode == 0
    load_commands(["tunables"])
    r2 = CliRunner(env={"CTTOP_CONFIG": cfg}).invoke(app, ["--no-config", "tunables", "--help"])
    assert r2.exit_code == 0 and "Usage: cttop tunables" in r2.stdout
    r3 = CliRunner(env={"CTTOP_CONFIG": cfg}).invoke(app, ["tunables", "--help"])
    assert r3.exit_code == 2 and "colour: unknown key" in r3.stderr


# --- files that are not trusted -------------------------------------------------------------

def untrusted(kind: str, tmp_path: Path) -> tuple[str, str]:
    good = write(tmp_path / "good.toml", "mouse = false\n")
    if kind == "symlink":
        (tmp_path / "link.toml").symlink_to(good)
        return str(tmp_path / "link.toml"), "a symlink; config files are not followed through symlinks"
    if kind == "group-writable":
        return write(tmp_path / "gw.toml", "mouse = false\n", 0o664), "writable by group (mode 0664): not trusted"
    if kind == "world-writable":
        return write(tmp_path / "ww.toml", "mouse = false\n", 0o646), "writable by others (mode 0646): not trusted"
    if kind == "other owner":
        os.chown(good, 65534, 65534)
        return good, "owned by uid 65534 (nobody), not root or you: not trusted"
    if kind == "not a file":
        return "/dev/null", "not a regular file"
    if kind == "too big":
        return write(tmp_path / "big.toml", "# x\n" * 20000), "larger than 64 KiB: not a cttop config"
    assert kind == "not utf-8"
    (tmp_path / "latin1.toml").write_bytes(b"# ok\n# caf\xe9\n")
    return str(tmp_path / "latin1.toml"), "not UTF-8 text"


@pytest.mark.parametrize("kind", ["symlink", "group-writable", "world-writable", "other owner", "not a file",
                                  "too big", "not utf-8"])
def test_untrusted_file_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    if kind == "other owner" and os.geteuid() != 0:
        pytest.skip("only root can give a file to another owner")
    path, says = untrusted(kind, tmp_path)
    r = run_cttop("namespaces", env={"CTTOP_CONFIG": path})
    assert (r.returncode, r.stdout, r.stderr.count("\n")) == (2, "", 1), r.stderr
    where = f"{path}:2" if kind == "not utf-8" else path
    assert r.stderr.startswith(f"cttop: {where}: {says}; ")


def test_a_missing_named_file_is_an_error_but_missing_default_files_are_not(tmp_path: Path) -> None:
    r = run_cttop("namespaces", env={"CTTOP_CONFIG": str(tmp_path / "none.toml")})
    says = f"cttop: {tmp_path}/none.toml: no such config file (CTTOP_CONFIG names it)\n"
    assert (r.returncode, r.stdout, r.stderr) == (2, "", says)
    with pytest.raises(ConfigError, match=r"none.toml: no such config file \(CTTOP_CONFIG names it\)$"):
        load([str(tmp_path / "none.toml")], required=True)
    assert load([str(tmp_path / "none.toml")]) == Settings()


def test_max_flows_from_the_file_or_the_flag_bounds_the_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.ui import app as ui_app
    from tests.ui.fixed_source import FixedSource

    cfg = write(tmp_path / "c.toml", "max_flows = 5000\n")
    bounds: list[int | None] = []

    def fake_run(self: ui_app.CttopApp, *, mouse: bool = True) -> None:
        bounds.append(self.collector._max_flows if self.max_flows is not None else self.max_flows)

    monkeypatch.setattr(ui_app.CttopApp, "run", fake_run)
    monkeypatch.setattr("cttop.ui.need_terminal", lambda: None)
    class LiveLike(FixedSource):  # a live namespace's source: only those are ever bounded
        spec = NetnsSpec()

    monkeypatch.setattr("cttop.ui.LiveSource", lambda spec: LiveLike())
    load_commands([])
    for args, want in (([], 5000), (["--max-flows", "70"], 70), (["--max-flows", "0"], None),
                       (["--no-config"], config.MAX_FLOWS)):
        r = CliRunner(env={"CTTOP_CONFIG": cfg}).invoke(app, args)
        assert r.exit_code == 0, r.output
        assert bounds.pop() == want, args
