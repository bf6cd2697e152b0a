"""How the canvas's pictures reach the window: through SDL's renderer, or straight onto
the window's own surface where SDL would draw in software anyway.

Theory. A live guest frame arrives in the VNC link's framebuffer (:class:`Pixels`; the
kernel's copy, the one every path pays). From there:

- :class:`RendererPainter` uploads the rectangles that changed into a streaming texture
  (x8r8g8b8 is SDL's ARGB8888 with the alpha ignored: no conversion) and has the
  renderer draw it, scaled, into the window. On a GPU the upload is the one copy that
  gets the pixels there and the drawing is the GPU's. Used wherever SDL offers an
  accelerated renderer.
- :class:`SurfacePainter` is for where there is none: SDL's software renderer would copy
  the texture into the window's surface on the CPU, so the texture is a copy that buys
  nothing. The changed rows go from the framebuffer straight into the window's surface
  (one memory copy per rectangle row, or one for full-width rows; the window's
  XRGB8888 has QEMU's byte order), and a scaled picture is scaled by pygame
  (nearest neighbour, as SDL's software renderer does). Used under the windowless
  drivers (``dummy``, ``offscreen``) and where no accelerated renderer can be made.
  ``mux bench --only live_cpu_ms_per_frame`` measured 1.93 ms of controller CPU per
  1024x768 frame through the software renderer, and 1.18-1.24 ms here (2.35 and 1.55
  with a test run beside it).

Both painters hold the guest's picture at one ``(picture, version)``: a frame that is
the next version of the same framebuffer, with its rectangles listed, needs only those
rectangles (:meth:`follows`). ``uploaded_pixels`` counts the guest pixels taken from the
framebuffer (what a frame cost).
"""

from __future__ import annotations

from typing import Protocol

import pygame
from PIL import Image
from pygame._sdl2 import video

from mux.display.backbuffer import Box, Frame, Pixels
from mux.display.layout import Rect


class Painter(Protocol):
    """What the canvas draws with; see the module docstring."""

    uploaded_pixels: int
    #: The window keeps its pixels between presents, so a small change may draw only itself.
    retained: bool

    def picture(self, surface: pygame.Surface) -> object:
        """``surface`` made ready to draw (the banner, the overview)."""

    def draw(self, picture: object, dst: Rect) -> None:
        """Draw a :meth:`picture` into ``dst``, scaled to fit it."""

    def follows(self, frame: Frame) -> bool:
        """Whether ``frame`` is the next version of the picture held (its rectangles are enough)."""

    def draw_guest(self, frame: Frame, dst: Rect, *, changes_only: bool = False) -> None:
        """Bring the guest's picture up to ``frame`` and draw it into ``dst`` (scaled); with
        ``changes_only`` (unscaled, and :meth:`follows`) only ``frame``'s rectangles."""

    def clear(self) -> None:
        """Fill the window with black."""

    def present(self) -> None:
        """Show what was drawn."""

    def read(self) -> pygame.Surface:
        """What the window shows (for tests)."""


class RendererPainter:
    """Through an SDL renderer and a streaming texture of the guest's picture."""

    retained = False  # a GPU's window: each present draws all of it

    def __init__(self, window: video.Window) -> None:
        """Raises RuntimeError (pygame's) when SDL has no accelerated renderer here."""
        self._renderer = video.Renderer(window, accelerated=1)
        self.uploaded_pixels = 0
        self._guest: video.Texture | None = None
        self._held: tuple[object, int] | None = None  # (picture, version) in the texture (by identity)

    def picture(self, surface: pygame.Surface) -> object:
        return video.Texture.from_surface(self._renderer, surface)

    def draw(self, picture: object, dst: Rect) -> None:
        assert isinstance(picture, video.Texture)
        picture.draw(dstrect=dst)

    def follows(self, frame: Frame) -> bool:
        return _follows(self._held, frame)

    def draw_guest(self, frame: Frame, dst: Rect, *, changes_only: bool = False) -> None:
        """Uploads only ``frame``'s rectangles when it follows; draws all of it (a GPU's
        window is drawn whole at each present, so ``changes_only`` is never asked for)."""
        self._upload(frame, self.follows(frame))
        assert self._guest is not None
        self._guest.draw(dstrect=dst)

    def _upload(self, frame: Frame, follows: bool) -> None:
        picture = frame.picture
        if self._guest is None or (self._guest.width, self._guest.height) != frame.size:
            self._guest = video.Texture(self._renderer, frame.size, streaming=True)
            self._guest.blend_mode = 0  # SDL_BLENDMODE_NONE: the X byte is no alpha
            self._held, follows = None, False
        if self._held is not None and self._held[0] is picture and self._held[1] == frame.version:
            return  # already up
        if not isinstance(picture, Pixels):  # a decoded image (a screendump)
            bgrx = picture.tobytes("raw", "BGRX")
            self._guest.update(pygame.image.frombuffer(bgrx, picture.size, "BGRA"))
            self.uploaded_pixels += picture.width * picture.height
        else:
            source = pygame.image.frombuffer(picture.data, picture.size, "BGRA")  # a view, no copy
            if follows and frame.rects is not None:
                for x, y, width, height in frame.rects:
                    # area as a tuple: given a pygame.Rect, pygame-ce 2.5.8 left the texture as it was
                    self._guest.update(source.subsurface((x, y, width, height)), area=(x, y, width, height))
                    self.uploaded_pixels += width * height
            else:
                self._guest.update(source)
                self.uploaded_pixels += picture.width * picture.height
        self._held = (picture, frame.version)

    def clear(self) -> None:
        self._renderer.draw_color = (0, 0, 0, 255)
        self._renderer.clear()

    def present(self) -> None:
        self._renderer.present()

    def read(self) -> pygame.Surface:
        return self._renderer.to_surface()


