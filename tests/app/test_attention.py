"""Background personas ask for attention: the policy (pure), the watcher, the banner, and
real console guests running ``mux-attention`` (TCG) under Xvfb, with MQTT."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mux.app import attention as attention_module
from mux.app.attention import Attention, SeatView, due, iso_time, request_text
from mux.app.events import AttentionCleared, AttentionRequested, Event, Events, Switched
from mux.config import Config, DisplaySection, MuxSection, PersonaConfig
from mux.display.backbuffer import BackBuffer, Frame
from mux.display.output import HeadlessOutput
from mux.input.events import EV_KEY, EV_SYN, SYN_REPORT, InputEvent
from mux.input.router import Router
from mux.input.seats import DEFAULT_SEAT, Seat, Seats
from tests.documented import documented_number

SYN = InputEvent(EV_SYN, SYN_REPORT, 0)


# --- the pure parts ----------------------------------------------------------------------


@pytest.mark.pure
def test_the_marker_and_a_personas_pattern_give_the_request_text() -> None:
    assert request_text("MUX-ATTENTION call from home", None) == "call from home"
    assert request_text("[  3.1] x MUX-ATTENTION  call  ", None) == "call"  # anywhere in the line
    assert request_text("MUX-ATTENTION", None) == ""
    assert request_text("MUX-ATTENTIONS are nice", None) is None
    assert request_text("mux-attention call", None) is None  # the typed command is not the line
    grouped = re.compile(r"RING (\d+)")
    assert request_text("modem: RING 42 now", grouped) == "42"  # the first group
    assert request_text("  incoming call  ", re.compile("incoming")) == "incoming call"  # the line
    kept = int(documented_number(r"the whole line; at most (\d+) characters"))
    assert request_text("x" * (kept + 300), re.compile("x")) == "x" * kept
    assert request_text("quiet", grouped) is None
    assert request_text("MUX-ATTENTION marker first", grouped) == "marker first"
    optional = re.compile(r"alarm( \w+)?")
    assert request_text("alarm", optional) == "alarm"  # the group did not take part: the line


def request(persona: str, text: str = "hi", when: float = 1.0) -> AttentionRequested:
    return AttentionRequested(persona, text, when)


def one_seat(active: str | None, pressed: bool = False) -> list[SeatView]:
    return [SeatView(DEFAULT_SEAT, active, ("alpha", "beta", "gamma"), pressed)]


@pytest.mark.pure
def test_the_policy_switches_only_when_asked_to_and_the_user_is_idle() -> None:
    armed = [request("beta", when=1), request("gamma", when=2)]
    assert due(armed, one_seat("alpha"), "notify", 100) == (None, None)
    assert due(armed, one_seat("alpha", pressed=True), "switch", 100) == (None, None)  # a key is down
    assert due(armed, one_seat("alpha"), "switch", 0.5) == (None, 1.5)  # typed half a second ago
    assert due(armed, one_seat("alpha"), "switch", 2.0) == (("beta", DEFAULT_SEAT), None)  # the oldest first
    assert due(armed, one_seat("beta"), "switch", 9) == (("gamma", DEFAULT_SEAT), None)
    assert due([request("alpha")], one_seat("alpha"), "switch", 9) == (None, None)  # its own: never
    assert due([], one_seat("alpha"), "switch", 9) == (None, None)


@pytest.mark.pure
def test_times_are_iso_8601_in_utc() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000+00:00"
    assert iso_time(1.5) == "1970-01-01T00:00:01.500+00:00"


# --- the watcher, without guests -----------------------------------------------------------


def config(on_attention: str = "notify", pattern: str | None = None) -> Config:
    personas = (PersonaConfig("alpha"), PersonaConfig("beta", attention=pattern), PersonaConfig("gamma"),
                PersonaConfig("delta"))
    return Config(mux=MuxSection(), personas=personas,
                  display=DisplaySection(on_attention=on_attention))  # type: ignore[arg-type]


class Watched:
    """An Attention on a hub, with what it published and what the banner shows: one seat
    (the implicit one, as a config without ``[[seat]]``), or ``seats``, each with its own
    headless output."""

    def __init__(self, on_attention: str = "notify", pattern: str | None = None,
                 seats: list[Seat] | None = None) -> None:
        self.events = Events()
        self.heard: list[Event] = []
        self.events.subscribe(self.heard.append)
        names = ["alpha", "beta", "gamma", "delta"]
        self.seats = Seats(names, seats) if seats else Seats.single(names)
        self.outputs = {seat: HeadlessOutput() for seat in self.seats.seats}
        self.output = self.outputs[self.seats.seats[0]]
        self.now = 100.0
        self.attention = Attention(config(on_attention, pattern), self.events, self.seats,
                                   lambda: self.outputs, clock=lambda: self.now)

    def switched(self, new: str, old: str | None = None, seat: str = DEFAULT_SEAT) -> None:
        """``seat`` switches to ``new`` (the Switched events of every seat that changed)."""
        plan = self.seats.plan_switch(seat, new)
        self.seats.apply(plan)
        for move in plan.moves:
            self.events.publish(Switched(move.old, move.new, "test", move.seat))


@pytest.mark.pure
def test_requests_are_pending_shown_and_listed_until_their_persona_is_visited() -> None:
    w = Watched(pattern=r"^RING (.*)")
    w.switched("alpha")
    w.attention.line("beta", "MUX-ATTENTION call from home", 10.0)
    w.attention.line("beta", "RING 555", 11.0)  # beta's own pattern
    w.attention.line("gamma", "RING 666", 12.0)  # not gamma's pattern
    w.attention.line("alpha", "MUX-ATTENTION my own", 13.0)  # the active persona's
    assert [e for e in w.heard if isinstance(e, AttentionRequested)] == [
        AttentionRequested("beta", "call from home", 10.0), AttentionRequested("beta", "555", 11.0),
        AttentionRequested("alpha", "my own", 13.0)]
    assert w.output.attention == [("beta", "call from home"), ("beta", "555"), ("alpha", "my own")]
    assert [(r["persona"], r["text"]) for r in w.attention.status()] == [
        ("beta", "call from home"), ("beta", "555"), ("alpha", "my own")]
    assert w.attention.status()[0]["time"] == iso_time(10.0)
    assert [r.persona for r in w.attention.armed] == ["beta", "beta"]  # alpha's own never switches
    w.switched("beta", "alpha")
    assert AttentionCleared("beta") in w.heard and AttentionCleared("alpha") not in w.heard
    assert w.output.attention == [("alpha", "my own")] and w.attention.armed == []
    w.switched("alpha", "beta")  # visiting alpha answers its own request too
    assert AttentionCleared("alpha") in w.heard and w.output.attention == [] and w.attention.status() == []


@pytest.mark.pure
def test_a_switch_disarms_what_was_pending_but_the_banner_keeps_it() -> None:
    w = Watched("switch")
    w.switched("alpha")
    w.attention.line("beta", "MUX-ATTENTION one", 1.0)
    w.attention.line("gamma", "MUX-ATTENTION two", 2.0)
    w.switched("beta", "alpha")
    assert w.attention.armed == [] and w.output.attention == [("gamma", "two")]
    w.attention.line("gamma", "MUX-ATTENTION three", 3.0)  # a new request may switch again
    assert [r.text for r in w.attention.armed] == ["three"]


@pytest.mark.pure
def test_the_newest_pending_requests_are_kept() -> None:
    w = Watched()
    kept = int(documented_number(r"A persona keeps its (\d+) newest requests"))
    for n in range(kept + 5):
        w.attention.line("beta", f"MUX-ATTENTION {n}", float(n))
    assert [r["text"] for r in w.attention.status()] == [str(n) for n in range(5, kept + 5)]


@pytest.fixture
def quick_idle(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    monkeypatch.setattr(attention_module, "IDLE_S", 0.3)
    yield 0.3


@pytest.mark.pure
async def test_the_switch_waits_for_released_keys_and_idle_input(quick_idle: float) -> None:
    """Held key: no switch; released: a switch once input has been idle (the positive control)."""
    w = Watched("switch")
    w.attention.clock = asyncio.get_running_loop().time
    w.switched("alpha")
    switches: list[tuple[str, str, float]] = []

    async def switch(target: str, source: str, seat: str) -> str:
        switches.append((target, source, asyncio.get_running_loop().time()))
        assert seat == DEFAULT_SEAT
        w.switched(target, "alpha")
        return target

    task = asyncio.create_task(w.attention.run({}, switch))
    try:
        for event in (InputEvent(EV_KEY, 42, 1), SYN):  # left shift down in alpha
            w.seats.feed(DEFAULT_SEAT, event)
        w.attention.input_came()
        w.attention.line("beta", "MUX-ATTENTION ring", 1.0)
        await asyncio.sleep(quick_idle * 3)
        assert switches == [] and w.seats.pressed(DEFAULT_SEAT)  # held: no switch
        for event in (InputEvent(EV_KEY, 42, 0), SYN):
            w.seats.feed(DEFAULT_SEAT, event)
        w.attention.input_came()
        released = asyncio.get_running_loop().time()
        while not switches:
            await asyncio.sleep(0.01)
        assert switches[0][:2] == ("beta", "attention")
        assert switches[0][2] - released >= quick_idle - 0.01  # only once idle
        assert w.output.attention == []  # visiting beta cleared its request
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.pure
async def test_wait_for_finds_a_pending_or_an_arriving_request() -> None:
    w = Watched()
    w.switched("alpha")
    w.attention.line("beta", "MUX-ATTENTION early", 1.0)
    assert (await w.attention.wait_for("beta", re.compile("ear"), 1)).text == "early"
    later = asyncio.create_task(w.attention.wait_for("gamma", re.compile("^late$"), 30))
    await asyncio.sleep(0)
    w.attention.line("gamma", "MUX-ATTENTION not late", 2.0)
    w.attention.line("gamma", "MUX-ATTENTION late", 3.0)
    assert (await later).time == 3.0
    with pytest.raises(TimeoutError):
        await w.attention.wait_for("beta", re.compile("never"), 0.05)
    assert "beta 'early'" in w.attention.describe_seen() and "gamma 'late'" in w.attention.describe_seen()


# --- the banner, under SDL's dummy driver -------------------------------------------------


@pytest.mark.pure
def test_the_banner_shows_the_newest_request_in_the_asking_personas_colour(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from mux.display.canvas import BANNER_H
    from mux.display.window import WindowOutput

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    colors = {"alpha": "c03030", "beta": "30a040"}
    window = WindowOutput(colors, BackBuffer(list(colors)), on_close=lambda: None)
    window.open()
    try:
        window.present("alpha", Frame(Image.new("RGB", (1024, 768), (255, 255, 255)), 1.0, "vnc"))

        def banner_colors() -> set[tuple[int, int, int]]:
            surface = window.canvas.read()
            return {tuple(surface.get_at((x, y)))[:3] for x in range(0, 1024, 2)  # type: ignore[misc]
                    for y in range(4, BANNER_H - 6, 3)}

        assert (0x30, 0xA0, 0x40) not in banner_colors()
        window.show_attention([("beta", "call from home")])
        assert (0x30, 0xA0, 0x40) in banner_colors()  # beta's box, over alpha's banner
        assert tuple(window.canvas.read().get_at((3, 3)))[:3] == (0xC0, 0x30, 0x30)  # still alpha's
        assert tuple(window.canvas.read().get_at((500, 500)))[:3] == (255, 255, 255)  # the guest untouched
        assert "call from home" in banner_text(window.canvas.read())
        window.show_attention([("beta", "call from home"), ("beta", "again")])
        assert "(+1)" in banner_text(window.canvas.read())
        window.show_attention([])
        assert (0x30, 0xA0, 0x40) not in banner_colors()
    finally:
        window.close()


def banner_text(surface: Any) -> str:
    """The banner's text, read by OCR (scaled up: tesseract likes big letters)."""
    import pygame
    from PIL import Image

    from mux.display.canvas import BANNER_H

    width = surface.get_width()
    raw = pygame.image.tobytes(surface.subsurface((0, 0, width, BANNER_H)), "RGB")
    picture = Image.frombytes("RGB", (width, BANNER_H), raw)
    return banner_image_text(picture)


