"""RFB's extended clipboard as QEMU's VNC server speaks it: the codec and one link's state (no I/O).

Theory. A client that lists the pseudo-encoding ``0xc0a1e5ce`` in SetEncodings gets the
extended clipboard: cut-text messages (ServerCutText 3, ClientCutText 6) whose length is
*negative*: ``-(4 + n)``, then a 32-bit flags word and ``n`` bytes of body.
The flags' low 16 bits name formats (bit 0: UTF-8 text), the top 8 bits the action:

- **caps** (bit 24): the formats and actions a side handles, then one 32-bit size limit per
  format. QEMU sends its caps as soon as the encoding is listed (text; provide, notify,
  request, caps; size 0) and ignores a client's;
- **notify** (bit 27): "the clipboard changed; these formats are available". QEMU sends it
  when another owner (the guest's vdagent, another VNC client) takes the clipboard, never
  to the owner itself, and not to a client that connects later (it learns of the next change);
- **request** (bit 25): "send me these formats". QEMU asks the client that owns the
  clipboard; it answers a client's request only when it does not own it;
- **provide** (bit 28): the data: one zlib stream holding, per format, a 32-bit size and
  the bytes. QEMU accepts a client's provide only while that client owns the clipboard
  (after its notify); it inflates it into at most 1 MiB, and takes a ClientCutText of at
  most 1 MiB;
- peek (bit 26) QEMU does not answer.

The clipboard is one per QEMU, shared by its VNC clients and its ``qemu-vdagent`` (which
relays it to the guest's ``spice-vdagent``). Text is relayed as bytes: QEMU converts no line
endings and adds no terminating NUL, so mux sends text as it is (no NUL: the guest would
paste it), and drops any NUL in text it receives (the protocol's terminator).

Bounds (what QEMU relays comes from the guest): text of more than :data:`MAX_CLIPBOARD_BYTES`
of UTF-8 is refused either way (:class:`ClipboardTooBig`: the link goes on); a provide is
inflated into at most that much (a zlib bomb costs nothing); anything malformed is a
:class:`ClipboardMalformed` (the link ends, like the other bounds of :mod:`mux.guest.rfb`).
Invalid UTF-8 is replaced. Clipboard text is never logged: sizes only.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

#: The pseudo-encoding that turns the extended clipboard on (0xc0a1e5ce, as RFB's signed 32 bits).
ENCODING_EXTENDED_CLIPBOARD = 0xC0A1E5CE - (1 << 32)
TEXT = 1 << 0  #: the format: UTF-8 text
CAPS, REQUEST, PEEK, NOTIFY, PROVIDE = (1 << 24), (1 << 25), (1 << 26), (1 << 27), (1 << 28)
#: The most UTF-8 text taken or given: 1 MiB less the 4-byte size that QEMU inflates with it
#: (QEMU's own limit on an inflated provide is 1 MiB).
MAX_CLIPBOARD_BYTES = (1 << 20) - 4
#: The most QEMU takes in one ClientCutText (its flags and compressed body).
QEMU_CUT_TEXT_LIMIT = 1 << 20
CLIENT_CUT_TEXT = 6
_U32 = struct.Struct(">I")


class ClipboardMalformed(Exception):
    """A clipboard message that breaks the protocol (ends the link)."""


class ClipboardTooBig(Exception):
    """Clipboard text over :data:`MAX_CLIPBOARD_BYTES` (refused; the link goes on)."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        super().__init__(f"{what} of {size} bytes is over the limit ({MAX_CLIPBOARD_BYTES} bytes)")


def client_message(flags: int, body: bytes = b"") -> bytes:
    """A ClientCutText in the extended form: negative length, flags, body."""
    return struct.pack(">B3xiI", CLIENT_CUT_TEXT, -(4 + len(body)), flags) + body


def caps_message() -> bytes:
    """Our caps: text, up to :data:`MAX_CLIPBOARD_BYTES`; we request, notify and provide."""
    return client_message(CAPS | REQUEST | NOTIFY | PROVIDE | TEXT, _U32.pack(MAX_CLIPBOARD_BYTES))


def notify_message(text: bool = True) -> bytes:
    """Tell QEMU the clipboard is now ours (with text, or with nothing)."""
    return client_message(NOTIFY | (TEXT if text else 0))


def request_message() -> bytes:
    """Ask QEMU for the clipboard's text."""
    return client_message(REQUEST | TEXT)