class SurfacePainter:
    """Straight onto the window's surface, on the CPU (see the module docstring)."""

    retained = True

    def __init__(self, window: video.Window) -> None:
        """Raises pygame.error when the window has no surface."""
        self._window = window
        self._window.get_surface()
        self.uploaded_pixels = 0
        self._held: tuple[object, int] | None = None  # (picture, version) last drawn
        self._decoded: tuple[Image.Image, pygame.Surface] | None = None  # a screendump's surface

    def _surface(self) -> pygame.Surface:
        return self._window.get_surface()  # a new one after each resize

    def picture(self, surface: pygame.Surface) -> object:
        return surface.convert(self._surface())

    def draw(self, picture: object, dst: Rect) -> None:
        assert isinstance(picture, pygame.Surface)
        if picture.get_size() != dst.size:
            picture = pygame.transform.scale(picture, dst.size)
        self._surface().blit(picture, dst)

    def follows(self, frame: Frame) -> bool:
        return _follows(self._held, frame)

    def draw_guest(self, frame: Frame, dst: Rect, *, changes_only: bool = False) -> None:
        picture = frame.picture
        window = self._surface()
        if not isinstance(picture, Pixels):  # a decoded image (a screendump)
            if self._decoded is None or self._decoded[0] is not picture:
                rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
                surface = pygame.image.frombuffer(rgb.tobytes(), rgb.size, "RGB")
                self._decoded = (picture, surface.convert(window))
            self.draw(self._decoded[1], dst)
            self.uploaded_pixels += picture.width * picture.height
        elif dst.size != picture.size:
            source = pygame.image.frombuffer(picture.data, picture.size, "BGRA")  # a view, no copy
            # converted to the window's format: the X byte is no alpha to blend with
            window.blit(pygame.transform.scale(source, dst.size).convert(window), dst)
            self.uploaded_pixels += picture.width * picture.height
        else:
            rects = frame.rects if changes_only and self.follows(frame) else None
            boxes: tuple[Box, ...] = rects if rects is not None else ((0, 0, picture.width, picture.height),)
            for box in boxes:
                _copy_rows(picture, box, window, dst)
                self.uploaded_pixels += box[2] * box[3]
        self._held = (picture, frame.version)

    def clear(self) -> None:
        self._surface().fill((0, 0, 0))

    def present(self) -> None:
        self._window.flip()

    def read(self) -> pygame.Surface:
        return self._surface().copy()


def _follows(held: tuple[object, int] | None, frame: Frame) -> bool:
    """Whether ``frame`` is the version after ``held`` (picture, version) of the same
    framebuffer, with its changed rectangles listed."""
    return (frame.rects is not None and held is not None and held[0] is frame.picture
            and held[1] == frame.version - 1)


def _copy_rows(picture: Pixels, box: Box, window: pygame.Surface, dst: Rect) -> None:
    """Copy ``box`` of ``picture`` into the window's surface, unscaled, at ``dst``'s corner:
    whole rows with one copy when the picture spans the window, else row by row."""
    x, y, width, height = box
    pitch, stride, row = window.get_pitch(), picture.width * 4, width * 4
    target = (dst.y + y) * pitch + (dst.x + x) * 4
    source = y * stride + x * 4
    pixels = window.get_buffer()  # locks the surface until it is dropped
    # pygame's stubs do not say that a BufferProxy is a buffer
    with memoryview(pixels).cast("B") as out, memoryview(picture.data) as data:  # type: ignore[arg-type]
        if pitch == stride and width == picture.width:
            out[target:target + height * stride] = data[source:source + height * stride]
            return
        for _ in range(height):
            out[target:target + row] = data[source:source + row]
            target += pitch
            source += stride
