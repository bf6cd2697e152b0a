"""A small asyncio RFB (VNC) client for QEMU's VNC server on a unix socket.

Theory: each persona's QEMU runs ``-vnc unix:PATH`` in the private runtime directory,
and the controller keeps one :class:`RfbClient` on it for two things QMP cannot give:

- **Keyboard LEDs.** After the client lists QEMU's "LED state" pseudo-encoding (-261)
  in SetEncodings, QEMU sends a FramebufferUpdate with one rectangle of that encoding
  and a one-byte payload (bit 0 scroll lock, bit 1 num lock, bit 2 caps lock): once
  right after SetEncodings, then whenever the guest sets its keyboard's LEDs
  (``kbd_leds`` -> ``vnc_led_state_change`` in QEMU's ``ui/vnc.c``). These updates are
  unsolicited, so they flow whether or not frames are requested.
- **The live picture.** RFB is pull-based: one FramebufferUpdateRequest gets at most one
  FramebufferUpdate, sent once something is dirty. With :attr:`RfbClient.live` on, the
  client asks again (incrementally) as each update begins to arrive, so only changed rectangles
  travel. Pixels come raw in a 32-bit little-endian true-colour format equal to QEMU's
  own surface format (x8r8g8b8, bytes B G R X), so QEMU copies rows without converting
  and each rectangle is received straight into its place in one persistent framebuffer
  (:class:`~mux.display.backbuffer.Pixels`): whole rows with one ``recv_into`` of the
  framebuffer's memory, a narrower rectangle row by row (small ones through a 64 KiB
  buffer). A frame's pixels are copied once, by the kernel, and converted nowhere (a
  stream reader's buffer cost four copies of a 3 MB frame). A picture asked for while
  an update is arriving may mix rows of both (as it could mix rectangles). Each update
  becomes a :class:`~mux.display.backbuffer.Frame` that refers to that framebuffer and
  lists the rectangles it changed. A non-incremental request makes QEMU mark the whole
  screen dirty, so the next update that covers the whole screen is a full frame: that is
  :meth:`RfbClient.frame`; from then on the framebuffer is :attr:`RfbClient.complete`.
- **Changes only, when asked.** Without ``live``, :meth:`RfbClient.request` asks once
  (incrementally: QEMU answers only when something changed, so an unchanged screen
  costs nothing); the owner decides how often. DesktopSize (-223) or ExtendedDesktopSize
  (-308; QEMU sends it instead, and also with the same size for each full update request)
  of a new size replaces the image with one of that size.
- **Clipboard and screen size** (:mod:`mux.guest.rfb_requests`): the extended clipboard's
  messages (:mod:`mux.guest.rfb_clipboard`) and SetDesktopSize.

One reader task parses server messages in order. A dropped connection or a protocol
error ends it quietly (logged, and kept in :attr:`RfbClient.error`): :meth:`RfbClient.closed`
then returns, so the owner can reconnect; nothing raises into the callbacks' callers.

**Bounds** (the guest behind QEMU is untrusted). Every size is checked before anything
is allocated or read: a framebuffer (at the handshake or a resize) over
:data:`~.rfb_update.MAX_SIDE` pixels a side or :data:`~.rfb_update.MAX_FRAMEBUFFER_BYTES`,
a rectangle outside the framebuffer, a string (the desktop name, a refusal) over
:data:`MAX_STRING_BYTES` or a ServerCutText over :data:`MAX_CUT_TEXT_BYTES` (or a
malformed clipboard message) ends the link with an :class:`RfbError`; clipboard text over
:data:`~mux.guest.rfb_clipboard.MAX_CLIPBOARD_BYTES` is refused, and the link goes on.
LED reports reach ``on_leds`` at most :data:`LED_RATE` a second and size changes reach
``on_frame`` at most :data:`RESIZE_RATE` a second (:mod:`mux.guest.paced`: the latest
wins; while a resize waits its turn frames are held, and the newest is delivered whole
when it is due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from mux.display.backbuffer import Frame, Pixels
from mux.display.leds import Leds
from mux.errors import RfbError
from mux.guest.paced import Paced
from mux.guest.rfb_clipboard import ENCODING_EXTENDED_CLIPBOARD, ClipboardMalformed
from mux.guest.rfb_reader import RfbReader
from mux.guest.rfb_requests import RfbRequests
from mux.guest.rfb_update import (
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_LED_STATE,
    ENCODING_RAW,
    FramebufferUpdates,
)

log = logging.getLogger(__name__)

#: 32 bpp, depth 24, little-endian, true colour, 8 bits per channel at shifts 16/8/0.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
MAX_STRING_BYTES = 64 * 1024  #: the desktop name, a refusal's reason
MAX_CUT_TEXT_BYTES = 1024 * 1024  #: ServerCutText: plain (skipped unread), or extended (its body)
LED_RATE = 10.0  #: LED reports passed on, per second at most (the last one wins)
RESIZE_RATE = 2.0  #: size changes passed on, per second at most (the last one wins)


class RfbClient(FramebufferUpdates, RfbRequests):
    """``async with RfbClient(path) as rfb: ...``: reusable, not re-entrant.

    ``on_leds(leds)`` is called for every LED state QEMU sends (including the first, sent
    at connection). ``on_frame(frame)`` is called after every update that changed pixels,
    with a :class:`~mux.display.backbuffer.Frame` over the client's framebuffer (not a
    copy), the rectangles changed and the ``time.monotonic()`` at which the update began
    to arrive. Exceptions from callbacks are logged, not propagated.
    """

    def __init__(self, path: Path, on_leds: Callable[[Leds], None] | None = None,
                 on_frame: Callable[[Frame], None] | None = None,
                 *, timeout: float = 10.0) -> None:
        self.path = path
        self.on_leds = on_leds
        self.on_frame = on_frame
        self.timeout = timeout
        self.leds: Leds | None = None
        self.name = ""
        self._live = False
        self._pixels = Pixels(0, 0)
        #: The framebuffer holds a whole picture: a full update came since connecting (or resizing).
        self.complete = False
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[Frame]] = []
        self._closed = asyncio.Event()
        self._closed.set()
        #: Why the last connection ended, if the server broke the protocol or a bound.
        self.error: RfbError | None = None
        self._leds = Paced(LED_RATE, self._tell_leds, f"VNC {path.name}: LED changes")
        self._resizes = Paced(RESIZE_RATE, self._resize_due, f"VNC {path.name}: size changes")
        self._held: Frame | None = None  # the newest frame while a size change waits
        self._reset_requests()

    @property
    def size(self) -> tuple[int, int]:
        """The framebuffer's (width, height); (0, 0) before connecting."""
        return self._pixels.size

    @property
    def live(self) -> bool:
        """Whether frame updates are streamed; LED updates flow either way.

        The setting outlives the connection: a client that reconnects while live asks for
        a full frame at once and streams on.
        """
        return self._live

    @live.setter
    def live(self, on: bool) -> None:
        if on and not self._live:
            self.request(incremental=False)  # catch up on whatever changed while off
        self._live = on

    async def __aenter__(self) -> RfbClient:
        """Connect, shake hands (RFB 3.8, security None) and start the reader.

        Raises:
            RfbError: already connected, cannot connect, the server refused us, broke the
                handshake or did not finish it within ``timeout`` seconds.
        """
        if self._task is not None:
            raise RfbError(self.path, "already connected (RfbClient is not re-entrant)")
        transport: asyncio.Transport | None = None
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    transport, reader = await asyncio.get_running_loop().create_unix_connection(
                        RfbReader, str(self.path))
                    self._transport = transport
                    await self._handshake(reader)
            except TimeoutError as exc:
                raise RfbError(self.path, f"no handshake within {self.timeout} s") from exc
            except asyncio.IncompleteReadError as exc:
                raise RfbError(self.path, "server closed the connection during the handshake") from exc
            except OSError as exc:
                raise RfbError(self.path, f"cannot connect: {exc}") from exc
        except BaseException:
            self._transport = None
            if transport is not None:
                transport.close()
            raise
        self._closed.clear()
        self._task = asyncio.create_task(self._read_loop(reader), name=f"rfb-reader {self.path.name}")
        if self._live:
            self.request(incremental=False)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop the reader and close the socket; raises nothing of its own."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def closed(self) -> None:
        """Return once the connection has ended (at once when not connected); never raises."""
        await self._closed.wait()

    async def frame(self, timeout: float) -> Frame:
        """Request a full (non-incremental) update and return the resulting frame.

        Raises:
            RfbError: not connected, the connection ended, or no full frame came in
                ``timeout`` seconds.
        """
        if self._closed.is_set():
            raise RfbError(self.path, "not connected")
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            self.request(incremental=False)
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError as exc:
            raise RfbError(self.path, f"no full frame within {timeout} s") from exc
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _handshake(self, reader: RfbReader) -> None:
        version = await reader.readexactly(12)
        if not version.startswith(b"RFB 003."):
            raise RfbError(self.path, f"not an RFB server (greeting {version!r})")
        self._send(b"RFB 003.008\n")
        types = await reader.readexactly((await reader.readexactly(1))[0])
        if not types:
            raise RfbError(self.path, f"server refused: {await _read_string(reader, self.path)}")
        if 1 not in types:
            raise RfbError(self.path, f"server wants authentication (security types {list(types)})")
        self._send(b"\x01")
        (result,) = struct.unpack(">I", await reader.readexactly(4))
        if result != 0:
            raise RfbError(self.path, f"security handshake failed: {await _read_string(reader, self.path)}")
        self._send(b"\x01")  # ClientInit: shared, so other clients stay connected
        width, height = struct.unpack(">HH", await reader.readexactly(4))
        self._check_size(width, height)
        await reader.readexactly(16)  # the server's pixel format: we set our own below
        self.name = (await _read_string(reader, self.path))
        self._pixels, self.complete = Pixels(width, height), False
        self._reset_requests()
        encodings = (ENCODING_RAW, ENCODING_DESKTOP_SIZE, ENCODING_EXTENDED_DESKTOP_SIZE, ENCODING_LED_STATE,
                     ENCODING_EXTENDED_CLIPBOARD)
        self._send(b"\x00\x00\x00\x00" + PIXEL_FORMAT
                   + struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings))

    def request(self, incremental: bool) -> None:
        """Send a FramebufferUpdateRequest for the whole screen (no-op when not connected).

        An incremental one is answered only once something changed; a full one with the
        whole screen."""
        width, height = self.size
        self._send(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, width, height))

    def _send(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def _read_loop(self, reader: RfbReader) -> None:
        try:
            while True:
                kind = (await reader.readexactly(1))[0]
                if kind == 0:
                    await self._read_update(reader)
                elif kind == 1:  # SetColourMapEntries: not used with true colour, skip it
                    _first, count = struct.unpack(">xHH", await reader.readexactly(5))
                    await reader.skip(6 * count)
                elif kind == 2:  # Bell
                    pass
                elif kind == 3:  # ServerCutText: a negative length is the extended clipboard's
                    (length,) = struct.unpack(">3xi", await reader.readexactly(7))
                    if abs(length) > MAX_CUT_TEXT_BYTES + 4 or 0 > length > -4:  # -1..-3: no flags
                        raise RfbError(self.path, f"ServerCutText of {length & 0xFFFFFFFF} bytes (the"
                                                  f" limit is {MAX_CUT_TEXT_BYTES})")
                    if length >= 0:
                        await reader.skip(length)
                    else:
                        self._on_cut_text(await reader.readexactly(-length))
                else:
                    raise RfbError(self.path, f"unknown server message type {kind}")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("VNC %s: connection closed (%s)", self.path, exc)
        except ClipboardMalformed as exc:
            self.error = RfbError(self.path, str(exc))
            log.warning("%s; the link ends", self.error)
        except RfbError as exc:
            self.error = exc
            log.warning("%s; the link ends", exc)
        except OSError as exc:
            log.warning("VNC %s: %s", self.path, exc)
        finally:
            transport, self._transport = self._transport, None
            if transport is not None:
                transport.close()
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(RfbError(self.path, "connection closed"))
            self._fail_clipboard_waiters("connection closed")
            self._held = None
            self._closed.set()

    def _tell_leds(self, leds: Leds) -> None:
        self._call(self.on_leds, leds)

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("VNC %s: callback %r failed", self.path, callback)


async def _read_string(reader: RfbReader, path: Path) -> str:
    """A length-prefixed string. Raises RfbError: longer than MAX_STRING_BYTES."""
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    if length > MAX_STRING_BYTES:
        raise RfbError(path, f"a string of {length} bytes (the limit is {MAX_STRING_BYTES})")
    return (await reader.readexactly(length)).decode("utf-8", "replace")
