"""The MQTT topics table against a real mosquitto and real console guests (TCG).

What the documentation (docs/reference/mqtt.md, docs/guides/mqtt.md) promises, seen by a
plain MQTT client: a custom ``base_topic`` and ``discovery_prefix`` hold every topic and
take the commands; ``persona/<name>/set`` starts and restarts a persona; a QEMU killed from
outside is a ``crashed`` event and state; ``persona/<name>/leds`` follows the LEDs each
guest sets, persona by persona; a screen that keeps changing is published at most every
``screenshot_interval_s``; and random sequences of good and bad commands each do what the
table says (a switch, a start, a stop, a restart, or one ``error`` and nothing else).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import MqttSection, PersonaConfig
from mux.frontends.mqtt import MqttBridge
from mux.input.events import EV_KEY, EV_SYN, SYN_REPORT, InputEvent
from mux.scenario import typist
from tests.conftest import READY_S, make_config, wait_until
from tests.mqtt_helpers import Broker, Panel

pytestmark = pytest.mark.guests

NODE = "livenode"
BASE = f"mux/{NODE}"  # no base_topic set: the node's own topics (docs/reference/mqtt.md)
READY = re.compile("MUX-READY")
CAPSLOCK = [InputEvent(EV_KEY, 58, 1), InputEvent(EV_SYN, SYN_REPORT, 0),
            InputEvent(EV_KEY, 58, 0), InputEvent(EV_SYN, SYN_REPORT, 0)]


def mqtt(broker: Broker, **extra: Any) -> MqttSection:
    return MqttSection(url=broker.url, node_id=NODE, **extra)


def events(panel: Panel, base: str, since: int, event_type: str) -> list[dict[str, Any]]:
    """The ``event_type`` events heard on ``<base>/event`` since message number ``since``."""
    heard = [json.loads(p) for t, p, _ in panel.messages[since:] if t == f"{base}/event"]
    return [e for e in heard if e["event_type"] == event_type]


def leds(caps: bool = False, num: bool = False, scroll: bool = False) -> dict[str, bool]:
    return {"caps": caps, "num": num, "scroll": scroll}


async def test_a_custom_base_topic_and_discovery_prefix_hold_everything(
        broker: Broker, controller: Callable[..., Controller]) -> None:
    base, prefix = "lab/desk-1/mux", "hatest"
    personas = [PersonaConfig("work", autostart=False), PersonaConfig("home", autostart=False)]
    async with Panel(broker).connected() as panel, \
            controller(*personas, mqtt=mqtt(broker, base_topic=base, discovery_prefix=prefix)) as ctl:
        await panel.wait_for(f"{base}/availability", lambda p: p == b"online", timeout=30)
        select = json.loads(await panel.wait_for(f"{prefix}/select/{NODE}/active/config"))
        assert (select["command_topic"], select["state_topic"]) == (f"{base}/active/set", f"{base}/active")
        configs = {t: json.loads(p) for t, p in panel.latest.items() if t.startswith(f"{prefix}/")}
        assert len(configs) > 2
        for topic, config in configs.items():
            named = [v for k, v in config.items() if k.endswith("_topic")]
            named += [a["topic"] for a in config["availability"]]
            assert named and all(t.startswith(f"{base}/") for t in named), (topic, named)
        await panel.wait_for(f"{base}/persona/work/state", lambda p: p == b"stopped")

        # the default topics are not mux's now: a start there is not heard...
        await panel.publish(f"{BASE}/persona/work/set", "start")
        await panel.publish(f"{base}/nothing/set", "marker")  # read after it, if it were read
        error = json.loads(await panel.wait_for(f"{base}/error", timeout=30))
        assert error["payload"] == "marker" and error["topic"] == f"{base}/nothing/set"
        assert len(panel.heard(f"{base}/error")) == 1
        assert ctl.persona("work").pid is None and ctl.status()["personas"][0]["state"] == "stopped"
        # ... and the same command under the custom base is carried out (the control)
        await panel.publish(f"{base}/persona/work/set", "start")
        await panel.wait_for(f"{base}/persona/work/state", lambda p: p == b"running", timeout=READY_S)
        assert ctl.persona("work").pid is not None

        # Home Assistant's birth message on <prefix>/status re-publishes discovery; on the
        # default prefix it does not
        topic = f"{prefix}/select/{NODE}/active/config"
        before = len(panel.heard(topic))
        await panel.publish("homeassistant/status", "online")
        await panel.publish(f"{base}/nothing/set", "marker 2")
        await panel.wait_for(f"{base}/error", lambda p: json.loads(p)["payload"] == "marker 2", timeout=30)
        assert len(panel.heard(topic)) == before
        await panel.publish(f"{prefix}/status", "online")
        await panel.wait_for(topic, lambda p: len(panel.heard(topic)) > before, timeout=30)

        outside = {t for t, _, _ in panel.messages if not t.startswith((f"{base}/", f"{prefix}/"))}
        assert outside == {f"{BASE}/persona/work/set", "homeassistant/status"}  # only the panel's own


async def test_set_start_restart_and_a_killed_qemu_is_a_crashed_event(
        broker: Broker, controller: Callable[..., Controller]) -> None:
    work = PersonaConfig("work", autostart=False, restart="no")
    async with Panel(broker).connected() as panel, controller(work, mqtt=mqtt(broker)) as ctl:
        state = f"{BASE}/persona/work/state"
        await panel.wait_for(state, lambda p: p == b"stopped", timeout=30)
        persona = ctl.persona("work")

        await panel.publish(f"{BASE}/persona/work/set", "start")
        await panel.wait_for(state, lambda p: p == b"running", timeout=READY_S)
        first = persona.pid
        assert first is not None

        mark = len(panel.messages)

        def states_since() -> list[bytes]:
            return [p for t, p, _ in panel.messages[mark:] if t == state]

        def went_down_and_up(latest: bytes) -> bool:
            return latest == b"running" and any(s != b"running" for s in states_since())

        await panel.publish(f"{BASE}/persona/work/set", "restart")
        await panel.wait_for(state, went_down_and_up, timeout=READY_S)
        assert states_since()[-1] == b"running"
        second = persona.pid
        assert second is not None and second != first  # a new QEMU

        # SIGKILL from outside, as a crash: the event, the state, the availability
        killed_at = len(panel.messages)
        os.kill(second, signal.SIGKILL)
        await panel.wait_for(f"{BASE}/event", lambda p: bool(events(panel, BASE, killed_at, "crashed")),
                             timeout=30)
        (crash,) = events(panel, BASE, killed_at, "crashed")
        assert (crash["persona"], crash["source"]) == ("work", "guest") and crash["text"]
        await panel.wait_for(state, lambda p: p == b"crashed", timeout=30)
        await panel.wait_for(f"{BASE}/persona/work/availability", lambda p: p == b"offline", timeout=30)
        assert len(events(panel, BASE, 0, "crashed")) == 1  # the restart was no crash

        # restart = "no" left it crashed: a start brings it back
        await panel.publish(f"{BASE}/persona/work/set", "start")
        await panel.wait_for(state, lambda p: p == b"running", timeout=READY_S)
        assert persona.pid not in (None, first, second)
        await panel.wait_for(f"{BASE}/persona/work/availability", lambda p: p == b"online", timeout=30)


async def test_leds_topics_follow_what_each_guest_sets(
        broker: Broker, controller: Callable[..., Controller]) -> None:
    personas = [PersonaConfig("work"), PersonaConfig("home", color="3060c0")]
    async with Panel(broker).connected() as panel, controller(*personas, mqtt=mqtt(broker)) as ctl:
        for name in ("work", "home"):
            await ctl.persona(name).serial.wait_for(READY, READY_S)

        def shown(name: str) -> dict[str, bool] | None:
            payload = panel.latest.get(f"{BASE}/persona/{name}/leds")
            return None if payload is None else dict(json.loads(payload))

        async def settle(condition: Callable[[], bool], what: str) -> None:
            try:
                await wait_until(condition, 60, what)
            except AssertionError as exc:  # say what each part saw
                raise AssertionError(
                    f"{exc}; MQTT: work {shown('work')}, home {shown('home')}; mux: work"
                    f" {ctl.leds('work')}, home {ctl.leds('home')}; serial: work"
                    f" {ctl.persona('work').serial.tail(6)!r}, home {ctl.persona('home').serial.tail(6)!r}"
                ) from None

        await settle(lambda: shown("work") == leds() and shown("home") == leds(),
                     "both guests' LEDs, all off, on MQTT")
        assert ctl.active == "work"
        await typist.type_text(ctl, "echo 1 > /sys/class/leds/input0::scrolllock/brightness\n")
        await settle(lambda: shown("work") == leds(scroll=True), "work's scroll LED on MQTT")
        await ctl.persona("work").serial.wait_for(re.compile("MUX-LED caps=0 num=0 scroll=1"), 30, start=0)
        await typist.type_text(ctl, "echo 1 > /sys/class/leds/input0::numlock/brightness;"
                               " echo 0 > /sys/class/leds/input0::scrolllock/brightness\n")
        await settle(lambda: shown("work") == leds(num=True), "work's num LED on, scroll off")
        home_heard = panel.heard(f"{BASE}/persona/home/leds")
        assert [json.loads(p) for p in home_heard] == [leds()]  # home set nothing

        # the control: home's own change is published, on its own topic only
        await ctl.switch("home", "test")
        await ctl.input(CAPSLOCK)  # the guest kernel lights its caps LED
        await settle(lambda: shown("home") == leds(caps=True), "home's caps LED on MQTT")
        assert shown("work") == leds(num=True)
        await ctl.persona("home").serial.wait_for(re.compile("MUX-LED caps=1 num=0 scroll=0"), 30, start=0)


async def test_a_changing_screen_is_published_at_most_every_interval(
        broker: Broker, controller: Callable[..., Controller]) -> None:
    interval = 2.0  # the documented limit: at most one screenshot every screenshot_interval_s
    async with Panel(broker).connected() as panel, \
            controller(PersonaConfig("work"), mqtt=mqtt(broker, screenshot_interval_s=interval)) as ctl:
        serial = ctl.persona("work").serial
        await serial.wait_for(READY, READY_S)
        ticks: list[tuple[float, int]] = []  # (time.time(), the guest's counter)

        def tick(line: str, when: float) -> None:
            if found := re.search(r"MUX-TICK (\d+)", line):
                ticks.append((when, int(found.group(1))))

        serial.line_listeners.append(tick)
        # a new background colour about 5 times a second, each announced on the serial port
        await typist.type_text(ctl, "i=0; while :; do i=$((i+1));"
                               " printf '\\033]P4%02x%02x%02x\\033[44m\\033[2J'"
                               " $((i*40%256)) $((i*90%256)) $((i*150%256)); echo MUX-TICK $i >/dev/ttyS0;"
                               " sleep 0.2; done\n")
        await wait_until(lambda: bool(ticks), 60, "the guest's colour loop")
        began = ticks[0][0]
        topic = f"{BASE}/persona/work/screenshot"

        def published() -> list[float]:
            return [stamp for stamp, _ in panel.heard_at(topic) if stamp > began]

        count = 6
        await wait_until(lambda: len(published()) >= count, 30 * count, f"{count} screenshots")
        stamps = published()
        span = stamps[-1] - stamps[0]
        changes = [n for when, n in ticks if stamps[0] <= when <= stamps[-1]]
        # the control: the screen changed more than twice per picture published meanwhile
        assert len(changes) >= 2 * (len(stamps) - 1), (len(changes), len(stamps))
        # the limit: n pictures need n - 1 intervals (half an interval for delivery jitter)
        assert (len(stamps) - 1) * interval <= span + interval / 2, (stamps, span)


# --- random commands ----------------------------------------------------------------------


@asynccontextmanager
async def controller_without_start_on_switch(directory: Path, broker: Broker, *personas: PersonaConfig
                                             ) -> AsyncIterator[Controller]:
    config = make_config(directory, *personas, mqtt=mqtt(broker))
    config = dataclasses.replace(config, mux=dataclasses.replace(config.mux, start_on_switch=False))
    async with Controller(config, frontends=frontends(config), logs_dir=directory / "logs",
                          progress=lambda m: None) as ctl:
        yield ctl


def bridge(ctl: Controller) -> MqttBridge:
    (found,) = [f for f in ctl.frontends if isinstance(f, MqttBridge)]
    return found


# The random-command property: two personas whose state can change (``work`` runs and is
# active, ``home`` is stopped; start_on_switch is false, so a switch to a stopped persona is
# refused, as documented). Expected outcomes come from the documented topics table: a name on
# ``active/set`` switches to a running persona; ``start``/``stop``/``restart`` on
# ``persona/<name>/set``; anything else is refused with one ``error`` and one ``refused`` event.
NAMES = ("work", "home")
ACTIONS = ("start", "stop", "restart")
GOOD = [(f"{BASE}/active/set", name.encode()) for name in NAMES] + [
    (f"{BASE}/persona/{name}/set", action.encode()) for name in NAMES for action in ACTIONS]


def is_good(topic: str, payload: bytes) -> bool:
    """Whether a documented command, word for word."""
    if topic == f"{BASE}/active/set":
        return payload.decode(errors="replace") in NAMES
    return topic in {f"{BASE}/persona/{n}/set" for n in NAMES} and payload.decode(errors="replace") in ACTIONS


def near_miss(payload: bytes) -> bool:
    """A command word with white space or broken bytes around it: the documentation does
    not say whether that is the word, so such junk is not generated."""
    return payload.decode(errors="ignore").strip() in (*NAMES, *ACTIONS)


JUNK = st.tuples(
    st.sampled_from([f"{BASE}/active/set", f"{BASE}/persona/work/set", f"{BASE}/persona/home/set",
                     f"{BASE}/persona/work/devices/set", f"{BASE}/persona/garden/set", f"{BASE}/x/set"]),
    st.one_of(st.binary(max_size=64),
              st.sampled_from([b"garden", b"explode", b"", b"w" * 1025, b"work home", b"STOP"])),
).filter(lambda c: not near_miss(c[1]))


@dataclasses.dataclass
class Model:
    """What the documentation says the controller holds after each command."""

    active: str = "work"
    running: dict[str, bool] = dataclasses.field(default_factory=lambda: {"work": True, "home": False})

    def apply(self, topic: str, payload: bytes) -> tuple[str | None, str | None]:
        """Carry the command out; returns (the words its ``error`` has, or None if it is
        carried out; the persona it switches to, if it does)."""
        if not is_good(topic, payload):
            return "", None
        word = payload.decode()
        if topic == f"{BASE}/active/set":
            if not self.running[word]:
                return f"persona {word!r} is stopped, but this needs it running", None
            switched, self.active = (word if word != self.active else None), word
            return None, switched
        self.running[topic.split("/")[-2]] = word != "stop"
        return None, None


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(commands=st.lists(st.one_of(st.sampled_from(GOOD), JUNK), min_size=1, max_size=5))
async def test_random_commands_do_what_the_topics_table_says(
        tmp_path: Path, console_image: Any, commands: list[tuple[str, bytes]]) -> None:
    example = Path(tempfile.mkdtemp(dir=tmp_path))  # each example: its own broker and controller
    broker = Broker(example)
    broker.start()
    try:
        async with Panel(broker).connected() as panel, controller_without_start_on_switch(
                example, broker, PersonaConfig("work"), PersonaConfig("home", autostart=False)) as ctl:
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=30)
            await panel.wait_for(f"{BASE}/active", lambda p: p == b"work", timeout=30)
            model = Model()
            for index, (topic, payload) in enumerate(commands):
                await _one_command(ctl, panel, model, index, topic, payload)
            # the positive control of every "nothing changed" above: a command that changes
            # something, seen through the same checks
            final = b"stop" if model.running["home"] else b"start"
            await _one_command(ctl, panel, model, len(commands), f"{BASE}/persona/home/set", final)
    finally:
        broker.stop()


async def _one_command(ctl: Controller, panel: Panel, model: Model, index: int,
                       topic: str, payload: bytes) -> None:
    """Publish one command and check everything it caused against ``model``.

    Commands are read in order, so a refused marker (``barrier/set``) published after it
    is read after it; once the bridge's command tasks are done, a second marker's
    ``refused`` event comes after every event the command caused.
    """
    pids = {name: ctl.persona(name).pid for name in NAMES}
    before = dict(model.running)
    error_words, switched_to = model.apply(topic, payload)
    mark = len(panel.messages)
    await panel.publish(topic, payload)
    await _barrier(panel, f"barrier-{index}-A")
    await wait_until(lambda: not [t for t in bridge(ctl)._tasks if t.get_name() != "mqtt"], 120,
                     f"command {index} ({topic} {payload[:20]!r}) carried out")
    await _barrier(panel, f"barrier-{index}-B")
    window = panel.messages[mark:]
    errors = [json.loads(p) for t, p, _ in window if t == f"{BASE}/error"]
    events = [json.loads(p) for t, p, _ in window if t == f"{BASE}/event"]
    mine = [e for e in errors if not e["payload"].startswith(f"barrier-{index}-")]
    what = f"command {index}: {topic} {payload[:40]!r}"
    if error_words is None:
        assert mine == [], what
    else:
        assert len(mine) == 1 and mine[0]["topic"] == topic and mine[0]["error"], (what, mine)
        assert error_words in mine[0]["error"] and "internal error" not in mine[0]["error"], (what, mine)
    refused = [e for e in events if e["event_type"] == "refused"]
    assert len(refused) == len(errors) == len(mine) + 2, (what, errors, refused)
    switches = [(e["persona"], e["source"]) for e in events if e["event_type"] == "switched"]
    assert switches == ([(switched_to, "mqtt")] if switched_to else []), (what, switches)
    # the effect, in the controller and on the retained topics
    status = ctl.status()
    assert status["active"] == model.active, what
    assert {p["name"]: p["state"] == "running" for p in status["personas"]} == model.running, what
    await panel.wait_for(f"{BASE}/active", lambda p: p == model.active.encode())
    for name in NAMES:
        state = b"running" if model.running[name] else b"stopped"
        await panel.wait_for(f"{BASE}/persona/{name}/state", lambda p, s=state: p == s)
        if error_words is None and topic == f"{BASE}/persona/{name}/set" and payload == b"restart":
            assert ctl.persona(name).pid not in (None, pids[name]), what  # a new QEMU
        elif before[name] == model.running[name]:  # untouched: no state message, the same QEMU
            assert not [p for t, p, _ in window if t == f"{BASE}/persona/{name}/state"], what
            assert ctl.persona(name).pid == pids[name], what
    if not switched_to:
        assert not [p for t, p, _ in window if t == f"{BASE}/active"], what


async def _barrier(panel: Panel, marker: str) -> None:
    """A refused command with a payload of its own: wait for its error and its event."""
    await panel.publish(f"{BASE}/barrier/set", marker)
    await panel.wait_for(f"{BASE}/error", lambda p: any(
        json.loads(e)["payload"] == marker for e in panel.heard(f"{BASE}/error")), timeout=30)
    await panel.wait_for(f"{BASE}/event", lambda p: any(
        marker in json.loads(e)["text"] for e in panel.heard(f"{BASE}/event")), timeout=30)
