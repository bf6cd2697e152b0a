"""Input sources: physical evdev devices and evemu recordings, behind one async interface.

Every source yields *frames*: lists of :class:`~mux.input.events.InputEvent` ending with the
``SYN_REPORT`` that closes them, which is what :meth:`Controller.input` consumes. Consume
a source with ``async with contextlib.aclosing(source.batches()) as frames`` (or from a
task that gets cancelled), so its cleanup runs at once, not when the generator is
garbage-collected.

The evdev edge is thin and sits behind a seam in :mod:`mux.input.evdev_io`,
:class:`~mux.input.evdev_io.DeviceIO` (list event device paths, open one) and
:class:`~mux.input.evdev_io.Device` (read chunks, grab, ungrab, close, key state, LEDs);
:class:`~mux.input.evdev_io.EvdevIO` is the real one over python-evdev, and tests pass a fake.
The policy lives here, in :class:`EvdevSource`, on top of the seam:

- Grab only when no key or button is held (as QEMU's input-linux does). A key that is
  down at start (the Enter that launched mux) was pressed in the host, so its release
  must reach the host too, or the host sees it stuck. Until then the device is read but
  its events are dropped: they belong to the host, which still sees them (not grabbed).
  The source checks ``active_keys()`` (the kernel's key state) after each chunk read, and
  again once grabbed, letting go if a key went down in between; once the grab holds, the
  events still queued from before it are discarded too, so nothing reaches both the host
  and a guest.
- Ungrab and close happen in ``finally``, always: on error, on cancellation, on aclose.
- A device that goes away (``ENODEV`` on read) is waited for, polling every 0.5 s, and
  re-opened when it is back. A path is re-opened at the same path when the device there
  has the same name; a ``/dev/input/by-id/`` or ``by-path/`` link is only ever looked
  for there, but an ``eventN`` path may come back under another number, so the device is
  then also looked for by the name and phys it had. A name is looked up by name first,
  then by name and phys.
  Keys held when it went away get a synthetic release frame, so no guest keeps them down.
- After ``SYN_DROPPED`` (the kernel's buffer overflowed, releases may be lost) the frame
  goes on to the router, which drops it, and a synthetic frame releases the keys the
  kernel no longer reports down (``active_keys()``).
- Problems a user can fix (permission denied, another program holding the grab) are
  logged once, with what to do, and retried every 5 s: the source never raises them,
  so the controller and the other sources go on, and mux recovers once they are fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from pathlib import Path
from typing import Protocol

from mux.input import evemu
from mux.input.evdev_io import Device, DeviceIO, EvdevIO
from mux.input.events import EV_KEY, EV_SYN, SYN_DROPPED, SYN_REPORT, InputEvent
from mux.input.keymap import key_name

log = logging.getLogger("mux.input.sources")

POLL_S = 0.5  # how often to look for a device that is gone
RETRY_S = 5.0  # how often to retry a device we may not open or grab
EV_LED, LED_NUML, LED_CAPSL, LED_SCROLLL = 0x11, 0, 1, 2
_SYN = InputEvent(EV_SYN, SYN_REPORT, 0)


class InputSource(Protocol):
    """Anything that yields input frames (each ends with its ``SYN_REPORT``)."""

    name: str

    def batches(self) -> AsyncIterator[list[InputEvent]]: ...


_PERMISSION_FIX = (
    "add your user to the 'input' group (sudo usermod -aG input $USER, then log in again) or run mux as root"
)


def discover(specs: list[str], io: DeviceIO | None = None) -> list[str]:
    """Expand ``"auto"`` into every keyboard and mouse present; other specs stay as they are.

    Devices that cannot be opened are skipped (permission denied is logged, with the
    fix); never raises for device problems.
    """
    io = io or EvdevIO()
    found: list[str] = []
    for spec in specs:
        if spec != "auto":
            found.append(spec)
            continue
        denied: list[str] = []
        for path in io.paths():
            try:
                device = io.open(path)
            except PermissionError:
                denied.append(path)
                continue
            except OSError as exc:
                log.debug("auto: skipping %s: %s", path, exc)
                continue
            try:
                if device.kind in ("keyboard", "mouse"):
                    log.info("auto: using %s %s (%s)", device.kind, path, device.name)
                    found.append(path)
            finally:
                device.close()
        if denied:
            log.error("auto: permission denied on %s; %s", ", ".join(denied), _PERMISSION_FIX)
    return list(dict.fromkeys(found))


# --- sources ---------------------------------------------------------------------------


class EvdevSource:
    """A physical device by path (starting with ``/`` or ``./``) or by name, grabbed
    exclusively. See the module docstring.

    ``batches()`` runs until cancelled (it ends only if the device's stream ends, which
    real devices never do). It raises nothing for device problems; anything else (a bug)
    propagates, after the device has been ungrabbed and closed.
    """

    def __init__(self, spec: str, io: DeviceIO | None = None) -> None:
        self.name = spec
        self._io = io or EvdevIO()
        self._is_path = spec.startswith(("/", "./", "../"))  # names may hold "/": "PS/2 Mouse"
        self._stable_path = "/by-id/" in spec or "/by-path/" in spec  # names one device for good
        self._identity: tuple[str, str] | None = None  # (name, phys) once opened
        self._kind = "input device"
        self._device: Device | None = None  # set while grabbed
        self._leds: dict[int, bool] = {}
        self._down: dict[int, None] = {}  # keys delivered down, in press order
        self._last_problem: str | None = None  # logged once, until the device is ready
        self._went_away = False
        self._absent = f"{self._label} not found; waiting for it"

    @property
    def grabbed(self) -> bool:
        return self._device is not None

    @property
    def _label(self) -> str:
        return f"{self._kind} {self.name}"

    def set_leds(self, caps: bool, num: bool, scroll: bool) -> None:
        """Show these lock LEDs on the device: now if grabbed, else once it is.

        Write errors are logged, never raised (a device going away is noticed by the read).
        """
        self._leds = {LED_CAPSL: caps, LED_NUML: num, LED_SCROLLL: scroll}
        if self._device is not None:
            self._apply_leds(self._device)

    async def batches(self) -> AsyncGenerator[list[InputEvent], None]:
        """Frames from the device, forever; device problems are logged and waited out."""
        while True:
            device = await self._open()
            grabbed = False
            try:
                async with contextlib.aclosing(device.read_batches()) as chunks:
                    grabbed = await self._grab_when_idle(device, chunks)
                    if not grabbed:
                        return
                    self._ready(device)
                    frame: list[InputEvent] = []
                    dropped = False
                    async for chunk in chunks:
                        for event in chunk:
                            frame.append(event)
                            if event.type != EV_SYN:
                                continue
                            if event.code == SYN_DROPPED:
                                dropped = True  # the router drops the frame; resync after it
                            elif event.code == SYN_REPORT:
                                if not dropped:
                                    self._track(frame)
                                yield frame
                                if dropped and (releases := self._releases(device.active_keys())):
                                    yield releases
                                frame, dropped = [], False
                return
            except OSError as exc:
                problem = exc
            finally:
                self._device = None
                _release(device, grabbed)
            if problem.errno == errno.EBUSY:
                self._report(
                    logging.ERROR,
                    f"cannot grab {self._label}: another program has grabbed it (device busy); "
                    f"close that program (another mux, a QEMU with input-linux, a key remapper); "
                    f"retrying every {RETRY_S:g} s",
                )
                await asyncio.sleep(RETRY_S)
                continue
            self._went_away = problem.errno == errno.ENODEV
            reason = "went away" if self._went_away else f"failed ({problem})"
            self._absent = f"{self._label} {reason}; waiting for it"
            self._report(logging.WARNING, self._absent)
            if releases := self._releases(still_down=()):
                yield releases

    async def _open(self) -> Device:
        """Wait until the device is there and opened; logs problems, raises nothing."""
        while True:
            try:
                device = self._find()
            except PermissionError:
                self._report(
                    logging.ERROR,
                    f"cannot open {self._label}: permission denied; {_PERMISSION_FIX}; "
                    f"retrying every {RETRY_S:g} s",
                )
                await asyncio.sleep(RETRY_S)
                continue
            except OSError as exc:
                self._report(logging.ERROR, f"cannot open {self._label}: {exc}; retrying every {RETRY_S:g} s")
                await asyncio.sleep(RETRY_S)
                continue
            if device is not None:
                self._identity = (device.name, device.phys)
                self._kind = device.kind
                return device
            self._report(logging.WARNING, self._absent)
            await asyncio.sleep(POLL_S)

    def _find(self) -> Device | None:
        """Open this source's device, or None if it is not there.

        Raises PermissionError if it (or, looking by name, any candidate) may not be
        opened, and OSError for other failures of the spec's own path.
        """
        if self._is_path:
            device = _try_open(self._io, self.name)
            if device is not None and (self._identity is None or device.name == self._identity[0]):
                return device
            if device is not None:
                device.close()
            if self._identity is None or self._stable_path:
                return None
        denied: PermissionError | None = None
        for path in self._io.paths():
            try:
                device = _try_open(self._io, path)
            except PermissionError as exc:
                denied = exc
                continue
            except OSError:
                continue
            if device is None:
                continue
            wanted = self._identity or (self.name, device.phys)
            if (device.name, device.phys) == wanted:
                return device
            device.close()
        if denied is not None:
            raise denied
        return None

    async def _grab_when_idle(self, device: Device, chunks: AsyncIterator[list[InputEvent]]) -> bool:
        """Grab once no key is held, dropping what is read meanwhile; False if the stream ended.

        Raises OSError from the device (EBUSY if another program holds the grab).
        """
        announced = False
        while True:
            if not device.active_keys():
                device.grab()
                if not device.active_keys():
                    device.discard_pending()  # from before the grab: the host had them
                    return True
                device.ungrab()  # a key went down in between: its release is the host's
            if not announced:
                held = ", ".join(key_name(code) for code in sorted(device.active_keys()))
                log.info("%s: waiting for %s to be released before grabbing", self._label, held or "keys")
                announced = True
            try:
                await anext(chunks)
            except StopAsyncIteration:
                return False

    def _ready(self, device: Device) -> None:
        self._device = device
        if self._last_problem is not None:
            log.info("%s %s", self._label, "is back" if self._went_away else "is ready")
            self._last_problem, self._went_away = None, False
        log.debug("grabbed %s (%s)", self._label, device.name)
        self._apply_leds(device)

    def _apply_leds(self, device: Device) -> None:
        try:
            for led, on in self._leds.items():
                device.set_led(led, on)
        except OSError as exc:
            log.warning("%s: cannot set LEDs: %s", self._label, exc)

    def _track(self, frame: list[InputEvent]) -> None:
        for event in frame:
            if event.type == EV_KEY:
                if event.value:
                    self._down.setdefault(event.code)
                else:
                    self._down.pop(event.code, None)

    def _releases(self, still_down: Collection[int]) -> list[InputEvent] | None:
        """A frame releasing the keys delivered down but not in ``still_down`` (newest
        first, so modifiers go last), which are then forgotten; None if there are none."""
        gone = [code for code in reversed(self._down) if code not in still_down]
        for code in gone:
            del self._down[code]
        return [*(InputEvent(EV_KEY, code, 0) for code in gone), _SYN] if gone else None

    def _report(self, level: int, message: str) -> None:
        """Log a problem once, not on every retry."""
        if message != self._last_problem:
            log.log(level, "%s", message)
            self._last_problem = message


def _try_open(io: DeviceIO, path: str) -> Device | None:
    """``io.open(path)``, or None if nothing is there. Raises other OSErrors."""
    try:
        return io.open(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            return None
        raise


def _release(device: Device, grabbed: bool) -> None:
    """Ungrab (if grabbed) and close, whatever happens; errors (a device gone) are moot."""
    try:
        if grabbed:
            with contextlib.suppress(OSError):
                device.ungrab()
    finally:
        with contextlib.suppress(OSError):
            device.close()


class RecordingSource:
    """Replays an evemu recording, frame by frame, with its timing or as fast as possible.

    The file is read at construction: raises ConfigError (``file:line``) for a bad one.
    """

    def __init__(self, path: Path | str, realtime: bool = True) -> None:
        self.name = str(path)
        self.realtime = realtime
        self._frames = evemu.frames(evemu.read_recording(path))

    async def batches(self) -> AsyncGenerator[list[InputEvent], None]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = self._frames[0][-1].time if self._frames else 0.0
        for frame in self._frames:
            delay = frame[-1].time - first - (loop.time() - start) if self.realtime else 0.0
            await asyncio.sleep(max(delay, 0.0))  # 0 still lets other tasks run
            yield [recorded.event for recorded in frame]
