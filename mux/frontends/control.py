"""The control socket: JSON lines over a unix socket (mode 0600).

One request per line, one reply per line::

    {"cmd": "status"}                                  -> {"ok": true, "status": {...}}
    {"cmd": "switch", "persona": "home"}               -> {"ok": true, "active": "home"}
    {"cmd": "switch", "persona": "lab", "seat": "two"} -> {"ok": true, "active": "lab", "seat": "two"}
    {"cmd": "screenshot", "persona": "work", "file": "/abs/shot.png"}
                                                       -> {"ok": true, "file": "/abs/shot.png"}
    {"cmd": "attach", "device": "stick", "persona": "home"}
                                                       -> {"ok": true, "device": {...}}
    {"cmd": "detach", "device": "stick"}   ("persona" optional: must hold it)
                                                       -> {"ok": true, "device": {...}}
    {"cmd": "text", "persona": "work", "area": [x, y, w, h]}   (area optional)
                                                       -> {"ok": true, "text": "..."}
    {"cmd": "exec", "persona": "work", "argv": ["uname", "-r"], "timeout": 60}
                                 -> {"ok": true, "exitcode": 0, "signal": null,
                                     "stdout": "<base64>", "stderr": "<base64>"}
    {"cmd": "clock", "persona": "work", "time": "2031-05-01T09:00:00", "timeout": 60}
                                 -> {"ok": true, "time": "2031-05-01T09:00:00Z"}
    {"cmd": "clipboard", "action": "copy"}    (or "paste": the active persona's clipboard)
                                 -> {"ok": true, "action": "copy", "persona": "home", "chars": 42,
                                     "from": "home", "message": "copied 42 characters from home"}
    anything wrong                                     -> {"ok": false, "error": "..."}

A refused ``clipboard`` request's error is the banner's text (``refused: home → work``);
no reply ever carries clipboard text. ``clock``'s time is read by
:func:`mux.guest.clock.parse_guest_time` (ISO 8601, UTC unless it has an offset;
``host``/``now`` the host's time when the request arrives). ``switch``'s ``seat`` is optional
(the first seat); an unknown one is refused naming the seats, and a switch to a persona
active on another seat is refused with the :class:`~mux.errors.SeatError`'s message.

One request streams many lines (and the connection closes after it)::

    {"cmd": "logs", "follow": false, "since": 1780000000.0, "personas": ["work"]}
        -> {"ok": true, "t": ..., "personas": [...], "colors": {...}}   (the header)
           {"t": 1780000001.25, "persona": "work", "line": "..."}       (one per line)
           {"ok": true, "end": "done"}    (or "behind": this reader fell too far behind)

``since`` (seconds since the epoch) and ``personas`` (an unknown name is an error) are
optional; with ``follow`` new lines come until the client closes. When the controller
stops, the stream simply ends (EOF without an ``end`` line).

A bad request, or one mux cannot carry out (a :class:`~mux.errors.MuxError`), gets an
error reply and the connection stays open; the controller is never affected. Anything
else that goes wrong while answering is a bug in mux: it is logged with its traceback
and answered as ``{"ok": false, "error": "internal error in mux: ..."}``, never passed
off as a refused command. ``mux ctl`` is the client.

The socket talks to mux only through :class:`~mux.app.api.ControlAPI`;
:class:`ControlServer` is the :class:`~mux.app.api.Frontend` that ``mux.cli`` gives the
controller.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

from mux.app.api import ControlAPI
from mux.errors import ControlError, MuxError
from mux.frontends.control_client import exec_in_guest, request, stream
from mux.guest.clock import TimeError, parse_guest_time, utc_text

# The client side (mux.frontends.control_client) is re-exported: callers use control.request.
__all__ = ["ControlServer", "exec_in_guest", "request", "serve_control", "stream"]

log = logging.getLogger(__name__)
MAX_LINE = 64 * 1024


class ControlServer:
    """The control socket as a frontend: listens on ``path`` while it is served."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.streams: set[asyncio.Task[Any]] = set()  # handlers streaming logs: ended on close

    @contextlib.asynccontextmanager
    async def serve(self, api: ControlAPI) -> AsyncIterator[ControlServer]:
        """Listen while inside; close the socket on the way out.

        Raises:
            ControlError: another controller is listening there, or the path is unusable.
        """
        server = await serve_control(api, self.path, self.streams)
        try:
            yield self
        finally:
            for task in list(self.streams):
                task.cancel()
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)


