"""The typer app: its root, its one-line usage errors, the options every command shares made typer's.

What the commands share without typer (errors and exits, options as data) is in cli/base.py."""

from __future__ import annotations

import copy
import functools
import inspect
import math
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer import Context, TyperException
from typer.core import TyperGroup

from cttop import config
from cttop.cli.base import NETNS_OPTS, Opt, fail, guarded, netns_spec, settle
from cttop.kernel.netns import NetnsSpec


class OneLineUsage(TyperGroup):
    """A usage error (unknown option, bad value, missing argument) in the one line every other cttop error
    takes, not click's usage block; exit 2, or a command's own ``usage_exit`` (doctor: 3, "unknown").
    Every number option of every command below it takes ASCII digits only (:func:`ascii_numbers`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # typer builds the root with every command already made: the one point every option of a run passes.
        ascii_numbers(self)

    # typer.Context, not the click Context the base names: typer vendors click, and its module is private.
    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:  # type: ignore[override]
        try:
            return super().parse_args(ctx, args)
        except TyperException as e:
            if not _is_usage(e):
                raise
            _usage_failed(e, None, 2)

    def invoke(self, ctx: Context) -> object:  # type: ignore[override]
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


# click's int and float types (ranges included), by their public names: typer vendors click, so its classes
# cannot be imported here.
_NUMBER_TYPES = {"IntParamType", "FloatParamType"}
# What a number option takes: ASCII digits, one sign, and for a float Python's decimal point and exponent, or
# its inf and nan, which every float option refuses itself, in words that give its range. int() and float()
# also take any script's digits (``--top ٣`` was 3), underscores (``1_000``) and surrounding spaces: cttop's own
# parsers (durations, ports) take none of them.
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))")


class _AsciiDigits:
    """Put before a click int or float type: refuses what is not a plain number (:data:`_FLOAT`) in click's
    words, which name the option; the type's own checks (its range) follow."""

    _number: re.Pattern[str]

    def convert(self, value: Any, param: typer.CallbackParam | None, ctx: typer.Context | None) -> Any:
        if isinstance(value, str) and not self._number.fullmatch(value):
            self.fail(f"{value!r} is not a number in ASCII digits (0-9).", param, ctx)  # type: ignore[attr-defined]
        return super().convert(value, param, ctx)  # type: ignore[misc]


@functools.cache
def _ascii_only(number: type) -> type:
    # Named as the type it extends, so it reads the same in a repr (<IntRange x>=1>); its name, range and help
    # are the base's.
    is_float = "FloatParamType" in {c.__name__ for c in number.__mro__}
    return type(number.__name__, (_AsciiDigits, number), {"_number": _FLOAT if is_float else _INT})


def ascii_numbers(command: Any) -> None:
    """Make every int and float parameter of ``command`` and the commands below it take plain ASCII numbers only."""
    for param in command.params:
        if _NUMBER_TYPES & {c.__name__ for c in type(param.type).__mro__}:
            number = copy.copy(param.type)  # not in place: click's INT and FLOAT are shared instances
            number.__class__ = _ascii_only(param.type.__class__)
            param.type = number
    for sub in getattr(command, "commands", {}).values():
        ascii_numbers(sub)


app = typer.Typer(
    cls=OneLineUsage,
    name="cttop",
    help="A top for the Linux conntrack table: see who fills it, and fix it.\n\n"
         "With no command: the live view (`cttop`, `cttop --netns web1`). Its settings come from "
         f"{config.SYSTEM_PATH}, then ~/.config/cttop/config.toml (${config.CONFIG_ENV} instead of both); "
         "flags override both.",
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def not_nan(ctx: typer.Context, param: typer.CallbackParam, value: float | None) -> float | None:
    """The callback of every float option with a min and a max: click checks the range by comparison, which nan
    passes (every comparison with nan is false). Refused here in click's own words, with the range."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter(f"nan is not in the range {param.type._describe_range()}.")  # type: ignore[attr-defined]
    return value


def a_path(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """The callback of every path option: a blank one (an unset variable, ``--state-dir "$DIR"``) is refused,
    not taken for the option left out, whose default is another place (/etc for ``--persist-dir``)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("an empty path." if param.required else
                                 "an empty path; leave the option out for its default.")
    return value


R = TypeVar("R")


def typer_params(opts: Sequence[Opt]) -> list[inspect.Parameter]:
    """typer's keyword parameters for options declared as data (cli/base.py): flags, help, range, completion.
    A float with a range refuses nan (:func:`not_nan`), as every such option here does."""
    params = []
    for o in opts:
        extra: dict[str, Any] = {}
        if o.kind is float and o.low is not None and o.high is not None:
            extra["callback"] = not_nan
        if o.complete is not None:
            extra["autocompletion"] = o.complete
        kind: Any = o.kind if o.default is not None else o.kind | None
        option = typer.Option(*o.flags, help=o.help, metavar=o.metavar, min=o.low, max=o.high, **extra)
        params.append(inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                        annotation=Annotated[kind, option]))
    return params


