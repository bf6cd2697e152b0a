"""The controller's sound: probing for it at start, and following the active persona.

Theory. Whether ``audio`` personas get a working sound card is decided once, before any
of them launches (their command line depends on it, and
:func:`mux.guest.hardware.hardware_argv` stays pure): QEMU must have its ``pa`` backend
(Debian's ``qemu-system-gui``) and a sound server must answer (:mod:`mux.audio.server`).
If not, ONE warning names what to install or start; those personas still run, with a
sound card on ``-audiodev none`` (the guest's hardware does not change), and their state
is ``"unavailable"``. Otherwise :class:`~mux.audio.follow.AudioFollower` runs as one of the
controller's loops, told of every :class:`~mux.app.events.Switched` on the hub (each names
its seat), and each persona's state change is published as
:class:`~mux.app.events.AudioChanged`.

Seats (``[[seat]]``): every persona active on some seat is live, on its seat's
``audio_sink`` if the seat has one; the others are muted or ducked as with one seat. A
config without ``[[seat]]`` has the one implicit seat, with no sink of its own: exactly the
single-seat behaviour.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from mux.app.events import AudioChanged, Event, Events, Switched
from mux.audio.follow import AudioFollower
from mux.audio.policy import AudioState
from mux.audio.server import SoundServer, SoundUnavailable
from mux.config import Config
from mux.config.seats import seats_of
from mux.guest.cmdline import QEMU_BINARY
from mux.guest.persona import Persona

log = logging.getLogger(__name__)


async def qemu_has_pa(binary: str = QEMU_BINARY) -> bool:
    """Whether QEMU lists its ``pa`` audio backend (a module: Debian's qemu-system-gui)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "-audiodev", "help", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    except OSError:
        return False
    out, _ = await proc.communicate()
    return "pa" in out.decode(errors="replace").split()


def server_address(env: Mapping[str, str] = os.environ) -> str:
    """Where the sound server is, told to QEMU and used by mux alike: ``PULSE_SERVER``, else
    ``$XDG_RUNTIME_DIR/pulse/native`` if it is there (PulseAudio's and pipewire-pulse's
    socket), else "" (libpulse's defaults; QEMU's ``pa`` backend then wants
    ``$XDG_RUNTIME_DIR/pulse/pid``)."""
    if env.get("PULSE_SERVER"):
        return env["PULSE_SERVER"]
    native = Path(env.get("XDG_RUNTIME_DIR", "/nonexistent")) / "pulse" / "native"
    return f"unix:{native}" if native.is_socket() else ""


async def why_no_sound(server: str = "") -> str | None:
    """Why ``audio`` personas would have no sound here (what to install or start), or None."""
    if not await qemu_has_pa():
        return f"{QEMU_BINARY} has no PulseAudio backend (pa): install Debian's qemu-system-gui"
    probe = SoundServer("mux-probe", server or None)
    try:
        await probe.connect()
    except SoundUnavailable as exc:
        return str(exc)
    finally:
        probe.close()
    return None


class Sound:
    """Each persona's audio state, and the follower while there is a sound server."""

    def __init__(self, config: Config, events: Events) -> None:
        self.names = [p.name for p in config.personas if p.audio]
        self.background = config.audio.background
        self.sinks = {seat.name: seat.audio_sink for seat in seats_of(config) if seat.audio_sink}
        self.events = events
        self.follower: AudioFollower | None = None

    async def open(self, personas: Mapping[str, Persona],
                   group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        """Probe (only if a persona has ``audio``), set the personas' launch options, and run
        the follower in ``group``; returns its task (for the controller to cancel), if any."""
        loop = await self._open(personas)
        return [group.create_task(loop, name="audio")] if loop is not None else []

    async def _open(self, personas: Mapping[str, Persona]) -> Coroutine[Any, Any, None] | None:
        if not self.names:
            return None
        address = server_address()
        reason = await why_no_sound(address)
        if reason is not None:
            log.warning("audio: %s; persona(s) %s run without sound", reason, ", ".join(self.names))
            for name in self.names:
                personas[name].options = dataclasses.replace(personas[name].options, sound=False)
                self.events.publish(AudioChanged(name, "unavailable"))
            return None
        for name in self.names:
            personas[name].options = dataclasses.replace(personas[name].options, sound_server=address)
        self.follower = AudioFollower(self.names, self.background, lambda name: personas[name].pid,
                                      self._changed, server=lambda: SoundServer("mux", address or None),
                                      sinks=self.sinks)
        self.events.subscribe(self._event)
        return self.follower.run()

    def _event(self, event: Event) -> None:
        if isinstance(event, Switched) and self.follower is not None:
            self.follower.switched(event.new, event.seat)

    def _changed(self, name: str, state: AudioState) -> None:
        self.events.publish(AudioChanged(name, state))

    def state(self, name: str) -> AudioState:
        """``name``'s audio state: live, muted, ducked, off or unavailable."""
        if name not in self.names:
            return "off"
        return self.follower.state(name) if self.follower is not None else "unavailable"
