"""The wire between a seat's window process and mux: length-prefixed messages on pipes.

Theory. pygame-ce (SDL 2) has one window per process and SDL's X11 driver one X display,
so each ``[[seat]]`` with a window runs it in a child process
(:mod:`mux.display.window_child`), driven by a proxy in mux
(:mod:`mux.display.seat_window`). They talk over the child's stdin (mux to window) and
stdout (window to mux), one message at a time:

    8 bytes: header length, payload length (unsigned, big-endian, 4 bytes each)
    header:  a JSON object with a "type" (UTF-8)
    payload: raw bytes (a frame's pixels), often empty

Frames travel as raw pixels, never PNG: ``mode`` ``"BGRX"`` (a VNC link's
:class:`~mux.display.backbuffer.Pixels`, whole or only the changed ``rects``, their rows
one after the other) or ``"RGB"`` (a decoded screendump, whole). Both ends bound what they
read (:data:`MAX_HEADER`, :data:`MAX_SIDE`, a payload exactly the size its header says) and
refuse the rest with :class:`WireError`: the window process is ours, but a broken one must
not make mux allocate without limit. Pure: no asyncio, no pygame.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from PIL import Image

from mux.display.backbuffer import Box, Frame, Pixels, bgrx_image
from mux.errors import DisplayError

PREFIX = struct.Struct(">II")
MAX_HEADER = 64 * 1024  #: a header's bytes, at most (either way)
MAX_SIDE = 8192  #: a frame's width or height, at most (as the VNC link's)
MAX_RECTS = 64  #: changed rectangles per frame message; more are sent as the whole frame
MAX_EVENTS = 256  #: input events in one message from the window


class WireError(DisplayError):
    """A message on the window's pipes is malformed or too large (names what and why)."""


def encode(header: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> list[bytes | memoryview]:
    """One message as the pieces to write, in order (the payload is not copied).

    Raises:
        WireError: the header is larger than :data:`MAX_HEADER`.
    """
    head = json.dumps(header, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER:
        raise WireError(f"a {header.get('type')!r} message's header is {len(head)} bytes "
                        f"(at most {MAX_HEADER})")
    return [PREFIX.pack(len(head), len(payload)), head, memoryview(payload)]


def lengths(prefix: bytes, max_payload: int) -> tuple[int, int]:
    """The header and payload lengths a message's 8-byte prefix announces.

    Raises:
        WireError: either is over its bound (``max_payload`` for the payload).
    """
    head, body = PREFIX.unpack(prefix)
    if not 0 < head <= MAX_HEADER:
        raise WireError(f"a message announces a {head}-byte header (1 to {MAX_HEADER})")
    if body > max_payload:
        raise WireError(f"a message announces a {body}-byte payload (at most {max_payload})")
    return head, body


def header(raw: bytes) -> dict[str, Any]:
    """A message's header, decoded.

    Raises:
        WireError: not a JSON object with a string "type".
    """
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"a message's header is not JSON: {exc}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise WireError("a message's header is not a JSON object with a \"type\"")
    return value


def max_frame_bytes() -> int:
    """The largest payload a frame message may have."""
    return MAX_SIDE * MAX_SIDE * 4


# --- frames ---------------------------------------------------------------------------


def frame_message(kind: str, name: str, frame: Frame,
                  rects: Sequence[Box] | None) -> tuple[dict[str, Any], bytes]:
    """The header and payload of ``frame`` as it is now: only ``rects`` of a live
    framebuffer (None: all of it), or a whole decoded image."""
    picture = frame.picture
    head: dict[str, Any] = {"type": kind, "name": name, "captured": frame.captured, "source": frame.source}
    if isinstance(picture, Pixels):
        head.update(mode="BGRX", size=list(picture.size),
                    rects=None if rects is None else [list(r) for r in rects])
        if rects is None:
            return head, picture.snapshot()
        stride, data, parts = picture.width * 4, memoryview(picture.data), []
        for x, y, width, height in rects:
            for row in range(y, y + height):
                parts.append(data[row * stride + x * 4:row * stride + (x + width) * 4])
        return head, b"".join(parts)
    image = picture if picture.mode == "RGB" else picture.convert("RGB")
    head.update(mode="RGB", size=list(image.size), rects=None)
    return head, image.tobytes()


def _size(head: dict[str, Any]) -> tuple[int, int]:
    size = head.get("size")
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) for v in size)
            or not all(0 < v <= MAX_SIDE for v in size)):
        raise WireError(f"a frame's size {size!r} is not [width, height], 1 to {MAX_SIDE} each")
    return size[0], size[1]