def with_options(opts: Sequence[Opt]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command that takes ``**values`` the options ``opts`` (declared as data, cli/base.py) in their
    place: typer reads a command's options from its signature."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        sig = inspect.signature(fn, eval_str=True)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        params += typer_params(opts)
        fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn

    return decorate


# Where a @netns_options() command's namespace options go; the decorator passes the NetnsSpec they name.
NETNS = NetnsSpec()


def netns_options(usage_exit: int = 2) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command --netns, --netns-pid and --netns-path, in the place of its ``spec`` parameter (so
    ``--help`` lists them there), and call it with the NetnsSpec they name. More than one of them is a
    one-line error exiting ``usage_exit``."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        # Typer reads the command's options from this signature: the command's own, ``spec`` replaced.
        sig = inspect.signature(fn, eval_str=True)
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.name == "spec":
                params += typer_params(NETNS_OPTS)
            else:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @wraps(fn)
        def command(*args: object, netns: str | None = None, netns_pid: int | None = None,
                    netns_path: str | None = None, **kwargs: object) -> R:
            return fn(*args, spec=netns_spec(netns, netns_pid, netns_path, usage_exit), **kwargs)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def _print_version(value: bool) -> None:
    if value:
        from cttop import version

        print(f"cttop {version()}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
@netns_options()
def top(
    ctx: typer.Context,
    spec: NetnsSpec = NETNS,
    interval: Annotated[float, typer.Option("--interval", "-i", min=config.INTERVAL_RANGE[0],
                                            max=config.INTERVAL_RANGE[1], callback=not_nan,
                                            help="Seconds between refreshes.")] = config.DEFAULT_INTERVAL,
    read_only: Annotated[bool | None, typer.Option("--read-only/--no-read-only", help="Hide and refuse every "
                                                   "change (--no-read-only: even if the config says so).")] = None,
    mouse: Annotated[bool | None, typer.Option("--mouse/--no-mouse", help="Let the live view use the mouse "
                                               "(--no-mouse: the terminal selects text, e.g. to copy over SSH).")
                     ] = None,
    no_config: Annotated[bool, typer.Option("--no-config", help="Read no config file: built-in defaults and the "
                                            "flags only.")] = False,
    resolve: Annotated[bool | None, typer.Option("--resolve/--no-resolve", help="Show addresses by their reverse "
                                                 "DNS names, looked up in the background (R toggles it in the "
                                                 "view).")] = None,
    max_flows: Annotated[int | None, typer.Option("--max-flows", min=0, metavar="N", help="Hold at most N flows "
                                                  f"(default {config.MAX_FLOWS:,}): over it the view counts the "
                                                  "table without holding it, and the list shows the first flows "
                                                  "read from the kernel. 0: hold every flow.")] = None,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print cttop's version and exit.")] = False,
) -> None:
    """The live view, when no command is given; every command's shared options and config otherwise."""
    # Whether --interval was given (a config's interval yields to it): the source enum's name, public as such.
    source = ctx.get_parameter_source("interval")
    given = source is not None and source.name != "DEFAULT"
    settings = settle(no_config, read_only=read_only, mouse=mouse, interval=interval if given else None,
                      resolve=resolve, max_flows=max_flows)
    if ctx.invoked_subcommand is not None:
        if not spec.is_own:
            option = spec.argv()[0]  # the option as typed: --netns, --netns-pid or --netns-path
            fail(f"put {option} after the command name: cttop {ctx.invoked_subcommand} {option} …")
        if settings.read_only:
            # Imported only here: the actions package costs start-up time to commands that never write.
            from cttop.actions.plan import set_read_only

            set_read_only(True)
        return
    from cttop.ui import run_tui  # textual costs 150 ms: only the live view pays it

    guarded(run_tui)(spec, read_only=settings.read_only)


# --- what long-running commands share (record, export) ---------------------------------------

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")  # ASCII digits: ٣s is no duration
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DAY = 86400.0


def parse_duration(text: str, option: str, low: float, high: float) -> float:
    """``text`` in seconds, refused outside ``low``..``high`` seconds (too many digits make inf: refused too)."""
    m = _DURATION.match(text)
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m is not None else math.nan
    if not low <= seconds <= high:
        fail(f"{option} {text!r}: give a duration from {_span(low)} to {_span(high)}, such as 30, 30s, 5m or 1h")
    return seconds


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds:g}s"


@contextmanager
def stopped_by_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so long runs end cleanly instead of mid-write."""
    stop = threading.Event()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for s in handlers:
        signal.signal(s, on_signal)
    try:
        yield stop
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
