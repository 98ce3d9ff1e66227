"""The main screen's keys, composed from key groups; command-palette entries; hiding writes in read-only mode.

Each feature's keys live in a KeyGroup of their own module in this folder (view, remedy,
host, incident, replay): its bindings, the actions they run, its palette entries.
A KeyedScreen holds one of each group it names in GROUPS, takes their bindings as
its own and hands each action to the group that declared it.

A group is a plain object rather than a widget because Textual looks for a key's
binding only along the focus chain (the focused widget, its ancestors, the screen,
the app): a widget beside the panels is not on it, and wrapping the panels in one
container per group would put the layout at the mercy of the key groups.

Adding a group (say, events on E): write ``class EventKeys(KeyGroup)`` in its own
module here with its ``BINDINGS``, an ``action_<name>`` method for each, its ``palette()``
entries, and ``check_action`` if some keys are offered only sometimes (mark an action
that changes the kernel ``@writes``: read-only then hides and refuses it; ``unavailable``
says why a key is off now, when it is pressed). Then add
it to ``MainScreen.GROUPS`` where its keys belong in the footer, and give it a section
in ``help_sections`` (both in app.py): tests/ui/test_key_groups.py fails until the
help lists its keys, or if two groups claim one action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, TypeVar

from textual import events
from textual.actions import parse
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from cttop.ui.access import cttop_app

if TYPE_CHECKING:
    from cttop.ui.app import CttopApp

F = TypeVar("F", bound=Callable[..., Any])
G = TypeVar("G", bound="KeyGroup")

# Footer keys that never drop for lack of width: how to get help, and how to get out.
ESSENTIAL_ACTIONS: Final = frozenset({"help", "quit", "close"})


class PaletteEntry(NamedTuple):
    title: str
    help: str
    callback: Callable[[], Any]
    # The binding action it runs, for the palette to show its keys; an ``action_*`` method says it itself.
    action: str = ""

    def action_name(self) -> str:
        return self.action or getattr(self.callback, "__name__", "").removeprefix("action_")


def writes(action: F) -> F:
    """Mark an ``action_*`` method as one that changes the kernel: hidden and refused when read-only."""
    action.cttop_writes = True  # type: ignore[attr-defined]
    return action


def write_refused(owner: object, action: str, read_only: bool) -> bool:
    """Whether ``owner``'s ``action`` changes the kernel and writes are off: then its key is hidden and refused."""
    return read_only and getattr(getattr(owner, f"action_{action}", None), "cttop_writes", False)


class KeyGroup:
    """One feature's keys on a KeyedScreen: ``BINDINGS``, the ``action_*`` methods they name, palette entries."""

    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self, screen: KeyedScreen) -> None:
        self.screen = screen

    @property
    def app(self) -> CttopApp:
        return cttop_app(self.screen)

    @classmethod
    def action_names(cls) -> list[str]:
        """The actions this group's keys run on the screen (not those aimed elsewhere, such as app.*)."""
        names = []
        for b in cls.BINDINGS:
            if isinstance(b, Binding):
                namespace, name, _ = parse(b.action)
                if not namespace and name not in names:
                    names.append(name)
        return names

    def on_mount(self) -> None:
        """The screen is mounted: start timers, mount widgets this group needs."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Whether one of this group's actions is offered now (read-only is the screen's to check)."""
        return True

    def unavailable(self, action: str) -> str | None:
        """Why one of this group's actions is off now, said when its key is pressed; None when it is not."""
        return None

    def palette(self) -> list[PaletteEntry]:
        return []


class KeyedScreen(Screen[None]):
    """A screen whose keys are its GROUPS': their bindings in GROUPS order (the footer's), their actions."""

    GROUPS: ClassVar[tuple[type[KeyGroup], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Before Textual's own hook, which merges the class's BINDINGS once, here.
        cls.BINDINGS = [b for group in cls.GROUPS for b in group.BINDINGS]
        super().__init_subclass__(**kwargs)

    def __init__(self) -> None:
        super().__init__()
        self.groups = tuple(group(self) for group in self.GROUPS)
        self._group_of: dict[str, KeyGroup] = {}
        for group in self.groups:
            for name in group.action_names():
                # Textual runs a binding's action as the screen's action_<name>: the group's method, bound here.
                if name in self._group_of or hasattr(self, f"action_{name}"):
                    raise TypeError(f"{type(group).__name__}: the action {name!r} is already the screen's")
                self._group_of[name] = group
                setattr(self, f"action_{name}", getattr(group, f"action_{name}"))
        # Each key's binding and group, for saying why a key that is off now does nothing.
        self._by_key: dict[str, tuple[KeyGroup, Binding]] = {}
        for group in self.groups:
            for b in group.BINDINGS:
                if isinstance(b, Binding):
                    for key in b.key.split(","):
                        self._by_key.setdefault(key.strip(), (group, b))

    def on_key(self, event: events.Key) -> None:
        """A key that is off now (a change's in read-only mode, a replay's in a live view) is hidden
        (check_action) and, pressed, says why: under stress a key that does nothing reads as a hang."""
        found = self._by_key.get(event.key)
        if found is None:
            return
        group, b = found
        _, action, _ = parse(b.action)
        why = ("this view is read-only, nothing is changed" if write_refused(group, action, cttop_app(self).read_only)
               else group.unavailable(action))
        if why is None:
            return
        event.stop()
        event.prevent_default()
        self.app.notify(f"{b.description or b.action}: {why}", severity="warning", timeout=4, markup=False)

    def group(self, kind: type[G]) -> G:
        """This screen's group of ``kind``."""
        return next(g for g in self.groups if isinstance(g, kind))

    def on_mount(self) -> None:
        # Textual calls each class's on_mount along the MRO, so a subclass's own has run by now.
        for group in self.groups:
            group.on_mount()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        group = self._group_of.get(action)
        if group is None:
            return True
        if write_refused(group, action, cttop_app(self).read_only):
            return False
        return group.check_action(action, parameters)

    def palette(self) -> list[PaletteEntry]:
        return [entry for group in self.groups for entry in group.palette()]


class KeyFooter(Footer):
    """The footer, fitted to its width: keys drop from the right end first, but never ? or q (or Esc).

    Textual's footer only clips, which at 80 columns cut off the very keys that say how
    to get help and out. The order of the keys is their priority (the bindings are
    listed most useful first), so the last ones that do not fit are hidden.
    """

    async def recompose(self) -> None:
        await super().recompose()
        self.fit()

    def on_resize(self) -> None:
        self.fit()

    def fit(self) -> None:
        keys = list(self.children)  # FooterKeys (no binding groups here), and the palette's, docked right
        palette = [k for k in keys if k.has_class("-command-palette")]
        shown = [k for k in keys if k not in palette]
        room = self.size.width - sum(map(_width, palette))
        need = sum(map(_width, shown))
        for key in reversed(shown):
            fits = need <= room
            key.display = fits or getattr(key, "action", "") in ESSENTIAL_ACTIONS
            if not key.display:
                need -= _width(key)


def _width(w: Widget) -> int:
    """Columns ``w`` takes in a row, margins included, whether or not it is laid out yet."""
    content = w.get_content_width(w.size, w.size)
    return content + w.styles.gutter.width + w.styles.margin.left + w.styles.margin.right
