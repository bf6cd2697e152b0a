"""The device model: which device belongs to which persona, the legal moves, and the
QMP commands that make each move (pure: no asyncio, QEMU or I/O).

Theory. A persona's filter on devices is its guest's own hardware: a device a QEMU
does not have cannot be seen, opened or sent uevents in that guest. So every device
in the config belongs to at most one persona at a time, and :class:`Assignment` is
that map (device id -> persona name, or None when it is detached). A device starts:

- on the persona it is listed under, on that QEMU's command line, unless it has
  ``follow = "active"``;
- detached, if it follows the active persona: the first switch (at startup) plugs it
  into the first active persona, and every switch after that moves it.

A move takes a device from one persona (or from nowhere) to another (or to nowhere),
and is made of these QMP commands, all built here::

    old persona:  device_del {id}  ...wait for DEVICE_DELETED {device: id}...
                  blockdev-del {node-name}                   (block devices only)
    new persona:  blockdev-add {driver: raw|qcow2, node-name, read-only, file: {...}}
                  device_add {driver, id, bus, drive, serial}   (usb-host: vendorid, productid)

The old guest must have released the device (DEVICE_DELETED) before the new one opens
its file: a QEMU format node holds the image's write lock even with no device on it,
and two writers would corrupt the image. Carrying a move out, and putting the device
back when the new persona refuses it, is :mod:`mux.devices.hotplug`'s job; this module only
says what is legal and what to send. Buses: ``disk`` is a ``virtio-blk-pci`` on
``pci.0`` (unplugging it needs the guest's ACPI cooperation), ``usb-storage`` and
``usb-host`` sit on the ``qemu-xhci`` controller every persona has (``xhci.0``; a USB
unplug is a surprise removal and completes at once).

File conflicts are a config error (:func:`file_conflicts`): a file that one device, or
a persona's ``disk``, opens read-write may not be opened by any other device or disk,
so no two personas can ever both write one file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mux.errors import DeviceError, Location

DeviceType = Literal["disk", "usb-storage", "usb-host"]
DEVICE_TYPES: tuple[DeviceType, ...] = ("disk", "usb-storage", "usb-host")
BLOCK_TYPES: tuple[DeviceType, ...] = ("disk", "usb-storage")
Follow = Literal["none", "active"]
ImageFormat = Literal["raw", "qcow2"]
RELEASE_TIMEOUT_S = 10.0
#: QEMU ids must start with a letter; 20 characters is virtio-blk's serial limit.
ID_PATTERN = r"^[a-z][a-z0-9_-]{0,19}$"
#: qdev ids that qemu_argv already uses.
RESERVED_IDS = frozenset({"xhci"})

_DRIVERS: dict[DeviceType, tuple[str, str]] = {  # type -> (QEMU driver, bus)
    "disk": ("virtio-blk-pci", "pci.0"),
    "usb-storage": ("usb-storage", "xhci.0"),
    "usb-host": ("usb-host", "xhci.0"),
}


@dataclass(frozen=True)
class DeviceConfig:
    """One entry of a persona's ``devices`` list (the keys: docs/reference/config.md)."""

    id: str
    type: DeviceType
    persona: str  # the persona it is listed under
    file: Path | None = None
    format: ImageFormat = "raw"
    readonly: bool = False
    vendor: int | None = None
    product: int | None = None
    follow: Follow = "none"
    release_timeout_s: float = RELEASE_TIMEOUT_S
    location: Location = field(default=Location("<built-in>"), compare=False)

    @property
    def is_block(self) -> bool:
        return self.type in BLOCK_TYPES

    @property
    def follows_active(self) -> bool:
        return self.follow == "active"

    @property
    def node_name(self) -> str:
        """The block node's name inside a QEMU (ids never contain ``.``, so no clash)."""
        return f"{self.id}.blk"

    def describe(self) -> str:
        if self.type == "usb-host":
            return f"usb-host {self.vendor or 0:04x}:{self.product or 0:04x}"
        return f"{self.type} {self.file}{' (read-only)' if self.readonly else ''}"


def initial_devices(devices: Iterable[DeviceConfig]) -> list[DeviceConfig]:
    """The devices a persona has at its first boot: its listed ones that do not follow."""
    return [d for d in devices if not d.follows_active]


# --- QMP arguments and the command line ------------------------------------------------


def blockdev_args(device: DeviceConfig) -> dict[str, Any] | None:
    """``blockdev-add`` arguments for a block device, None for the others."""
    if not device.is_block:
        return None
    return {
        "driver": device.format,
        "node-name": device.node_name,
        "read-only": device.readonly,
        "file": {"driver": "file", "filename": str(device.file), "read-only": device.readonly},
    }


def device_args(device: DeviceConfig) -> dict[str, Any]:
    """``device_add`` arguments: driver, id, bus, and the backing node or the host device."""
    driver, bus = _DRIVERS[device.type]
    args: dict[str, Any] = {"driver": driver, "id": device.id, "bus": bus}
    if device.is_block:
        # The serial lets a guest tell its devices apart (/sys/block/vda/serial).
        args.update({"drive": device.node_name, "serial": device.id})
    else:
        args.update({"vendorid": device.vendor, "productid": device.product})
    return args


def attach_commands(device: DeviceConfig) -> list[tuple[str, dict[str, Any]]]:
    """What a persona runs to plug ``device`` in, in order."""
    blockdev = blockdev_args(device)
    commands = [("blockdev-add", blockdev)] if blockdev else []
    return [*commands, ("device_add", device_args(device))]


