"""The back-buffer: the latest picture of every persona, each with the time it was taken.

Theory (the Cellrox rule for a stateful device): a background persona keeps drawing,
into a virtual screen that is shown the moment it becomes active again. Here the virtual
screen is simply the newest frame seen of each persona, from either of two sources:

- ``"vnc"``: a frame from the persona's VNC link: live for the active persona, the
  changes of each interval for the others (an unchanged screen sends nothing);
- ``"screendump"``: a QMP ``screendump`` (while a persona's VNC link is not up).

:meth:`BackBuffer.put` keeps a frame only if it was captured no earlier than the one it
replaces, so a slow screendump can never overwrite a newer live frame.

A live frame does not copy the picture: it holds a reference to the VNC link's
:class:`Pixels`, the framebuffer in QEMU's own x8r8g8b8 layout that the link updates in
place, and says which rectangles changed (the window uploads only those). It becomes a
Pillow image only when someone asks for a picture (:attr:`Frame.image`, converted once
and kept). A screendump frame holds its decoded image. Images are never drawn on after
they are stored, so they are shared, not copied. Pure: no asyncio, no QEMU.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from PIL import Image

from mux.errors import DisplayError, UnknownPersona

FrameSource = Literal["vnc", "screendump"]


#: A rectangle of a framebuffer: (x, y, width, height).
Box = tuple[int, int, int, int]


class Pixels:
    """A framebuffer in QEMU's x8r8g8b8 layout (bytes B, G, R, X per pixel), updated in
    place by its one writer (a VNC link); frames share it. ``version`` counts updates."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.data = bytearray(width * height * 4)
        self.version = 0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def check(self, box: Box, size: int | None = None) -> None:
        """Check that a rectangle (of ``size`` bytes, when given) fits in the framebuffer.

        Raises:
            DisplayError: it does not.
        """
        x, y, width, height = box
        inside = x >= 0 and y >= 0 and x + width <= self.width and y + height <= self.height
        if not inside or (size is not None and size != width * height * 4):
            got = "" if size is None else f" ({size} bytes)"
            raise DisplayError(f"rectangle {box}{got} does not fit a {self.width}x{self.height} framebuffer")

    def paste(self, box: Box, raw: bytes) -> None:
        """Copy a rectangle's raw pixels (rows of ``width * 4`` bytes) into place.

        Raises:
            DisplayError: the rectangle is not inside the framebuffer, or ``raw`` is not
                its size.
        """
        self.check(box, len(raw))
        x, y, width, height = box
        stride, row = self.width * 4, width * 4
        if width == self.width:  # whole rows: one copy
            self.data[y * stride:(y + height) * stride] = raw
            return
        view = memoryview(raw)
        for line in range(height):
            start = (y + line) * stride + x * 4
            self.data[start:start + row] = view[line * row:(line + 1) * row]

    def snapshot(self) -> bytes:
        """The pixels as they are now (a copy: the writer goes on updating)."""
        return bytes(self.data)

    def image(self) -> Image.Image:
        """The pixels as they are now, as a new RGB image."""
        return bgrx_image(self.snapshot(), self.size)


def bgrx_image(raw: bytes, size: tuple[int, int]) -> Image.Image:
    """An RGB image from x8r8g8b8 pixels (the conversion: safe to run in a thread)."""
    return Image.frombuffer("RGB", size, raw, "raw", "BGRX", 0, 1)