def banner_image_text(picture: Any) -> str:
    from PIL import Image

    from mux.needles.ocr import TextReader

    big = picture.resize((picture.width * 3, picture.height * 3), Image.Resampling.LANCZOS)
    return " ".join(TextReader().text(big).split())


# --- the controller, the scenario step and ctl status, without booting -------------------


SCENARIO = """\
name: attention
config:
  persona:
    - {name: alpha, image: console}
    - {name: beta, image: console, attention: "RING (\\\\d+)"}
steps:
  - assert_attention: beta
  - assert_attention: {persona: beta, match: "^call", timeout: 5}
"""


@pytest.mark.pure
def test_the_step_is_checked_like_the_others(tmp_path: Any) -> None:
    from mux.errors import ScenarioError
    from mux.scenario.parse import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    steps = load_scenario(path).steps
    assert [(s.kind, s.args["persona"], s.args["match"]) for s in steps] == [
        ("assert_attention", "beta", ""), ("assert_attention", "beta", "^call")]
    path.write_text(SCENARIO.replace('"^call"', '"(call"').replace("assert_attention: beta",
                                                                   "assert_attention: gamma"))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert "s.yaml:7:" in str(raised.value) and "unknown persona 'gamma'" in str(raised.value)
    assert "s.yaml:8:" in str(raised.value) and "not a valid regex" in str(raised.value)