def unplug_command(device: DeviceConfig) -> tuple[str, dict[str, Any]]:
    """Asks the guest to release the device; completion is the DEVICE_DELETED event."""
    return ("device_del", {"id": device.id})


def release_commands(device: DeviceConfig) -> list[tuple[str, dict[str, Any]]]:
    """What a persona runs after DEVICE_DELETED: closes the file (drops its lock)."""
    return [("blockdev-del", {"node-name": device.node_name})] if device.is_block else []


def is_device_deleted(event: dict[str, Any], device_id: str) -> bool:
    """Whether a QMP event says ``device_id`` is gone (usb-storage also reports its
    internal SCSI child, with a path but no ``device``)."""
    return event.get("event") == "DEVICE_DELETED" and event.get("data", {}).get("device") == device_id


def command_line(devices: Iterable[DeviceConfig]) -> list[str]:
    """``-blockdev``/``-device`` options for devices present at boot, as JSON (the same
    dictionaries as the QMP commands, and no comma-escaping of file names)."""
    argv: list[str] = []
    for device in devices:
        for command, args in attach_commands(device):
            option = "-blockdev" if command == "blockdev-add" else "-device"
            argv += [option, json.dumps(args, separators=(",", ":"))]
    return argv


# --- who holds what, and the legal moves ---------------------------------------------


@dataclass(frozen=True)
class Move:
    """``device`` goes from ``source`` to ``target`` (None: detached)."""

    device: DeviceConfig
    source: str | None
    target: str | None

    def describe(self) -> str:
        return f"{self.device.id}: {self.source or '(detached)'} -> {self.target or '(detached)'}"


class Assignment:
    """Which persona holds each device. Only :meth:`place` changes it."""

    def __init__(self, devices: Iterable[DeviceConfig], personas: Sequence[str]) -> None:
        """Raises DeviceError for a device id used twice or listed under an unknown persona."""
        self.personas = tuple(personas)
        self.devices: dict[str, DeviceConfig] = {}
        self._owner: dict[str, str | None] = {}
        for device in devices:
            if device.id in self.devices:
                raise DeviceError(f"device id {device.id!r} is used twice")
            if device.persona not in self.personas:
                raise DeviceError(f"device {device.id!r} is listed under unknown persona {device.persona!r}")
            self.devices[device.id] = device
            self._owner[device.id] = None if device.follows_active else device.persona

    def device(self, device_id: str) -> DeviceConfig:
        """Raises DeviceError naming the configured devices."""
        try:
            return self.devices[device_id]
        except KeyError:
            known = ", ".join(self.devices) or "none configured"
            raise DeviceError(f"unknown device {device_id!r} (devices: {known})") from None

    def owner(self, device_id: str) -> str | None:
        """The persona holding the device, None if detached. Raises DeviceError if unknown."""
        return self._owner[self.device(device_id).id]

    def held_by(self, persona: str) -> list[DeviceConfig]:
        return [d for d in self.devices.values() if self._owner[d.id] == persona]

    def plan(self, device_id: str, target: str | None) -> Move | None:
        """The move that puts the device on ``target`` (None: detach); None if it is there.

        Raises:
            DeviceError: unknown device or persona.
        """
        device = self.device(device_id)
        if target is not None and target not in self.personas:
            raise DeviceError(f"unknown persona {target!r} (personas: {', '.join(self.personas)})")
        source = self._owner[device.id]
        return None if source == target else Move(device, source, target)

    def follow(self, active: str) -> list[Move]:
        """Moves that bring every ``follow = "active"`` device to ``active``, in config order.

        Raises:
            DeviceError: unknown persona.
        """
        moves = [self.plan(d.id, active) for d in self.devices.values() if d.follows_active]
        return [m for m in moves if m is not None]

    def place(self, device_id: str, persona: str | None) -> None:
        """Record where a device is now (after a move was carried out, or failed halfway).

        Raises:
            DeviceError: unknown device or persona.
        """
        device = self.device(device_id)
        if persona is not None and persona not in self.personas:
            raise DeviceError(f"unknown persona {persona!r}")
        self._owner[device.id] = persona


# --- config-time checks -----------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A persona opening something exclusive: a file (by its resolved path) or a USB host
    device (``usb:vvvv:pppp``)."""

    key: str
    writable: bool
    persona: str
    what: str  # "device 'stick'" or "disk"
    location: Location


def file_conflicts(claims: Iterable[Claim]) -> list[tuple[Location, str]]:
    """Problems for claims that clash with an earlier one: a file opened read-write by
    one device (or disk) and opened at all by another, or one USB host device claimed
    twice. Each problem sits at the later claim and names the earlier one's line."""
    first: dict[str, list[Claim]] = {}
    problems: list[tuple[Location, str]] = []
    for claim in claims:
        for earlier in first.get(claim.key, []):
            if not (claim.writable or earlier.writable):
                continue
            where = f" ({earlier.location})" if earlier.location.line else ""
            both = f"{claim.what} of persona {claim.persona!r} and by {earlier.what} of persona " \
                   f"{earlier.persona!r}{where}"
            if claim.key.startswith("usb:"):
                message = (f"USB host device {claim.key[4:]} would be claimed by {both}; "
                           "one host device can be given to one device entry only")
            else:
                mode = "read-write " if claim.writable and earlier.writable else ""
                message = (f"file {claim.key} would be opened {mode}by {both}; "
                           "a file that is written may belong to one device only")
            problems.append((claim.location, message))
            break
        first.setdefault(claim.key, []).append(claim)
    return problems
