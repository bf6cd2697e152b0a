"""The control socket: JSON lines over a unix socket (mode 0600).

One request per line, one reply per line::

    {"cmd": "status"}                                  -> {"ok": true, "status": {...}}
    {"cmd": "switch", "persona": "home"}               -> {"ok": true, "active": "home"}
    {"cmd": "screenshot", "persona": "work", "file": "/abs/shot.png"}
                                                       -> {"ok": true, "file": "/abs/shot.png"}
    {"cmd": "attach", "device": "stick", "persona": "home"}
                                                       -> {"ok": true, "device": {...}}
    {"cmd": "detach", "device": "stick"}   ("persona" optional: must hold it)
                                                       -> {"ok": true, "device": {...}}
    anything wrong                                     -> {"ok": false, "error": "..."}

A bad request gets an error reply and the connection stays open; the controller is
never affected. ``mux ctl`` is the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mux.errors import ControlError, MuxError

if TYPE_CHECKING:
    from mux.app.controller import Controller

MAX_LINE = 64 * 1024


async def serve_control(controller: Controller, path: Path) -> asyncio.AbstractServer:
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


async def _handle_line(controller: Controller, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, "status": controller.status()}
        if cmd == "switch":
            active = await controller.switch(str(request.get("persona")), "control socket")
            return {"ok": True, "active": active}
        if cmd == "screenshot":
            name, file = str(request.get("persona")), Path(str(request.get("file")))
            image = await controller.screenshot(controller.persona(name).name)
            image.save(file)
            return {"ok": True, "file": str(file)}
        if cmd in ("attach", "detach"):
            device, persona = request.get("device"), request.get("persona")
            if not isinstance(device, str) or not isinstance(persona, str | None) or (
                    cmd == "attach" and persona is None):
                raise ValueError(f"{cmd} needs \"device\" and {'' if cmd == 'attach' else 'optionally '}"
                                 "\"persona\" (strings)")
            if cmd == "attach":
                return {"ok": True, "device": await controller.attach(device, str(persona))}
            return {"ok": True, "device": await controller.detach(device, persona)}
        raise ValueError(f"unknown command {cmd!r} (status, switch, screenshot, attach, detach)")
    except (ValueError, KeyError, OSError, MuxError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        return {"ok": False, "error": message}


def request(path: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and return the reply (the blocking client behind ``mux ctl``).

    Raises:
        ControlError: no controller listens there, or it closed without answering.
    """
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
        except OSError as exc:
            raise ControlError(f"no controller answers on {path}: {exc}") from exc
    if not line:
        raise ControlError(f"the controller on {path} closed without answering")
    reply: dict[str, Any] = json.loads(line)
    return reply