@pytest.mark.guests
async def test_the_step_passes_on_a_request_and_fails_naming_what_came(
        controller: Any, tmp_path: Any) -> None:
    """Personas that are not booted: their serial logs are told lines as a guest's would be."""
    from mux.errors import StepFailed
    from mux.scenario.runner import StepRunner

    async with controller(PersonaConfig("alpha", autostart=False),
                          PersonaConfig("beta", autostart=False, attention=r"RING (\d+)")) as ctl:
        runner = StepRunner(ctl)
        waiting = asyncio.create_task(runner.step_assert_attention(
            {"persona": "beta", "match": "^555$", "timeout": 30}))
        await asyncio.sleep(0.05)
        await ctl.persona("beta").serial.append("boot noise\nmodem: RING 555\n")
        await waiting
        assert runner.message == "beta asks for attention: '555'"
        assert ctl.status()["attention"][0]["persona"] == "beta"  # ctl status lists it
        assert ctl.status()["attention"][0]["text"] == "555"
        await ctl.persona("alpha").serial.append("MUX-ATTENTION not beta\n")
        with pytest.raises(StepFailed) as failed:
            await runner.step_assert_attention({"persona": "beta", "match": "call", "timeout": 0.2})
        message = str(failed.value)
        assert "no request for attention from beta matching 'call'" in message
        assert "beta '555'" in message and "alpha 'not beta'" in message
        assert ctl.output.attention == [("beta", "555"), ("alpha", "not beta")]  # type: ignore[attr-defined]