@dataclass(frozen=True)
class Frame:
    """One persona's picture. ``captured`` is ``time.monotonic()`` when it was taken.

    ``picture`` is a decoded image (screendumps, tests) or the link's shared
    :class:`Pixels` (live frames), in which case ``version`` is the pixels' version
    this frame announced and ``rects`` what changed since the version before (None:
    take all of it).
    """

    picture: Image.Image | Pixels
    captured: float
    source: FrameSource
    #: A checksum of the encoded screendump, to skip decoding an unchanged screen.
    fingerprint: int | None = None
    version: int = 0
    rects: tuple[Box, ...] | None = None

    def age(self, now: float) -> float:
        return now - self.captured

    @property
    def size(self) -> tuple[int, int]:
        return self.picture.size

    @cached_property
    def image(self) -> Image.Image:
        """The picture as an RGB image: live pixels are converted at the first ask (as
        they are then) and kept; see :meth:`keep_image` for converting elsewhere."""
        return self.picture.image() if isinstance(self.picture, Pixels) else self.picture

    def has_image(self) -> bool:
        """Whether :attr:`image` is at hand without a conversion."""
        return "image" in self.__dict__ or not isinstance(self.picture, Pixels)

    def keep_image(self, image: Image.Image) -> None:
        """Keep ``image`` (this frame's pixels, converted elsewhere, e.g. in a thread) as
        :attr:`image`, unless one is kept already."""
        self.__dict__.setdefault("image", image)


class BackBuffer:
    """The newest :class:`Frame` of each persona."""

    def __init__(self, names: Iterable[str]) -> None:
        self._frames: dict[str, Frame | None] = dict.fromkeys(names)
        #: Called with (persona, frame) after every frame kept.
        self.listeners: list[Callable[[str, Frame], None]] = []

    @property
    def names(self) -> list[str]:
        return list(self._frames)

    def get(self, name: str) -> Frame | None:
        """The newest frame of ``name``, or None if none was seen yet.

        Raises:
            UnknownPersona: no such persona.
        """
        if name not in self._frames:
            raise UnknownPersona(name, self._frames)
        return self._frames[name]

    def put(self, name: str, frame: Frame) -> bool:
        """Keep ``frame`` unless a newer one is stored; returns whether it was kept.

        Raises:
            UnknownPersona: no such persona.
        """
        current = self.get(name)
        if current is not None and frame.captured < current.captured:
            return False
        self._frames[name] = frame
        for listener in list(self.listeners):
            listener(name, frame)
        return True

    def known_screendump(self, name: str, fingerprint: int) -> bool:
        """Whether ``name``'s stored frame is the screendump with this :func:`fingerprint`.

        Raises:
            UnknownPersona: no such persona.
        """
        current = self.get(name)
        return current is not None and current.fingerprint == fingerprint

    def put_screendump(self, name: str, data: bytes, captured: float, *,
                       decoded: tuple[int, Image.Image | None] | None = None) -> Frame:
        """Store an encoded screendump (PPM, or anything Pillow reads) taken at ``captured``.

        If it is byte for byte what the previous screendump held, the stored frame keeps
        its image and only gets the new capture time (no decoding). Returns the frame now
        stored for ``name`` (a newer live frame wins over this one). ``decoded``:
        (:func:`fingerprint`, image or None when :meth:`known_screendump`) of ``data``,
        worked out elsewhere (a thread) so that nothing slow runs here.

        Raises:
            UnknownPersona: no such persona.
            DisplayError: ``data`` is not an image Pillow can read.
        """
        mark, image = decoded if decoded is not None else (fingerprint(data), None)
        current = self.get(name)
        if current is not None and current.fingerprint == mark:
            frame = replace(current, captured=captured, source="screendump")
        else:
            frame = Frame(image if image is not None else decode_image(data), captured, "screendump", mark)
        self.put(name, frame)
        stored = self.get(name)
        assert stored is not None
        return stored


def fingerprint(data: bytes) -> int:
    """A checksum of an encoded screendump, to skip decoding an unchanged screen."""
    return zlib.crc32(data) ^ (len(data) << 32)


def decode_image(data: bytes) -> Image.Image:
    """Decode an encoded image (QEMU writes binary PPM, ``P6``) to RGB.

    Raises:
        DisplayError: not an image Pillow can read, or truncated.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow: not an image, or a bad header
        raise DisplayError(f"not a readable image ({len(data)} bytes): {exc}") from exc
