"""The ``type`` step: text into a seat's active persona through the input router, no key lost.

Theory. :func:`mux.input.pacing.type_batches` cuts the text into batches of key edges
that fit the keyboard the persona's keys reach now (:meth:`Persona.keyboard`: PS/2, or
virtio once the guest's driver is up). Each batch is one frame for
:meth:`Controller.input`, the same path as a physical keyboard's, so the router turns it
into one ``input-send-event``. Before each batch the keyboard's room is looked up
(:mod:`mux.guest.keyboard`: virtio's free buffers, or whether the guest has read every
byte of PS/2's queue) and the batch waits until it fits, so none is dropped however late
the guest takes them. Where QEMU cannot say, batches keep the pace's interval apart.
``rate`` (characters a second) slows typing down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from mux.app.controller import Controller
from mux.errors import StepFailed
from mux.guest.keyboard import ps2_room, virtio_room
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.input import pacing
from mux.input.events import EV_KEY, EV_SYN, InputEvent

ROOM_WAIT_S = 10.0  # a guest that takes no key for this long fails the step
_SYN = InputEvent(EV_SYN, 0, 0)


async def type_text(ctl: Controller, text: str, rate: float | None = None, seat: str | None = None) -> None:
    """Type ``text`` into the active persona of ``seat`` (None: the first seat), through the
    router, as that seat's keyboard.

    Raises:
        InputError: a character that cannot be typed, or a bad ``rate``.
        StepFailed: the guest took no key for :data:`ROOM_WAIT_S` seconds.
        SeatError: no such seat.
    """
    active = ctl.active if seat is None else ctl.active_on(seat)
    persona = ctl.persona(active) if active else None
    running = persona is not None and persona.state == RunState.RUNNING

    async def send(events: list[InputEvent]) -> None:
        await ctl.input(events, seat=seat)

    await type_keys(persona if running else None, text, ctl.input if seat is None else send, rate)


async def type_keys(persona: Persona | None, text: str, send: Callable[[list[InputEvent]], Awaitable[None]],
                    rate: float | None = None) -> None:
    """Type ``text`` as frames of key edges handed to ``send``, each once ``persona``'s
    keyboard has room for it (without a persona: PS/2's blind pace).

    Raises:
        InputError: a character that cannot be typed, or a bad ``rate``.
        StepFailed: the guest took no key for :data:`ROOM_WAIT_S` seconds.
    """
    keyboard = await persona.keyboard() if persona is not None else "ps2"
    watched = persona is not None and await _room(persona, keyboard) is not None
    for batch in pacing.type_batches(text, keyboard, rate, watched):
        began = time.monotonic()
        paced = not (persona is not None and watched and await _room_for(persona, keyboard, batch.cost))
        await send([*(InputEvent(EV_KEY, code, value) for code, value in batch.edges), _SYN])
        if paced or rate is not None:
            await asyncio.sleep(max(0.0, batch.wait_s - (time.monotonic() - began)))


async def _room(persona: Persona, keyboard: str) -> int | None:
    """What ``persona``'s keyboard can take now; None if QEMU cannot say."""
    if keyboard == "virtio":
        return await virtio_room(persona, persona.runtime_dir / f"{persona.name}.keyboard-room")
    return await ps2_room(persona)


async def _room_for(persona: Persona, keyboard: str, cost: int) -> bool:
    """Wait until ``persona``'s keyboard has room for ``cost``; False if QEMU cannot say
    (then the pace's interval must do)."""
    deadline = time.monotonic() + ROOM_WAIT_S
    while (room := await _room(persona, keyboard)) is not None and room < cost:
        if time.monotonic() > deadline:
            raise StepFailed(f"{persona.name}'s guest took no key for {ROOM_WAIT_S:.0f} s"
                             f" (its {keyboard} keyboard has room for {room} of {cost})")
        await asyncio.sleep(0.002)
    return room is not None
