"""A seat's window process: ``python -m mux.display.window_child SETUP``.

Theory. The child half of :mod:`mux.display.seat_window`: one
:class:`~mux.display.window.WindowOutput` (the same window, banner, overview and key
handling as the in-process one, its banner labelled with the seat: "two: home") on the
display its environment names, driven by mux's messages on stdin
(:mod:`mux.display.window_pipe`) and reporting on stdout: "opened" (or "failed" and why)
first, then keys and mouse typed in the window (when SETUP's "input" is true), overview
picks, resizes, "closed" when the person closes the window, and "overview" when the
window wants its overview (mux sends the back-buffer first) or leaves it.

SETUP is a JSON object: ``seat``, ``colors`` (persona: banner colour, in overview order),
``input``, ``fullscreen``, ``monitor``. The protocol has stdout to itself: anything else
printing there is sent to stderr. Ctrl-C in the terminal is mux's to handle: the child
ignores SIGINT and ends when mux says "close" or its stdin ends (mux is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

import pygame

from mux.display.backbuffer import BackBuffer, Frame, Pixels
from mux.display.leds import Leds
from mux.display.window import WindowOutput, x11_window
from mux.display.window_pipe import (
    PREFIX,
    WireError,
    apply_frame,
    encode,
    header,
    lengths,
    max_frame_bytes,
    read_image,
)
from mux.errors import DisplayError, MuxError
from mux.input.events import InputEvent

log = logging.getLogger("mux.display.window_child")

MAX_NAME = 64
SOURCES = ("vnc", "screendump")


class Reporter:
    """Writes messages to mux (blocking: a window that mux does not read waits for it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.gone = False  # mux closed its end

    def __call__(self, message: dict[str, Any]) -> None:
        if self.gone:
            return
        try:
            for piece in encode(message):
                view = memoryview(piece).cast("B")
                while view:
                    view = view[os.write(self.fd, view):]
        except OSError:  # BrokenPipeError: mux is gone; stdin's end will end us
            self.gone = True


class SeatWindow(WindowOutput):
    """The window, telling mux when its overview is wanted or left (see the module docstring)."""

    def __init__(self, report: Reporter, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        self._told_overview = False

    def toggle_overview(self) -> None:
        if self.overview:
            super().toggle_overview()
            self._tell_overview()
        else:
            self.report({"type": "overview", "on": True})  # mux sends the back-buffer, then "on"

    def set_overview(self, on: bool) -> None:
        """mux's word: show the overview (its frames just came) or not."""
        self._told_overview = on
        if on != self.overview:
            super().toggle_overview()

    def present(self, name: str, frame: Frame | None) -> None:
        super().present(name, frame)
        if frame is not None and name in self.backbuffer.names:
            self.backbuffer.put(name, frame)
        self._tell_overview()

    async def _pick(self, name: str) -> None:
        await super()._pick(name)
        self._tell_overview()

    def _tell_overview(self) -> None:
        if self.overview != self._told_overview:
            self._told_overview = self.overview
            self.report({"type": "overview", "on": self.overview})


class Commands:
    """Applies mux's messages to the window."""

    def __init__(self, window: SeatWindow) -> None:
        self.window = window
        self.pixels: dict[str, Pixels] = {}  # each persona's framebuffer as mux sent it

    def apply(self, message: dict[str, Any], payload: bytes) -> bool:
        """Apply one message; returns False when it says to close.

        Raises:
            WireError: the message is malformed.
        """
        kind, window = message["type"], self.window
        if kind == "close":
            return False
        name = message.get("name")
        named = isinstance(name, str) and 0 < len(name) <= MAX_NAME
        if kind in ("present", "backbuffer", "leds") and not named:
            raise WireError(f"a {kind} message names {name!r}")
        name = str(name)
        if kind == "present":
            if message.get("frame") is False:
                window.present(name, None)
                return True
            picture, rects = apply_frame(message, payload, self.pixels.get(name))
            if isinstance(picture, Pixels):
                self.pixels[name] = picture
            window.present(name, Frame(picture, _captured(message), _source(message),
                                       version=picture.version if isinstance(picture, Pixels) else 0,
                                       rects=tuple(rects) if rects is not None else None))
        elif kind == "backbuffer":
            if name in window.backbuffer.names:
                window.backbuffer.put(name, Frame(read_image(message, payload), _captured(message),
                                                  _source(message)))
        elif kind == "leds":
            leds = message.get("leds")
            told = Leds(*map(bool, leds)) if isinstance(leds, list) and len(leds) == 3 else None
            window.show_leds(name, told)
        elif kind == "attention":
            requests = message.get("requests")
            if not isinstance(requests, list):
                raise WireError("an attention message without its requests")
            window.show_attention([(str(r[0])[:MAX_NAME], str(r[1])[:200]) for r in requests[:100]
                                   if isinstance(r, list) and len(r) == 2])
        elif kind == "notice":
            window.notify(str(message.get("text", ""))[:200])
        elif kind == "overview":
            window.set_overview(message.get("on") is True)
        else:
            log.debug("a %r message from mux: ignored", kind)
        return True


def _captured(message: dict[str, Any]) -> float:
    value = message.get("captured")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise WireError(f"a frame captured at {value!r}")
    return float(value)


def _source(message: dict[str, Any]) -> Any:
    source = message.get("source")
    if source not in SOURCES:
        raise WireError(f"a frame from {source!r}")
    return source


async def read_commands(reader: asyncio.StreamReader, commands: Commands) -> None:
    """Apply mux's messages until "close" or the end of stdin; a malformed one is logged
    and skipped (one that cannot be framed ends the reading)."""
    while True:
        try:
            head, body = lengths(await reader.readexactly(PREFIX.size), max_frame_bytes())
            message = header(await reader.readexactly(head))
            payload = await reader.readexactly(body) if body else b""
        except asyncio.IncompleteReadError:
            return
        except WireError as exc:
            log.warning("mux sent a message that cannot be read (%s): closing", exc)
            return
        try:
            if not commands.apply(message, payload):
                return
        except MuxError as exc:  # WireError, a DisplayError from drawing
            log.warning("a %r message from mux was not applied: %s", message["type"], exc)


async def serve(setup: dict[str, Any], report: Reporter) -> int:
    """Open the window, then follow mux's messages until told to close; the exit code."""
    colors: dict[str, str] = {str(k): str(v) for k, v in dict(setup.get("colors") or {}).items()}

    async def on_input(events: list[InputEvent]) -> None:
        report({"type": "input", "events": [[e.type, e.code, e.value] for e in events]})

    async def on_switch(name: str) -> None:
        report({"type": "pick", "name": name})

    monitor = setup.get("monitor")
    window = SeatWindow(report, colors, BackBuffer(list(colors)), fullscreen=bool(setup.get("fullscreen")),
                        on_input=on_input if setup.get("input") else None, on_switch=on_switch,
                        on_close=lambda: report({"type": "closed"}), seat=str(setup.get("seat", "")),
                        monitor=monitor if type(monitor) is int else None)
    try:
        window.open()
    except DisplayError as exc:
        report({"type": "failed", "reason": str(exc)})
        return 1
    try:
        window.on_resize = lambda size: report({"type": "resize", "size": list(size)})
        handles = x11_window(window.canvas.window)
        report({"type": "opened", "area": list(window.guest_area_size() or (0, 0)),
                "driver": pygame.display.get_driver(), "window": handles[1] if handles else None})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        events = asyncio.create_task(window.run(), name="window")
        commands = asyncio.create_task(read_commands(reader, Commands(window)), name="commands")
        done, _ = await asyncio.wait((events, commands), return_when=asyncio.FIRST_COMPLETED)
        for task in (events, commands):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("the window's %s loop failed: %r", task.get_name(), task.exception())
                return 1
        return 0
    finally:
        window.close()


def main(argv: list[str] | None = None) -> int:
    """The window process's entry point; see the module docstring."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol = os.dup(1)
    os.dup2(2, 1)  # a stray print lands on stderr, not in the protocol
    try:
        setup = json.loads(args[0]) if args else {}
        if not isinstance(setup, dict):
            raise ValueError("SETUP is not a JSON object")
    except ValueError as exc:
        print(f"usage: python -m mux.display.window_child SETUP (a JSON object): {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"mux window (seat {setup.get('seat')}): %(message)s")
    return asyncio.run(serve(setup, Reporter(protocol)))


if __name__ == "__main__":
    sys.exit(main())
