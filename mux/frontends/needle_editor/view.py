"""The needle editor's window (pygame-ce, SDL2): the picture, its areas, a toolbar, help.

Theory. The picture sits at the window's top left corner, 1:1 whenever it fits on the
screen (else scaled down, and :class:`~.model.Viewport` maps the mouse back), so a
window pixel is a framebuffer pixel; the toolbar, the status line and a help line are
below it. The window only translates: SDL's mouse events become
:meth:`~.model.EditorModel.press`/``motion``/``release`` in picture pixels, keys and
toolbar clicks become :mod:`.bindings` commands, and what the model then holds is
drawn. It draws only after something changed (an event, a live match arriving), and
waits for events in between, so an idle editor costs nothing.

Colours: match areas green, exclude red, ocr blue; the selected one thicker, tinted,
with corner handles; a click point is a cross. With a persona, each match area shows
its live similarity (green when it passes) and, in cyan, where it was found.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
# SDL (X11) drops a click handled within 10 ms of the window's focus-in: the click that
# focuses the window, or the first drag of a busy editor that reads both at once. In an
# editor that first drag is meant: draw it (a user's own setting still wins).
os.environ.setdefault("SDL_MOUSE_FOCUS_CLICKTHROUGH", "1")
import pygame  # after the environment it reads at import
from PIL import Image

from mux.display.layout import Rect
from mux.errors import DisplayError
from mux.frontends.needle_editor import bindings
from mux.frontends.needle_editor.area import EditArea, Viewport
from mux.frontends.needle_editor.bindings import Effect
from mux.frontends.needle_editor.live import Found, LiveMatcher
from mux.frontends.needle_editor.model import EditorModel

COLORS = {"match": (40, 220, 40), "exclude": (235, 50, 50), "ocr": (70, 150, 255)}
FOUND = (0, 230, 230)
PANEL_BG, BUTTON_BG, INK = (32, 32, 36), (62, 62, 70), (235, 235, 235)
FONT_PX, LINE_H, BUTTON_H, PAD = 18, 20, 24, 4
HANDLE = 6  # window pixels
MIN_WIDTH = 800
WAIT_MS = 50
WINDOWLESS = ("dummy", "offscreen")  # SDL's drivers with no window to see: only when asked for
NO_PERSONA = "no live screen: start the editor with --persona"


def picture_surface(picture: Image.Image) -> pygame.Surface:
    rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
    return pygame.image.frombytes(rgb.tobytes(), rgb.size, "RGB")


class EditorWindow:
    """The editor's window on ``model`` and its ``picture``; see the module docstring.

    ``save`` writes the needle (returns what to tell); ``live`` matches against the
    persona's screen; F12 saves the window's picture to ``screenshot``.
    """

    def __init__(self, model: EditorModel, picture: Image.Image, name: str,
                 save: Callable[[Image.Image], str], live: LiveMatcher | None = None,
                 screenshot: Path | None = None) -> None:
        self.model, self.picture, self.name = model, picture, name
        self.save, self.live, self.screenshot = save, live, screenshot
        self.show_live = live is not None
        self.viewport = Viewport()
        self.buttons: list[tuple[Rect, str, str]] = []  # (where, label, command)
        self._surface: pygame.Surface | None = None
        self._pictures: dict[int, tuple[Image.Image, pygame.Surface]] = {}
        self._font: pygame.font.Font | None = None
        self.panel_height = 0  # the toolbar, status and help lines under the picture

    # --- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Raises DisplayError: SDL has no usable video driver or display."""
        try:
            pygame.display.init()
            driver = pygame.display.get_driver()
            if driver in WINDOWLESS and os.environ.get("SDL_VIDEODRIVER") != driver:
                raise pygame.error(f"SDL found no display (it fell back to its {driver} driver):"
                                   " is DISPLAY or WAYLAND_DISPLAY set?")
            pygame.font.init()
            self._font = pygame.font.Font(None, FONT_PX)
            screen = pygame.display.get_desktop_sizes()[0]
            width, height = self.picture.size
            panel = self._layout(max(width, MIN_WIDTH))
            scale = min(1.0, screen[0] / width, (screen[1] - panel - 40) / height)
            self.viewport = Viewport(0, 0, scale)
            size = (max(round(width * scale), MIN_WIDTH), round(height * scale))
            self.panel_height = self._layout(size[0], size[1])
            self._title()  # before the window maps: it is never shown without its name
            self._surface = pygame.display.set_mode((size[0], size[1] + self.panel_height))
        except (pygame.error, IndexError) as exc:
            pygame.display.quit()
            raise DisplayError(f"cannot open the editor's window: {exc}") from exc
        pygame.key.set_repeat(300, 40)

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        pygame.display.quit()

    def _layout(self, width: int, top: int = 0) -> int:
        """Place the toolbar's buttons (wrapped into rows) below ``top``; the panel's height."""
        assert self._font is not None
        self.buttons = []
        x, y = PAD, top + PAD
        widest = {"{type}": "exclude", "{match}": "100", "{margin}": "1000"}
        for text, command in bindings.BUTTONS:
            sample = text
            for field, value in widest.items():
                sample = sample.replace(field, value)
            w = self._font.size(sample)[0] + 2 * PAD
            if x + w > width - PAD:
                x, y = PAD, y + BUTTON_H + PAD
            self.buttons.append((Rect(x, y, w, BUTTON_H), text, command))
            x += w + PAD
        return y + BUTTON_H + PAD + (1 + len(bindings.HELP_LINES)) * LINE_H + PAD - top

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Handle events until the editor is quit (Esc, Q, the Quit button, the window closed)."""
        dirty_draw = True
        while True:
            events = [pygame.event.wait(WAIT_MS), *pygame.event.get()]
            for event in events:
                if event.type == pygame.NOEVENT:
                    continue
                dirty_draw = True
                if self._handle(event) is Effect.QUIT:
                    return
            if self.live is not None and self.live.poll(self.picture, tuple(self.model.areas)):
                dirty_draw = True
            if dirty_draw:
                self.draw()
                dirty_draw = False

    def _handle(self, event: pygame.event.Event) -> Effect | None:
        model = self.model
        if event.type == pygame.QUIT:
            return Effect.QUIT
        if event.type == pygame.KEYDOWN:
            mods = frozenset(name for name, bit in (("ctrl", pygame.KMOD_CTRL), ("shift", pygame.KMOD_SHIFT),
                                                    ("alt", pygame.KMOD_ALT)) if event.mod & bit)
            return self._effect(bindings.key(model, pygame.key.name(event.key).lower(), mods,
                                             getattr(event, "unicode", "")))
        if event.type == pygame.MOUSEBUTTONDOWN and event.button in (1, 3):
            point = self.viewport.to_picture(event.pos, model.size)
            if not self._on_picture(event.pos):
                for rect, _, command in self.buttons:
                    if event.button == 1 and command and rect.collidepoint(*event.pos):
                        return self._effect(bindings.run(model, command))
            elif event.button == 1:
                model.press(point, max(1, round(HANDLE / self.viewport.scale)))
            else:
                model.set_click_at(self._pixel(event.pos))
        elif event.type == pygame.MOUSEMOTION and model.drag is not None:
            model.motion(self.viewport.to_picture(event.pos, model.size))
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            model.release(self.viewport.to_picture(event.pos, model.size))
        return None

    def _on_picture(self, pos: tuple[int, int]) -> bool:
        return pos[1] < round(self.model.size[1] * self.viewport.scale)

    def _pixel(self, pos: tuple[int, int]) -> tuple[int, int]:
        """The picture pixel under a window position (not an edge: rounded down)."""
        scale = self.viewport.scale
        return int((pos[0] - self.viewport.left) / scale), int((pos[1] - self.viewport.top) / scale)

    def _effect(self, effect: Effect | None) -> Effect | None:
        model = self.model
        if effect is Effect.SAVE:
            model.message = self.save(self.picture)
        elif effect is Effect.VIEW:
            if self.live is None:
                model.message = NO_PERSONA
            else:
                self.show_live = not self.show_live
        elif effect is Effect.RETAKE:
            if self.live is None or self.live.latest is None:
                model.message = "no live screen yet" if self.live else NO_PERSONA
            else:
                self.picture = self.live.latest.screen
                model.fit_picture(self.picture.size)
                model.message = "the persona's screen is the needle's picture now (saved with Ctrl+S)"
        elif effect is Effect.SCREENSHOT:
            if self.screenshot is None or self._surface is None:
                model.message = "no --screenshot FILE given"
            else:
                self.draw()
                pygame.image.save(self._surface, str(self.screenshot))
                model.message = f"window saved as {self.screenshot}"
        return effect

    def _title(self) -> None:
        pygame.display.set_caption(f"mux needle edit: {self.name}{' *' if self.model.dirty else ''}")

    # --- drawing ----------------------------------------------------------------------------

    def draw(self) -> None:
        surface, font, model = self._surface, self._font, self.model
        assert surface is not None and font is not None
        surface.fill(PANEL_BG)
        live = self.live.latest if self.live is not None else None
        shown = live.screen if self.show_live and live is not None else self.picture
        surface.blit(self._scaled(shown), (self.viewport.left, self.viewport.top))
        labels = [(index == model.selected, self._area(surface, font, index, area, self._found(area)))
                  for index, area in enumerate(model.areas)]
        for _, (label, where) in sorted(labels, key=lambda item: item[0]):  # the selected one on top
            surface.blit(label, where)
        if (box := model.preview) is not None:
            pygame.draw.rect(surface, (255, 255, 0), self._rect(box), 1)
        for rect, text, command in self.buttons:
            pygame.draw.rect(surface, BUTTON_BG if command else PANEL_BG, rect, border_radius=3)
            label = font.render(bindings.label(model, text), True, INK)
            surface.blit(label, label.get_rect(center=rect.center))
        bottom = surface.get_height()
        lines = len(bindings.HELP_LINES)
        surface.blit(font.render(self._status(), True, INK), (PAD, bottom - (lines + 1) * LINE_H - PAD))
        for i, line in enumerate(bindings.HELP_LINES):
            surface.blit(font.render(line, True, (170, 170, 170)), (PAD, bottom - (lines - i) * LINE_H - PAD))
        if model.show_help:
            self._help(surface, font)
        pygame.display.flip()
        self._title()

    def _scaled(self, picture: Image.Image) -> pygame.Surface:
        kept = self._pictures.get(id(picture))
        if kept is None or kept[0] is not picture:
            surface = picture_surface(picture)
            if self.viewport.scale != 1.0:
                scale = self.viewport.scale
                size = (round(picture.width * scale), round(picture.height * scale))
                surface = pygame.transform.smoothscale(surface, size)
            self._pictures = {id(picture): (picture, surface)}  # only the one shown last
            kept = self._pictures[id(picture)]
        return kept[1]

    def _rect(self, box: tuple[int, int, int, int]) -> pygame.Rect:
        left, top = self.viewport.to_window(box[:2])
        right, bottom = self.viewport.to_window(box[2:])
        return pygame.Rect(left, top, max(right - left, 1), max(bottom - top, 1))

    def _area(self, surface: pygame.Surface, font: pygame.font.Font, index: int, area: EditArea,
              found: Found | None) -> tuple[pygame.Surface, tuple[int, int]]:
        """Draw an area; its label and where it goes (drawn after every area's box)."""
        color = COLORS.get(area.type, INK)
        rect = self._rect(area.box)
        selected = index == self.model.selected
        if selected:
            tint = pygame.Surface(rect.size, pygame.SRCALPHA)
            tint.fill((*color, 50))
            surface.blit(tint, rect)
        pygame.draw.rect(surface, color, rect, 2 if selected else 1)
        if selected:
            for corner in (rect.topleft, (rect.right - 1, rect.top), (rect.left, rect.bottom - 1),
                           (rect.right - 1, rect.bottom - 1)):
                pygame.draw.rect(surface, (255, 255, 255), pygame.Rect(0, 0, 5, 5).move(
                    corner[0] - 2, corner[1] - 2))
        text = f"{index + 1} {area.type}" + (f" {area.match:g}%" if area.type != "exclude" else "")
        if area.margin != 50:
            text += f" margin {area.margin}"
        if found is not None:
            where = self._rect((found.x, found.y, found.x + area.width, found.y + area.height))
            if where != rect:
                pygame.draw.rect(surface, FOUND, where, 1)
            text += f"  live {found.similarity * 100:.1f}%" + ("" if found.ok else " FAILS")
        if (click := area.click_xy()) is not None:
            cx, cy = self.viewport.to_window((area.x + click[0], area.y + click[1]))
            for dx, dy in ((6, 0), (0, 6)):
                pygame.draw.line(surface, (255, 255, 255), (cx - dx, cy - dy), (cx + dx, cy + dy), 3)
                pygame.draw.line(surface, (0, 0, 0), (cx - dx, cy - dy), (cx + dx, cy + dy), 1)
        label = font.render(text, True, color, (0, 0, 0))
        y = rect.top - label.get_height() if rect.top >= label.get_height() else rect.bottom
        return label, (rect.left, y)

    def _found(self, area: EditArea) -> Found | None:
        """The live match of ``area`` as it is now (None until the next round after an edit)."""
        latest = self.live.latest if self.live is not None else None
        return latest.found.get(area) if latest is not None else None

    def _status(self) -> str:
        model = self.model
        if model.entry is not None:
            tags = model.entry.field == "tags"
            hint = "Enter: set, Esc: never mind" + (", spaces between tags" if tags else "")
            return f"{model.entry.field}: {model.entry.text}_   ({hint})"
        area = model.current
        parts = [f"{self.name}{' (unsaved)' if model.dirty else ''}", f"tags: {' '.join(model.tags) or '-'}"]
        if area is not None:
            assert model.selected is not None
            parts.append(f"area {model.selected + 1}/{len(model.areas)}: {area.type} "
                         f"{area.width}x{area.height}+{area.x}+{area.y}")
            if (found := self._found(area)) is not None:
                parts.append(f"live {found.similarity * 100:.1f}% at +{found.x}+{found.y}"
                             + ("" if found.ok else f" (needs {area.match:g}%)"))
        if self.live is not None:
            parts.append("view: live screen" if self.show_live else "view: needle")
            if self.live.error:
                parts.append(f"live: {self.live.error}")
        if model.message:
            parts.append(model.message)
        return " | ".join(parts)

    def _help(self, surface: pygame.Surface, font: pygame.font.Font) -> None:
        box = pygame.Surface((surface.get_width() - 40, (len(bindings.HELP) + 1) * LINE_H), pygame.SRCALPHA)
        box.fill((0, 0, 0, 210))
        for i, line in enumerate(bindings.HELP):
            box.blit(font.render(line, True, INK), (PAD * 2, LINE_H // 2 + i * LINE_H))
        bottom = round(self.model.size[1] * self.viewport.scale)  # over the picture's lower part
        surface.blit(box, (20, max(bottom - box.get_height() - 20, 0)))
