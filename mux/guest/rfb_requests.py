"""What the VNC link asks of QEMU beyond pictures and LEDs: its clipboard, and a screen size.

Theory. :class:`RfbRequests` is the part of :class:`~mux.guest.rfb.RfbClient` that talks
back to QEMU; the reader task hands it two kinds of server messages.

- **Clipboard** (RFB's extended clipboard, :mod:`mux.guest.rfb_clipboard`). QEMU's clipboard
  is one per QEMU, shared by its VNC clients and its ``qemu-vdagent`` (the guest's
  clipboard, for a persona with ``clipboard = true``). :meth:`~RfbRequests.clipboard_text`
  asks QEMU for the text it announced (a request, answered by a provide);
  :meth:`~RfbRequests.set_clipboard` makes text the clipboard, as this client's: a notify,
  then the text for each of QEMU's requests, for as long as no other owner (a copy in the
  guest, another client) takes it. QEMU tells a client of a change only as it happens: a
  client that connects later knows nothing until the next copy.
- **Screen size.** A client that lists ExtendedDesktopSize (-308) gets an ExtendedDesktopSize
  rectangle (reason, status, size, screens) in answer to each full update request and for
  each resize. :meth:`~RfbRequests.set_desktop_size` sends SetDesktopSize (251) for the
  screen QEMU announced there; QEMU answers at once with reason 1 and status 4 ("forwarded":
  the display device takes size hints, as virtio-gpu does; the guest's driver then sets the
  mode, which arrives as a resize) or 3 ("invalid layout": it does not, as the standard
  VGA). Asked before any announcement, the size is sent when the first one comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from pathlib import Path
from typing import NamedTuple

from mux.errors import RfbError
from mux.guest.rfb_clipboard import (
    Caps,
    Changed,
    ClipboardState,
    ClipboardTooBig,
    Event,
    Provided,
    Refused,
    request_message,
)

log = logging.getLogger(__name__)

SET_DESKTOP_SIZE = 251
_SCREEN = struct.Struct(">IHHHHI")  # id, x, y, width, height, flags


class SizeReply(NamedTuple):
    """QEMU's answer to this client's SetDesktopSize: ``status`` 0 done, 1 prohibited, 2 out
    of resources, 3 invalid layout (QEMU: the display device takes no size hints), 4 forwarded
    to the guest (QEMU); the framebuffer's size when it answered."""

    status: int
    width: int
    height: int


