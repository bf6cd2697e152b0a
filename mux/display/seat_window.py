"""A ``[[seat]]``'s window, in its own process: the proxy mux's display draws on.

Theory. pygame-ce allows one window per process and SDL's X11 driver one X display, so
a config with ``[[seat]]`` tables opens each seat's window in a child process
(``python -m mux.display.window_child``, :mod:`mux.display.window_child`) on the seat's
``display`` (its ``DISPLAY``; not set: mux's own), full screen on ``monitor`` with
``output = "fullscreen"``. :class:`SeatWindowOutput` is an
:class:`~mux.display.output.Output` like any other: the display presents frames on it,
and it forwards them over the child's stdin (:mod:`mux.display.window_pipe`), never
blocking: the pipe is written when it can take more, and a child that is behind gets the
newest frame only (:mod:`mux.display.window_outbox`). What the child reports on its
stdout (keys and mouse typed in the window, overview picks, resizes) is read by
:meth:`SeatWindowOutput.run` and handed to the same callbacks the in-process window has.
``current_frame`` answers from the frames presented here, with no round trip. Starting
and ending the process is :mod:`mux.display.window_process`'s.

Before its overview shows, the child is sent the back-buffered frame of each persona the
seat may show (again each second while it is shown). A child that dies is logged once;
the seat then goes on headless (its ``kind`` says so) and mux keeps running. ``close``
ends the child: asked to close, then terminated, then killed (the controller closes every
output on its way out, error or cancel included). The implicit seat (a config
without ``[[seat]]``) keeps :func:`~mux.display.output.open_output`'s in-process window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PIL import Image

from mux.config import SeatSection
from mux.display.backbuffer import BackBuffer, Frame
from mux.display.leds import Leds
from mux.display.output import (
    HeadlessOutput,
    InputHandler,
    Output,
    Progress,
    ResizeHandler,
    SwitchHandler,
    display_available,
    display_named,
)
from mux.display.window_outbox import Outbox
from mux.display.window_pipe import PREFIX, WireError, encode, events_of, header, lengths
from mux.display.window_process import CLOSE_S, OPEN_S, WindowProcess
from mux.errors import DisplayError, MuxError
from mux.input.events import InputEvent

log = logging.getLogger(__name__)

OVERVIEW_REFRESH_S = 1.0  #: how often the shown overview gets the back-buffer's newer frames
MAX_ATTENTION = 100  #: pending attention requests sent, at most (the newest)


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class SeatWindowOutput:
    """A seat's window in a child process; see the module docstring."""

    kind = "window"

    def __init__(self, seat: SeatSection, colors: Mapping[str, str], backbuffer: BackBuffer, *,
                 on_input: InputHandler | None, on_switch: SwitchHandler,
                 on_close: Callable[[], None] = _interrupt) -> None:
        """``colors``: every persona's banner colour (the seat's personas are kept, in order).

        Raises:
            DisplayError: the seat's output is "headless" (use :class:`HeadlessOutput`).
        """
        if seat.output == "headless":
            raise DisplayError(f"seat {seat.name!r} is headless: it has no window")
        self.seat = seat
        allowed = seat.personas if seat.personas is not None else tuple(colors)
        self.colors = {name: colors[name] for name in colors if name in allowed}
        self.names = list(self.colors)
        self.backbuffer = backbuffer
        self.on_input = on_input
        self.on_switch = on_switch
        self.on_close = on_close
        self.on_resize: ResizeHandler | None = None
        self.overview = False
        self.presented = 0
        self.attention: list[tuple[str, str]] = []
        self.window_id: int | None = None  #: the X window (from the child; for tests and logs)
        self._current: tuple[str, Frame | None] | None = None
        self._area: tuple[int, int] | None = None
        self._outbox = Outbox()
        self._inflight: list[memoryview] = []  # the message being written, in pieces
        self._overview_sent: dict[str, tuple[object, int, float]] = {}
        self._process: WindowProcess | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False  # the loop watches the pipe for room
        self._reader: asyncio.ReadTransport | None = None
        self._ended = False

    # --- lifecycle --------------------------------------------------------------------

    def where(self) -> str:
        """Where the window opens, as the environment names it ("DISPLAY=:2"); "" if unknown."""
        return f"DISPLAY={self.seat.display}" if self.seat.display else display_named()

    def open(self, timeout: float = OPEN_S) -> None:
        """Start the child and wait until its window is open.

        Raises:
            DisplayError: the child could not open a window (its reason), ended, or said
                nothing within ``timeout`` seconds (then it is ended).
        """
        self._process = WindowProcess(
            {"seat": self.seat.name, "colors": self.colors, "input": self.on_input is not None,
             "fullscreen": self.seat.output == "fullscreen",
             "monitor": self.seat.monitor if self.seat.output == "fullscreen" else None},
            self.seat.display)
        try:
            reply = self._process.start(timeout)
            if reply.get("type") != "opened":
                reason = reply.get("reason", "the window process could not open a window")
                raise DisplayError(str(reason)[:500])
        except BaseException:
            self.close()
            raise
        area, window = reply.get("area"), reply.get("window")
        if isinstance(area, list) and len(area) == 2 and all(type(v) is int and v >= 0 for v in area):
            self._area = (area[0], area[1])
        self.window_id = window if type(window) is int else None
        self._pump()

    def close(self) -> None:
        """End the child (asked, terminated, then killed); safe to call twice."""
        process = self._process
        if process is None:
            return
        self._watch_room(False)
        self._process, self._ended = None, True
        process.stop(ask=not self._inflight)  # not in the middle of a frame
        if self._reader is not None:
            self._reader.close()  # closes its stdout; run() then returns
        elif process.proc is not None and process.proc.stdout is not None:
            process.proc.stdout.close()

    def _end(self, why: str) -> None:
        """The child is gone or broken: logged once; the seat goes on headless."""
        if self._ended:
            return
        self._ended = True
        self.kind = "headless"
        self._area = None
        self._outbox.forget()
        self._inflight = []
        self._watch_room(False)
        log.warning("output (seat %s): the window process %s; the seat goes on headless", self.seat.name, why)
        if self._process is not None:
            self._process.terminate()  # close() reaps it

    # --- writing to the child ---------------------------------------------------------

    def _send(self, header: dict[str, Any]) -> None:
        if not self._ended:
            self._outbox.message(header)
            self._pump()

    def _pump(self) -> None:
        """Write what the pipe takes now; never blocks (the loop calls again when it has room)."""
        if self._process is None or self._ended:
            return
        try:
            fd = self._process.stdin
            while True:
                if not self._inflight:
                    message = self._outbox.take()
                    if message is None:
                        self._watch_room(False)
                        return
                    self._inflight = [memoryview(p).cast("B") for p in encode(*message) if len(p)]
                piece = self._inflight[0]
                written = os.write(fd, piece)
                if written == len(piece):
                    self._inflight.pop(0)
                else:
                    self._inflight[0] = piece[written:]
        except BlockingIOError:
            self._watch_room(True)
        except OSError as exc:
            self._end(f"cannot be written to ({exc.strerror or exc}; exit code {self._process.poll()})")

    def _watch_room(self, on: bool) -> None:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        if on == self._writing or self._loop is None or self._loop.is_closed() or self._process is None:
            return
        with contextlib.suppress(DisplayError):  # its stdin is closed: nothing is watched
            if on:
                self._loop.add_writer(self._process.stdin, self._pump)
            else:
                self._loop.remove_writer(self._process.stdin)
        self._writing = on

    # --- what the display calls -------------------------------------------------------

    def present(self, name: str, frame: Frame | None) -> None:
        if self._current is None or self._current[0] != name:
            self.overview = False  # the window leaves its overview at a switch
        self._current = (name, frame)
        self.presented += 1
        if not self._ended:
            self._outbox.present(name, frame)
            self._pump()

    def show_leds(self, name: str, leds: Leds | None) -> None:
        self._send({"type": "leds", "name": name,
                    "leds": None if leds is None else [leds.caps, leds.num, leds.scroll]})

    def show_attention(self, requests: Sequence[tuple[str, str]]) -> None:
        self.attention = list(requests)
        self._send({"type": "attention",
                    "requests": [[name, text[:200]] for name, text in self.attention[-MAX_ATTENTION:]],
                    "more": max(len(self.attention) - MAX_ATTENTION, 0)})

    def notify(self, text: str) -> None:
        """Show a notice in the window's banner (and log it)."""
        log.info("%s", text)
        self._send({"type": "notice", "text": " ".join(text.split())[:200]})

    def current_frame(self) -> tuple[str, Image.Image, float] | None:
        name, frame = self._current or ("", None)
        return None if frame is None else (name, frame.image, frame.captured)

    def guest_area_size(self) -> tuple[int, int] | None:
        return self._area

    def toggle_overview(self) -> None:
        """Show the seat's personas side by side (their back-buffered frames sent first), or go back."""
        self.overview = not self.overview
        if self.overview:
            self._send_backbuffer()
        self._send({"type": "overview", "on": self.overview})

    def _send_backbuffer(self) -> None:
        """Each of the seat's personas' back-buffered frame the child does not have yet."""
        if self._ended:
            return
        for name in self.names:
            frame = self.backbuffer.get(name)
            if frame is None:
                continue
            key = (frame.picture, frame.version, frame.captured)
            sent = self._overview_sent.get(name)
            if sent is None or sent[0] is not key[0] or sent[1:] != key[1:]:
                self._overview_sent[name] = key
                self._outbox.backbuffer(name, frame)
        self._pump()

    # --- reading from the child -------------------------------------------------------

    async def run(self) -> None:
        """Read the child's messages until it ends or this is cancelled; never raises for
        the child's sake (a dead or broken child is logged, and the seat goes headless)."""
        if self._process is None or self._ended:
            return
        self._loop = asyncio.get_running_loop()
        self._pump()
        reader = asyncio.StreamReader()
        self._reader, _ = await self._loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self._process.stdout)
        refresher = asyncio.create_task(self._refresh_overview(),
                                        name=f"seat-window:{self.seat.name}:overview")
        try:
            await self._read(reader)
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            self._watch_room(False)

    async def _refresh_overview(self) -> None:
        while True:
            await asyncio.sleep(OVERVIEW_REFRESH_S)
            if self.overview:
                self._send_backbuffer()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                head, _ = lengths(await reader.readexactly(PREFIX.size), 0)
                message = header(await reader.readexactly(head))
            except asyncio.IncompleteReadError:
                code = await self._exit_code()
                self._end(f"ended (exit code {code})" if code is not None else "closed its output")
                return
            except WireError as exc:
                self._end(f"sent a bad message ({exc})")
                return
            try:
                await self._handle(message)
            except WireError as exc:
                self._end(f"sent a bad message ({exc})")
                return
            except MuxError as exc:  # a refused switch: said in the seat's banner
                self.notify(str(exc))
            except Exception:
                log.exception("output (seat %s): handling the window's %r failed", self.seat.name,
                              message.get("type"))

    async def _exit_code(self) -> int | None:
        """The child's exit code, waited for a moment (its output ends just before it exits)."""
        deadline = time.monotonic() + CLOSE_S
        while self._process is not None and self._process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self._process.poll() if self._process is not None else None

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "input":
            events = [InputEvent(*event) for event in events_of(message)]
            if self.on_input is not None:
                await self.on_input(events)
        elif kind == "pick":
            name = message.get("name")
            if name not in self.names:
                raise WireError(f"an overview pick of {name!r}, not one of {self.names}")
            self.overview = False
            await self.on_switch(str(name))
        elif kind == "resize":
            size = message.get("size")
            if not (isinstance(size, list) and len(size) == 2
                    and all(type(v) is int and v >= 0 for v in size)):
                raise WireError(f"a resize to {size!r}")
            self._area = (size[0], size[1])
            if self.on_resize is not None:
                self.on_resize(self._area)
        elif kind == "overview":
            if message.get("on") is True and not self.overview:
                self.toggle_overview()  # asked in the window: the back-buffer goes first
            elif message.get("on") is False:
                self.overview = False
        elif kind == "closed":
            log.info("output (seat %s): window closed: stopping mux", self.seat.name)
            self.on_close()
        else:
            log.debug("output (seat %s): the window sent %r", self.seat.name, kind)


