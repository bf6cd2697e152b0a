"""Starting and ending a seat's window process (``python -m mux.display.window_child``).

Theory. The process is started on the seat's X display (``DISPLAY`` set, SDL's x11 driver
chosen; not set: mux's own environment) and must say "opened" or "failed" (and why) as
its first message, within :data:`OPEN_S`; mux waits for it synchronously, as the
in-process window's ``open`` does. From then on the pipe to it is non-blocking and
enlarged (:data:`PIPE_BYTES`), so mux never waits on a slow window. Ending it escalates
as QEMUMachine's shutdown does: asked ("close", and the end of its stdin), then
terminated, then killed, :data:`CLOSE_S` each; the process is always reaped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import subprocess
import sys
import time
from typing import IO, Any

from mux.display.window_pipe import PREFIX, WireError, encode, header, lengths
from mux.errors import DisplayError

OPEN_S = 30.0  #: how long a child may take to open its window (or say why not)
CLOSE_S = 2.0  #: how long each step of ending a child may take (asked, then terminated)
PIPE_BYTES = 1 << 20  #: the pipe to the child is made this large where Linux allows it
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux)


class WindowProcess:
    """One window process and its two pipes; see the module docstring."""

    def __init__(self, setup: dict[str, Any], display: str | None) -> None:
        """``setup`` is the child's SETUP (:mod:`mux.display.window_child`); ``display``
        the X display it opens on (None: the environment's)."""
        self.setup = setup
        self.display = display
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def stdin(self) -> int:
        """The pipe to the child (non-blocking once started).

        Raises:
            DisplayError: not started, or ended.
        """
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.closed:
            raise DisplayError("the window process is not running")
        return self.proc.stdin.fileno()

    @property
    def stdout(self) -> IO[bytes]:
        """The pipe from the child."""
        if self.proc is None or self.proc.stdout is None:
            raise DisplayError("the window process is not running")
        return self.proc.stdout

    def start(self, timeout: float = OPEN_S) -> dict[str, Any]:
        """Start the child; its first message ("opened", or "failed" with a "reason").

        Raises:
            DisplayError: it could not be started, ended or answered wrongly first, or
                said nothing within ``timeout`` seconds (it is ended then).
        """
        env = dict(os.environ)
        if self.display:
            env.update(DISPLAY=self.display, SDL_VIDEODRIVER="x11")
            env.pop("WAYLAND_DISPLAY", None)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mux.display.window_child", json.dumps(self.setup)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise DisplayError(f"cannot start the window process: {exc}") from exc
        try:
            reply = self._first_reply(time.monotonic() + timeout, timeout)
        except BaseException:
            self.stop()
            raise
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.stdin, _F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self.stdin, False)
        return reply

    def _first_reply(self, deadline: float, timeout: float) -> dict[str, Any]:
        assert self.proc is not None
        fd, data, need = self.stdout.fileno(), b"", PREFIX.size
        while len(data) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise DisplayError(f"the window process said nothing in {timeout:g} s")
            chunk = os.read(fd, need - len(data))
            if not chunk:
                code = self.proc.wait()
                raise DisplayError(f"the window process ended (exit code {code}) before opening a window")
            data += chunk
            try:
                if len(data) == PREFIX.size:
                    head, body = lengths(data, 0)
                    need = PREFIX.size + head + body
                elif len(data) == need:
                    return header(data[PREFIX.size:])
            except WireError as exc:
                raise DisplayError(f"the window process answered wrongly: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or was never started)."""
        return None if self.proc is None else self.proc.poll()

    def terminate(self) -> None:
        """Ask the OS to end it now (SIGTERM); :meth:`stop` reaps it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self, *, ask: bool = True) -> None:
        """End it (asked unless ``ask`` is false, then terminated, then killed) and reap
        it; the pipe to it is closed (the one from it is its reader's). Safe to call twice."""
        proc = self.proc
        if proc is None or proc.stdin is None:
            return
        if ask and not proc.stdin.closed:  # a small message is written whole or not at all
            with contextlib.suppress(OSError):
                os.write(proc.stdin.fileno(), b"".join(bytes(p) for p in encode({"type": "close"})))
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(CLOSE_S)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(CLOSE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
