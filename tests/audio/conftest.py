"""The audio tests' real parts: a PulseAudio server of the test's own, and ``pacat``
streams standing in for QEMU's (fixtures ``pulse`` and ``streams``), and helpers to run a
follower and to wait for what the server itself shows."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mux.audio.follow import AudioFollower
from mux.audio.policy import StreamSetting, matches
from mux.audio.server import SoundServer, Stream
from mux.bench.audio import private_pulseaudio


@pytest.fixture
def pulse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PulseAudio server of this test's own (null sink ``mux_null``); its address, also
    in ``PULSE_SERVER`` for mux and the QEMUs it starts. Stopped at the end."""
    if shutil.which("pulseaudio") is None or shutil.which("pacat") is None:
        pytest.fail("pulseaudio or pacat is missing: run ./bootstrap test")
    directory = tmp_path / "pulse"
    directory.mkdir()
    with private_pulseaudio(directory) as address:
        assert address is not None
        monkeypatch.setenv("PULSE_SERVER", address)
        yield address


class Streams:
    """``pacat`` processes standing in for QEMU's streams: each persona's pid is known
    before its stream connects (the process waits for a line before it execs pacat)."""

    def __init__(self, address: str, pids: dict[str, int]) -> None:
        self.address = address
        self.pids = pids
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, owner: str | None, name: str, record: bool = False) -> int:
        pacat = (f"exec pacat --server={self.address} --stream-name={name} "
                 + ("-r >/dev/null" if record else "-p </dev/zero"))
        proc = subprocess.Popen(["sh", "-c", f"read go; {pacat}"], stdin=subprocess.PIPE)
        self.procs.append(proc)
        if owner is not None:
            self.pids[owner] = proc.pid
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        return proc.pid

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def streams(pulse: str) -> Iterator[Streams]:
    s = Streams(pulse, {})
    yield s
    s.stop()


@contextlib.asynccontextmanager
async def following(names: tuple[str, ...], background: str, pids: dict[str, int], address: str,
                    states: dict[str, str]) -> AsyncIterator[AudioFollower]:
    """An :class:`AudioFollower` running (retrying every 0.1 s), cancelled at the end."""
    follower = AudioFollower(names, background, pids.get, states.__setitem__,
                             server=lambda: SoundServer("mux", address), retry_s=0.1)
    task = asyncio.create_task(follower.run())
    try:
        yield follower
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_streams(server: SoundServer, condition: Callable[[dict[Any, Stream]], bool],
                       what: str, timeout: float = 15) -> dict[Any, Stream]:
    """Poll the server until ``condition(streams by (pid, kind))`` holds; returns them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = {(s.pid, s.kind): s for s in await server.streams()}
        if condition(seen):
            return seen
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {seen}")
        await asyncio.sleep(0.02)


def is_(setting: StreamSetting, stream: Stream | None) -> bool:
    return stream is not None and matches(setting, stream.mute, stream.volume)
