"""Plugging devices into, and out of, one running guest over QMP.

Theory. :mod:`mux.devices.model` says which QMP commands attach or release a device;
:class:`GuestDevices` sends them over a persona's :class:`~mux.guest.qmp.QmpLink` and
keeps, per persona, what its QEMU really has: the devices (also those it gets at its
next boot, when it is not running), the block nodes it has open, and the unplugs
waiting for ``DEVICE_DELETED``. ``device_del`` only asks: the device is gone when QEMU
sends ``DEVICE_DELETED`` (a USB unplug at once; a PCI one when the guest's ACPI ejects
it). Then ``blockdev-del`` closes the file, so another persona may open it. A
``DEVICE_DELETED`` nobody waits for (a timed-out unplug that completed late, or a
guest that ejected a device itself) detaches the device and is told to the
persona's ``released`` callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

from mux.devices.model import DeviceConfig, attach_commands, release_commands, unplug_command
from mux.errors import DeviceError, DeviceTimeout, PersonaError
from mux.guest.qmp import QmpLink

log = logging.getLogger(__name__)


class GuestDevices:
    """The devices of one persona's guest, and the QMP moves that change them."""

    def __init__(self, name: str, devices: Iterable[DeviceConfig],
                 spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]], *,
                 cold: Callable[[], bool], require_running: Callable[[], None],
                 released: Callable[[str], None]) -> None:
        """``spawn(coro, what)`` runs a task the persona owns (cancelled when it closes);
        ``cold()`` says no QEMU runs (changes go to the next boot's command line);
        ``require_running()`` raises StateError unless the persona runs; ``released(id)``
        hears of a device the guest let go with no unplug waiting."""
        self.name = name
        self.devices: dict[str, DeviceConfig] = {d.id: d for d in devices}
        self._released = released
        self._cold = cold
        self._require_running = require_running
        self._spawn = spawn
        self._link: QmpLink | None = None
        self._nodes: set[str] = set()
        self._unplugs: dict[str, asyncio.Future[None]] = {}
        self._watch: asyncio.Task[None] | None = None

    def session_began(self, link: QmpLink) -> None:
        """A QEMU came up with ``self.devices`` on its command line: watch its unplugs."""
        self._link = link
        self._nodes = {d.node_name for d in self.devices.values() if d.is_block}  # argv opened these
        self._watch = self._spawn(self._device_events(link.events("DEVICE_DELETED")), "devices")

    def session_ended(self) -> None:
        """QEMU is gone, and so is every device it had: unplugs waiting are done."""
        self._link = None
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
        for waiter in self._unplugs.values():
            if not waiter.done():
                waiter.set_result(None)

    async def attach(self, device: DeviceConfig) -> None:
        """Plug ``device`` in: ``blockdev-add`` + ``device_add`` when the guest runs; on the
        next boot's command line when it is stopped or crashed.

        Raises:
            StateError: the persona is starting or stopping.
            DeviceError: it is already attached here, or QEMU refused it (QEMU's reason is
                in the message); nothing of the device is left in this persona.
        """
        if device.id in self.devices:
            raise DeviceError(f"device {device.id!r} is already attached to persona {self.name!r}")
        if self._cold():
            self.devices[device.id] = device
            return
        self._require_running()
        added_node = False
        try:
            for command, args in attach_commands(device):
                if command == "blockdev-add" and device.node_name in self._nodes:
                    continue  # still open from a release whose blockdev-del failed
                await self._execute(command, args)
                if command == "blockdev-add":
                    self._nodes.add(device.node_name)
                    added_node = True
        except PersonaError as exc:
            if added_node:
                await self._release_node(device)
            raise DeviceError(f"cannot attach device {device.id!r} to persona {self.name!r}: {exc}") from exc
        self.devices[device.id] = device

    async def detach(self, device_id: str, timeout: float) -> DeviceConfig:
        """Unplug a device and wait until the guest has released it; returns it.

        A stopped or crashed persona just drops the device from its next command line,
        and a QEMU that exits while we wait has released it too.

        Raises:
            DeviceError: the device is not attached here, or QEMU refused ``device_del``.
            DeviceTimeout: no ``DEVICE_DELETED`` within ``timeout``; the device stays attached
                (QEMU keeps the request: if the guest completes it later, ``released``
                is told).
            StateError: the persona is starting or stopping.
        """
        device = self.devices.get(device_id)
        if device is None:
            raise DeviceError(f"device {device_id!r} is not attached to persona {self.name!r}")
        if self._cold():
            del self.devices[device_id]
            return device
        self._require_running()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unplugs[device_id] = waiter
        try:
            try:
                await self._execute(*unplug_command(device))
            except PersonaError as exc:
                raise DeviceError(f"cannot unplug device {device_id!r} from persona {self.name!r}: {exc}"
                                  ) from exc
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise DeviceTimeout(
                    f"persona {self.name!r} did not release device {device_id!r} within {timeout:g}s "
                    "(no DEVICE_DELETED: its guest ignored the unplug request)") from None
        finally:
            self._unplugs.pop(device_id, None)
        self.devices.pop(device_id, None)
        await self._release_node(device)
        return device

    async def release_strays(self, candidates: Iterable[DeviceConfig], timeout: float) -> None:
        """After an adoption: unplug the devices a dead controller hot-plugged into this
        QEMU (on no command line, so the new controller's model has them unplugged, and
        would plug them in twice). Failures are logged; such a device stays here."""
        try:
            present = await self._execute("qom-list", {"path": "/machine/peripheral"})
        except PersonaError as exc:
            log.warning("%s: cannot list its devices: %s", self.name, exc)
            return
        ids = {str(p.get("name")) for p in present if str(p.get("type", "")).startswith("child<")}
        for device in [d for d in candidates if d.id in ids and d.id not in self.devices]:
            self.devices[device.id] = device
            if device.is_block:
                self._nodes.add(device.node_name)
            try:
                await self.detach(device.id, timeout)
                log.info("%s: unplugged device %r (hot-plugged by the previous controller)",
                         self.name, device.id)
            except (DeviceError, PersonaError) as exc:
                log.warning("%s: %s", self.name, exc)

    async def _execute(self, command: str, args: dict[str, Any] | None) -> Any:
        if self._link is None:
            raise PersonaError(f"persona {self.name!r}: QEMU is gone")
        return await self._link.execute(command, args)

    async def _release_node(self, device: DeviceConfig) -> None:
        """Close a device's block node; a failure is logged and the node kept for reuse."""
        if device.node_name not in self._nodes:
            return
        if self._link is not None:
            for command, args in release_commands(device):
                try:
                    await self._execute(command, args)
                except PersonaError as exc:
                    log.warning("%s: %s; node %s stays open", self.name, exc, device.node_name)
                    return
        self._nodes.discard(device.node_name)

    async def _device_events(self, events: AsyncIterator[dict[str, Any]]) -> None:
        async for event in events:
            data = event.get("data")
            device_id = str(data.get("device", "")) if isinstance(data, dict) else ""
            waiter = self._unplugs.get(device_id)
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(None)
            elif device_id in self.devices:
                # A timed-out unplug that completed late, or a guest that ejected it itself.
                device = self.devices.pop(device_id)
                log.warning("%s: the guest released device %r with no unplug waiting; it is detached",
                            self.name, device_id)
                await self._release_node(device)
                self._released(device_id)
