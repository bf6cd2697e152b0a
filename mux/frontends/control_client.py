"""The control socket's client side: what ``mux ctl``, ``mux logs`` and the needle editor
send, one JSON line each (the protocol is :mod:`mux.frontends.control`'s docstring).

``request`` sends a line and reads the one reply; ``stream`` reads reply lines until the
server closes (``logs``); ``exec_in_guest`` is ``mux ctl exec``, copying a command's output
to ours as ``ssh`` does. Errors are :class:`~mux.errors.ControlError` naming the socket.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mux.errors import ControlError


def exec_in_guest(path: Path, persona: str, argv: Sequence[str], timeout: float) -> int:
    """``mux ctl exec``: run ``argv`` (``[--timeout S] -- COMMAND...``: what argparse left
    after the persona) in ``persona``'s guest, copy its stdout and stderr to ours, and
    return its exit status (128 + the signal that ended it), as ``ssh`` does.

    Raises:
        ControlError: no command, a bad option, no controller, or it could not run it.
    """
    argv = list(argv)
    if "--" in argv:
        options, argv = argv[:argv.index("--")], argv[argv.index("--") + 1:]
        try:
            timeout = float(options[1]) if len(options) == 2 and options[0] == "--timeout" else \
                float("nan") if options else timeout
        except ValueError:
            timeout = float("nan")
        if not timeout > 0:
            raise ControlError(f"exec: before -- only --timeout SECONDS, not {' '.join(options)}")
    if not argv:
        raise ControlError("exec: give the command after --, e.g. mux ctl exec work -- uname -r")
    reply = request(path, {"cmd": "exec", "persona": persona, "argv": list(argv), "timeout": timeout},
                    2 * timeout + 30.0)  # waiting for the agent, then the command
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    for key, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        stream.flush()
        stream.buffer.write(base64.b64decode(str(reply.get(key, ""))))
        stream.buffer.flush()
    if reply.get("exitcode") is not None:
        return int(reply["exitcode"])
    return 128 + int(reply.get("signal") or 0)


def request(path: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and return the reply (the blocking client behind ``mux ctl``).

    Raises:
        ControlError: no controller listens there, or it closed without answering.
    """
    with _sent(path, message, timeout) as sock:
        try:
            with sock.makefile("rb") as stream:
                line = stream.readline()
        except OSError as exc:
            raise ControlError(f"no controller answers on {path}: {exc}") from exc
    if not line:
        raise ControlError(f"the controller on {path} closed without answering")
    reply: dict[str, Any] = json.loads(line)
    return reply


@contextlib.contextmanager
def _sent(path: Path, message: dict[str, Any], timeout: float) -> Iterator[socket.socket]:
    """A connection to the control socket at ``path`` with ``message`` sent on it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise ControlError(f"no controller answers on {path}: {exc}") from exc
        yield sock


def stream(path: Path, message: dict[str, Any], timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """Send one streaming request (``logs``) and yield each line of the answer as it comes,
    until the controller closes the connection (the blocking client behind ``mux logs``).

    Raises:
        ControlError: no controller listens there, or it refused the request.
    """
    with _sent(path, message, timeout) as sock:
        sock.settimeout(None)  # a followed log may be quiet for hours
        with sock.makefile("rb") as lines:
            first = True
            for line in lines:
                reply: dict[str, Any] = json.loads(line)
                if first and not reply.get("ok"):
                    raise ControlError(str(reply.get("error")))
                first = False
                yield reply