class RfbRequests:
    """The clipboard and screen-size half of :class:`~mux.guest.rfb.RfbClient` (a mixin)."""

    path: Path
    _closed: asyncio.Event

    def _send(self, data: bytes) -> None:  # RfbClient's
        raise NotImplementedError

    def _check_size(self, width: int, height: int) -> None:  # RfbClient's: raises RfbError
        raise NotImplementedError

    def _reset_requests(self) -> None:
        """A new connection: nothing known of QEMU's clipboard or screens."""
        self._clipboard = ClipboardState()
        #: How many times QEMU told this connection its clipboard changed (a copy elsewhere).
        self.clipboard_changes = 0
        self._clipboard_waiters: list[asyncio.Future[str]] = []
        self._screen: tuple[int, int] | None = None  # (id, flags) of QEMU's announced screen
        self._wanted_size: tuple[int, int] | None = None
        #: QEMU's answer to the last :meth:`set_desktop_size` on this connection, if any came.
        self.size_reply: SizeReply | None = None

    # --- clipboard ---------------------------------------------------------------------

    @property
    def clipboard_available(self) -> bool:
        """QEMU's clipboard holds text: it announced some since this link connected (or it
        is ours, from :meth:`set_clipboard`)."""
        return not self._closed.is_set() and self._clipboard.announced

    @property
    def clipboard_listening(self) -> bool:
        """QEMU sent its clipboard caps on this connection: it has registered the link, and
        tells it of every change from then on (not of one made before)."""
        return not self._closed.is_set() and self._clipboard.caps is not None

    async def clipboard_text(self, timeout: float) -> str:
        """The text of QEMU's clipboard (asked once per change; ours is answered at once).

        NULs are dropped and invalid UTF-8 replaced.

        Raises:
            RfbError: not connected, QEMU announced no text (:attr:`clipboard_available`),
                the text is over :data:`~mux.guest.rfb_clipboard.MAX_CLIPBOARD_BYTES`, it
                did not come within ``timeout`` seconds, or the link ended meanwhile.
        """
        if self._closed.is_set():
            raise RfbError(self.path, "not connected")
        if not self._clipboard.announced:
            raise RfbError(self.path, "QEMU announced no clipboard text since this link connected")
        if self._clipboard.text is not None:
            return self._clipboard.text
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._clipboard_waiters.append(waiter)
        try:
            self._send(request_message())
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError as exc:
            raise RfbError(self.path, f"no clipboard text within {timeout} s") from exc
        finally:
            with contextlib.suppress(ValueError):
                self._clipboard_waiters.remove(waiter)

    def set_clipboard(self, text: str) -> None:
        """Make ``text`` QEMU's clipboard, as this client's (NULs dropped); QEMU's vdagent
        then offers it to the guest. It stays ours until another owner takes the clipboard.

        Raises:
            RfbError: not connected, or the text is over
                :data:`~mux.guest.rfb_clipboard.MAX_CLIPBOARD_BYTES` of UTF-8 (nothing changes).
        """
        if self._closed.is_set():
            raise RfbError(self.path, "not connected")
        try:
            notify = self._clipboard.offer(text)
        except ClipboardTooBig as exc:
            raise RfbError(self.path, str(exc)) from None
        self._send(notify)
        log.debug("VNC %s: clipboard text offered (%d characters)", self.path, len(text))
        self._tell_clipboard_waiters(self._clipboard.text or "")

    def _on_cut_text(self, body: bytes) -> None:
        """A server's extended cut text. Raises ClipboardMalformed (rfb_clipboard)."""
        reply, event = self._clipboard.received(body)
        if reply:
            self._send(reply)
            log.debug("VNC %s: clipboard: answered with %d bytes", self.path, len(reply))
        self._clipboard_event(event)

    def _clipboard_event(self, event: Event | None) -> None:
        if isinstance(event, Caps):
            log.debug("VNC %s: clipboard caps %#x, sizes %s", self.path, event.flags, event.sizes)
        elif isinstance(event, Changed):
            self.clipboard_changes += 1
            log.debug("VNC %s: clipboard changed (text: %s)", self.path, event.text)
            if event.text and self._clipboard_waiters:
                self._send(request_message())  # QEMU forgets requests for the old content
            elif not event.text:
                self._fail_clipboard_waiters("the clipboard changed to no text")
        elif isinstance(event, Provided):
            log.debug("VNC %s: clipboard text received (%d characters)", self.path, len(event.text))
            self._tell_clipboard_waiters(event.text)
        elif isinstance(event, Refused):
            log.warning("VNC %s: clipboard text of %d bytes refused (over the limit)", self.path, event.size)
            self._fail_clipboard_waiters(str(ClipboardTooBig(event.size, "clipboard text")))

    def _tell_clipboard_waiters(self, text: str) -> None:
        for waiter in self._clipboard_waiters:
            if not waiter.done():
                waiter.set_result(text)

    def _fail_clipboard_waiters(self, why: str) -> None:
        for waiter in self._clipboard_waiters:
            if not waiter.done():
                waiter.set_exception(RfbError(self.path, why))

    # --- screen size -------------------------------------------------------------------

    def set_desktop_size(self, width: int, height: int) -> None:
        """Ask QEMU for a screen of ``width`` x ``height`` (SetDesktopSize, for the screen
        QEMU announced; kept until an announcement comes, and a no-op when not connected).
        QEMU's answer lands in :attr:`size_reply`; a resize, if the guest makes one, comes
        as usual.

        Raises:
            RfbError: a side under 1, or over the framebuffer bounds (:data:`~mux.guest.rfb.MAX_SIDE`,
                :data:`~mux.guest.rfb.MAX_FRAMEBUFFER_BYTES`).
        """
        if width < 1 or height < 1:
            raise RfbError(self.path, f"a desktop size of {width}x{height} is not a size")
        self._check_size(width, height)
        if self._closed.is_set():
            log.debug("VNC %s: not connected: desktop size %dx%d not asked", self.path, width, height)
            return
        self._wanted_size = (width, height)
        if self._screen is None:
            log.debug("VNC %s: QEMU announced no ExtendedDesktopSize yet: %dx%d is asked once it does",
                      self.path, width, height)
            return
        self._send_desktop_size()

    def _send_desktop_size(self) -> None:
        assert self._screen is not None and self._wanted_size is not None
        (width, height), (screen_id, flags) = self._wanted_size, self._screen
        self._wanted_size = None
        self._send(struct.pack(">BxHHBx", SET_DESKTOP_SIZE, width, height, 1)
                   + _SCREEN.pack(screen_id, 0, 0, width, height, flags))
        log.debug("VNC %s: asked for desktop size %dx%d", self.path, width, height)

    def _on_extended_size(self, reason: int, status: int, size: tuple[int, int], screens: bytes) -> None:
        """An ExtendedDesktopSize rectangle (``screens``: its screens, 16 bytes each)."""
        if reason == 1:
            self.size_reply = SizeReply(status, *size)
            log.debug("VNC %s: desktop size request: status %d, %dx%d", self.path, status, *size)
        if len(screens) >= _SCREEN.size:
            screen_id, _x, _y, _w, _h, flags = _SCREEN.unpack_from(screens)
            first = self._screen is None
            self._screen = (screen_id, flags)
            if first and self._wanted_size is not None:
                self._send_desktop_size()