# --- real console guests (TCG) -----------------------------------------------------------


async def type_into(persona: Any, text: str) -> None:
    """Type ``text`` into ``persona`` over its own QMP, each batch once its keyboard has
    room, as the ``type`` step does: it need not be the active persona, and it is not
    input mux hears (no router of the controller's, no idle clock)."""
    from mux.input.router import Send
    from mux.scenario.typist import type_keys

    router = Router([persona.name], active=persona.name)

    async def send(events: list[InputEvent]) -> None:
        for action in [action for event in events for action in router.feed(event)]:
            if isinstance(action, Send):
                await persona.send_input(action.events)

    await type_keys(persona, text, send)


async def run_in(persona: Any, command: str, expect: str) -> None:
    """Run a shell command in a console guest by typing it once (the typing pacer loses no
    key), then wait until ``expect`` is on its serial port."""
    start = persona.serial.end
    await type_into(persona, f"{command}\n")
    try:
        await persona.serial.wait_for(re.compile(re.escape(expect)), 60, start, move_cursor=False)
    except TimeoutError:
        raise AssertionError(f"{persona.name} did not print {expect!r}; its screen reads:\n"
                             f"{await screen_text(persona)}\nits last serial lines:\n"
                             f"{persona.serial.tail(40)}") from None


async def screen_text(persona: Any) -> str:
    """What ``persona``'s screen shows, read by OCR (for a failure's message)."""
    from PIL import Image

    from mux.needles.ocr import TextReader

    path = persona.runtime_dir / f"{persona.name}.failed.ppm"
    await persona.execute("screendump", {"filename": str(path)})
    with Image.open(path) as picture:
        return TextReader().text(picture.convert("RGB"))


