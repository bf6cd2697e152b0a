"""The evdev edge: input devices under ``/dev/input``, behind a seam tests can fake.

Theory: everything :class:`mux.input.sources.EvdevSource` needs from a physical device is
here, as thin as it can be and with no policy (when to grab, what to do when a
device goes away, which keys to release are all in :mod:`mux.input.sources`). The seam is
two protocols: :class:`DeviceIO` lists event device paths and opens one, and
:class:`Device` is one open device (read chunks of events, grab, ungrab, close,
the kernel's key state, LEDs). :class:`EvdevIO` and :class:`EvdevDevice` are the
real ones over python-evdev; tests pass fakes that stand in for the kernel.

Reads are driven by the event loop's fd readiness (``add_reader``), one chunk per
``read()``, unframed: framing on ``SYN_REPORT`` is the caller's job. Every device
method may raise OSError (``ENODEV`` once the device is unplugged). This module only
reads and grabs existing devices; creating virtual ones (``/dev/uinput``) is not
done here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import re
from collections.abc import AsyncGenerator, Collection, Mapping
from pathlib import Path
from typing import Protocol

import evdev
from evdev import ecodes

from mux.input.events import EV_KEY, EV_REL, InputEvent

_LETTERS = [getattr(ecodes, f"KEY_{c}") for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]


class Device(Protocol):
    """One open evdev device. Every method may raise OSError (ENODEV once it is gone)."""

    name: str
    phys: str
    kind: str  # "keyboard", "mouse" or "input device" (see classify)

    def read_batches(self) -> AsyncGenerator[list[InputEvent], None]:
        """Yield the events of each read as they come (not framed)."""
        ...

    def discard_pending(self) -> None:
        """Drop the events already read by the kernel for us but not by us yet."""
        ...

    def grab(self) -> None: ...
    def ungrab(self) -> None: ...
    def close(self) -> None: ...
    def active_keys(self) -> Collection[int]: ...
    def set_led(self, led: int, on: bool) -> None: ...


class DeviceIO(Protocol):
    """Finds and opens devices."""

    def paths(self) -> list[str]:
        """Every event device path present now."""
        ...

    def open(self, path: str) -> Device:
        """Open one; raises OSError (FileNotFoundError, PermissionError, ...)."""
        ...


def classify(capabilities: Mapping[int, Collection[int]]) -> str:
    """``"keyboard"`` (every letter key, or Enter), ``"mouse"`` (REL_X, REL_Y and
    BTN_LEFT) or ``"input device"``, from a device's capabilities by event type."""
    keys = set(capabilities.get(EV_KEY, ()))
    rels = set(capabilities.get(EV_REL, ()))
    if keys.issuperset(_LETTERS) or ecodes.KEY_ENTER in keys:
        return "keyboard"
    if {ecodes.REL_X, ecodes.REL_Y} <= rels and ecodes.BTN_LEFT in keys:
        return "mouse"
    return "input device"


class EvdevDevice:
    """:class:`Device` over a python-evdev ``InputDevice``, read through fd readiness."""

    def __init__(self, device: evdev.InputDevice[str]) -> None:
        self._device = device
        self.name: str = device.name
        self.phys: str = device.phys
        self.kind = classify(device.capabilities(absinfo=False))

    async def read_batches(self) -> AsyncGenerator[list[InputEvent], None]:
        """Yield each read's events; raises OSError (ENODEV when unplugged)."""
        loop = asyncio.get_running_loop()
        fd = self._device.fd
        while True:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            try:
                raw = list(self._device.read())
            except BlockingIOError:
                continue
            yield [InputEvent(e.type, e.code, e.value) for e in raw]

    def discard_pending(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                for _ in self._device.read():
                    pass

    def grab(self) -> None:
        self._device.grab()

    def ungrab(self) -> None:
        self._device.ungrab()

    def close(self) -> None:
        self._device.close()

    def active_keys(self) -> Collection[int]:
        return list(self._device.active_keys())

    def set_led(self, led: int, on: bool) -> None:
        """Raises OSError, EBADF if the device could only be opened read-only."""
        try:
            self._device.set_led(led, int(on))
        except evdev.EvdevError as exc:
            raise OSError(errno.EBADF, f"{self.name} is open read-only: {exc}") from exc


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EvdevIO:
    """:class:`DeviceIO` over ``/dev/input/event*``."""

    def __init__(self, directory: Path | str = "/dev/input") -> None:
        self.directory = Path(directory)

    def paths(self) -> list[str]:
        found = glob.glob(str(self.directory / "event*"))
        return sorted(found, key=lambda p: int(re.sub(r"\D", "", Path(p).name) or 0))

    def open(self, path: str) -> Device:
        return EvdevDevice(evdev.InputDevice(path))