def open_seat_output(seat: SeatSection, colors: Mapping[str, str], backbuffer: BackBuffer, *,
                     on_input: InputHandler | None, on_switch: SwitchHandler,
                     progress: Progress | None = None) -> Output:
    """The output ``seat`` asks for, opened; ``progress`` (default: the log) gets one line
    saying which and why ("output (seat two): window on DISPLAY=:2").

    ``on_input`` gets what is typed into the window (None: nothing is routed from it);
    ``on_switch`` a persona picked in its overview.

    Raises:
        DisplayError: ``output`` is "window" or "fullscreen" and the window cannot be
            opened (the child's reason). With "auto" that falls back to headless, saying why.
    """
    tell = progress or (lambda line: log.info("%s", line))
    label = f"output (seat {seat.name})"
    if seat.output == "headless":
        tell(f"{label}: headless (output = \"headless\")")
        return HeadlessOutput()
    if seat.output == "auto" and not seat.display and not display_available():
        tell(f"{label}: headless (no display set, and no DISPLAY or WAYLAND_DISPLAY)")
        return HeadlessOutput()
    window = SeatWindowOutput(seat, colors, backbuffer, on_input=on_input, on_switch=on_switch)
    where = window.where()
    try:
        window.open()
    except DisplayError as exc:
        if seat.output != "auto":
            raise DisplayError(f"seat {seat.name!r}: no window on {where or 'any display'}: {exc}") from exc
        tell(f"{label}: headless (could not open a window on {where or 'any display'}: {exc})")
        return HeadlessOutput()
    how = f"full screen (monitor {seat.monitor})" if seat.output == "fullscreen" else "window"
    tell(f"{label}: {how} on {where}" if where else f"{label}: {how}")
    return window
