"""The Home Assistant panel against a real mosquitto and real console guests.

A plain MQTT client stands in for Home Assistant: it reads the discovery configs and
sends what Home Assistant would send (a switch's ``payload_off``, a select's option).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import MqttSection, PersonaConfig
from mux.devices.model import DeviceConfig
from mux.input.events import EV_KEY, EV_SYN, SYN_REPORT, InputEvent
from tests.conftest import READY_S, make_config
from tests.mqtt_helpers import Broker, Panel

NODE = "panelnode"
BASE = f"mux/{NODE}"  # no base_topic set: the node's own topics (docs/guides/mqtt.md)
HA = "homeassistant"
READY = re.compile("MUX-READY")
ADD_BLOCK = re.compile(r"MUX-UEVENT add block (sd[a-z]+)")
REMOVE_BLOCK = re.compile(r"MUX-UEVENT remove block sd[a-z]+")
SYN = InputEvent(EV_SYN, SYN_REPORT, 0)
SCROLLLOCK_RIGHT = [InputEvent(EV_KEY, 70, 1), SYN, InputEvent(EV_KEY, 106, 1), SYN,  # "next"
                    InputEvent(EV_KEY, 106, 0), SYN, InputEvent(EV_KEY, 70, 0), SYN]

pytestmark = [pytest.mark.guests, pytest.mark.timeout(600)]


@asynccontextmanager
async def served(tmp_path: Path, broker: Broker, *personas: PersonaConfig,
                 start_on_switch: bool = True) -> AsyncIterator[Controller]:
    config = make_config(tmp_path, *personas,
                         mqtt=MqttSection(url=broker.url, node_id=NODE, screenshot_interval_s=1.0))
    config = dataclasses.replace(config, mux=dataclasses.replace(config.mux, start_on_switch=start_on_switch))
    async with Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None) as ctl:
        yield ctl


def config_of(panel: Panel, component: str, object_id: str) -> dict[str, Any]:
    return json.loads(panel.latest[f"{HA}/{component}/{NODE}/{object_id}/config"])  # type: ignore[no-any-return]


def events(panel: Panel, event_type: str) -> list[dict[str, Any]]:
    heard = [json.loads(p) for p in panel.heard(f"{BASE}/event")]
    return [e for e in heard if e["event_type"] == event_type]


async def wait_event(panel: Panel, event_type: str, **fields: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((e for e in events(panel, event_type)
                     if all(e.get(k) == v for k, v in fields.items())), None)

    await panel.wait_for(f"{BASE}/event", lambda p: found() is not None, timeout=30)
    event = found()
    assert event is not None
    return event


async def test_select_starts_a_stopped_persona_hotkeys_are_events_and_the_switch_stops_one(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    async with Panel(broker).connected() as panel, \
            served(tmp_path, broker, PersonaConfig("work"), PersonaConfig("home", autostart=False)) as ctl:
        await ctl.persona("work").serial.wait_for(READY, READY_S, start=0)
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"work")
        assert panel.latest[f"{BASE}/persona/home/state"] == b"stopped"
        assert panel.latest[f"{BASE}/persona/home/availability"] == b"offline"

        # active/set to a stopped persona starts it, then switches
        select = config_of(panel, "select", "active")
        await panel.publish(select["command_topic"], "home")
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"home", timeout=READY_S)
        assert ctl.persona("home").state == "running" and ctl.active == "home"
        await panel.wait_for(f"{BASE}/persona/home/availability", lambda p: p == b"online")
        assert "to home" in (await wait_event(panel, "switched", persona="home", source="mqtt"))["text"]

        # a hotkey switch is a "switched" event with its source
        await ctl.persona("home").serial.wait_for(READY, READY_S, start=0)
        await ctl.input(SCROLLLOCK_RIGHT)
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"work")
        assert "from home" in (await wait_event(panel, "switched", persona="work", source="hotkey"))["text"]

        # a bad command: one error and one "refused" event
        await panel.publish(f"{BASE}/persona/home/set", "explode")
        refused = await wait_event(panel, "refused")
        assert "explode" in refused["text"] and refused["source"] == "mqtt"
        assert json.loads(panel.heard(f"{BASE}/error")[-1])["topic"] == f"{BASE}/persona/home/set"

        # the persona's switch turned off stops it; its screen and LEDs become unavailable
        switch = config_of(panel, "switch", "home_running")
        await panel.publish(switch["command_topic"], switch["payload_off"])
        await panel.wait_for(f"{BASE}/persona/home/state", lambda p: p == b"stopped", timeout=30)
        assert ctl.persona("home").state == "stopped"
        await panel.wait_for(f"{BASE}/persona/home/availability", lambda p: p == b"offline")
        for component, object_id in [("image", "home_screen"), ("binary_sensor", "home_caps"),
                                     ("binary_sensor", "home_num"), ("binary_sensor", "home_scroll")]:
            config = config_of(panel, component, object_id)  # all must be online: one is not
            assert config["availability_mode"] == "all"
            assert {e["topic"] for e in config["availability"]} == {
                f"{BASE}/availability", f"{BASE}/persona/home/availability"}
        work_screen = config_of(panel, "image", "work_screen")  # the running one stays available
        assert all(panel.latest[e["topic"]] == b"online" for e in work_screen["availability"])
        assert ctl.persona("work").state == "running"


async def test_a_device_select_moves_a_device_between_guests(tmp_path: Path, broker: Broker,
                                                             console_image: Any) -> None:
    stick_file = tmp_path / "stick.img"
    with open(stick_file, "wb") as file:
        file.truncate(1 << 20)
    stick = DeviceConfig("stick", "usb-storage", "work", file=stick_file)
    async with Panel(broker).connected() as panel, \
            served(tmp_path, broker, PersonaConfig("work", devices=(stick,)), PersonaConfig("home")) as ctl:
        work, home = ctl.persona("work"), ctl.persona("home")
        for persona in (work, home):
            await persona.serial.wait_for(READY, READY_S, start=0)
        await work.serial.wait_for(ADD_BLOCK, 60, start=0)
        await panel.wait_for(f"{BASE}/device/stick", lambda p: p == b"work")
        select = config_of(panel, "select", "device_stick")
        assert select["options"] == ["work", "home", "detached"]
        await panel.publish(select["command_topic"], "home")
        await panel.wait_for(select["state_topic"], lambda p: p == b"home", timeout=60)
        await home.serial.wait_for(ADD_BLOCK, 60, start=0)
        await work.serial.wait_for(REMOVE_BLOCK, 60, start=0)
        await panel.publish(select["command_topic"], "detached")
        await panel.wait_for(select["state_topic"], lambda p: p == b"detached", timeout=60)
        await home.serial.wait_for(REMOVE_BLOCK, 60, start=0)
        assert ctl.devices("home") == [] and ctl.devices("work") == []


def test_sigterm_leaves_every_persona_stopped_and_a_restart_restores_the_active_one(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    config = tmp_path / "mux.toml"
    config.write_text(f'[mux]\naccel = "tcg"\ncontrol_socket = "{tmp_path}/c.sock"\n'
                      '[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n'
                      f'[mqtt]\nurl = "{broker.url}"\nnode_id = "{NODE}"\n')
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}

    async def run_once(panel: Panel, then: str | None) -> None:
        for topic in [t for t in panel.latest if t.startswith(f"{BASE}/")]:
            del panel.latest[topic]  # only what this run says counts
        log = open(tmp_path / "mux.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "mux", "-v", "run", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=READY_S)
            for name in ("work", "home"):
                await panel.wait_for(f"{BASE}/persona/{name}/state", lambda p: p == b"running",
                                     timeout=READY_S)
            if then is not None:
                await panel.wait_for(f"{BASE}/active", lambda p: p == then.encode(), timeout=READY_S)
            else:
                await panel.wait_for(f"{BASE}/active", lambda p: p == b"work", timeout=READY_S)
                await panel.publish(f"{BASE}/active/set", "home")
                await panel.wait_for(f"{BASE}/active", lambda p: p == b"home")
            began = len(panel.messages)
            proc.send_signal(signal.SIGTERM)
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"offline", timeout=60)
            assert proc.wait(60) == 0
        except BaseException:
            print((tmp_path / "mux.log").read_text()[-6000:])
            raise
        finally:
            proc.kill()
            proc.wait()
            log.close()
        after = [(t, p) for t, p, _ in panel.messages[began:]]
        offline = after.index((f"{BASE}/availability", b"offline"))
        for name in ("work", "home"):
            assert (f"{BASE}/persona/{name}/state", b"stopped") in after[:offline]
            assert panel.latest[f"{BASE}/persona/{name}/state"] == b"stopped"
            assert panel.latest[f"{BASE}/persona/{name}/availability"] == b"offline"

    async def scenario() -> None:
        async with Panel(broker).connected() as panel:
            await run_once(panel, None)  # the first run: work, then home chosen on the panel
            await run_once(panel, "home")  # the second: home again, remembered

    asyncio.run(scenario())
