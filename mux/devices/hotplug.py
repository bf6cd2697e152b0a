"""Moving devices between personas: one move at a time, each one transactional.

Theory. :mod:`mux.devices.model` says who holds what and which QMP commands make a move; this
module carries moves out through :class:`~mux.guest.persona.Persona` (:mod:`mux.guest` is
the only package that talks to QEMU; :mod:`mux.guest.plug` sends the QMP commands) and
keeps the model true to what the QEMUs really have. Device D moves
from persona A to persona B in four steps:

1. check what can be checked without touching a guest: D's backing file exists and can
   be opened. A missing file fails the move here, and A's guest never notices;
2. A: ``device_del``, wait for ``DEVICE_DELETED``, ``blockdev-del`` (A's file lock goes).
   A guest that does not release D in time fails the move here: D stays on A;
3. B: ``blockdev-add`` + ``device_add``. If B refuses D, D is plugged back into A (and if
   even that fails, D is left detached and the error says so);
4. the model records D on B. Listeners hear of every move and every failure.

A persona that is stopped or crashed takes part "cold": D is only added to, or dropped
from, its next command line. One lock serialises the moves, so a switch's moves and hand
moves (control socket, scenario steps, MQTT) never interleave.

Switches: :meth:`Hotplug.follow_active` is the switch's prepare step (mux.app.switcher): it moves every
``follow = "active"`` device to the new persona. If an old guest does not release a
device, the switch is refused (DeviceTimeout) and the devices already moved for it go
back: no switch goes ahead until the old guest has released. If the new persona refuses
a device that the old one did release, the device goes back to the old persona, the
error is logged and kept in the device's status, and the switch goes ahead: a bad stick
image must not keep the user from their keyboard and screen.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mux.devices.model import Assignment, DeviceConfig, Move
from mux.errors import DeviceError, DeviceTimeout, PersonaError

if TYPE_CHECKING:
    from mux.config import Config
    from mux.guest.persona import Persona

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceEvent:
    """A move that was made (``error`` None) or tried; ``persona`` is where the device is now."""

    device: str
    source: str | None
    target: str | None
    persona: str | None
    error: str | None = None


DeviceListener = Callable[[DeviceEvent], None]


class Hotplug:
    """Carries out device moves among a controller's personas (see the module docstring)."""

    def __init__(self, devices: Iterable[DeviceConfig], names: Sequence[str],
                 personas: Mapping[str, Persona]) -> None:
        """``personas`` may fill up later (the controller creates them when it opens).

        Raises:
            DeviceError: a device id used twice, or listed under an unknown persona.
        """
        self.assignment = Assignment(devices, names)
        self.personas = personas
        self.listeners: list[DeviceListener] = []
        self.errors: dict[str, str] = {}  # device id -> why its last move failed
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: Config, personas: Mapping[str, Persona]) -> Hotplug:
        return cls([d for p in config.personas for d in p.devices], config.names, personas)

    def watch(self, persona: Persona) -> None:
        """Hear of devices the persona's guest releases with no move waiting for it."""
        persona.device_released.append(self._released)

    # --- queries --------------------------------------------------------------------

    def status(self, device_id: str) -> dict[str, Any]:
        """One device as JSON-ready data. Raises DeviceError for an unknown device."""
        device = self.assignment.device(device_id)
        owner = self.assignment.owner(device_id)
        persona = self.personas.get(owner) if owner else None
        entry: dict[str, Any] = {
            "id": device.id, "type": device.type, "persona": owner, "listed_under": device.persona,
            "follow": device.follow,
            "live": bool(persona and persona.pid and device.id in persona.devices),
            "error": self.errors.get(device.id),
        }
        if device.is_block:
            entry.update(file=str(device.file), format=device.format, readonly=device.readonly)
        else:
            entry.update(vendor=f"0x{device.vendor or 0:04x}", product=f"0x{device.product or 0:04x}")
        return entry

    def devices(self, persona: str | None = None) -> list[dict[str, Any]]:
        """Every device's status, or only those ``persona`` holds."""
        chosen = (self.assignment.devices.values() if persona is None
                  else self.assignment.held_by(persona))
        return [self.status(d.id) for d in chosen]

    # --- moves ----------------------------------------------------------------------

    async def attach(self, device_id: str, persona: str, timeout: float | None = None) -> dict[str, Any]:
        """Move a device to ``persona`` (from wherever it is); returns its status.

        ``timeout`` bounds the old guest's release (default: the device's
        ``release_timeout_s``).

        Raises:
            DeviceError: unknown device or persona, or the move failed (the message says
                where the device is now). DeviceTimeout: the old guest did not release it.
        """
        await self.move(device_id, persona, timeout)
        return self.status(device_id)

    async def detach(self, device_id: str, persona: str | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
        """Take a device out of its persona (if ``persona`` is given, it must be that one).

        Raises:
            DeviceError: unknown device, not on ``persona``, or the unplug failed.
            DeviceTimeout: the guest did not release it; it stays attached.
        """
        owner = self.assignment.owner(device_id)
        if persona is not None and owner != persona:
            raise DeviceError(f"device {device_id!r} is not attached to persona {persona!r} "
                              f"({_where(owner)})")
        await self.move(device_id, None, timeout)
        return self.status(device_id)

    async def move(self, device_id: str, target: str | None, timeout: float | None = None
                   ) -> DeviceEvent | None:
        """Put a device on ``target`` (None: detached); None if it is already there.

        Raises:
            DeviceError: see :meth:`attach`.  DeviceTimeout: the old guest did not release it.
        """
        async with self._lock:
            move = self.assignment.plan(device_id, target)
            if move is None:
                return None
            return await self._carry_out(move, timeout)

    async def follow_active(self, old: str | None, new: str) -> None:
        """The prepare step of a switch: every ``follow = "active"`` device moves to ``new``.

        Raises:
            DeviceTimeout: an old guest did not release a device; the switch must not go
                ahead (the devices moved for it so far are moved back).
        """
        moved: list[Move] = []
        for planned in self.assignment.follow(new):
            try:
                if await self.move(planned.device.id, new):
                    moved.append(planned)
            except DeviceTimeout as exc:
                for back in reversed(moved):
                    try:
                        await self.move(back.device.id, back.source)
                    except DeviceError as again:
                        log.error("switch to %s refused, and moving back failed: %s", new, again)
                raise DeviceTimeout(f"switch to {new!r} refused: {exc}") from exc
            except DeviceError as exc:
                log.error("switch %s -> %s: %s", old, new, exc)

    async def _carry_out(self, move: Move, timeout: float | None) -> DeviceEvent:
        device = move.device
        source = self.personas[move.source] if move.source else None
        target = self.personas[move.target] if move.target else None
        timeout = device.release_timeout_s if timeout is None else timeout
        try:
            if target is not None:
                _check_file(device, target.name)
            if source is not None:
                await source.detach_device(device.id, timeout)
        except (DeviceError, PersonaError) as exc:
            raise self._failed(move, move.source, exc) from exc
        self.assignment.place(device.id, None)
        if target is not None:
            try:
                await target.attach_device(device)
            except (DeviceError, PersonaError) as exc:
                where, note = move.source, ""
                if source is not None:
                    try:
                        await source.attach_device(device)
                    except (DeviceError, PersonaError) as again:
                        where = None
                        note = f"; putting it back on persona {source.name!r} failed too: {again}"
                raise self._failed(move, where, exc, note) from exc
        self.assignment.place(device.id, move.target)
        self.errors.pop(device.id, None)
        log.info("device %s", move.describe())
        event = DeviceEvent(device.id, move.source, move.target, move.target)
        self._tell(event)
        return event

    def _failed(self, move: Move, where: str | None, exc: Exception, note: str = "") -> DeviceError:
        """Record a failed move (model, status, listeners) and make the error to raise."""
        self.assignment.place(move.device.id, where)
        message = f"{exc}{note}; device {move.device.id!r} is {_where(where)}"
        self.errors[move.device.id] = message
        log.error("device %s failed: %s", move.describe(), message)
        self._tell(DeviceEvent(move.device.id, move.source, move.target, where, message))
        return DeviceTimeout(message) if isinstance(exc, DeviceTimeout) else DeviceError(message)

    def _released(self, persona: Persona, device_id: str) -> None:
        if device_id in self.assignment.devices and self.assignment.owner(device_id) == persona.name:
            self.assignment.place(device_id, None)
            self._tell(DeviceEvent(device_id, persona.name, None, None))

    def _tell(self, event: DeviceEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("device listener %r failed on %s", listener, event)


def _where(persona: str | None) -> str:
    return f"attached to persona {persona!r}" if persona else "detached"


def _check_file(device: DeviceConfig, persona: str) -> None:
    """The checks a move can make before it touches any guest.

    Raises:
        DeviceError: the backing file is missing or cannot be opened as the device needs.
    """
    if not device.is_block or device.file is None:
        return
    problem = None
    if not device.file.exists():
        problem = "does not exist"
    elif not os.access(device.file, os.R_OK if device.readonly else os.R_OK | os.W_OK):
        problem = "cannot be opened " + ("for reading" if device.readonly else "read-write")
    if problem:
        raise DeviceError(f"cannot attach device {device.id!r} to persona {persona!r}: "
                          f"its file {device.file} {problem}")
