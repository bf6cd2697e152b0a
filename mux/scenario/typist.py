"""The ``type`` step: text into the active persona through the input router, no key lost.

Theory. :func:`mux.input.pacing.type_batches` cuts the text into batches of key edges
that fit the keyboard the persona's keys reach now (:meth:`Persona.keyboard`: PS/2, or
virtio once the guest's driver is up). Each batch is one frame for
:meth:`Controller.input`, the same path as a physical keyboard's, so the router turns it
into one ``input-send-event``. A virtio keyboard's room is looked up before each batch
(:func:`mux.guest.keyboard.virtio_room`) and the batch waits until it fits, so none is
dropped however late the guest takes them; where QEMU cannot say, and on PS/2, whose
queue the host cannot see, batches keep the pace's interval apart. ``rate`` (characters
a second) slows typing down.
"""

from __future__ import annotations

import asyncio
import time

from mux.app.controller import Controller
from mux.errors import StepFailed
from mux.guest.keyboard import virtio_room
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.input import pacing
from mux.input.events import EV_KEY, EV_SYN, InputEvent

ROOM_WAIT_S = 10.0  # a guest that takes no key for this long fails the step
_SYN = InputEvent(EV_SYN, 0, 0)


async def type_text(ctl: Controller, text: str, rate: float | None = None) -> None:
    """Type ``text`` into the active persona.

    Raises:
        InputError: a character that cannot be typed, or a bad ``rate``.
        StepFailed: a virtio guest took no key for :data:`ROOM_WAIT_S` seconds.
    """
    active = ctl.active
    persona = ctl.persona(active) if active else None
    running = persona is not None and persona.state == RunState.RUNNING
    keyboard = await persona.keyboard() if persona is not None and running else "ps2"
    for batch in pacing.type_batches(text, keyboard, rate):
        began = time.monotonic()
        paced = True
        if keyboard == "virtio" and persona is not None:
            paced = not await _room_for(persona, len(batch.edges) + 1)
        await ctl.input([*(InputEvent(EV_KEY, code, value) for code, value in batch.edges), _SYN])
        if paced or rate is not None:
            await asyncio.sleep(max(0.0, batch.wait_s - (time.monotonic() - began)))


async def _room_for(persona: Persona, events: int) -> bool:
    """Wait until ``persona``'s virtio keyboard has room for ``events``; False if QEMU
    cannot say (then the pace's interval must do)."""
    scratch = persona.runtime_dir / f"{persona.name}.keyboard-room"
    deadline = time.monotonic() + ROOM_WAIT_S
    while (room := await virtio_room(persona, scratch)) is not None and room < events:
        if time.monotonic() > deadline:
            raise StepFailed(f"{persona.name}'s guest took no key for {ROOM_WAIT_S:.0f} s"
                             f" (its virtio keyboard has room for {room} events)")
        await asyncio.sleep(0.005)
    return room is not None
