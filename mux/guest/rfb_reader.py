"""The reading end of an RFB connection (:mod:`mux.guest.rfb`): pixels straight into place.

Theory. A raw 1024x768 frame is 3 MB. A stream reader's buffer cost four copies of it
(its buffer, ``readexactly``'s slice and bytes, the paste into the framebuffer); here the
event loop receives each chunk straight into the memory the parser names (a framebuffer
row range), so the kernel's copy out of the socket is the only one. Headers and small
rectangles go through a 64 KiB buffer instead: a ``recv`` per 16-byte header would cost
more than copying it.
"""

from __future__ import annotations

import asyncio

_BUFFER = 64 * 1024  # the reader's own buffer, for headers and small rectangles
_DIRECT = 16 * 1024  # a read at least this big goes straight into its destination


class RfbReader(asyncio.BufferedProtocol):
    """The connection's reading end: small reads (headers) come out of a 64 KiB buffer; a
    read of :data:`_DIRECT` bytes or more is received straight into the caller's memory
    (the framebuffer), so a frame's pixels are copied once, by the kernel.

    A buffered protocol: the event loop calls ``recv_into`` on whatever :meth:`get_buffer`
    returns as soon as data comes, with no future, task switch or reader registration per
    chunk (QEMU's 3 MB frame arrives in ~20 chunks of the socket's buffer size); the
    parser awaits only once per big read, or when the buffer runs dry.
    """

    def __init__(self) -> None:
        self._buffer = bytearray(_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0
        self._target: memoryview | None = None  # a big read's destination, while it is filled
        self._filled = 0  # of _target
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._paused = False
        self._transport: asyncio.Transport | None = None

    # --- the event loop's side -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None:
            return self._target[self._filled:]
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buffer):  # move what is held to the front
            held = self._end - self._start
            self._buffer[:held] = self._buffer[self._start:self._end]
            self._start, self._end = 0, held
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._target is not None:
            self._filled += nbytes
            if self._filled == len(self._target):
                self._target = None
                self._wake()
            return
        self._end += nbytes
        if self._end == len(self._buffer) and self._start == 0 and self._transport is not None:
            self._transport.pause_reading()  # full: until the parser takes some
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- the parser's side ---------------------------------------------------------------

    async def _more(self) -> None:
        """Until the event loop has received something (into the buffer or the target).

        Raises:
            asyncio.IncompleteReadError: the connection has ended.
        """
        if self._ended:
            raise asyncio.IncompleteReadError(b"", None)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self, target: memoryview) -> int:
        """Copy what the buffer holds, up to ``len(target)`` bytes, into ``target``; returns
        how many."""
        count = min(len(target), self._end - self._start)
        if count:
            target[:count] = self._view[self._start:self._start + count]
            self._start += count
        return count

    async def readinto(self, target: memoryview, done: int = 0) -> None:
        """Fill ``target`` from byte ``done`` on.

        Raises:
            asyncio.IncompleteReadError: the connection ended first.
        """
        done += self.take(target[done:])
        while done < len(target):
            if len(target) - done >= _DIRECT:
                self._target, self._filled = target, done
                try:
                    while self._target is not None:
                        await self._more()
                finally:
                    done, self._target = self._filled, None
            else:
                await self._more()
                done += self.take(target[done:])

    async def readexactly(self, count: int) -> bytes:
        """The next ``count`` bytes.

        Raises:
            asyncio.IncompleteReadError: the connection ended first.
        """
        if self._end - self._start < count:
            into = bytearray(count)
            with memoryview(into) as view:
                await self.readinto(view)
            return bytes(into)
        data = bytes(self._view[self._start:self._start + count])
        self._start += count
        return data

    async def skip(self, count: int) -> None:
        """Read past ``count`` bytes.

        Raises:
            asyncio.IncompleteReadError: the connection ended first.
        """
        while count > 0:
            dropped = min(count, self._end - self._start)
            self._start += dropped
            count -= dropped
            if count:
                await self._more()
