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
        self._buffer = b""
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
                    self._reader, self._writer, self._buffer = reader, writer, b""
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
            while True:
                position = self._buffer.rfind(SENTINEL)
                if position >= 0:
                    self._buffer = self._buffer[position + 1:]
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
        pid = int(started["pid"])
        began = time.monotonic()
        deadline = began + timeout
        while True:
            status = await self.execute("guest-exec-status", {"pid": pid},
                                        timeout=max(1.0, deadline - time.monotonic()))
            if status.get("exited"):
                return ExecResult(
                    exitcode=status.get("exitcode"),
                    signal=status.get("signal"),
                    stdout=base64.b64decode(status.get("out-data", "")),
                    stderr=base64.b64decode(status.get("err-data", "")),
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

    def _take(self) -> dict[str, Any] | None:
        """The next whole JSON object in the buffer, or None; stray bytes are skipped."""
        while True:
            text = self._buffer.lstrip(b" \t\r\n" + SENTINEL)
            start = text.find(b"{")
            if start < 0:
                self._buffer = b"" if not text.strip() else text
                return None
            end = text.find(b"\n", start)
            if end < 0:
                self._buffer = text
                return None
            self._buffer = text[end + 1:]
            try:
                reply = json.loads(text[start:end])
            except ValueError:
                continue  # a fragment of an old answer
            if isinstance(reply, dict):
                return reply