def _rects(head: dict[str, Any]) -> list[Box] | None:
    rects = head.get("rects")
    if rects is None:
        return None
    if not isinstance(rects, list) or len(rects) > MAX_RECTS or not all(_is_box(r) for r in rects):
        raise WireError(f"a frame's rects are not a list of at most {MAX_RECTS} [x, y, width, height]")
    return [(r[0], r[1], r[2], r[3]) for r in rects]


def _is_box(value: object) -> bool:
    return (isinstance(value, list) and len(value) == 4
            and all(type(v) is int and 0 <= v <= MAX_SIDE for v in value) and value[2] > 0 and value[3] > 0)


def read_image(head: dict[str, Any], payload: bytes) -> Image.Image:
    """A whole frame message's picture as a new RGB image.

    Raises:
        WireError: a bad size or mode, rectangles, or a payload of the wrong size.
    """
    size = _size(head)
    mode = head.get("mode")
    if _rects(head) is not None or mode not in ("BGRX", "RGB"):
        raise WireError(f"a whole frame has mode {mode!r} (BGRX or RGB) and no rects")
    need = size[0] * size[1] * (4 if mode == "BGRX" else 3)
    if len(payload) != need:
        raise WireError(f"a {size[0]}x{size[1]} {mode} frame has {len(payload)} bytes, not {need}")
    return bgrx_image(payload, size) if mode == "BGRX" else Image.frombytes("RGB", size, payload)


def apply_frame(head: dict[str, Any], payload: bytes, pixels: Pixels | None) -> tuple[Pixels | Image.Image,
                                                                                     list[Box] | None]:
    """A present message applied: a BGRX frame is pasted into ``pixels`` (a new
    :class:`Pixels` when there is none of its size, which then takes the whole frame) and
    its version counted up; an RGB frame is a new image. Returns the picture and the
    rectangles that changed (None: all of it).

    Raises:
        WireError: a bad size, mode, rectangle or payload size; rectangles for
            pixels the window does not have.
    """
    size = _size(head)
    rects = _rects(head)
    if head.get("mode") != "BGRX":
        return read_image(head, payload), None
    if rects is None:
        if len(payload) != size[0] * size[1] * 4:
            raise WireError(f"a {size[0]}x{size[1]} BGRX frame has {len(payload)} bytes")
        if pixels is None or pixels.size != size:
            pixels = Pixels(*size)
        pixels.data[:] = payload
        pixels.version += 1
        return pixels, None
    if pixels is None or pixels.size != size:
        raise WireError("changed rectangles came for a framebuffer the window does not have")
    boxes = list(rects)
    if sum(w * h * 4 for _, _, w, h in boxes) != len(payload):
        raise WireError(f"a frame's rectangles {boxes} do not make its {len(payload)} bytes")
    for box in boxes:
        try:
            pixels.check(box)
        except DisplayError as exc:
            raise WireError(str(exc)) from exc
    offset = 0
    for box in boxes:
        part = box[2] * box[3] * 4
        pixels.paste(box, payload[offset:offset + part])
        offset += part
    pixels.version += 1
    return pixels, boxes


def events_of(head: dict[str, Any]) -> list[tuple[int, int, int]]:
    """The (type, code, value) input events of an "input" message.

    Raises:
        WireError: not a list of at most :data:`MAX_EVENTS` triples of small integers.
    """
    events = head.get("events")
    if (not isinstance(events, list) or not 0 < len(events) <= MAX_EVENTS
            or not all(isinstance(e, list) and len(e) == 3
                       and all(type(v) is int and -(1 << 31) <= v < 1 << 31 for v in e) for e in events)):
        raise WireError(f"an input message's events are not 1 to {MAX_EVENTS} [type, code, value]")
    return [(e[0], e[1], e[2]) for e in events]
