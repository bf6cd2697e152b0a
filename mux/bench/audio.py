"""``audio_switch_ms`` for ``mux bench``: how soon a switch is heard.

Two ``debian`` personas with ``audio = true`` (TCG, their guest agents) each play a tone
(``speaker-test``) into a private PulseAudio server that this bench starts (a null sink;
:func:`private_pulseaudio`). The figure is the time from a switch request
(:meth:`~mux.app.controller.Controller.switch`) until the server itself shows the previously
active persona's output stream muted and the new one's live (mux's own connection is not
asked: a second client polls the server's sink inputs), {p50, p99} over :data:`SWITCHES`.

``null``, with ``audio_skipped`` saying why, when PulseAudio (Debian's ``pulseaudio``),
QEMU's ``pa`` backend (``qemu-system-gui``) or libpulse is missing, or the ``debian``
image is not built.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mux.app.controller import Controller
from mux.app.sound import why_no_sound
from mux.audio.server import SoundServer, Stream
from mux.config import Config, MuxSection, PersonaConfig
from mux.errors import ImageError, PersonaError
from mux.images import find_built

AGENT_S = 900.0
STREAM_S = 300.0  # the guests' sound drivers under TCG
SWITCHES = 40
NULL_SINK = "mux_null"
TONES = {"tone-a": 440, "tone-b": 1000}


@contextlib.contextmanager
def private_pulseaudio(directory: Path, sink: str = NULL_SINK) -> Iterator[str | None]:
    """A PulseAudio server of our own (a null sink ``sink``; its socket in ``directory``),
    stopped at the end; yields its address (``unix:PATH``), or None without ``pulseaudio``."""
    binary = shutil.which("pulseaudio")
    if binary is None:
        yield None
        return
    socket = directory / "native"
    env = {**os.environ, "HOME": str(directory), "XDG_RUNTIME_DIR": str(directory),
           "XDG_CONFIG_HOME": str(directory / "config")}
    env.pop("PULSE_SERVER", None)
    argv = [binary, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=false",
            "--log-target=stderr", f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
            f"--load=module-null-sink sink_name={sink}"]
    log = (directory / "pulseaudio.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while not socket.is_socket() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not socket.is_socket():
            log.flush()
            said = (directory / "pulseaudio.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pulseaudio did not start: {said}")
        yield f"unix:{socket}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def pulse_server_env(address: str) -> Iterator[None]:
    """``PULSE_SERVER=address`` for mux and the QEMUs it starts, restored afterwards."""
    before = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = address
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = before


def tone_command(frequency: int) -> list[str]:
    """A guest command that starts a pure tone in the background and returns at once."""
    return ["/bin/sh", "-c", f"setsid speaker-test -t sine -f {frequency} -l 0 "
                             ">/dev/null 2>&1 </dev/null & echo started"]


async def start_tone(ctl: Controller, persona: str, frequency: int, timeout: float = STREAM_S) -> None:
    """Wait for ``persona``'s guest to have a sound card, then start its tone.

    Raises:
        PersonaError: no sound card within ``timeout``, or the command failed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await ctl.exec(persona, ["/bin/sh", "-c", "test -e /dev/snd/pcmC0D0p"], 60)
        if result["exitcode"] == 0:
            break
        if time.monotonic() > deadline:
            raise PersonaError(f"{persona}: the guest has no sound card after {timeout:.0f} s")
        await asyncio.sleep(1)
    result = await ctl.exec(persona, tone_command(frequency), 60)
    if result["exitcode"] != 0:
        raise PersonaError(f"{persona}: starting the tone failed: {result}")


def outputs_of(ctl: Controller, streams: list[Stream]) -> dict[str, Stream]:
    """Each persona's output stream (by its QEMU's pid)."""
    pids = {ctl.persona(n).pid: n for n in ctl.names}
    return {pids[s.pid]: s for s in streams if s.kind == "output" and s.pid in pids}


async def wait_outputs(ctl: Controller, server: SoundServer, timeout: float = STREAM_S) -> None:
    """Until every persona has its output stream on the server."""
    deadline = time.monotonic() + timeout
    while len(outputs_of(ctl, await server.streams())) < len(ctl.names):
        if time.monotonic() > deadline:
            raise PersonaError(f"the guests' sound streams did not appear in {timeout:.0f} s")
        await asyncio.sleep(0.2)


def bench_config(runtime_dir: Path | None = None) -> Config:
    mux = MuxSection(accel="tcg", keep_guests="never")
    if runtime_dir is not None:
        mux = MuxSection(accel="tcg", keep_guests="never", runtime_dir=runtime_dir)
    return Config(mux=mux, personas=tuple(PersonaConfig(name, image="debian", agent=True, audio=True)
                                          for name in TONES))


async def _skipped() -> str | None:
    try:
        image = find_built("debian")
    except ImageError as exc:
        return str(exc)
    if image is None or image.disk is None:
        return "the debian image is not built (as root: mux images build debian)"
    if shutil.which("pulseaudio") is None:
        return "PulseAudio is not installed (Debian's pulseaudio)"
    return None


async def bench_audio(runtime_dir: Path | None = None, switches: int = SWITCHES) -> dict[str, Any]:
    """``{"audio_switch_ms": {"p50", "p99", "n"}}``, or None and ``audio_skipped``.

    Raises:
        PersonaError: the guests did not boot, or their sound never reached the server.
    """
    reason = await _skipped()
    with tempfile.TemporaryDirectory(prefix="mux-bench-audio-") as directory, \
            private_pulseaudio(Path(directory)) as address:
        if reason is None and address is not None:
            with pulse_server_env(address):
                reason = await why_no_sound(address)
                if reason is None:
                    times = await _measure(address, runtime_dir, switches)
    if reason is not None:
        print(f"bench: audio_switch_ms skipped: {reason}")
        return {"audio_switch_ms": None, "audio_skipped": reason}
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"audio_switch_ms": {"p50": round(statistics.median(times), 2), "p99": round(cuts[98], 2),
                                "n": len(times)}}


async def _measure(address: str, runtime_dir: Path | None, switches: int) -> list[float]:
    async with Controller(bench_config(runtime_dir), progress=lambda m: None) as ctl, \
            SoundServer("mux-bench", address) as server:
        for name, frequency in TONES.items():
            try:
                await ctl.persona(name).readiness.wait(AGENT_S)
            except TimeoutError:
                raise PersonaError(f"bench: {name}'s agent did not answer in {AGENT_S:.0f} s") from None
            await start_tone(ctl, name, frequency)
        await wait_outputs(ctl, server)
        times = []
        for i in range(switches):
            old, new = ctl.names[i % 2], ctl.names[(i + 1) % 2]
            await ctl.switch(old, "bench")
            await _until(ctl, server, live=old, muted=new)
            began = time.perf_counter()
            await ctl.switch(new, "bench")
            await _until(ctl, server, live=new, muted=old)
            times.append((time.perf_counter() - began) * 1000)
        return times


async def _until(ctl: Controller, server: SoundServer, *, live: str, muted: str, timeout: float = 10) -> None:
    """Poll the server until ``live``'s output plays and ``muted``'s is muted."""
    deadline = time.monotonic() + timeout
    while True:
        outputs = outputs_of(ctl, await server.streams())
        if live in outputs and muted in outputs and not outputs[live].mute and outputs[muted].mute:
            return
        if time.monotonic() > deadline:
            raise PersonaError(f"bench: the sound server did not show {live} live and {muted} muted "
                               f"within {timeout} s: {outputs}")
        await asyncio.sleep(0.001)
