"""Tests for mux.input.sources and mux.input.evdev_io: the evdev source through a fake device,
recordings, discovery.

The fake stands in for the kernel: ``press``/``release`` change the key state at once
(as the kernel does when the event happens) and queue the chunk for reading; ``unplug``
makes the next read fail with ENODEV. A real device (evdev.UInput) is used only where
/dev/uinput exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterator
from pathlib import Path
from typing import cast

import evdev
import pytest

from mux.errors import ConfigError
from mux.input import evdev_io, sources
from mux.input.evdev_io import classify
from mux.input.evemu import frames, read_recording
from mux.input.events import EV_KEY, EV_REL, EV_SYN, InputEvent
from mux.input.sources import EvdevSource, RecordingSource, discover

pytestmark = pytest.mark.pure

DATA = Path(__file__).parent.parent / "data"
KEY_ENTER, KEY_LEFTSHIFT, KEY_A, KEY_B, KEY_POWER = 28, 42, 30, 48, 116
SYN_DROPPED = 3
REL_X, REL_Y, BTN_LEFT = 0, 1, 0x110
LED_NUML, LED_CAPSL, LED_SCROLLL = 0, 1, 2
SYN = InputEvent(EV_SYN, 0, 0)
KBD = "/dev/input/by-id/usb-Fake_Keyboard-event-kbd"


def key(code: int, value: int) -> InputEvent:
    return InputEvent(EV_KEY, code, value)


class FakeDevice:
    """One plugged-in device; records the calls made on it."""

    def __init__(
        self,
        name: str = "Fake Keyboard",
        phys: str = "usb-1/input0",
        kind: str = "keyboard",
        held: Collection[int] = (),
    ) -> None:
        self.name, self.phys, self.kind = name, phys, kind
        self.held = set(held)
        self.queue: asyncio.Queue[list[InputEvent] | BaseException | None] = asyncio.Queue()
        self.calls: list[str] = []
        self.leds: dict[int, bool] = {}
        self.grab_error: OSError | None = None
        self.on_grab: Callable[[], None] = lambda: None
        self.led_error: OSError | None = None

    # the kernel side
    def feed(self, *events: InputEvent) -> None:
        for event in events:
            if event.type == EV_KEY:
                (self.held.add if event.value else self.held.discard)(event.code)
        self.queue.put_nowait(list(events))

    def unplug(self) -> None:
        self.queue.put_nowait(OSError(errno.ENODEV, "No such device"))

    # the Device protocol
    async def read_batches(self) -> AsyncGenerator[list[InputEvent], None]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def discard_pending(self) -> None:
        kept = []
        while not self.queue.empty():
            if not isinstance(item := self.queue.get_nowait(), list):
                kept.append(item)
        for item in kept:
            self.queue.put_nowait(item)

    def grab(self) -> None:
        self.calls.append("grab")
        if self.grab_error is not None:
            raise self.grab_error
        assert not self.held, "grabbed while a key is held"
        self.on_grab()

    def ungrab(self) -> None:
        self.calls.append("ungrab")

    def close(self) -> None:
        self.calls.append("close")

    def active_keys(self) -> Collection[int]:
        return sorted(self.held)

    def set_led(self, led: int, on: bool) -> None:
        if self.led_error is not None:
            raise self.led_error
        self.leds[led] = on


class FakeIO:
    """Paths to plugged-in fake devices, and per-path open errors."""

    def __init__(self, devices: dict[str, FakeDevice] | None = None) -> None:
        self.devices = dict(devices or {})
        self.errors: dict[str, OSError] = {}
        self.opened: list[str] = []

    def paths(self) -> list[str]:
        return sorted({*self.devices, *self.errors})

    def open(self, path: str) -> FakeDevice:
        if path in self.errors:
            raise self.errors[path]
        if path not in self.devices:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.opened.append(path)
        return self.devices[path]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sources, "POLL_S", 0.01)
    monkeypatch.setattr(sources, "RETRY_S", 0.02)
    caplog.set_level(logging.DEBUG, logger="mux.input.sources")


class Pump:
    """Runs ``source.batches()`` in a task, collecting frames in a queue."""

    def __init__(self, source: sources.InputSource) -> None:
        self.frames: asyncio.Queue[list[InputEvent]] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(source.batches()), name="pump")

    async def _run(self, batches: AsyncIterator[list[InputEvent]]) -> None:
        async for frame in batches:
            self.frames.put_nowait(frame)

    async def next(self) -> list[InputEvent]:
        return await asyncio.wait_for(self.frames.get(), 2.0)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def pumping(source: sources.InputSource) -> AsyncIterator[Pump]:
    pump = Pump(source)
    try:
        yield pump
    finally:
        await pump.stop()


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "mux.input.sources" and r.levelno >= logging.INFO]


# --- classify and discover ---------------------------------------------------------------


def test_classify() -> None:
    letters = [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 30, 31, 32, 33, 34, 35, 36, 37, 38]
    letters += [44, 45, 46, 47, 48, 49, 50]
    assert classify({EV_KEY: letters}) == "keyboard"
    assert classify({EV_KEY: [KEY_ENTER, 71, 72]}) == "keyboard"  # a keypad
    assert classify({EV_KEY: [BTN_LEFT, 0x111], EV_REL: [REL_X, REL_Y, 8]}) == "mouse"
    assert classify({EV_KEY: [KEY_POWER]}) == "input device"
    assert classify({EV_KEY: letters[:-1]}) == "input device"  # not every letter
    assert classify({EV_REL: [REL_X, REL_Y]}) == "input device"  # no button


def test_discover_auto_picks_keyboards_and_mice(caplog: pytest.LogCaptureFixture) -> None:
    io = FakeIO(
        {
            "/dev/input/event0": FakeDevice("Power Button", kind="input device"),
            "/dev/input/event3": FakeDevice("AT keyboard"),
            "/dev/input/event5": FakeDevice("USB mouse", kind="mouse"),
        }
    )
    io.errors["/dev/input/event7"] = PermissionError(errno.EACCES, "Permission denied")
    found = discover(["/dev/input/by-id/kbd", "auto", "/dev/input/event3"], io)
    assert found == ["/dev/input/by-id/kbd", "/dev/input/event3", "/dev/input/event5"]
    assert all(d.calls == ["close"] for d in io.devices.values())
    assert any("permission denied on /dev/input/event7" in m and "'input' group" in m for m in logged(caplog))


# --- EvdevSource through the fake --------------------------------------------------------


async def test_frames_flow_regrouped_across_reads() -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with pumping(source) as pump:
        await until(lambda: source.grabbed)
        device.feed(key(KEY_A, 1))  # one frame split over two reads
        device.feed(SYN, key(KEY_A, 0), SYN)  # two frames in one read
        assert await pump.next() == [key(KEY_A, 1), SYN]
        assert await pump.next() == [key(KEY_A, 0), SYN]
        assert source.grabbed
    assert device.calls == ["grab", "ungrab", "close"]
    assert not source.grabbed


async def test_grab_waits_until_no_key_is_held(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice(held={KEY_ENTER, KEY_LEFTSHIFT})  # the Enter that started mux
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with pumping(source) as pump:
        await until(lambda: any("waiting for" in m for m in logged(caplog)))
        assert "keyboard " + KBD + ": waiting for enter, leftshift to be released before grabbing" in logged(
            caplog
        )
        device.feed(key(KEY_ENTER, 0), SYN)
        device.feed(key(KEY_B, 1), SYN)  # pressed before shift is up: still the host's
        device.feed(key(KEY_B, 0), key(KEY_LEFTSHIFT, 0), SYN)  # queued before the grab
        await until(lambda: source.grabbed)
        device.feed(key(KEY_A, 1), SYN)
        assert await pump.next() == [key(KEY_A, 1), SYN]  # nothing from before the grab
        assert pump.frames.empty()
    assert device.calls == ["grab", "ungrab", "close"]


async def test_grab_lets_go_when_a_key_goes_down_meanwhile() -> None:
    device = FakeDevice()

    def press_a_once() -> None:
        device.held.add(KEY_A)
        device.on_grab = lambda: None

    device.on_grab = press_a_once
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with pumping(source) as pump:
        await until(lambda: device.calls == ["grab", "ungrab"])
        assert not source.grabbed
        device.feed(key(KEY_A, 1), SYN)  # the press that raced the grab, read after it
        device.feed(key(KEY_A, 0), SYN)
        await until(lambda: source.grabbed)
        device.feed(key(KEY_B, 1), SYN)
        assert await pump.next() == [key(KEY_B, 1), SYN]
    assert device.calls == ["grab", "ungrab", "grab", "ungrab", "close"]


async def test_device_goes_away_and_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    first = FakeDevice()
    io = FakeIO({KBD: first})
    source = EvdevSource(KBD, io)
    async with pumping(source) as pump:
        await until(lambda: source.grabbed)
        first.feed(key(KEY_LEFTSHIFT, 1), key(KEY_A, 1), SYN)
        assert await pump.next() == [key(KEY_LEFTSHIFT, 1), key(KEY_A, 1), SYN]
        del io.devices[KBD]
        first.unplug()
        # The keys it held are released, so no guest keeps them down.
        assert await pump.next() == [key(KEY_A, 0), key(KEY_LEFTSHIFT, 0), SYN]  # newest first
        assert first.calls == ["grab", "ungrab", "close"]
        assert f"keyboard {KBD} went away; waiting for it" in logged(caplog)
        await asyncio.sleep(0.05)  # several polls while it is gone: logged once
        assert not source.grabbed
        second = FakeDevice()
        io.devices[KBD] = second
        await until(lambda: source.grabbed)
        assert f"keyboard {KBD} is back" in logged(caplog)
        second.feed(key(KEY_B, 1), SYN)
        assert await pump.next() == [key(KEY_B, 1), SYN]
    assert second.calls == ["grab", "ungrab", "close"]
    assert logged(caplog) == [f"keyboard {KBD} went away; waiting for it", f"keyboard {KBD} is back"]


async def test_syn_dropped_releases_keys_no_longer_down() -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with pumping(source) as pump:
        await until(lambda: source.grabbed)
        device.feed(key(KEY_LEFTSHIFT, 1), SYN, key(KEY_A, 1), SYN, key(KEY_B, 1), SYN)
        for _ in range(3):
            await pump.next()
        # The buffer overflowed: A's and B's releases were lost, shift is still down.
        device.feed(InputEvent(EV_SYN, SYN_DROPPED, 0), key(KEY_B, 0))
        device.held -= {KEY_A}
        device.feed(SYN)
        assert await pump.next() == [InputEvent(EV_SYN, SYN_DROPPED, 0), key(KEY_B, 0), SYN]
        assert await pump.next() == [key(KEY_B, 0), key(KEY_A, 0), SYN]  # dropped by the router
        device.unplug()
        assert await pump.next() == [key(KEY_LEFTSHIFT, 0), SYN]  # only shift was still owed


async def test_renumbered_event_path_is_found_by_name_and_phys() -> None:
    first = FakeDevice()
    io = FakeIO({"/dev/input/event3": first})
    source = EvdevSource("/dev/input/event3", io)
    async with pumping(source):
        await until(lambda: source.grabbed)
        del io.devices["/dev/input/event3"]
        first.unplug()
        await until(lambda: not source.grabbed)
        other = FakeDevice("Some mouse", kind="mouse")  # took the old number
        twin = FakeDevice(phys="usb-2/input0")  # same model, other port
        second = FakeDevice()
        io.devices.update(
            {"/dev/input/event3": other, "/dev/input/event4": twin, "/dev/input/event6": second}
        )
        await until(lambda: source.grabbed)
        assert second.calls[:1] == ["grab"]
        assert "grab" not in other.calls + twin.calls
        assert other.calls.count("close") >= 1  # opened to look, then closed


async def test_by_id_path_is_only_looked_for_at_its_path() -> None:
    first = FakeDevice()
    io = FakeIO({KBD: first})
    source = EvdevSource(KBD, io)
    async with pumping(source):
        await until(lambda: source.grabbed)
        del io.devices[KBD]
        first.unplug()
        io.devices["/dev/input/event9"] = lookalike = FakeDevice()
        await asyncio.sleep(0.05)
        assert not source.grabbed
        assert lookalike.calls == []


async def test_opened_by_name_then_reopened_by_name_and_phys() -> None:
    first = FakeDevice("Fake Keyboard", "usb-1/input0")
    io = FakeIO({"/dev/input/event2": FakeDevice("Other"), "/dev/input/event4": first})
    source = EvdevSource("Fake Keyboard", io)
    async with pumping(source) as pump:
        await until(lambda: source.grabbed)
        first.feed(key(KEY_A, 1), SYN)
        assert await pump.next() == [key(KEY_A, 1), SYN]
        del io.devices["/dev/input/event4"]
        first.unplug()
        assert await pump.next() == [key(KEY_A, 0), SYN]
        twin = FakeDevice("Fake Keyboard", "usb-2/input0")
        io.devices["/dev/input/event5"] = twin
        await asyncio.sleep(0.05)
        assert not source.grabbed  # same name, other phys: not ours
        second = FakeDevice("Fake Keyboard", "usb-1/input0")
        io.devices["/dev/input/event7"] = second
        await until(lambda: source.grabbed)
        second.feed(key(KEY_B, 1), SYN)
        assert await pump.next() == [key(KEY_B, 1), SYN]


async def test_a_name_with_a_slash_is_a_name() -> None:
    mouse = FakeDevice("PS/2 Generic Mouse", "isa0060/serio1/input0", kind="mouse")
    source = EvdevSource("PS/2 Generic Mouse", FakeIO({"/dev/input/event4": mouse}))
    async with pumping(source):
        await until(lambda: source.grabbed)


async def test_missing_at_start_is_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    io = FakeIO()
    source = EvdevSource(KBD, io)
    async with pumping(source):
        await asyncio.sleep(0.05)
        io.devices[KBD] = FakeDevice()
        await until(lambda: source.grabbed)
    assert logged(caplog) == [f"input device {KBD} not found; waiting for it", f"keyboard {KBD} is ready"]


async def test_cancellation_ungrabs_and_closes() -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    pump = Pump(source)
    await until(lambda: source.grabbed)
    await pump.stop()
    assert device.calls == ["grab", "ungrab", "close"]
    assert not source.grabbed


async def test_cancellation_while_waiting_to_grab_closes(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice(held={KEY_ENTER})
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    pump = Pump(source)
    await until(lambda: any("waiting for" in m for m in logged(caplog)))
    await pump.stop()
    assert device.calls == ["close"]  # never grabbed, so no ungrab


async def test_aclose_after_a_frame_ungrabs_and_closes() -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with contextlib.aclosing(source.batches()) as batches:
        first = asyncio.ensure_future(anext(batches))
        await until(lambda: source.grabbed)
        device.feed(key(KEY_A, 1), SYN)
        assert await first == [key(KEY_A, 1), SYN]
    assert device.calls == ["grab", "ungrab", "close"]


async def test_unexpected_error_propagates_after_ungrab_and_close() -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    device.queue.put_nowait(RuntimeError("bug"))
    with pytest.raises(RuntimeError, match="bug"):
        async for _ in source.batches():
            pass
    assert device.calls == ["grab", "ungrab", "close"]


async def test_source_ends_when_the_device_stream_ends() -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    pump = Pump(source)
    await until(lambda: source.grabbed)
    device.feed(key(KEY_A, 1), SYN)
    device.queue.put_nowait(None)
    await asyncio.wait_for(pump.task, 2.0)
    assert pump.frames.get_nowait() == [key(KEY_A, 1), SYN]
    assert pump.frames.empty()
    assert device.calls == ["grab", "ungrab", "close"]


async def test_permission_denied_is_explained_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice()
    io = FakeIO({KBD: device})
    io.errors[KBD] = PermissionError(errno.EACCES, "Permission denied", KBD)
    source = EvdevSource(KBD, io)
    async with pumping(source) as pump:
        await asyncio.sleep(0.1)  # several retries
        assert not pump.task.done()
        [message] = logged(caplog)  # logged once, not on every retry
        assert message.startswith(f"cannot open input device {KBD}: permission denied; ")
        assert "add your user to the 'input' group" in message and "run mux as root" in message
        del io.errors[KBD]  # the user fixed it: mux recovers on its own
        await until(lambda: source.grabbed)
        assert logged(caplog)[-1] == f"keyboard {KBD} is ready"
        device.feed(key(KEY_A, 1), SYN)
        assert await pump.next() == [key(KEY_A, 1), SYN]


async def test_permission_denied_looking_by_name_is_explained(caplog: pytest.LogCaptureFixture) -> None:
    io = FakeIO()
    io.errors["/dev/input/event3"] = PermissionError(errno.EACCES, "Permission denied")
    async with pumping(EvdevSource("Fake Keyboard", io)) as pump:
        await until(lambda: bool(logged(caplog)))
        assert "permission denied" in logged(caplog)[0]
        assert not pump.task.done()


async def test_busy_device_is_explained_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice()
    device.grab_error = OSError(errno.EBUSY, "Device or resource busy")
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with pumping(source) as pump:
        await asyncio.sleep(0.1)
        assert not pump.task.done()
        [message] = logged(caplog)
        assert message.startswith(f"cannot grab keyboard {KBD}: another program has grabbed it")
        assert "close that program" in message
        assert device.calls[:2] == ["grab", "close"]  # closed, never ungrabbed
        assert "ungrab" not in device.calls
        device.grab_error = None  # the other program was closed
        await until(lambda: source.grabbed)
        device.feed(key(KEY_A, 1), SYN)
        assert await pump.next() == [key(KEY_A, 1), SYN]


async def test_other_read_errors_reopen(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice()
    source = EvdevSource(KBD, FakeIO({KBD: device}))
    async with pumping(source) as pump:
        await until(lambda: source.grabbed)
        device.queue.put_nowait(OSError(errno.EIO, "Input/output error"))
        await until(lambda: device.calls.count("grab") == 2)
        device.feed(key(KEY_A, 1), SYN)
        assert await pump.next() == [key(KEY_A, 1), SYN]
    assert logged(caplog)[0] == f"keyboard {KBD} failed ([Errno 5] Input/output error); waiting for it"
    assert device.calls == ["grab", "ungrab", "close", "grab", "ungrab", "close"]


async def test_leds_wait_for_the_grab_and_are_reapplied_after_reopen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = FakeDevice(held={KEY_ENTER})
    io = FakeIO({KBD: first})
    source = EvdevSource(KBD, io)
    source.set_leds(caps=True, num=False, scroll=False)  # before the device is even open
    async with pumping(source):
        await until(lambda: any("waiting for" in m for m in logged(caplog)))
        assert first.leds == {}  # not grabbed yet: the host's LEDs
        first.feed(key(KEY_ENTER, 0), SYN)
        await until(lambda: source.grabbed)
        assert first.leds == {LED_CAPSL: True, LED_NUML: False, LED_SCROLLL: False}
        source.set_leds(caps=False, num=True, scroll=False)
        assert first.leds == {LED_CAPSL: False, LED_NUML: True, LED_SCROLLL: False}
        del io.devices[KBD]
        first.unplug()
        await until(lambda: not source.grabbed)
        source.set_leds(caps=False, num=True, scroll=True)  # while gone: kept
        second = FakeDevice()
        second.leds = {LED_CAPSL: True}
        io.devices[KBD] = second
        await until(lambda: source.grabbed)
        assert second.leds == {LED_CAPSL: False, LED_NUML: True, LED_SCROLLL: True}
        second.led_error = OSError(errno.EBADF, "open read-only")
        source.set_leds(caps=True, num=True, scroll=True)  # logged, not raised
    assert any("cannot set LEDs" in m for m in logged(caplog))


# --- the real wrapper, over a pipe instead of a kernel device -------------------------------


class PipeInputDevice:
    """Enough of ``evdev.InputDevice`` for EvdevDevice: each byte written to ``writer`` is
    an event (0 is SYN_REPORT, any other byte a key press with that code); end of file on
    the pipe reads as ENODEV, like an unplugged device."""

    name, phys = "Pipe Keyboard", "pipe/input0"

    def __init__(self, path: str = "pipe") -> None:
        if not os.path.exists(path) and path != "pipe":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.path = path
        self.fd, self.writer = os.pipe()
        os.set_blocking(self.fd, False)
        self.calls: list[str] = []

    def capabilities(self, absinfo: bool = True) -> dict[int, list[int]]:
        return {EV_KEY: [KEY_ENTER, KEY_A]}

    def read(self) -> Iterator[evdev.InputEvent]:
        data = os.read(self.fd, 64)  # BlockingIOError when there is nothing to read
        if not data:
            raise OSError(errno.ENODEV, "No such device")
        for byte in data:
            yield (
                evdev.InputEvent(0, 0, EV_SYN, 0, 0) if byte == 0 else evdev.InputEvent(0, 0, EV_KEY, byte, 1)
            )

    def grab(self) -> None:
        self.calls.append("grab")

    def ungrab(self) -> None:
        self.calls.append("ungrab")

    def close(self) -> None:
        self.calls.append("close")
        os.close(self.fd)

    def active_keys(self) -> list[int]:
        return []

    def set_led(self, led: int, value: int) -> None:
        raise evdev.EvdevError("no write access to device")


def wrap(stub: PipeInputDevice) -> evdev_io.EvdevDevice:
    return evdev_io.EvdevDevice(cast("evdev.InputDevice[str]", stub))


async def test_evdev_device_reads_chunks_and_cleans_up_its_reader() -> None:
    stub = PipeInputDevice()
    device = wrap(stub)
    assert (device.name, device.phys, device.kind) == ("Pipe Keyboard", "pipe/input0", "keyboard")
    loop = asyncio.get_running_loop()
    async with contextlib.aclosing(device.read_batches()) as chunks:
        os.write(stub.writer, bytes([KEY_A, 0, KEY_B]))
        assert await anext(chunks) == [key(KEY_A, 1), SYN, key(KEY_B, 1)]
        reading = asyncio.ensure_future(anext(chunks))
        await asyncio.sleep(0.01)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
    assert not loop.remove_reader(stub.fd)  # the cancelled read left no reader behind
    os.write(stub.writer, bytes([KEY_A, 0]))
    device.discard_pending()
    with pytest.raises(BlockingIOError):
        os.read(stub.fd, 64)
    os.close(stub.writer)
    with pytest.raises(OSError) as info:
        await anext(device.read_batches())
    assert info.value.errno == errno.ENODEV
    with pytest.raises(OSError) as info:
        device.set_led(LED_CAPSL, True)
    assert info.value.errno == errno.EBADF
    device.close()


def test_evdev_io_lists_event_devices_in_number_order(tmp_path: Path) -> None:
    for name in ("event10", "event2", "mouse0", "event0"):
        (tmp_path / name).touch()
    assert evdev_io.EvdevIO(tmp_path).paths() == [str(tmp_path / f"event{n}") for n in (0, 2, 10)]


async def test_evdev_source_end_to_end_over_the_real_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stubs: list[PipeInputDevice] = []

    def open_stub(path: str) -> PipeInputDevice:
        stubs.append(PipeInputDevice(path))
        return stubs[-1]

    monkeypatch.setattr(evdev, "InputDevice", open_stub)
    path = tmp_path / "event3"
    path.touch()
    source = EvdevSource(str(path), evdev_io.EvdevIO(tmp_path))
    async with pumping(source) as pump:
        await until(lambda: source.grabbed)
        os.write(stubs[0].writer, bytes([KEY_A]))
        os.write(stubs[0].writer, bytes([0]))
        assert await pump.next() == [key(KEY_A, 1), SYN]
        path.unlink()
        os.close(stubs[0].writer)  # unplugged
        assert await pump.next() == [key(KEY_A, 0), SYN]
        await until(lambda: f"keyboard {path} went away; waiting for it" in logged(caplog))
        assert stubs[0].calls == ["grab", "ungrab", "close"]
        path.touch()
        await until(lambda: source.grabbed)
        os.write(stubs[1].writer, bytes([KEY_B, 0]))
        assert await pump.next() == [key(KEY_B, 1), SYN]
    assert stubs[1].calls == ["grab", "ungrab", "close"]
    assert logged(caplog)[-1] == f"keyboard {path} is back"


async def test_evdev_source_names_a_file_that_is_no_input_device(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "event1"
    path.write_text("not a device")
    async with pumping(EvdevSource(str(path), evdev_io.EvdevIO(tmp_path))) as pump:
        await until(lambda: bool(logged(caplog)))
        assert not pump.task.done()
    assert logged(caplog)[0].startswith(f"cannot open input device {path}: [Errno 25] Inappropriate ioctl")


# --- RecordingSource ---------------------------------------------------------------------


async def test_recording_source_yields_the_recorded_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = frames(read_recording(DATA / "keyboard.evemu"))
    expected = [[r.event for r in frame] for frame in recorded]
    # each frame's time from the first frame's (1.3 s to the last)
    offsets = [frame[-1].time - recorded[0][-1].time for frame in recorded]
    asked: list[float] = []  # every pause the source asks for, none of them taken

    async def no_sleep(delay: float) -> None:
        asked.append(delay)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    source = RecordingSource(DATA / "keyboard.evemu", realtime=False)
    assert [frame async for frame in source.batches()] == expected
    assert asked and max(asked) == 0  # as fast as possible: no pause
    asked.clear()  # the positive control: with its timing, it waits for each frame's time
    realtime = RecordingSource(DATA / "keyboard.evemu", realtime=True)
    assert [frame async for frame in realtime.batches()] == expected
    # (each pause is the frame's time less what has passed since the start: next to nothing)
    assert len(asked) == len(offsets) and max(asked) > 1, asked
    assert all(offset - 0.5 < pause <= offset for pause, offset in zip(asked, offsets, strict=True)), asked
    assert source.name == str(DATA / "keyboard.evemu")


async def test_recording_source_realtime_keeps_the_gaps() -> None:
    source = RecordingSource(DATA / "mouse.evemu", realtime=True)
    loop = asyncio.get_running_loop()
    times, batches = [], []
    async for frame in source.batches():
        times.append(loop.time())
        batches.append(frame)
    assert batches[0] == [InputEvent(EV_REL, REL_X, 3), InputEvent(EV_REL, REL_Y, -2), SYN]
    assert times[2] - times[1] >= 0.25  # 0.3 s pause in the recording
    assert times[-1] - times[0] >= 0.35  # 0.41 s in all


def test_recording_source_with_a_bad_file_fails_at_once() -> None:
    with pytest.raises(ConfigError, match=r"bad_timestamp.evemu:6: "):
        RecordingSource(DATA / "bad_timestamp.evemu")


# --- a real device, where one can be created ---------------------------------------------


@contextlib.contextmanager
def uinput_keyboard(name: str) -> Iterator[evdev.UInput]:
    device = evdev.UInput({EV_KEY: [KEY_A, KEY_B, KEY_ENTER]}, name=name)
    try:
        yield device
    finally:
        device.close()


@pytest.mark.skipif(not os.path.exists("/dev/uinput"), reason="no /dev/uinput on this machine")
async def test_real_device_grab_read_unplug_replug(caplog: pytest.LogCaptureFixture) -> None:
    name = f"mux test keyboard {os.getpid()}"
    with uinput_keyboard(name) as ui:
        path = ui.device.path
        source = EvdevSource(str(path))
        async with pumping(source) as pump:
            await until(lambda: source.grabbed, timeout=5.0)
            with pytest.raises(OSError):  # exclusively ours
                ui.device.grab()
            ui.write(EV_KEY, KEY_A, 1)
            ui.syn()
            ui.write(EV_KEY, KEY_A, 0)
            ui.syn()
            assert await pump.next() == [key(KEY_A, 1), SYN]
            assert await pump.next() == [key(KEY_A, 0), SYN]
            ui.close()  # unplugged
            await until(lambda: any("went away" in m for m in logged(caplog)), timeout=5.0)
            with uinput_keyboard(name) as again:  # the same keyboard, maybe another eventN
                await until(lambda: any("is back" in m for m in logged(caplog)), timeout=5.0)
                again.write(EV_KEY, KEY_B, 1)
                again.syn()
                assert await pump.next() == [key(KEY_B, 1), SYN]
                again.write(EV_KEY, KEY_B, 0)
                again.syn()
                assert await pump.next() == [key(KEY_B, 0), SYN]
