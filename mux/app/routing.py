"""Input routing: events from any source through the pure router to the guests.

The :class:`~mux.input.router.Router` decides (sans-I/O) which persona gets what;
:class:`InputRouting` carries its decisions out: ``Send`` batches go to the persona's
QMP ``input-send-event`` (dropped, with a debug line, when it is not running), an
``Unmapped`` key is warned about once per code, and a completed hotkey
(``SwitchRequest``) is handed to the controller's ``hotkey(target)``: a switch, the
overview, a clipboard copy or paste. Hotkeys never reach a guest: the router swallows
their keys.

One lock serialises the router: a frame's actions are sent before the next frame is
fed, and the input part of a switch (:meth:`InputRouting.route_to`: the releases owed
to the persona left) never interleaves with a frame. A hotkey's action runs after the
lock is released, since a switch takes the lock again to apply itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from mux.config import Config
from mux.errors import PersonaError
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.input.events import InputEvent
from mux.input.router import Action, Router, Send, SwitchRequest, Unmapped
from mux.input.sources import InputSource

log = logging.getLogger(__name__)


class InputRouting:
    """Feeds input events to ``router`` and carries out what it decides."""

    def __init__(self, router: Router, personas: Mapping[str, Persona], *,
                 hotkey: Callable[[str], Awaitable[None]], input_came: Callable[[], None]) -> None:
        """``hotkey(target)`` carries a completed hotkey out (it must not raise MuxError);
        ``input_came()`` is told of every event (mux's attention switch waits for quiet)."""
        self.router = router
        self.personas = personas
        self.hotkey = hotkey
        self.input_came = input_came
        self._lock = asyncio.Lock()
        self._unmapped_reported: set[int] = set()

    async def input(self, events: Iterable[InputEvent]) -> None:
        """Route events from any input source; a completed hotkey is carried out at once."""
        for event in events:
            async with self._lock:
                actions = self.router.feed(event)
                self.input_came()
                await self._dispatch(actions)
            for action in actions:
                if isinstance(action, SwitchRequest):
                    await self.hotkey(action.target)

    async def route_to(self, old: str | None, new: str) -> None:
        """The input part of a switch: release what ``old`` holds, route new input to ``new``.

        Raises:
            UnknownPersona: ``new`` is not one of the router's personas.
        """
        async with self._lock:
            await self._dispatch(self.router.switch(new))

    async def pump(self, source: InputSource) -> None:
        """Feed one input source's frames until cancelled (or the source ends)."""
        batches = cast(AsyncGenerator[list[InputEvent], None], source.batches())
        async with contextlib.aclosing(batches) as frames:
            async for frame in frames:
                await self.input(frame)

    async def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                persona = self.personas[action.persona]
                if persona.state != RunState.RUNNING:
                    log.debug("%s is %s; dropped %d input events", persona.name, persona.state,
                              len(action.events))
                    continue
                try:
                    await persona.send_input(action.events)
                except PersonaError as exc:
                    log.warning("%s", exc)
            elif isinstance(action, Unmapped) and action.code not in self._unmapped_reported:
                self._unmapped_reported.add(action.code)
                log.warning("key code %d has no QEMU key code; it is not sent", action.code)


def router_options(config: Config) -> dict[str, Any]:
    """The :class:`~mux.input.router.Router` keywords a config's ``[input]`` sets."""
    options: dict[str, Any] = {"autorepeat": config.input.autorepeat}
    if config.input.hotkeys is not None:
        options["hotkeys"] = config.input.hotkeys
    return options