def provide_message(text: str) -> bytes:
    """The whole ClientCutText that provides ``text`` (NULs dropped, no terminator added).

    Raises:
        ClipboardTooBig: the UTF-8 text is over :data:`MAX_CLIPBOARD_BYTES`, or compresses
            to more than QEMU takes in one message.
    """
    data = text.replace("\x00", "").encode("utf-8", "replace")
    if len(data) > MAX_CLIPBOARD_BYTES:
        raise ClipboardTooBig(len(data), "clipboard text")
    body = zlib.compress(_U32.pack(len(data)) + data)
    if 4 + len(body) > QEMU_CUT_TEXT_LIMIT:
        raise ClipboardTooBig(len(data), f"clipboard text (compressed to {len(body)} bytes, over QEMU's"
                                         f" {QEMU_CUT_TEXT_LIMIT})")
    return client_message(PROVIDE | TEXT, body)


def decode_text(compressed: bytes) -> str:
    """The text of a provide's body (its zlib stream: a 32-bit size, then the UTF-8 bytes).

    Inflates at most :data:`MAX_CLIPBOARD_BYTES` plus the size and a terminator, whatever
    the stream holds.

    Raises:
        ClipboardTooBig: the text is over :data:`MAX_CLIPBOARD_BYTES`.
        ClipboardMalformed: not a zlib stream, or shorter than the size it gives.
    """
    limit = 4 + MAX_CLIPBOARD_BYTES + 1  # the size, the text, a NUL terminator
    try:
        data = zlib.decompressobj().decompress(compressed, limit)
    except zlib.error as exc:
        raise ClipboardMalformed(f"a clipboard provide that does not inflate ({exc})") from None
    if len(data) < 4:
        raise ClipboardMalformed(f"a clipboard provide of {len(data)} bytes (no text size)")
    (size,) = _U32.unpack_from(data)
    if size > MAX_CLIPBOARD_BYTES + 1:
        raise ClipboardTooBig(size, "clipboard text")
    if len(data) < 4 + size:
        raise ClipboardMalformed(f"a clipboard provide of {len(data) - 4} bytes of text says {size}")
    text = data[4:4 + size].replace(b"\x00", b"")
    if len(text) > MAX_CLIPBOARD_BYTES:
        raise ClipboardTooBig(len(text), "clipboard text")
    return text.decode("utf-8", "replace")


@dataclass(frozen=True)
class Caps:
    """The server's caps: its flags and a size limit per format (0: none given)."""

    flags: int
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class Changed:
    """QEMU's clipboard has a new owner; ``text``: it offers text."""

    text: bool


@dataclass(frozen=True)
class Provided:
    """The text QEMU provided."""

    text: str


@dataclass(frozen=True)
class Refused:
    """QEMU provided text over the limit (``size`` bytes): nothing is kept."""

    size: int


Event = Caps | Changed | Provided | Refused


@dataclass
class ClipboardState:
    """What one VNC link knows of QEMU's clipboard, and what it offers (sans I/O).

    :meth:`received` takes a server message's body and returns what to send back and
    what happened. ``offered`` is our last :func:`provide_message`: QEMU's requests are
    answered with it (QEMU sends them only to the owner, and takes a provide only from
    it). ``owned``: our offer is the clipboard (no notify came since).
    """

    announced: bool = False  #: QEMU offers text (a notify with text came, none since without)
    text: str | None = None  #: that text, once provided
    offered: bytes | None = None
    owned: bool = False
    caps: Caps | None = None

    def offer(self, text: str) -> bytes:
        """Make ``text`` ours to offer; returns what to send (the notify).

        Raises:
            ClipboardTooBig: see :func:`provide_message`.
        """
        self.offered = provide_message(text)
        self.owned, self.announced, self.text = True, True, text.replace("\x00", "")
        return notify_message(True)

    def received(self, body: bytes) -> tuple[bytes, Event | None]:
        """Handle a server's extended cut text (``body``: flags and the rest).

        Returns (bytes to send back, the event or None).

        Raises:
            ClipboardMalformed: no flags, caps without their sizes, a provide that does
                not inflate or is shorter than it says.
        """
        if len(body) < 4:
            raise ClipboardMalformed(f"an extended cut text of {len(body)} bytes (no flags)")
        (flags,) = _U32.unpack_from(body)
        if flags & CAPS:
            count = bin(flags & 0xFFFF).count("1")
            if len(body) < 4 + 4 * count:
                raise ClipboardMalformed(f"clipboard caps for {count} formats in {len(body)} bytes")
            self.caps = Caps(flags, struct.unpack_from(f">{count}I", body, 4))
            return caps_message(), self.caps
        if flags & NOTIFY:
            self.owned, self.text = False, None
            self.announced = bool(flags & TEXT)
            return b"", Changed(self.announced)
        reply = b""
        event: Event | None = None
        if flags & PROVIDE and flags & TEXT:
            try:
                text = decode_text(body[4:])
            except ClipboardTooBig as exc:
                event = Refused(exc.size)
            else:
                if not self.owned:
                    self.text = text
                event = Provided(text)
        if flags & REQUEST and flags & TEXT and self.offered is not None:
            reply = self.offered
        return reply, event
