"""The QEMU guest agent seam: a small asyncio client of ``qemu-ga``'s protocol.

Theory. QEMU exposes the guest's virtio-serial port ``org.qemu.guest_agent.0`` as a
unix socket (``-chardev socket,path=...,server=on,wait=off``); ``qemu-ga`` in the guest
reads JSON commands from it and answers one JSON object per command (``{"return": ...}``
or ``{"error": {"class", "desc"}}``). The stream has no session: bytes written before
the agent started, or a half-read answer of an earlier client, may still be in the pipe.
So every session starts with ``guest-sync-delimited``: the command is preceded by a
``0xFF`` byte (the agent drops any partial command it was parsing) and its answer is
preceded by ``0xFF`` too, so the client drops everything before that byte and then
waits for ``{"return": <its random id>}``. Until the agent runs (the port is not open in
the guest), nothing answers: the sync is simply repeated until a deadline.

``guest-exec`` starts a process and returns its pid; ``guest-exec-status`` is polled
(every 20 ms at first, backing off to 0.5 s for long commands) until ``exited``; its
output comes back base64-encoded (``out-data`` / ``err-data``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mux.errors import PersonaError

SENTINEL = b"\xff"
#: One reply line, at most: room for qemu-ga's own cap on ``guest-exec`` output (16 MiB a
#: stream, base64 in the reply); anything longer ends the session.
MAX_REPLY_BYTES = 48 * 1024 * 1024
MAX_OUTPUT_BYTES = 1024 * 1024  #: of each ``guest-exec`` stream kept (then a note)


class AgentError(PersonaError):
    """The guest agent did not answer in time, broke the protocol or returned an error."""


@dataclass(frozen=True)
class ExecResult:
    """A finished ``guest-exec``: exit code (or the signal that ended it) and output."""

    exitcode: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes


class GuestAgent:
    """One session with one guest's agent over its unix socket."""

    def __init__(self, path: Path, name: str = "guest") -> None:
        self.path = path
        self.name = name
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = bytearray()
        self._scanned = 0  # the buffer holds no newline before this
        self._lock = asyncio.Lock()

    async def connect(self, timeout: float) -> None:
        """Connect and sync, retrying until the agent answers.

        Raises:
            AgentError: no answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if self._writer is None:
                    reader, writer = await asyncio.open_unix_connection(str(self.path))
                    self._reader, self._writer = reader, writer
                    self._drop(len(self._buffer))
                await self.sync(min(3.0, max(0.1, deadline - time.monotonic())))
                return
            except (OSError, AgentError) as exc:
                last = exc
                if isinstance(exc, OSError) or "closed" in str(exc):
                    await self.close()
                    await asyncio.sleep(0.2)
        await self.close()  # a socket left open would hold the agent's side open too
        raise AgentError(f"{self.name}: the guest agent at {self.path} did not answer in "
                         f"{timeout:.0f} s ({last})")

    async def close(self) -> None:
        """Close the socket (the agent keeps running)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def sync(self, timeout: float) -> None:
        """``guest-sync-delimited`` with a fresh id; drops everything before its answer.

        Raises:
            AgentError: no matching answer in ``timeout`` seconds, or the socket closed.
        """
        token = random.randrange(1, 2**31)
        async with self._lock:
            await self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}},
                             sentinel=True)
            deadline = time.monotonic() + timeout
            seen = False  # the answer's 0xFF: everything before it is dropped
            while True:
                position = self._buffer.rfind(SENTINEL, self._scanned)
                if position >= 0 or not seen:
                    self._drop(position + 1 if position >= 0 else len(self._buffer))
                    seen = seen or position >= 0
                if seen:
                    while (reply := self._take()) is not None:
                        if reply.get("return") == token:
                            return
                await self._fill(deadline, "guest-sync-delimited")

    async def execute(self, command: str, arguments: dict[str, Any] | None = None,
                      timeout: float = 10.0) -> Any:
        """Run one agent command; its ``return`` value.

        Raises:
            AgentError: an ``error`` answer (class and description), no answer in time.
        """
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        async with self._lock:
            await self._send(message)
            deadline = time.monotonic() + timeout
            while (reply := self._take()) is None:
                await self._fill(deadline, command)
        if "error" in reply:
            error = reply["error"]
            if not isinstance(error, dict):
                raise AgentError(f"{self.name}: {command}: the agent answered an error that is not"
                                 f" an object: {str(error)[:200]}")
            raise AgentError(f"{self.name}: {command}: {error.get('class')}: {error.get('desc')}")
        return reply.get("return")

    async def ping(self, timeout: float = 10.0) -> None:
        """``guest-ping``. Raises AgentError."""
        await self.execute("guest-ping", timeout=timeout)

    async def exec(self, argv: Sequence[str], timeout: float = 60.0,
                   stdin: bytes | None = None) -> ExecResult:
        """Run ``argv`` in the guest and wait for it; its exit status and output.

        Raises:
            AgentError: the agent refused (no such file, ...), or it did not finish in
            ``timeout`` seconds.
        """
        if not argv:
            raise AgentError(f"{self.name}: guest-exec needs a command")
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        started = await self.execute("guest-exec", arguments, timeout=min(timeout, 30.0))
        try:
            pid = int(started["pid"])
        except (TypeError, KeyError, ValueError) as exc:
            raise AgentError(f"{self.name}: guest-exec answered no pid: {str(started)[:200]}") from exc
        began = time.monotonic()
        deadline = began + timeout
        while True:
            status = await self.execute("guest-exec-status", {"pid": pid},
                                        timeout=max(1.0, deadline - time.monotonic()))
            if status.get("exited"):
                return ExecResult(
                    exitcode=status.get("exitcode"),
                    signal=status.get("signal"),
                    stdout=_output(status.get("out-data"), "stdout"),
                    stderr=_output(status.get("err-data"), "stderr"),
                )
            if time.monotonic() > deadline:
                raise AgentError(f"{self.name}: {' '.join(argv)!r} still running after {timeout:.0f} s")
            # Every 20 ms for the first second (most commands end by then: a poll costs one
            # round trip), then slower, up to twice a second.
            await asyncio.sleep(min(max(0.02, (time.monotonic() - began) / 4), 0.5))

    async def shutdown(self, mode: str = "powerdown") -> None:
        """``guest-shutdown``: the agent answers nothing on success. Raises AgentError
        only if it answers with an error at once."""
        async with self._lock:
            await self._send({"execute": "guest-shutdown", "arguments": {"mode": mode}})
            with contextlib.suppress(AgentError):
                await self._fill(time.monotonic() + 1.0, "guest-shutdown")
            reply = self._take()
        if reply and "error" in reply:
            raise AgentError(f"{self.name}: guest-shutdown: {reply['error'].get('desc')}")

    async def set_time(self, nanoseconds: int | None = None) -> None:
        """``guest-set-time`` (without a time: from the guest's RTC). Raises AgentError."""
        await self.execute("guest-set-time", {"time": nanoseconds} if nanoseconds is not None else None)

    # --- the byte stream -------------------------------------------------------------

    async def _send(self, message: dict[str, Any], sentinel: bool = False) -> None:
        if self._writer is None:
            raise AgentError(f"{self.name}: not connected to the guest agent")
        data = json.dumps(message).encode() + b"\n"
        try:
            self._writer.write(SENTINEL + data if sentinel else data)
            await self._writer.drain()
        except OSError as exc:
            raise AgentError(f"{self.name}: guest agent socket closed: {exc}") from exc

    async def _fill(self, deadline: float, what: str) -> None:
        if self._reader is None:
            raise AgentError(f"{self.name}: not connected to the guest agent")
        try:
            chunk = await asyncio.wait_for(self._reader.read(65536),
                                           max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise AgentError(f"{self.name}: no answer to {what}") from None
        except OSError as exc:
            raise AgentError(f"{self.name}: guest agent socket closed: {exc}") from exc
        if not chunk:
            raise AgentError(f"{self.name}: guest agent socket closed during {what}")
        self._buffer += chunk
        if len(self._buffer) > MAX_REPLY_BYTES and self._buffer.find(b"\n", self._scanned) < 0:
            await self.close()
            self._drop(len(self._buffer))
            raise AgentError(f"{self.name}: the guest agent's reply to {what} is over"
                             f" {MAX_REPLY_BYTES // 2**20} MiB with no end of line: session ended")

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self._scanned = 0

    def _take(self) -> dict[str, Any] | None:
        """The next whole JSON object in the buffer, or None; stray bytes are skipped."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)  # a long line is searched once, not per chunk
                return None
            line = bytes(self._buffer[:end])
            self._drop(end + 1)
            start = line.find(b"{")
            if start < 0:
                continue  # blank, or stray bytes
            try:
                reply = json.loads(line[start:])
            except (ValueError, RecursionError):
                continue  # a fragment of an old answer, or nesting no answer has
            if isinstance(reply, dict):
                return reply


def _output(data: object, stream: str) -> bytes:
    """A ``guest-exec-status`` stream (base64), its first MAX_OUTPUT_BYTES decoded, and a
    note when it was longer."""
    if not isinstance(data, str):
        return b""
    chars = -(-MAX_OUTPUT_BYTES // 3) * 4  # the base64 of the bytes kept, whole quanta
    try:
        if len(data) <= chars:
            return base64.b64decode(data)
        total = len(data) // 4 * 3 - data[-2:].count("=")
        return (base64.b64decode(data[:chars])[:MAX_OUTPUT_BYTES]
                + f"\n[mux: {stream} cut: {total} bytes, the first {MAX_OUTPUT_BYTES} kept]\n".encode())
    except ValueError:  # binascii.Error: not base64
        return f"[mux: {stream} was not base64: {len(data)} characters dropped]\n".encode()
