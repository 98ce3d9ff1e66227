"""Keys take effect in the order they were typed, each in the context the one before it left.

Textual forwards every key to the focused widget's queue at once and runs bindings only
when the key bubbles back up to the app. Keys that arrive in one read (fast typing, a
laggy SSH link, a paste without bracketed paste) therefore overtake each other:

- in an Input, ``abc``, Backspace, ``d`` gives ``abc``: ``d`` is inserted before
  Backspace's binding runs and deletes it (Textual issue 6605); Ctrl+U then
  ``hello`` leaves the line empty;
- ``/dst yahoo.com`` typed on the flow list runs ``d`` (Delete) and ``y`` (its Yes)
  as commands, because ``/`` moves the focus to the filter line only after the rest
  has been sent to the list.

So the app holds a key until the one before it has settled. A barrier message follows
each key down the same path and bubbles back: the key's own handler and binding have run.
What they set off (Enter submits, the submit closes the filter line, that moves the focus:
messages and callbacks on other queues) has run once the barrier has gone round the app's
queue and found it and every widget's queue empty. Only then does the next key go, to
whatever has the focus by then.

A screen that asks for an answer (:class:`AnsweredOnSight`) takes no key read before it
was drawn: a ``y`` typed ahead, or Tab then Enter, would confirm a change no one saw.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Final

from textual import events
from textual.app import App
from textual.message import Message

# A barrier can be lost with the widget it was sent to (the key closed its screen): after this long the next
# key goes anyway, rather than the app turning deaf. One that came back but finds the app never quiet (a busy
# box) settles at its next turn instead: what the key queued on the app (a focus move) has run by then.
SETTLE_MAX: Final = 0.5


class KeySettled(Message):
    """Sent after key ``seq`` to where the key went, then round the app's queue until all is quiet."""

    def __init__(self, seq: int) -> None:
        super().__init__()
        self.seq = seq


TYPED_AHEAD: Final = "a key typed before this dialog was on screen was ignored: read it, then answer"


class AnsweredOnSight:
    """For a screen: keys read before it was first drawn are dropped, with a word why (see the module)."""

    shown_at: float = math.inf  # the monotonic clock Textual stamps keys with, once the screen is on the terminal
    typed_ahead = 0  # keys dropped so far

    def _on_mount(self, event: events.Mount) -> None:
        self.call_after_refresh(self._drawn)  # type: ignore[attr-defined]

    def _drawn(self) -> None:
        self.shown_at = time.monotonic()

    def say(self, text: str) -> None:
        """Show ``text`` in the dialog itself: a toast, raised once it is open, would cover its buttons."""
        raise NotImplementedError


class KeysInOrder(App[None]):
    """An app whose keys reach their widgets one at a time (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._typed: deque[events.Key | events.Paste] = deque()
        self._unsettled: int | None = None  # the barrier awaited, None when no key is on its way
        self._sent = 0
        self._give_up: asyncio.TimerHandle | None = None
        self._back = False  # the barrier of the key on its way came back up at least once
        self._overdue = False  # SETTLE_MAX passed with the barrier going round: settle at its next turn

    async def on_event(self, event: events.Event) -> None:
        # A forwarded key is one already sent on its way (it bubbled back here); only new ones wait their turn.
        # A paste (bracketed) goes to the focus as keys do, so it waits behind the keys before it too.
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            self._typed.append(event)
            await self._send_typed()
            return
        await super().on_event(event)

    async def _send_typed(self) -> None:
        while self._typed and self._unsettled is None:
            key = self._typed.popleft()
            to = self.focused or self.screen  # where App.on_event sends it, unless a priority binding takes it
            await super().on_event(key)
            self._sent += 1
            self._unsettled = self._sent
            self._back = self._overdue = False
            to.post_message(KeySettled(self._sent))
            self._give_up = asyncio.get_running_loop().call_later(SETTLE_MAX, self._late, self._sent)

    def on_key(self, event: events.Key) -> None:
        """Before the bindings: a key read before the dialog on screen was drawn answers nothing."""
        screen = self.screen
        if isinstance(screen, AnsweredOnSight) and event.time < screen.shown_at:
            event.prevent_default()
            event.stop()
            screen.typed_ahead += 1
            if screen.typed_ahead == 1:
                screen.say(TYPED_AHEAD)

    def on_key_settled(self, message: KeySettled) -> None:
        message.stop()
        if message.seq != self._unsettled:
            return  # a late barrier of a key that was given up on
        self._back = True
        if not self._overdue and not self._quiet():
            # Looked at again once the loop has let the other widgets run: posted at once, the barrier would keep
            # the app's queue from ever emptying, and the app's task from ever yielding to them.
            asyncio.get_running_loop().call_soon(self.post_message, KeySettled(message.seq))
            return
        if self._give_up is not None:
            self._give_up.cancel()
        self._settled(message.seq)

    def _quiet(self) -> bool:
        """Nothing queued on the app or on any widget of any screen (the one settling is off the app's queue)."""
        if not self._message_queue.empty():
            return False
        return all(node._message_queue.empty() for screen in self.screen_stack
                   for node in screen.walk_children(with_self=True))

    def _late(self, seq: int) -> None:
        if seq != self._unsettled:
            return
        if self._back:
            self._overdue = True
        else:
            self._settled(seq)  # lost with its widget

    def _settled(self, seq: int) -> None:
        if seq == self._unsettled:
            self._unsettled = None
            self.call_next(self._send_typed)
