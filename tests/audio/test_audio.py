"""Sound that follows the active persona (``audio = true``), against a real PulseAudio.

- the policy and PulseAudio's cubic volume scale (pure): 20 dB down is 0.464, whose cube
  is 0.1; a background microphone is muted even when outputs are ducked;
- the command line: a card on ``-audiodev pa`` with streams named after the persona, on
  ``none`` without a sound server;
- the follower against a real PulseAudio server started by the fixture (this test's own
  process, its socket in ``tmp_path``), with ``pacat`` streams standing in for QEMU's:
  a switch mutes the old persona's streams and makes the new one's live, ``duck`` turns
  the background output 20 dB down (the server's own dB figure), a stream that appears
  while its persona is in the background is muted, another program's stream is never
  touched; the server going away is warned about once and the state is "unavailable",
  and when it comes back the streams are set again;
- no sound server: a persona with ``audio`` still runs (its card on ``-audiodev none``),
  one warning, state "unavailable" in ``ctl status``;
- the acceptance test (slow): two ``debian`` personas play 440 Hz and 1000 Hz through
  their guest agents; a recording of the null sink's monitor holds only the active
  persona's tone (FFT), before and after a switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mux import images
from mux.app.api import AudioChanged, Event
from mux.app.sound import qemu_has_pa, server_address
from mux.audio.policy import (
    DUCK_DB,
    DUCKED,
    LIVE,
    MUTED,
    StreamSetting,
    db_of_volume,
    matches,
    persona_state,
    stream_setting,
    volume_for_db,
)
from mux.audio.server import SoundServer
from mux.bench.audio import NULL_SINK, private_pulseaudio, start_tone
from mux.config import PersonaConfig
from mux.config.schema import AudioSection
from mux.guest.hardware import ImageBoot, hardware_argv
from tests.audio.conftest import Streams, following, is_, wait_streams
from tests.conftest import wait_until

#: The heavy tier's 1800 s per test hold every wait of a tone test: both guests' agents
#: (booting at once; 27-91 s each measured here, docs/guides/images.md) within AGENT_S;
#: each tone: its sound card within STREAM_S, then two agent commands of at most 60 s;
#: both streams on the server within STREAM_S; a switch's settings within 60 s; at most
#: HEAR_TRIES recordings of at most 30 s per listening: 600 + 2 * 240 + 120 + 60 + 2 * 150
#: = 1560 s.
AGENT_S = 600.0
STREAM_S = 120.0
HEAR_TRIES = 5
RATE = 48000
log = logging.getLogger(__name__)


# --- pure: the policy and the volume scale ------------------------------------------------


@pytest.mark.pure
def test_twenty_db_down_on_pulseaudios_cubic_scale() -> None:
    duck = volume_for_db(-DUCK_DB)
    assert duck == pytest.approx(0.4642, abs=1e-4)
    assert duck ** 3 == pytest.approx(0.1)  # the samples' factor: a tenth, -20 dB
    assert db_of_volume(duck) == pytest.approx(-20.0)
    assert volume_for_db(0) == 1.0 and db_of_volume(1.0) == 0.0
    assert db_of_volume(0) == -math.inf
    assert StreamSetting(mute=False, volume=duck) == DUCKED


@pytest.mark.pure
def test_only_the_active_persona_is_live_and_a_background_microphone_is_always_muted() -> None:
    for kind in ("output", "input"):
        assert stream_setting("a", "a", kind, "mute") == LIVE
        assert stream_setting("a", "a", kind, "duck") == LIVE
        assert stream_setting("b", "a", kind, "mute") == MUTED
        assert stream_setting("b", None, kind, "mute") == MUTED  # nobody active yet
    assert stream_setting("b", "a", "output", "duck") == DUCKED
    assert stream_setting("b", "a", "input", "duck") == MUTED


@pytest.mark.pure
def test_states() -> None:
    assert persona_state("a", "a", audio=True, available=True, background="mute") == "live"
    assert persona_state("b", "a", audio=True, available=True, background="mute") == "muted"
    assert persona_state("b", "a", audio=True, available=True, background="duck") == "ducked"
    assert persona_state("a", "a", audio=True, available=False, background="mute") == "unavailable"
    assert persona_state("a", "a", audio=False, available=True, background="mute") == "off"


@pytest.mark.pure
def test_a_stream_already_set_is_left_alone() -> None:
    assert matches(MUTED, True, 0.3)  # a muted stream's volume does not matter
    assert matches(LIVE, False, 1.0) and not matches(LIVE, False, 0.5) and not matches(LIVE, True, 1.0)
    assert matches(DUCKED, False, DUCKED.volume + 1 / 65536) and not matches(DUCKED, False, 1.0)


@pytest.mark.pure
def test_the_sound_card_on_the_command_line() -> None:
    config = PersonaConfig("work", audio=True)
    argv = hardware_argv(config, Path("/run/x"), ImageBoot(None), sound=True, sound_server="unix:/p/native")
    i = argv.index("-audiodev")
    assert argv[i + 1] == ("pa,id=mux-audio,server=unix:/p/native,out.stream-name=work,"
                           "in.stream-name=work")
    assert argv[i + 2:] == ["-device", "intel-hda,id=mux-hda",
                            "-device", "hda-duplex,id=mux-codec,audiodev=mux-audio,mixer=off"]
    assert "server=" not in hardware_argv(config, Path("/run/x"), ImageBoot(None))[i + 1]
    silent = hardware_argv(config, Path("/run/x"), ImageBoot(None), sound=False)
    assert silent[silent.index("-audiodev") + 1] == "none,id=mux-audio"
    assert "-audiodev" not in hardware_argv(PersonaConfig("work"), Path("/run/x"), ImageBoot(None))


@pytest.mark.pure
def test_where_the_server_is(tmp_path: Path) -> None:
    assert server_address({"PULSE_SERVER": "tcp:host:4713"}) == "tcp:host:4713"
    assert server_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == ""  # no socket there
    (tmp_path / "pulse").mkdir()
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "pulse" / "native"))
        assert server_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix:{tmp_path}/pulse/native"


@pytest.mark.guests
async def test_qemu_has_its_pa_backend_and_a_binary_without_it_is_told_apart() -> None:
    assert await qemu_has_pa(), "QEMU's pa backend is missing: ./bootstrap test installs qemu-system-gui"
    assert not await qemu_has_pa("/bin/true")
    assert not await qemu_has_pa("/no/such/qemu")


@pytest.mark.services
def test_mux_runs_without_libpulse_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """pulsectl loads libpulse when imported: mux imports it only when it connects."""
    code = ("import sys, mux.cli, mux.app.controller, mux.bench.runner, mux.frontends.mqtt\n"
            "assert not [m for m in sys.modules if m.startswith('pulsectl')], 'pulsectl imported'\n"
            "print('clean')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "clean", done.stderr

    from mux.audio import server

    def no_libpulse(name: str) -> Any:
        raise OSError("libpulse.so.0: cannot open shared object file: No such file or directory")

    monkeypatch.setattr("mux.audio.server.importlib.import_module", no_libpulse)
    with pytest.raises(server.SoundUnavailable, match="install Debian's libpulse0"):
        asyncio.run(SoundServer().connect())


# --- a real PulseAudio server -----------------------------------------------------------


@pytest.mark.services
async def test_a_switch_mutes_the_old_persona_and_a_new_background_stream_is_muted_at_once(
        pulse: str, streams: Streams) -> None:
    a_out, b_out = streams.start("a", "a"), streams.start("b", "b")
    stranger = streams.start(None, "somebody-else")
    states: dict[str, str] = {}
    async with SoundServer("test", pulse) as server:
        await wait_streams(server, lambda s: {(a_out, "output"), (b_out, "output"), (stranger, "output")}
                           <= s.keys(), "the three playing streams")
        async with following(("a", "b", "c"), "mute", streams.pids, pulse, states) as follower:
            follower.switched("a")
            await wait_streams(server, lambda s: is_(LIVE, s.get((a_out, "output")))
                               and is_(MUTED, s.get((b_out, "output"))), "a live, b muted")
            await wait_until(lambda: states == {"a": "live", "b": "muted", "c": "muted"}, 5, "the states")
            # c opens its microphone while in the background: muted as it appears
            c_in = streams.start("c", "c", record=True)
            await wait_streams(server, lambda s: is_(MUTED, s.get((c_in, "input"))), "c's mic muted")
            follower.switched("c")
            seen = await wait_streams(server, lambda s: is_(LIVE, s.get((c_in, "input")))
                                      and is_(MUTED, s.get((a_out, "output"))), "c live, a muted")
            assert is_(MUTED, seen[(b_out, "output")])
            await wait_until(lambda: states == {"a": "muted", "b": "muted", "c": "live"}, 5, "the states")
            # another program's stream was never touched: still playing, at full volume
            assert is_(LIVE, seen[(stranger, "output")])


@pytest.mark.services
async def test_duck_turns_the_background_down_20_db_and_mutes_its_microphone(
        pulse: str, streams: Streams) -> None:
    a_out = streams.start("a", "a")
    states: dict[str, str] = {}
    async with SoundServer("test", pulse) as server, \
            following(("a", "b"), "duck", streams.pids, pulse, states) as follower:
        follower.switched("b")
        await wait_streams(server, lambda s: is_(DUCKED, s.get((a_out, "output"))), "a ducked")
        out = await asyncio.create_subprocess_exec("pactl", f"--server={pulse}", "list", "sink-inputs",
                                                   stdout=asyncio.subprocess.PIPE)
        listing = (await out.communicate())[0].decode()
        assert "-20.00 dB" in listing, listing  # the server's own figure for the volume mux set
        await wait_until(lambda: states == {"a": "ducked", "b": "live"}, 5, "the states")
        a_in = streams.start("a", "a-mic", record=True)  # (a's pid is now the mic's)
        await wait_streams(server, lambda s: is_(MUTED, s.get((a_in, "input"))), "a's mic muted, not ducked")
        follower.switched("a")
        await wait_streams(server, lambda s: is_(LIVE, s.get((a_in, "input"))), "a's mic live")


@pytest.mark.services
async def test_a_server_that_goes_away_is_warned_about_once_and_followed_again_when_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "pulse"
    directory.mkdir()
    address = f"unix:{directory / 'native'}"
    caplog.set_level(logging.WARNING, logger="mux.audio")

    def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith("mux.audio")]

    states: dict[str, str] = {}
    pids: dict[str, int] = {}
    first = contextlib.ExitStack()
    assert first.enter_context(private_pulseaudio(directory)) == address
    try:
        async with following(("a",), "mute", pids, address, states) as follower:
            streams = Streams(address, pids)
            try:
                follower.switched("b")  # a is in the background
                playing = streams.start("a", "a")
                async with SoundServer("test", address) as server:
                    await wait_streams(server, lambda s: is_(MUTED, s.get((playing, "output"))), "a muted")
                await wait_until(lambda: states == {"a": "muted"}, 5, "a's state")
                assert warnings() == []
                streams.stop()
                first.close()  # the server goes away
                await wait_until(lambda: states == {"a": "unavailable"}, 10, "a unavailable")
                await asyncio.sleep(0.5)  # several attempts to connect again (every 0.1 s)
                assert len(warnings()) == 1, [r.getMessage() for r in warnings()]
                assert "sound server" in warnings()[0].getMessage()
                with private_pulseaudio(directory) as again:  # it is back
                    assert again == address
                    streams = Streams(address, pids)
                    follower.switched("a")
                    back = streams.start("a", "a")
                    await wait_until(lambda: states == {"a": "live"}, 10, "a live again")
                    async with SoundServer("test", again) as server:
                        await wait_streams(server, lambda s: is_(LIVE, s.get((back, "output"))), "a live")
                    streams.stop()
                assert len(warnings()) == 1
            finally:
                streams.stop()
    finally:
        first.close()


# --- the controller ---------------------------------------------------------------------


@pytest.mark.guests
async def test_without_a_sound_server_the_persona_runs_with_one_warning_and_is_unavailable(
        tmp_path: Path, controller: Callable[..., Any], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nobody-here")
    caplog.set_level(logging.WARNING)
    heard: list[Event] = []
    ctl = controller(PersonaConfig("loud", image="console", audio=True),
                     PersonaConfig("quiet", image="console", color="3060c0"))
    ctl.subscribe(heard.append)
    async with ctl:
        await ctl.persona("loud").wait_state(ctl.persona("loud").state.RUNNING, 60)
        argv = ctl.persona("loud").argv()
        assert argv[argv.index("-audiodev") + 1] == "none,id=mux-audio"
        assert "hda-duplex,id=mux-codec,audiodev=mux-audio,mixer=off" in argv
        status = {p["name"]: p for p in ctl.status()["personas"]}
        assert status["loud"]["state"] == "running"
        assert status["loud"]["audio"] == "unavailable" and status["quiet"]["audio"] == "off"
        assert AudioChanged("loud", "unavailable") in heard
        audio_warnings = [r for r in caplog.records if "audio:" in r.getMessage()]
        assert len(audio_warnings) == 1, audio_warnings
        message = audio_warnings[0].getMessage()
        assert "no sound server" in message and "pulseaudio" in message and "loud" in message


# --- the acceptance test: real guests, real tones ---------------------------------------


async def record(address: str, seconds: float = 1.5) -> np.ndarray[Any, Any]:
    """``seconds`` of the null sink's monitor, mono, as floats."""
    proc = await asyncio.create_subprocess_exec(
        "parec", f"--server={address}", f"--device={NULL_SINK}.monitor", "--format=s16le",
        f"--rate={RATE}", "--channels=1", "--raw", stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    wanted = int(seconds * RATE) * 2
    data = b""
    try:
        async with asyncio.timeout(30):
            while len(data) < wanted:
                chunk = await proc.stdout.read(wanted - len(data))
                assert chunk, "parec stopped"
                data += chunk
    finally:
        proc.kill()
        await proc.wait()
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def peak(samples: np.ndarray[Any, Any], frequency: float) -> float:
    """The spectrum's magnitude around ``frequency`` (within 10 Hz), windowed."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[(freqs > frequency - 10) & (freqs < frequency + 10)].max())


async def hear(ctl: Any, address: str, live: str, loud: float, silent: float) -> tuple[float, float]:
    """Record until one recording is clean: ``loud`` (persona ``live``'s tone) and, 60 dB
    below it, nothing at ``silent``; returns (loud's peak, silent's peak) of that one.

    Only the environment may make it record again, and each time is logged: the server
    shows ``live``'s stream unmuted at full volume (what mux sets; asserted), yet a loaded
    TCG guest's stream may still be filling, or stutter (its clicks are broadband noise,
    some of it at ``silent``: seen here 58 dB down). A background tone itself, muted late
    or only ducked (20 dB), fails: every recording, the first included, must have
    ``silent`` at least 40 dB below the strongest ``loud``.
    """
    heard: list[tuple[float, float]] = []
    for attempt in range(1, HEAR_TRIES + 1):
        samples = await record(address)
        heard.append((peak(samples, loud), peak(samples, silent)))
        if heard[-1][0] > 1000 * max(heard[-1][1], 1.0):
            break
        async with SoundServer("test", address) as server:
            outputs = {s.pid: s for s in await server.streams() if s.kind == "output"}
        stream = outputs.get(ctl.persona(live).pid)
        assert is_(LIVE, stream), f"{live}'s output stream is not live on the server: {stream}"
        log.warning("recording %d of %d not clean: %s Hz at %.0f, %s Hz at %.0f, while the server"
                    " has %s's stream live (%s); recording again",
                    attempt, HEAR_TRIES, loud, heard[-1][0], silent, heard[-1][1], live, stream)
    strongest = max(level for level, _ in heard)
    assert all(strongest > 100 * max(other, 1.0) for _, other in heard), \
        f"{silent} Hz heard (peaks of {loud} Hz, {silent} Hz per recording): {heard}"
    return heard[-1]


TONES = (PersonaConfig("tone-a", image="debian", agent=True, audio=True),
         PersonaConfig("tone-b", image="debian", agent=True, audio=True, color="3060c0"))


async def play_tones(ctl: Any, address: str, background: StreamSetting) -> None:
    """tone-a plays 440 Hz, tone-b 1000 Hz; returns once both streams are on the server,
    tone-a's live and tone-b's set to ``background``."""
    await asyncio.gather(*(ctl.persona(name).readiness.wait(AGENT_S) for name in ("tone-a", "tone-b")))
    for name, frequency in (("tone-a", 440), ("tone-b", 1000)):
        await start_tone(ctl, name, frequency, timeout=STREAM_S)
    pid_a, pid_b = ctl.persona("tone-a").pid, ctl.persona("tone-b").pid
    async with SoundServer("test", address) as server:
        await wait_streams(server, lambda s: is_(LIVE, s.get((pid_a, "output")))
                           and is_(background, s.get((pid_b, "output"))),
                           "both guests' output streams, set", timeout=STREAM_S)


def audio_states(ctl: Any) -> dict[str, str]:
    return {p["name"]: p["audio"] for p in ctl.status()["personas"]}


@pytest.mark.heavy
async def test_only_the_active_personas_tone_is_heard_before_and_after_a_switch(
        pulse: str, debian_image: images.BuiltImage, controller: Callable[..., Any]) -> None:
    heard: list[Event] = []
    ctl = controller(*TONES, audio=AudioSection("mute"))
    ctl.subscribe(heard.append)
    async with ctl:
        await play_tones(ctl, pulse, MUTED)
        assert ctl.active == "tone-a"
        assert audio_states(ctl) == {"tone-a": "live", "tone-b": "muted"}
        a, b = await hear(ctl, pulse, "tone-a", 440, 1000)
        assert a > 1000 * max(b, 1.0), (a, b)  # 440 Hz is there, 1000 Hz is not (60 dB below)
        await ctl.switch("tone-b", "test")
        # listen once the server has the streams set (how soon: mux bench's audio_switch_ms)
        pid_a, pid_b = ctl.persona("tone-a").pid, ctl.persona("tone-b").pid
        async with SoundServer("test", pulse) as server:
            await wait_streams(server, lambda s: is_(MUTED, s.get((pid_a, "output")))
                               and is_(LIVE, s.get((pid_b, "output"))), "the switch's stream settings", 60)
        b, a = await hear(ctl, pulse, "tone-b", 1000, 440)
        assert b > 1000 * max(a, 1.0), (b, a)
        changes = [e for e in heard if isinstance(e, AudioChanged)]
        assert set(changes[-2:]) == {AudioChanged("tone-a", "muted"), AudioChanged("tone-b", "live")}


@pytest.mark.heavy
async def test_a_ducked_background_persona_is_heard_20_db_down(
        pulse: str, debian_image: images.BuiltImage, controller: Callable[..., Any]) -> None:
    async with controller(*TONES, audio=AudioSection("duck")) as ctl:
        await play_tones(ctl, pulse, DUCKED)
        assert audio_states(ctl) == {"tone-a": "live", "tone-b": "ducked"}
        ratios = []
        for _ in range(5):  # a loaded TCG guest's sound may stutter: the median of a few
            samples = await record(pulse)
            ratios.append(peak(samples, 1000) / max(peak(samples, 440), 1.0))
        ratio = sorted(ratios)[len(ratios) // 2]
        # 20 dB down is a tenth of the amplitude (0.464 on the cubic volume scale would be
        # 0.464 itself if mux had set it as linear): within 6 dB of a tenth
        assert 0.05 < ratio < 0.2, ratios


@pytest.mark.services
def test_nothing_of_pulseaudio_is_left(tmp_path: Path) -> None:
    """The fixture's server is this test's own process: after its context it is gone."""
    directory = tmp_path / "pulse"
    directory.mkdir()
    with private_pulseaudio(directory) as address:
        assert address is not None and (directory / "native").is_socket()
        pids = [p for p in os.listdir("/proc") if p.isdigit() and _is_pulse_in(p, directory)]
        assert len(pids) == 1
    assert not any(_is_pulse_in(p, directory) for p in os.listdir("/proc") if p.isdigit())


def _is_pulse_in(pid: str, directory: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pulseaudio" in cmdline and str(directory).encode() in cmdline