async def both_ready(ctl: Any) -> None:
    from tests.conftest import READY_S

    await asyncio.gather(*(ctl.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                           for n in ("alpha", "beta")))
    assert ctl.active == "alpha"


@pytest.mark.guests
async def test_an_inactive_guest_asks_the_banner_mqtt_status_and_the_step_show_it(
        controller: Any, broker: Any, x_display: str) -> None:
    import json
    from datetime import datetime

    from mux.config import MqttSection
    from mux.display.canvas import BANNER_H
    from mux.display.window import x11_window
    from mux.errors import StepFailed
    from mux.scenario.runner import StepRunner
    from tests.display.test_window import x_screenshot, x_window_origin_and_type
    from tests.mqtt_helpers import Panel

    beta_color = (0x30, 0xA0, 0x40)
    async with Panel(broker).connected() as panel, controller(
            PersonaConfig("alpha", color="c03030"),
            PersonaConfig("beta", color="30a040", attention=r"RING (\d+)"),
            display=DisplaySection(output="window"), mqtt=MqttSection(url=broker.url, node_id="attn")) as ctl:
        heard: list[Event] = []
        ctl.subscribe(heard.append)
        await both_ready(ctl)
        asked = time.time()
        await run_in(ctl.persona("beta"), "mux-attention call from home", "MUX-ATTENTION call from home")

        # (1) the window's banner shows it over alpha, read back from the X server
        handles = x11_window(ctl.output.canvas.window)
        assert handles is not None
        deadline, text = time.monotonic() + 30, ""
        while True:
            x, y = x_window_origin_and_type(x_display, handles[1], [])
            banner = x_screenshot(x_display).crop((x, y, x + 1024, y + BANNER_H))
            text = banner_image_text(banner)
            colors = {c for _, c in banner.getcolors(1 << 20) or []}
            if "beta: call from home" in text and beta_color in colors and banner.getpixel((3, 3)) == (
                    0xC0, 0x30, 0x30):
                break
            if time.monotonic() > deadline:
                banner.save(f"/tmp/mux-attention-banner-{os.getpid()}.png")
                raise AssertionError(f"the banner reads {text!r} (beta's colour: {beta_color in colors})")
            await asyncio.sleep(0.3)
        assert ctl.active == "alpha"  # notify: no switch

        # (2) MQTT: the persona's attention topic (not retained) and the event topic
        attention = "mux/attn/persona/beta/attention"  # node "attn": topics under mux/attn
        payload = json.loads(await panel.wait_for(attention))
        assert payload["text"] == "call from home"
        assert datetime.fromisoformat(payload["time"]).timestamp() >= asked - 1
        assert not any(retain for topic, _, retain in panel.messages if topic == attention)
        event = json.loads(await panel.wait_for("mux/attn/event", lambda p: b'"attention"' in p))
        assert (event["event_type"], event["persona"], event["text"]) == \
            ("attention", "beta", "call from home")

        # ctl status, through the control socket as `mux ctl status` asks
        status = json.loads(await ctl_status(ctl))
        assert [(r["persona"], r["text"]) for r in status["attention"]] == [("beta", "call from home")]

        # (5) beta's own pattern, on a line it prints
        await run_in(ctl.persona("beta"), "echo modem: RING 42 >/dev/ttyS0", "modem: RING 42")
        runner = StepRunner(ctl)
        await runner.step_assert_attention({"persona": "beta", "match": "^42$", "timeout": 30})

        # (6) the step passes on a pending request and fails naming what it saw
        await runner.step_assert_attention({"persona": "beta", "match": "call from", "timeout": 1})
        with pytest.raises(StepFailed) as failed:
            await runner.step_assert_attention({"persona": "alpha", "match": "", "timeout": 1})
        assert "no request for attention from alpha" in str(failed.value)
        assert "beta 'call from home'" in str(failed.value) and "beta '42'" in str(failed.value)

        # visiting beta answers its requests: cleared, gone from the banner and the status
        await ctl.switch("beta", "test")
        assert AttentionCleared("beta") in heard and ctl.status()["attention"] == []
        assert ctl.output.canvas.attention == []
    assert [e.text for e in heard if isinstance(e, AttentionRequested)] == ["call from home", "42"]


