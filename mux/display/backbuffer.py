"""The back-buffer: the latest picture of every persona, each with the time it was taken.

Theory (the Cellrox rule for a stateful device): a background persona keeps drawing,
into a virtual screen that is shown the moment it becomes active again. Here the virtual
screen is simply the newest frame seen of each persona, from either of two sources:

- ``"vnc"``: a live frame from the persona's VNC link (the active persona);
- ``"screendump"``: a QMP ``screendump`` (the inactive ones, every interval).

:meth:`BackBuffer.put` keeps a frame only if it was captured no earlier than the one it
replaces, so a slow screendump can never overwrite a newer live frame. Frames are
immutable: their images are never drawn on after they are stored, so they are shared,
not copied. Pure: no asyncio, no QEMU.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from PIL import Image

from mux.errors import DisplayError, UnknownPersona

FrameSource = Literal["vnc", "screendump"]


@dataclass(frozen=True)
class Frame:
    """One persona's picture. ``captured`` is ``time.monotonic()`` when it was taken."""

    image: Image.Image
    captured: float
    source: FrameSource
    #: A checksum of the encoded screendump, to skip decoding an unchanged screen.
    fingerprint: int | None = None

    def age(self, now: float) -> float:
        return now - self.captured


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

    def put_screendump(self, name: str, data: bytes, captured: float) -> Frame:
        """Store an encoded screendump (PPM, or anything Pillow reads) taken at ``captured``.

        If it is byte for byte what the previous screendump held, the stored frame keeps
        its image and only gets the new capture time (no decoding). Returns the frame now
        stored for ``name`` (a newer live frame wins over this one).

        Raises:
            UnknownPersona: no such persona.
            DisplayError: ``data`` is not an image Pillow can read.
        """
        fingerprint = zlib.crc32(data) ^ (len(data) << 32)
        current = self.get(name)
        if current is not None and current.fingerprint == fingerprint:
            frame = replace(current, captured=captured, source="screendump")
        else:
            frame = Frame(decode_image(data), captured, "screendump", fingerprint)
        self.put(name, frame)
        stored = self.get(name)
        assert stored is not None
        return stored


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