async def serve_control(controller: ControlAPI, path: Path,
                        streams: set[asyncio.Task[Any]] | None = None) -> asyncio.AbstractServer:
    """Listen on ``path``; refuses to take over a socket another controller answers on.

    Raises:
        ControlError: another controller is listening there, or the path is unusable.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        if _answers(path):
            raise ControlError(f"another controller is already listening on {path}")
        path.unlink()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if _is_logs(line):
                    if await _stream_logs(controller, line, writer, streams):
                        break
                    continue
                reply = await _handle_line(controller, line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_LINE)
    except OSError as exc:
        raise ControlError(f"cannot listen on {path}: {exc}") from exc
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class _BadRequest(MuxError):
    """The request line itself is wrong (not JSON, unknown command, missing fields)."""


async def _handle_line(controller: ControlAPI, line: bytes) -> dict[str, Any]:
    try:
        return await _answer(controller, line)
    except MuxError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug in mux: say so, loudly, and keep serving
        log.exception("control socket: answering %r failed", line[:200])
        return {"ok": False, "error": f"internal error in mux (see its log): {exc!r}"}


async def _answer(controller: ControlAPI, line: bytes) -> dict[str, Any]:
    """The reply to one request line.

    Raises:
        MuxError: a bad request (_BadRequest), or one mux could not carry out.
    """
    try:
        request = json.loads(line)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _BadRequest(str(exc)) from exc
    if not isinstance(request, dict):
        raise _BadRequest("a request is a JSON object")
    cmd = request.get("cmd")
    if cmd == "status":
        return {"ok": True, "status": controller.status()}
    if cmd == "switch":
        seat = request.get("seat")
        if seat is not None and (not isinstance(seat, str) or seat not in controller.seats):
            raise _BadRequest(f"switch: unknown seat {seat!r} (seats: {', '.join(controller.seats)})")
        target = str(request.get("persona"))
        if seat is None:  # the first seat, as before seats
            return {"ok": True, "active": await controller.switch(target, "control socket")}
        return {"ok": True, "active": await controller.switch(target, "control socket", seat), "seat": seat}
    if cmd == "screenshot":
        name, file = str(request.get("persona")), Path(str(request.get("file")))
        image = await controller.screenshot(name)
        try:
            image.save(file)
        except (OSError, ValueError) as exc:  # ValueError: Pillow knows no such extension
            raise ControlError(str(exc)) from exc
        return {"ok": True, "file": str(file)}
    if cmd in ("attach", "detach"):
        device, persona = request.get("device"), request.get("persona")
        if not isinstance(device, str) or not isinstance(persona, str | None) or (
                cmd == "attach" and persona is None):
            raise _BadRequest(f"{cmd} needs \"device\" and {'' if cmd == 'attach' else 'optionally '}"
                             "\"persona\" (strings)")
        if cmd == "attach":
            return {"ok": True, "device": await controller.attach(device, str(persona))}
        return {"ok": True, "device": await controller.detach(device, persona)}
    if cmd == "text":
        return {"ok": True, "text": await _read_text(controller, request)}
    if cmd == "exec":
        return await _exec(controller, request)
    if cmd == "clock":
        return await _clock(controller, request)
    if cmd == "clipboard":
        action = request.get("action")
        if action not in ("copy", "paste"):
            raise _BadRequest(f"clipboard: action is \"copy\" or \"paste\", not {action!r}")
        done = await (controller.clipboard_copy if action == "copy" else controller.clipboard_paste)(
            "control socket")
        return {"ok": True, **done}
    raise _BadRequest(f"unknown command {cmd!r} (status, switch, screenshot, attach, detach, text, exec,"
                      " clock, clipboard, logs)")


async def _clock(controller: ControlAPI, request: dict[str, Any]) -> dict[str, Any]:
    """Set a persona's guest clock (see the module docstring). Raises MuxError."""
    text, timeout = request.get("time"), request.get("timeout", 60)
    if not isinstance(text, str):
        raise _BadRequest("clock: time is a string (ISO 8601, or host)")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise _BadRequest("clock: timeout is a number of seconds above 0")
    try:
        seconds = parse_guest_time(text, time.time())
    except TimeError as exc:
        raise _BadRequest(f"clock: {exc}") from None
    await controller.set_clock(str(request.get("persona")), seconds, float(timeout))
    return {"ok": True, "time": utc_text(seconds)}


