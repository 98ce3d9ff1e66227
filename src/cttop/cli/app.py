"""The typer app, the options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from typer._click import Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from cttop.errors import CttopError
from cttop.filter import Filter, compile_filter, parse, uses_owners
from cttop.kernel.netns import NetnsSpec


class OneLineUsage(TyperGroup):
    """A usage error (unknown option, bad value, missing argument) in the one line every other cttop error
    takes, not click's usage block; exit 2, or a command's own ``usage_exit`` (doctor: 3, "unknown")."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as e:
            _usage_failed(e, None, 2)

    def invoke(self, ctx: Context) -> object:
        try:
            return super().invoke(ctx)
        except UsageError as e:
            name = ctx.invoked_subcommand
            cmd = self.get_command(ctx, name) if name else None
            _usage_failed(e, name, getattr(cmd, "usage_exit", 2))


def _usage_failed(e: UsageError, command: str | None, code: int) -> NoReturn:
    where = f"cttop {command}" if command else "cttop"
    fail(f"{command + ': ' if command else ''}{e.format_message().rstrip('.')}; see {where} --help", code)


app = typer.Typer(
    cls=OneLineUsage,
    name="cttop",
    help="A top for the Linux conntrack table: see who fills it, and fix it.",
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

NetnsOpt = Annotated[str | None, typer.Option("--netns", help="Network namespace by name, as `ip netns list` shows it.")]
NetnsPidOpt = Annotated[int | None, typer.Option("--netns-pid", help="Network namespace of this process.")]
NetnsPathOpt = Annotated[str | None, typer.Option("--netns-path", help="Network namespace by path (e.g. /proc/PID/ns/net).")]



def not_nan(ctx: typer.Context, param: typer.CallbackParam, value: float | None) -> float | None:
    """The callback of every float option with a min and a max: click checks the range by comparison, which nan
    passes (every comparison with nan is false). Refused here in click's own words, with the range."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter(f"nan is not in the range {param.type._describe_range()}.")  # type: ignore[attr-defined]
    return value


P = ParamSpec("P")
R = TypeVar("R")


def netns_spec(name: str | None, pid: int | None, path: str | None) -> NetnsSpec:
    if sum(x is not None for x in (name, pid, path)) > 1:
        fail("--netns, --netns-pid and --netns-path are exclusive: give one")
    return NetnsSpec(name=name, pid=pid, path=path)


def command_filter(text: str, spec: NetnsSpec) -> Filter:
    """``--filter`` of a one-shot command. The owner words (``pid``, ``process``...) work: the
    namespace's sockets are read once, now, and only when the filter uses them."""
    if not uses_owners(parse(text, owners=True)):
        return compile_filter(text)
    from cttop.fleet.owners import Owners  # psutil and a socket dump: only for filters that ask

    owners = Owners(spec)
    owners.refresh()
    return compile_filter(text, owners)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``cttop: message`` on stderr and exit; never a traceback."""
    print(f"cttop: {message}", file=sys.stderr)
    raise typer.Exit(code)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn CttopError (bad input, refused operation) into a one-line error and exit 2."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CttopError as e:
            fail(str(e))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


@app.callback(invoke_without_command=True)
def top(
    ctx: typer.Context,
    netns: NetnsOpt = None,
    netns_pid: NetnsPidOpt = None,
    netns_path: NetnsPathOpt = None,
    interval: Annotated[float, typer.Option("--interval", "-i", min=0.1, max=3600, callback=not_nan,
                                            help="Seconds between refreshes.")] = 1.0,
    read_only: Annotated[bool, typer.Option("--read-only", help="Hide and refuse every change.")] = False,
) -> None:
    """With no command: the live view (`cttop`, `cttop --netns web1`)."""
    if ctx.invoked_subcommand is not None:
        if netns is not None or netns_pid is not None or netns_path is not None:
            fail(f"put --netns after the command name: cttop {ctx.invoked_subcommand} --netns …")
        if read_only:
            # Imported only here: the actions package costs start-up time to commands that never write.
            from cttop.actions.plan import set_read_only

            set_read_only(True)
        return
    spec = netns_spec(netns, netns_pid, netns_path)
    from cttop.ui import run_tui  # textual costs 150 ms: only the live view pays it

    guarded(run_tui)(spec, read_only=read_only, interval=interval)
