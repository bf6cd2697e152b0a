"""A real mosquitto broker for tests, and a panel-like client that records what it hears."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsListener:
    """A second, TLS, listener of the broker: its certificate and key, and the CA whose
    client certificates it accepts (``require_certificate``: a client must show one)."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False
    port: int = field(default_factory=free_port)

    def lines(self) -> list[str]:
        return [f"listener {self.port} 127.0.0.1", f"cafile {self.cafile}", f"certfile {self.certfile}",
                f"keyfile {self.keyfile}", f"require_certificate {str(self.require_certificate).lower()}"]


@dataclass
class Broker:
    """mosquitto on a free loopback port, with a config file the test wrote (and ``tls``:
    a TLS listener beside the plain one, which panels keep using)."""

    directory: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    tls: TlsListener | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        assert self.tls is not None, "the broker has no TLS listener"
        return f"mqtts://127.0.0.1:{self.tls.port}"

    def start(self) -> None:
        # "user": as root mosquitto would switch to a user that cannot read the test's files
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]
        if self.users:
            passwords = self.directory / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += self.tls.lines()
        conf = self.directory / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[1].decode()
            if all(_answers(port) for port in self._ports()):
                return
            time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def _ports(self) -> list[int]:
        return [self.port] + ([self.tls.port] if self.tls is not None else [])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


class Panel:
    """Subscribes to everything and keeps every message, like a Home Assistant would
    (``stamps[i]``: the ``time.time()`` at which ``messages[i]`` arrived)."""

    def __init__(self, broker: Broker, **credentials: str) -> None:
        self.broker = broker
        self.credentials = credentials
        self.messages: list[tuple[str, bytes, bool]] = []
        self.stamps: list[float] = []
        self.latest: dict[str, bytes] = {}
        self._heard = asyncio.Condition()
        self.client: aiomqtt.Client | None = None

    @contextlib.asynccontextmanager
    async def connected(self, *topics: str) -> AsyncIterator[Panel]:
        async with aiomqtt.Client("127.0.0.1", self.broker.port, **self.credentials) as client:
            self.client = client
            for topic in topics or ("#",):
                await client.subscribe(topic, qos=1)
            task = asyncio.create_task(self._listen(client))
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            async with self._heard:
                self.messages.append((message.topic.value, payload, bool(message.retain)))
                self.stamps.append(time.time())
                self.latest[message.topic.value] = payload
                self._heard.notify_all()

    async def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def wait_for(self, topic: str, check: Callable[[bytes], bool] = lambda p: True,
                       timeout: float = 10) -> bytes:
        async with asyncio.timeout(timeout), self._heard:
            while True:
                payload = self.latest.get(topic)
                if payload is not None and check(payload):
                    return payload
                await self._heard.wait()

    def heard(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    def heard_at(self, topic: str) -> list[tuple[float, bytes]]:
        """Each payload heard on ``topic`` with the time it arrived."""
        return [(stamp, payload) for stamp, (t, payload, _) in zip(self.stamps, self.messages, strict=True)
                if t == topic]
