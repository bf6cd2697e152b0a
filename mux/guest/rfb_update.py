"""A FramebufferUpdate received into the client's framebuffer, mixed into
:class:`~mux.guest.rfb.RfbClient` (the theory, and the bounds, are in :mod:`mux.guest.rfb`).

Each rectangle of an update is raw pixels, received straight into their place
(:mod:`mux.guest.rfb_reader`), the LED state, or a new desktop size. A live client asks
for the next update as this one begins to arrive. An update that changed pixels becomes
one :class:`~mux.display.backbuffer.Frame` for ``on_frame``; one that covered the whole
screen also answers :meth:`~mux.guest.rfb.RfbClient.frame`. A size change is paced (the
newest wins), and the newest frame waits behind it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mux.display.backbuffer import Box, Frame, Pixels
from mux.display.leds import Leds
from mux.errors import DisplayError, RfbError
from mux.guest.paced import Paced
from mux.guest.rfb_reader import RfbReader

log = logging.getLogger("mux.guest.rfb")  # one logger for the link, as before the split

ENCODING_RAW = 0
ENCODING_DESKTOP_SIZE = -223
ENCODING_EXTENDED_DESKTOP_SIZE = -308
ENCODING_LED_STATE = -261
_RECT = struct.Struct(">HHHHi")
MAX_SIDE = 8192  #: a framebuffer's width or height, at most
MAX_FRAMEBUFFER_BYTES = 64 * 1024 * 1024  #: 4 bytes a pixel: 4096x4096, 5120x2880 (5K) fit


class FramebufferUpdates:
    """Reading updates into the framebuffer, mixed into :class:`~mux.guest.rfb.RfbClient`."""

    path: Path
    on_frame: Callable[[Frame], None] | None
    leds: Leds | None
    complete: bool
    _live: bool
    _pixels: Pixels
    _waiters: list[asyncio.Future[Frame]]
    _leds: Paced[Leds]
    _resizes: Paced[tuple[int, int]]
    _held: Frame | None
    _on_extended_size: Callable[[int, int, tuple[int, int], bytes], None]  # RfbRequests'

    def request(self, incremental: bool) -> None:  # RfbClient's
        raise NotImplementedError

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:  # RfbClient's
        raise NotImplementedError

    async def _read_update(self, reader: RfbReader) -> None:
        began = time.monotonic()
        (count,) = struct.unpack(">xH", await reader.readexactly(3))
        if self._live:
            # Ask for the next update before reading this one's pixels: QEMU sends only
            # on its refresh timer (30 ms at best) and only if a request is pending then,
            # and a tick with none pending also slows the timer down. Asking after the
            # whole update was read and decoded missed ticks (measured: 16 -> 25 fps on
            # a guest repainting its whole 1024x768 screen, on a loaded 2-core machine).
            self.request(incremental=True)
        pixels = 0
        rects: list[Box] = []
        for _ in range(count):
            x, y, width, height, encoding = _RECT.unpack(await reader.readexactly(_RECT.size))
            if encoding == ENCODING_RAW:
                if width and height:
                    await self._read_pixels(reader, (x, y, width, height))
                    rects.append((x, y, width, height))
                    pixels += width * height
            elif encoding == ENCODING_LED_STATE:
                self.leds = Leds.from_byte((await reader.readexactly(1))[0])
                self._leds(self.leds)
            elif encoding == ENCODING_DESKTOP_SIZE:
                self._resize(width, height)
            elif encoding == ENCODING_EXTENDED_DESKTOP_SIZE:  # x: reason, y: status
                screens = await reader.readexactly(16 * (await reader.readexactly(4))[0])
                self._on_extended_size(x, y, (width, height), screens)
                if y == 0 and (width, height) != self._pixels.size:  # status 0, a new size: a resize
                    self._resize(width, height)
            else:
                raise RfbError(self.path, f"unexpected encoding {encoding} in a framebuffer update")
        if not pixels:
            return
        self._pixels.version += 1
        whole = pixels >= self._pixels.width * self._pixels.height
        self.complete = self.complete or whole
        frame = Frame(self._pixels, began, "vnc", version=self._pixels.version,
                      rects=None if whole else tuple(rects))
        if whole:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(frame)
        if self._resizes.pending:  # a size change waits its turn: the newest frame waits too
            self._held = frame
            return
        self._call(self.on_frame, frame)

    async def _read_pixels(self, reader: RfbReader, box: Box) -> None:
        """Receive a raw rectangle straight into its place in the framebuffer: one read for
        whole rows, else row by row (from the reader's buffer when it holds them)."""
        pixels = self._pixels
        try:
            pixels.check(box)
        except DisplayError as exc:
            raise RfbError(self.path, str(exc)) from None
        x, y, width, height = box
        stride, row = pixels.width * 4, width * 4
        with memoryview(pixels.data) as view:
            if width == pixels.width:
                await reader.readinto(view[y * stride:(y + height) * stride])
                return
            for line in range(y, y + height):
                start = line * stride + x * 4
                target = view[start:start + row]
                got = reader.take(target)  # no await (no task switch) while the buffer holds rows
                if got < row:
                    await reader.readinto(target, got)

    def _check_size(self, width: int, height: int) -> None:
        """Raises RfbError: a framebuffer of this size is over the bounds (module docstring)."""
        if width > MAX_SIDE or height > MAX_SIDE or width * height * 4 > MAX_FRAMEBUFFER_BYTES:
            raise RfbError(self.path, f"framebuffer {width}x{height} is over the limit ({MAX_SIDE}"
                                      f" a side, {MAX_FRAMEBUFFER_BYTES // 2**20} MiB)")

    def _resize(self, width: int, height: int) -> None:
        self._check_size(width, height)
        log.debug("VNC %s: desktop size %dx%d", self.path, width, height)
        self._pixels, self.complete = Pixels(width, height), False
        self._held = None
        self._resizes((width, height))
        if self._live:
            self.request(incremental=False)

    def _resize_due(self, size: tuple[int, int]) -> None:
        """A size change's turn (at once, or at the end of a burst: then the newest frame
        held meanwhile goes, whole, if it is of the current framebuffer)."""
        held, self._held = self._held, None
        if held is not None and held.picture is self._pixels:
            self._call(self.on_frame, replace(held, rects=None))
