"""The RFB client against real QEMU (TCG) and against a scripted RFB server on a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from qemu.qmp import QMPClient

from mux import images
from mux.display.backbuffer import Frame
from mux.display.leds import Leds
from mux.guest.rfb import (
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_CLIPBOARD,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_LED_STATE,
    ENCODING_RAW,
    PIXEL_FORMAT,
    RfbClient,
    RfbError,
)
from tests.conftest import READY_S, wait_until

OFF = Leds(caps=False, num=False, scroll=False)


def equal_fraction(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    return diff.histogram()[0] / (a.width * a.height)


# --- real QEMU ----------------------------------------------------------------------------


@dataclass
class Qemu:
    dir: Path
    proc: asyncio.subprocess.Process
    qmp: QMPClient

    @property
    def vnc(self) -> Path:
        return self.dir / "p.vnc"

    async def key(self, qcode: str) -> None:
        for down in (True, False):
            key = {"type": "qcode", "data": qcode}
            await self.qmp.execute("input-send-event",
                                   {"events": [{"type": "key", "data": {"down": down, "key": key}}]})

    async def screendump(self) -> Image.Image:
        path = self.dir / "screen.ppm"
        await self.qmp.execute("screendump", {"filename": str(path)})
        with Image.open(path) as image:
            return image.convert("RGB")

    async def wait_serial(self, text: str, timeout: float) -> None:
        log = self.dir / "serial.log"
        await wait_until(lambda: text in log.read_text(errors="replace"), timeout, f"{text!r} on serial")


@contextlib.asynccontextmanager
async def qemu(*extra: str) -> AsyncIterator[Qemu]:
    """QEMU with VGA, VNC and QMP on unix sockets in a short private directory."""
    path = Path(tempfile.mkdtemp(prefix="rfb-", dir="/tmp"))
    proc = await asyncio.create_subprocess_exec(
        "qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-vga", "std", "-display", "none",
        "-m", "512", "-vnc", f"unix:{path}/p.vnc", "-qmp", f"unix:{path}/p.qmp,server=on,wait=off",
        "-serial", f"file:{path}/serial.log", *extra,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    qmp = QMPClient("test-rfb")
    try:
        await wait_until(lambda: (path / "p.vnc").exists() and (path / "p.qmp").exists(), 10, "sockets")
        await qmp.connect(str(path / "p.qmp"))
        yield Qemu(path, proc, qmp)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        with contextlib.suppress(Exception):
            await qmp.disconnect()
        shutil.rmtree(path, ignore_errors=True)


def guest_args(image: images.BuiltImage) -> tuple[str, ...]:
    return ("-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", f"{image.append} mux.persona=p mux.color=c03030")


@pytest.mark.guests
async def test_frame_matches_screendump_and_lock_keys_alone_light_no_led() -> None:
    leds: list[Leds] = []
    async with qemu() as vm, RfbClient(vm.vnc, on_leds=leds.append) as rfb:
        await wait_until(lambda: leds == [OFF], 5, "the LED state QEMU sends at connection")
        await wait_until(lambda: rfb.size == (720, 400), 10, "DesktopSize to SeaBIOS's VGA text mode")
        for _ in range(20):  # SeaBIOS may still be printing: retry until a frame and a dump agree
            frame = (await rfb.frame(10)).image
            dump = await vm.screendump()
            assert frame.size == dump.size == rfb.size
            if equal_fraction(frame, dump) > 0.99:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("the VNC frame never matched the screendump")
        # Without a guest driver, nothing sets the emulated keyboard's LEDs: QEMU reports
        # the guest's LED state, not the lock keys' toggles.
        await vm.key("caps_lock")
        await asyncio.sleep(0.5)
        assert rfb.leds == OFF and leds == [OFF]


@pytest.mark.guests
async def test_live_streams_frames_until_turned_off() -> None:
    frames: list[float] = []
    async with qemu() as vm, RfbClient(vm.vnc, on_frame=lambda frame: frames.append(frame.captured)) as rfb:
        await asyncio.sleep(0.5)
        assert frames == []  # nothing is pushed until asked
        rfb.live = True
        await wait_until(lambda: len(frames) >= 2, 10, "live frames (the blinking text cursor)")
        rfb.live = False
        await asyncio.sleep(1.0)  # let the last requested update arrive
        count = len(frames)
        await asyncio.sleep(1.5)
        assert len(frames) == count


@pytest.mark.guests
async def test_dropped_connection_ends_closed_quietly() -> None:
    async with qemu() as vm, RfbClient(vm.vnc) as rfb:
        await rfb.frame(10)
        vm.proc.kill()
        await asyncio.wait_for(rfb.closed(), 5)
        with pytest.raises(RfbError, match=str(vm.vnc)):
            await rfb.frame(1)
        rfb.live = True  # harmless on a closed client


@pytest.mark.guests
async def test_guest_leds_resize_and_full_frame_speed(console_image: images.BuiltImage) -> None:
    """The LED test against the built-in console guest (caps lock lights its caps LED)."""
    leds: list[Leds] = []
    durations: list[float] = []

    def on_frame(frame: Frame) -> None:
        if frame.size == (1024, 768):
            durations.append(time.monotonic() - frame.captured)

    async with qemu("-S", *guest_args(console_image)) as vm, \
            RfbClient(vm.vnc, on_leds=leds.append, on_frame=on_frame) as rfb:
        first = rfb.size
        await vm.qmp.execute("cont")
        await wait_until(lambda: rfb.size == (1024, 768), 30, "DesktopSize to the guest's vesafb mode")
        assert first != (1024, 768)
        await vm.wait_serial("MUX-READY p", READY_S)

        assert rfb.leds == OFF
        await vm.key("caps_lock")
        await wait_until(lambda: rfb.leds == Leds(caps=True, num=False, scroll=False), 5, "caps LED on")
        await vm.key("num_lock")
        await wait_until(lambda: rfb.leds == Leds(caps=True, num=True, scroll=False), 5, "num LED on")
        await vm.key("caps_lock")
        await vm.key("num_lock")
        await vm.key("scroll_lock")
        await wait_until(lambda: rfb.leds == Leds(caps=False, num=False, scroll=True), 5, "scroll only")
        # on_leds is paced (at most LED_RATE a second): the last state is told within 1/LED_RATE s.
        await wait_until(lambda: leds[-1] == rfb.leds, 1, "the last LED state told")
        assert Leds(caps=True, num=False, scroll=False) in leds

        frame = (await rfb.frame(10)).image
        assert equal_fraction(frame, await vm.screendump()) > 0.99
        assert frame.getpixel((1000, 700)) == (198, 48, 49)  # the persona's colour, as 16-bit

        durations.clear()
        for _ in range(10):
            await rfb.frame(10)
        median = statistics.median(durations)
        print(f"full 1024x768 raw frame, received into the framebuffer: median {median * 1000:.1f} ms")


# --- a scripted RFB server -------------------------------------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rfb-", dir="/tmp"))
    failures: list[BaseException] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as exc:
            failures.append(exc)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(handle, path / "s.vnc")
    try:
        async with server:
            yield path / "s.vnc"
    finally:
        shutil.rmtree(path, ignore_errors=True)
    if failures:
        raise failures[0]


async def serve_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          size: tuple[int, int] = (640, 480)) -> tuple[int, ...]:
    """Play QEMU's side of the handshake; return the client's encodings."""
    writer.write(b"RFB 003.008\n")
    assert await reader.readexactly(12) == b"RFB 003.008\n"
    writer.write(b"\x01\x01")
    assert await reader.readexactly(1) == b"\x01"
    writer.write(struct.pack(">I", 0))
    assert await reader.readexactly(1) == b"\x01"  # shared
    writer.write(struct.pack(">HH", *size) + bytes(16) + struct.pack(">I", 4) + b"fake")
    assert await reader.readexactly(20) == b"\x00\x00\x00\x00" + PIXEL_FORMAT
    kind, count = struct.unpack(">BxH", await reader.readexactly(4))
    assert kind == 2
    return struct.unpack(f">{count}i", await reader.readexactly(4 * count))


def update(*rects: bytes) -> bytes:
    return struct.pack(">BxH", 0, len(rects)) + b"".join(rects)


def rect(x: int, y: int, w: int, h: int, encoding: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding) + payload


def raw(w: int, h: int, bgrx: bytes) -> bytes:
    return rect(0, 0, w, h, ENCODING_RAW, bgrx * (w * h))


async def read_request(reader: asyncio.StreamReader) -> tuple[int, int, int]:
    """The next FramebufferUpdateRequest: (incremental, width, height)."""
    kind, incremental, _x, _y, w, h = struct.unpack(">BBHHHH", await reader.readexactly(10))
    assert kind == 3
    return incremental, w, h


RED, GREEN, BLUE = b"\x00\x00\xff\x00", b"\x00\xff\x00\x00", b"\xff\x00\x00\x00"


@pytest.mark.pure
async def test_parses_leds_resizes_and_other_messages_then_ends_on_garbage() -> None:
    go_on = asyncio.Event()
    requests: list[tuple[int, int, int]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        encodings = await serve_handshake(reader, writer)
        assert set(encodings) == {ENCODING_RAW, ENCODING_DESKTOP_SIZE, ENCODING_EXTENDED_DESKTOP_SIZE,
                                  ENCODING_LED_STATE, ENCODING_EXTENDED_CLIPBOARD}
        writer.write(update(rect(0, 0, 1, 1, ENCODING_LED_STATE, b"\x05")))
        writer.write(b"\x02")  # Bell
        writer.write(struct.pack(">B3xI", 3, 5) + b"hello")  # ServerCutText
        writer.write(struct.pack(">BxHH", 1, 0, 2) + bytes(12))  # SetColourMapEntries
        writer.write(update(rect(0, 0, 4, 2, ENCODING_DESKTOP_SIZE), raw(4, 2, RED)))
        writer.write(update(rect(1, 0, 2, 2, ENCODING_EXTENDED_DESKTOP_SIZE,
                                 b"\x01\x00\x00\x00" + bytes(16))))
        writer.write(update(raw(2, 2, GREEN)))
        requests.append(await read_request(reader))
        writer.write(update(raw(2, 1, BLUE)))  # not the whole screen: frame() keeps waiting
        writer.write(update(raw(2, 2, BLUE)))
        await go_on.wait()
        writer.write(b"\x63")  # no such message type
        await reader.read()

    leds: list[Leds] = []
    frames: list[tuple[tuple[int, int], object]] = []
    async with scripted_server(script) as path:
        client = RfbClient(path, on_leds=leds.append,
                           on_frame=lambda f: frames.append((f.size, f.image.getpixel((0, 0)))))
        async with client as rfb:
            assert rfb.name == "fake"
            await wait_until(lambda: len(frames) == 2, 5, "two frames")
            assert leds == [Leds(caps=True, num=False, scroll=True)] and rfb.leds == leds[0]
            assert frames == [((4, 2), (255, 0, 0)), ((2, 2), (0, 255, 0))]
            frame = await rfb.frame(5)
            assert requests == [(0, 2, 2)]
            assert frame.size == (2, 2) and frame.image.getcolors() == [(4, (0, 0, 255))]
            go_on.set()
            await asyncio.wait_for(rfb.closed(), 5)
            with pytest.raises(RfbError, match="not connected"):
                await rfb.frame(1)


@pytest.mark.pure
async def test_live_requests_incrementally_after_each_update() -> None:
    requests: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(3, 1))
        for colour in (RED, GREEN, BLUE):
            await requests.put(await read_request(reader))
            writer.write(update(raw(3, 1, colour)))
        await requests.put(await read_request(reader))
        await reader.read()

    frames: list[object] = []
    async with scripted_server(script) as path:
        client = RfbClient(path, on_frame=lambda frame: frames.append(frame.image.getpixel((2, 0))))
        client.live = True  # before connecting: the first request goes out at connection
        async with client:
            got = [await asyncio.wait_for(requests.get(), 5) for _ in range(4)]
            assert got == [(0, 3, 1), (1, 3, 1), (1, 3, 1), (1, 3, 1)]
            await wait_until(lambda: len(frames) == 3, 5, "three frames")
            assert frames == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.pure
async def test_partial_updates_land_in_place_and_name_their_rectangles() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=(4, 3))
        assert await read_request(reader) == (1, 4, 3)
        writer.write(update(rect(1, 1, 2, 1, ENCODING_RAW, GREEN * 2)))  # before any whole picture
        assert await read_request(reader) == (0, 4, 3)
        writer.write(update(raw(4, 3, RED)))
        assert await read_request(reader) == (1, 4, 3)
        writer.write(update(rect(1, 1, 2, 1, ENCODING_RAW, GREEN * 2), rect(3, 2, 1, 1, ENCODING_RAW, BLUE)))
        await reader.read()

    frames: list[Frame] = []
    pictures: list[Image.Image] = []

    def on_frame(frame: Frame) -> None:
        frames.append(frame)
        pictures.append(frame.image)  # converted now: the framebuffer changes on

    async with scripted_server(script) as path, RfbClient(path, on_frame=on_frame) as rfb:
        rfb.request(incremental=True)
        await wait_until(lambda: len(frames) == 1, 5, "the partial update")
        assert not rfb.complete and frames[0].rects == ((1, 1, 2, 1),)
        rfb.request(incremental=False)
        await wait_until(lambda: len(frames) == 2, 5, "the whole frame")
        assert rfb.complete and frames[1].rects is None
        rfb.request(incremental=True)
        await wait_until(lambda: len(frames) == 3, 5, "two changed rectangles")
    assert frames[2].rects == ((1, 1, 2, 1), (3, 2, 1, 1))
    assert [f.version for f in frames] == [1, 2, 3]
    assert all(f.picture is frames[0].picture for f in frames)  # one framebuffer, shared
    expected = Image.new("RGB", (4, 3), (255, 0, 0))
    expected.putpixel((1, 1), (0, 255, 0))
    expected.putpixel((2, 1), (0, 255, 0))
    expected.putpixel((3, 2), (0, 0, 255))
    assert pictures[2].tobytes() == expected.tobytes()
    assert pictures[1].getcolors() == [(12, (255, 0, 0))]


@pytest.mark.pure
async def test_connect_errors_name_the_socket() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"RFB 003.008\n\x00" + struct.pack(">I", 8) + b"too many")
        await reader.read()

    async def vnc_auth_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"RFB 003.008\n\x01\x02")
        await reader.read()

    for script, message in ((refuse, "refused: too many"), (vnc_auth_only, "authentication")):
        async with scripted_server(script) as path:
            with pytest.raises(RfbError, match=message) as info:
                async with RfbClient(path):
                    pass
            assert str(path) in str(info.value)
    missing = Path("/nonexistent/p.vnc")
    with pytest.raises(RfbError, match=f"{missing}: cannot connect"):
        async with RfbClient(missing):
            pass


@pytest.mark.pure
async def test_rectangles_of_odd_sizes_arriving_in_odd_pieces_land_in_the_framebuffer() -> None:
    """Pixels are received straight into the framebuffer (whole rows at once, narrower
    rectangles row by row): whatever the rectangles' sizes and however the bytes are cut
    up on the way, the framebuffer holds exactly what was sent."""
    import random

    from mux.display.backbuffer import Pixels

    size = (300, 200)
    pick = random.Random(5)
    boxes = [(0, 0, 300, 200), (7, 3, 123, 91), (0, 150, 300, 50), (299, 199, 1, 1), (5, 0, 3, 200),
             (1, 1, 298, 198), (100, 60, 17, 1)]
    payloads = [pick.randbytes(w * h * 4) for _x, _y, w, h in boxes]
    expected = Pixels(*size)
    for box, payload in zip(boxes, payloads, strict=True):
        expected.paste(box, payload)
    stream = b"".join(update(rect(*box, ENCODING_RAW, payload))
                      for box, payload in zip(boxes, payloads, strict=True))
    # a rectangle that does not fit: the link ends (a protocol error), it does not write past the picture
    stream += update(rect(250, 0, 51, 1, ENCODING_RAW, bytes(51 * 4)))

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_handshake(reader, writer, size=size)
        at = 0
        while at < len(stream):  # pieces of 1 byte to 100 KB, each on its own
            piece = pick.choice((1, 3, 12, 4095, 20000, 100_000))
            writer.write(stream[at:at + piece])
            await writer.drain()
            await asyncio.sleep(0)
            at += piece
        await reader.read()

    frames: list[tuple[int, tuple[object, ...] | None, bytes]] = []
    async with scripted_server(script) as path:
        client = RfbClient(path, on_frame=lambda f: frames.append((f.version, f.rects, f.image.tobytes())))
        async with client as rfb:
            await asyncio.wait_for(rfb.closed(), 10)
    assert [version for version, _, _ in frames] == list(range(1, len(boxes) + 1))
    assert frames[0][1] is None and frames[3][1] == ((299, 199, 1, 1),)
    assert frames[-1][2] == expected.image().tobytes()
    # and each step on the way
    model = Pixels(*size)
    for (_, _, data), box, payload in zip(frames, boxes, payloads, strict=True):
        model.paste(box, payload)
        assert data == model.image().tobytes()