def _is_logs(line: bytes) -> bool:
    with contextlib.suppress(ValueError):
        request = json.loads(line)
        return isinstance(request, dict) and request.get("cmd") == "logs"
    return False


async def _stream_logs(controller: ControlAPI, line: bytes, writer: asyncio.StreamWriter,
                       streams: set[asyncio.Task[Any]] | None) -> bool:
    """Answer a ``logs`` request (see the module docstring): True when it streamed (the
    connection then closes), False when it was refused with an error line."""
    request = json.loads(line)
    since, names, follow = request.get("since"), request.get("personas"), request.get("follow", False)
    error = None
    if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
        error = "logs: since is seconds since the epoch (a number)"
    elif names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        error = "logs: personas is a list of persona names"
    elif unknown := [n for n in names or () if n not in controller.names]:
        error = f"logs: no persona {', '.join(map(repr, unknown))} (personas: {', '.join(controller.names)})"
    if error is not None:
        writer.write(json.dumps({"ok": False, "error": error}).encode() + b"\n")
        await writer.drain()
        return False
    task = asyncio.current_task()
    if streams is not None and task is not None:
        streams.add(task)
    entries = controller.serial_lines(since, bool(follow))
    try:
        async for entry in entries:
            if "line" in entry and names and entry["persona"] not in names:
                continue
            if "line" not in entry:
                entry = {"ok": True, **entry}
            writer.write(json.dumps(entry).encode() + b"\n")
            await writer.drain()
    finally:
        if streams is not None and task is not None:
            streams.discard(task)
        if isinstance(entries, AsyncGenerator):  # a follower stops being fed at once
            await entries.aclose()
    return True


async def _exec(controller: ControlAPI, request: dict[str, Any]) -> dict[str, Any]:
    """Run a command in a persona's guest; its output travels as base64 (any bytes).

    Raises:
        MuxError: a bad request, or the guest agent could not run it.
    """
    argv, timeout = request.get("argv"), request.get("timeout", 60)
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise _BadRequest("exec: argv is a non-empty list of strings")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise _BadRequest("exec: timeout is a number of seconds above 0")
    result = await controller.exec(str(request.get("persona")), argv, float(timeout))
    return {"ok": True, "exitcode": result["exitcode"], "signal": result["signal"],
            **{key: base64.b64encode(result[key]).decode() for key in ("stdout", "stderr")}}


async def _read_text(controller: ControlAPI, request: dict[str, Any]) -> str:
    """The text on a persona's screen (or in ``area``), read by tesseract in a thread.

    Raises:
        MuxError: a bad area, OCR not installed, or the screenshot failed.
    """
    from mux.needles.ocr import OcrUnavailable, TextReader

    area = request.get("area")
    if area is not None and not (isinstance(area, list) and len(area) == 4
                                 and all(type(v) is int and v >= 0 for v in area)):
        raise _BadRequest("text: area is [x, y, width, height], whole numbers >= 0")
    image = await controller.screenshot(str(request.get("persona")))
    try:
        return await asyncio.to_thread(TextReader().text, image, tuple(area) if area else None)
    except OcrUnavailable as exc:
        raise ControlError(str(exc)) from exc
