"""The guest agent client against a fake ``qemu-ga`` on a unix socket: the sync with its
0xFF delimiter through stale bytes, retries while the agent is not up yet, errors,
``guest-exec`` polling and base64 output. (Real agents: tests/images/test_debian_image.py.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mux.guest.agent import AgentError, GuestAgent

pytestmark = pytest.mark.pure


@dataclass
class FakeAgent:
    """Answers like qemu-ga; ``deaf_syncs`` syncs are ignored first (agent not up yet)."""

    deaf_syncs: int = 0
    stale: bytes = b'{"return": 12345}\n{"retu'  # a half answer from an earlier session
    received: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.stale)
        buffer = b""
        while chunk := await reader.read(4096):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line.lstrip(b"\xff"))
                self.received.append(message)
                reply = self.answer(message)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        writer.close()

    def answer(self, message: dict[str, Any]) -> bytes | None:
        command, args = message["execute"], message.get("arguments", {})
        if command == "guest-sync-delimited":
            if self.deaf_syncs > 0:
                self.deaf_syncs -= 1
                return None
            return b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n"
        if command == "guest-ping":
            return b'{"return": {}}\n'
        if command == "guest-exec":
            if args["path"] == "/nope":
                return b'{"error": {"class": "GenericError", "desc": "Failed to execute child"}}\n'
            return json.dumps({"return": {"pid": 42}}).encode() + b"\n"
        if command == "guest-exec-status":
            self.polls += 1
            if self.polls < 3:
                return b'{"return": {"exited": false}}\n'
            out = base64.b64encode(b"6.1.0-test\n").decode()
            status = {"exited": True, "exitcode": 3, "out-data": out, "err-data": ""}
            return json.dumps({"return": status}).encode() + b"\n"
        if command == "guest-shutdown":
            return None
        return b'{"error": {"class": "CommandNotFound", "desc": "unknown"}}\n'


@contextlib.asynccontextmanager
async def serving(agent: FakeAgent, path: Path) -> AsyncIterator[tuple[FakeAgent, Path]]:
    """``agent`` listening on the unix socket ``path`` (as qemu-ga's chardev would)."""
    server = await asyncio.start_unix_server(agent.serve, str(path))
    try:
        yield agent, path
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeAgent, Path]]:
    async with serving(FakeAgent(deaf_syncs=1), tmp_path / "qga.sock") as served:
        yield served


async def test_sync_through_stale_bytes_and_a_deaf_start(fake: tuple[FakeAgent, Path]) -> None:
    agent, path = fake
    client = GuestAgent(path, "work")
    await client.connect(30)
    syncs = [m for m in agent.received if m["execute"] == "guest-sync-delimited"]
    assert len(syncs) == 2 and syncs[0]["arguments"]["id"] != syncs[1]["arguments"]["id"]
    await client.ping()
    result = await client.exec(["uname", "-r"])
    assert (result.exitcode, result.stdout, result.stderr) == (3, b"6.1.0-test\n", b"")
    assert agent.polls == 3
    exec_args = next(m for m in agent.received if m["execute"] == "guest-exec")["arguments"]
    assert exec_args == {"path": "uname", "arg": ["-r"], "capture-output": True}
    with pytest.raises(AgentError, match="work: guest-exec: GenericError: Failed to execute"):
        await client.exec(["/nope"])
    await client.shutdown()
    assert agent.received[-1] == {"execute": "guest-shutdown", "arguments": {"mode": "powerdown"}}
    await client.close()


async def test_no_agent_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="did not answer in 1 s"):
        await GuestAgent(tmp_path / "absent.sock").connect(1)


async def test_an_agent_that_never_syncs_times_out(tmp_path: Path) -> None:
    agent = FakeAgent(deaf_syncs=1000)
    path = tmp_path / "qga.sock"
    server = await asyncio.start_unix_server(agent.serve, str(path))
    try:
        with pytest.raises(AgentError, match="did not answer"):
            await GuestAgent(path).connect(1.5)
        assert any(m["execute"] == "guest-sync-delimited" for m in agent.received)  # it was asked
    finally:
        server.close()
        await server.wait_closed()
