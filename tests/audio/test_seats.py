"""Sound with seats (``[[seat]]``): every persona active on some seat is live, on its
seat's ``audio_sink``; the others are muted or ducked as with one seat.

- the policy (pure): a set of active personas, each live;
- ``Sound`` takes the seats' sinks from the config, none for the implicit seat;
- the follower against a real PulseAudio server of the test's own with two more null
  sinks (``module-null-sink``), ``pacat`` streams standing in for QEMU's: each seat's
  persona plays live on its seat's sink, a switch on one seat moves the new persona's
  stream there and mutes the old one's (which stays where it was), the other seat's
  persona is not touched; a seat without a sink leaves its persona's stream where it is;
  a sink the server does not have is warned about once, naming the seat and the sink.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from typing import Any

import pytest

from mux.app.events import Events
from mux.app.sound import Sound
from mux.audio.policy import DUCKED, LIVE, MUTED, persona_state, stream_setting
from mux.audio.server import SoundServer, Stream
from mux.bench.audio import NULL_SINK
from mux.config import Config, MuxSection, PersonaConfig
from mux.config.schema import SeatSection
from tests.audio.conftest import Streams, following, is_, wait_streams
from tests.conftest import wait_until


@pytest.mark.pure
def test_every_persona_active_on_some_seat_is_live() -> None:
    active = frozenset({"a", "c"})
    for kind in ("output", "input"):
        assert stream_setting("a", active, kind, "mute") == LIVE
        assert stream_setting("c", active, kind, "duck") == LIVE
        assert stream_setting("b", active, kind, "mute") == MUTED
        assert stream_setting("b", frozenset(), kind, "mute") == MUTED  # no seat shows anything yet
    assert stream_setting("b", active, "output", "duck") == DUCKED
    assert stream_setting("b", active, "input", "duck") == MUTED
    assert persona_state("c", active, audio=True, available=True, background="mute") == "live"
    assert persona_state("b", active, audio=True, available=True, background="duck") == "ducked"


def config(*seats: SeatSection) -> Config:
    return Config(mux=MuxSection(), personas=(PersonaConfig("a", audio=True), PersonaConfig("b", audio=True),
                                              PersonaConfig("c")), seats=seats)


@pytest.mark.pure
def test_sound_takes_each_seats_sink_and_none_for_the_implicit_seat() -> None:
    sound = Sound(config(SeatSection("one", audio_sink="desk"), SeatSection("two"),
                         SeatSection("three", audio_sink="hall")), Events())
    assert sound.sinks == {"one": "desk", "three": "hall"}
    assert sound.names == ["a", "b"]
    assert Sound(config(), Events()).sinks == {}  # without [[seat]]: today's behaviour


def load_sink(address: str, name: str) -> None:
    subprocess.run(["pactl", f"--server={address}", "load-module", "module-null-sink", f"sink_name={name}"],
                   check=True, capture_output=True)


def on(sinks: dict[str, int], name: str, stream: Stream | None) -> bool:
    return stream is not None and stream.sink == sinks[name]


@pytest.mark.services
async def test_each_seat_hears_its_own_persona_on_its_own_sink(pulse: str, streams: Streams) -> None:
    load_sink(pulse, "desk")
    load_sink(pulse, "hall")
    a, b, c = (streams.start(name, name) for name in "abc")
    stranger = streams.start(None, "somebody-else")
    states: dict[str, str] = {}
    async with SoundServer("test", pulse) as server:
        sinks = await server.sinks()
        assert {NULL_SINK, "desk", "hall"} <= sinks.keys()
        seen = await wait_streams(server, lambda s: {(p, "output") for p in (a, b, c, stranger)} <= s.keys(),
                                  "the four playing streams")
        assert all(on(sinks, NULL_SINK, s) for s in seen.values())  # every stream starts on the default
        async with following(("a", "b", "c"), "mute", streams.pids, pulse, states) as follower:
            follower.sinks = {"one": "desk", "two": "hall"}
            follower.switched("a", "one")
            follower.switched("b", "two")
            seen = await wait_streams(
                server, lambda s: on(sinks, "desk", s.get((a, "output"))) and is_(LIVE, s.get((a, "output")))
                and on(sinks, "hall", s.get((b, "output"))) and is_(LIVE, s.get((b, "output")))
                and is_(MUTED, s.get((c, "output"))), "a live on desk, b live on hall, c muted")
            assert on(sinks, NULL_SINK, seen[(c, "output")])  # in the background: not moved
            await wait_until(lambda: states == {"a": "live", "b": "live", "c": "muted"}, 5, "the states")
            # seat two switches to c: c moves to hall and is live, b is muted where it plays
            follower.switched("c", "two")
            seen = await wait_streams(
                server, lambda s: on(sinks, "hall", s.get((c, "output"))) and is_(LIVE, s.get((c, "output")))
                and is_(MUTED, s.get((b, "output"))), "c live on hall, b muted")
            assert on(sinks, "hall", seen[(b, "output")])
            assert on(sinks, "desk", seen[(a, "output")]) and is_(LIVE, seen[(a, "output")])  # seat one's
            await wait_until(lambda: states == {"a": "live", "b": "muted", "c": "live"}, 5, "the states")
            # seat one has nothing now (its persona stolen, say): a is muted, on the sink it had
            follower.switched(None, "one")
            seen = await wait_streams(server, lambda s: is_(MUTED, s.get((a, "output"))), "a muted")
            assert on(sinks, "desk", seen[(a, "output")])
            # another program's stream was never touched
            assert on(sinks, NULL_SINK, seen[(stranger, "output")]) and is_(LIVE, seen[(stranger, "output")])


@pytest.mark.services
async def test_a_seat_without_a_sink_or_with_an_unknown_one_leaves_the_stream_where_it_plays(
        pulse: str, streams: Streams, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mux.audio")
    load_sink(pulse, "desk")
    a, b = streams.start("a", "a"), streams.start("b", "b")
    states: dict[str, str] = {}
    async with SoundServer("test", pulse) as server:
        sinks = await server.sinks()
        await wait_streams(server, lambda s: {(a, "output"), (b, "output")} <= s.keys(), "both streams")
        async with following(("a", "b"), "mute", streams.pids, pulse, states) as follower:
            follower.sinks = {"one": "nowhere", "three": "desk"}  # seat two has no sink
            follower.switched("a", "one")
            follower.switched("b", "two")
            await wait_until(lambda: states == {"a": "live", "b": "live"}, 10, "both live")
            for _ in range(3):  # a few more applications: still one warning
                follower.switched("a", "one")
                await asyncio.sleep(0.1)
            seen = await wait_streams(server, lambda s: is_(LIVE, s.get((a, "output")))
                                      and is_(LIVE, s.get((b, "output"))), "both live")
            assert on(sinks, NULL_SINK, seen[(a, "output")]) and on(sinks, NULL_SINK, seen[(b, "output")])
            warnings = [r.getMessage() for r in caplog.records if r.name.startswith("mux.audio")]
            assert len(warnings) == 1, warnings
            assert "seat one" in warnings[0] and "'nowhere'" in warnings[0]
            # the positive control: seat three's sink is there, and a moves to it
            follower.switched(None, "one")
            follower.switched("a", "three")
            seen = await wait_streams(server, lambda s: on(sinks, "desk", s.get((a, "output")))
                                      and is_(LIVE, s.get((a, "output"))), "a live on desk")
            assert on(sinks, NULL_SINK, seen[(b, "output")])



@pytest.mark.guests
async def test_the_controllers_sound_follows_each_seats_switches(pulse: str, controller: Any) -> None:
    """Three console personas with sound on two seats: the persona active on each seat is
    live, the third muted; a switch of seat two leaves seat one's persona live."""
    from mux.app.sound import qemu_has_pa

    assert await qemu_has_pa(), "QEMU's pa backend is missing: ./bootstrap test installs qemu-system-gui"
    load_sink(pulse, "desk")
    load_sink(pulse, "hall")
    seats = (SeatSection("one", audio_sink="desk"),
             SeatSection("two", audio_sink="hall", personas=("b", "c")))
    personas = (PersonaConfig("a", image="console", audio=True),
                PersonaConfig("b", image="console", audio=True, color="3060c0"),
                PersonaConfig("c", image="console", audio=True, color="30a040"))

    def audio(ctl: Any) -> dict[str, str]:
        return {p["name"]: p["audio"] for p in ctl.status()["personas"]}

    async with controller(*personas, seats=seats) as ctl:
        if ctl.active_on("one") != "a":
            await ctl.switch("a", "test", "one")
        await ctl.switch("b", "test", "two")
        await wait_until(lambda: audio(ctl) == {"a": "live", "b": "live", "c": "muted"}, 60,
                         "a and b live (one on each seat), c muted")
        await ctl.switch("c", "test", "two")
        await wait_until(lambda: audio(ctl) == {"a": "live", "b": "muted", "c": "live"}, 60,
                         "seat two's switch: c live, b muted, seat one's a still live")