async def ctl_status(ctl: Any) -> str:
    """``mux ctl status`` against this controller's control socket."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mux", "ctl", "--socket", str(ctl.config.mux.control_socket), "status",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.guests
async def test_on_attention_switch_waits_for_held_keys_and_never_for_the_active_persona(
        controller: Any) -> None:

    from tests.conftest import wait_until

    async with controller(PersonaConfig("alpha"), PersonaConfig("beta"),
                          display=DisplaySection(on_attention="switch")) as ctl:
        heard: list[Event] = []
        ctl.subscribe(heard.append)
        await both_ready(ctl)
        alpha, beta = ctl.persona("alpha"), ctl.persona("beta")

        # (3) a key held in alpha: beta's request waits; released, it switches after 2 s idle
        await ctl.input([InputEvent(EV_KEY, 42, 1), SYN])  # left shift down, through the router
        await run_in(beta, "mux-attention call from home", "MUX-ATTENTION call from home")
        await wait_until(lambda: any(isinstance(e, AttentionRequested) for e in heard), 10, "the request")
        idle_s = documented_number(r"no input came for (\d+(?:\.\d+)?) s\b")
        await asyncio.sleep(idle_s + 1.5)
        assert ctl.active == "alpha" and ctl.router.pressed()  # held: no switch
        await ctl.input([InputEvent(EV_KEY, 42, 0), SYN])
        released = time.monotonic()
        # Switched is published once the switch is whole (after the background's CPU share is
        # settled), so it is waited for, not ctl.active, which changes a moment before
        await wait_until(lambda: any(isinstance(e, Switched) and e.new == "beta" for e in heard), 30,
                         "the attention switch after the release")
        assert time.monotonic() - released >= idle_s - 0.05
        assert ctl.active == "beta"
        assert [(e.new, e.source) for e in heard if isinstance(e, Switched)][-1] == ("beta", "attention")
        assert ctl.status()["attention"] == []  # visited: cleared

        # (4) the active persona's own request is listed and shown, and never switches...
        await run_in(beta, "mux-attention my own", "MUX-ATTENTION my own")
        await wait_until(lambda: [r["text"] for r in ctl.status()["attention"]] == ["my own"], 10, "listed")
        assert ctl.output.attention == [("beta", "my own")]  # type: ignore[attr-defined]
        # ...while another persona's does (the positive control), and beta's own stays pending
        await run_in(alpha, "mux-attention back here", "MUX-ATTENTION back here")
        await wait_until(lambda: [e.new for e in heard if isinstance(e, Switched)][-1] == "alpha", 30,
                         "the switch to alpha")
        assert [r["text"] for r in ctl.status()["attention"]] == ["my own"]
        await asyncio.sleep(idle_s + 1.5)
        assert ctl.active == "alpha"  # beta's own request did not pull mux back...
        await run_in(beta, "mux-attention now from the background", "MUX-ATTENTION now from the background")
        await wait_until(lambda: [e.new for e in heard if isinstance(e, Switched)][-1] == "beta", 30,
                         "the switch to beta")  # ...a new one does
        assert ctl.status()["attention"] == []
