"""The typer app, the options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from typer import Context, TyperException
from typer.core import TyperGroup

from cttop.errors import CttopError
from cttop.filter import Filter, OwnerSource, compile_filter, parse, uses_owners
from cttop.kernel.netns import NetnsSpec


class OneLineUsage(TyperGroup):
    """A usage error (unknown option, bad value, missing argument) in the one line every other cttop error
    takes, not click's usage block; exit 2, or a command's own ``usage_exit`` (doctor: 3, "unknown")."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except TyperException as e:
            if not _is_usage(e):
                raise
            _usage_failed(e, None, 2)

    def invoke(self, ctx: Context) -> object:
        try:
            return super().invoke(ctx)
        except TyperException as e:
            if not _is_usage(e):
                raise
            name = ctx.invoked_subcommand
            cmd = self.get_command(ctx, name) if name else None
            _usage_failed(e, name, getattr(cmd, "usage_exit", 2))


def _is_usage(e: TyperException) -> bool:
    # Typer's usage errors (a bad option, value or argument) are the exceptions that exit 2; its public
    # surface names only their base, TyperException.
    return getattr(e, "exit_code", None) == 2


def _message(e: TyperException) -> str:
    # A usage error's own text ("Missing argument 'EXPR'"), without click's usage block.
    fmt = getattr(e, "format_message", None)
    return fmt() if callable(fmt) else str(e)


def _usage_failed(e: TyperException, command: str | None, code: int) -> NoReturn:
    where = f"cttop {command}" if command else "cttop"
    fail(f"{command + ': ' if command else ''}{_message(e).rstrip('.')}; see {where} --help", code)


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

P = ParamSpec("P")
R = TypeVar("R")


def netns_spec(name: str | None, pid: int | None, path: str | None) -> NetnsSpec:
    if sum(x is not None for x in (name, pid, path)) > 1:
        fail("--netns, --netns-pid and --netns-path are exclusive: give one")
    return NetnsSpec(name=name, pid=pid, path=path)


def command_filter(text: str, spec: NetnsSpec, owners: OwnerSource | None = None) -> Filter:
    """``--filter`` of a one-shot command. The owner words (``pid``, ``process``...) work: the
    namespaces' sockets are read once, now (unless the caller did, into ``owners``), and only
    when the filter uses them."""
    if not uses_owners(parse(text, owners=True)):
        return compile_filter(text)
    if owners is None:
        from cttop.host.containers import host_owners  # psutil and socket dumps: only for filters that ask

        fresh = host_owners(spec)
        fresh.refresh()
        owners = fresh
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
    interval: Annotated[float, typer.Option("--interval", "-i", min=0.1, help="Seconds between refreshes.")] = 1.0,
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
