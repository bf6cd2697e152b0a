"""MQTT control against a real mosquitto: discovery, commands, bad input, reconnects."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import MqttSection, PersonaConfig
from mux.frontends.mqtt import MqttBridge
from mux.frontends.mqtt_topics import parse_command
from tests.conftest import READY_S, make_config
from tests.mqtt_helpers import Broker, Panel

NODE = "testnode"
BASE = f"mux/{NODE}"  # no base_topic set: the node's own topics (docs/guides/mqtt.md)
HA = "homeassistant"


def mqtt_section(broker: Broker, **extra: Any) -> MqttSection:
    return MqttSection(url=broker.url, node_id=NODE, screenshot_interval_s=1.0, **extra)


@asynccontextmanager
async def controller_with_mqtt(tmp_path: Path, broker: Broker, *personas: PersonaConfig,
                               start_on_switch: bool = True, **extra: Any) -> AsyncIterator[Controller]:
    config = make_config(tmp_path, *personas, mqtt=mqtt_section(broker, **extra))
    config = dataclasses.replace(config, mux=dataclasses.replace(config.mux, start_on_switch=start_on_switch))
    async with Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None) as ctl:
        yield ctl


def bridge(ctl: Controller) -> MqttBridge:
    """The MQTT bridge ``ctl`` serves."""
    (found,) = [f for f in ctl.frontends if isinstance(f, MqttBridge)]
    return found


def idle(*names: str) -> list[PersonaConfig]:
    """Personas that are configured but not booted: enough for everything but screens."""
    return [PersonaConfig(name, autostart=False) for name in names]


# --- pure command parsing -----------------------------------------------------------------


@pytest.mark.parametrize(("topic", "payload", "words"), [
    ("mux/active/set", b"garden", "unknown persona 'garden'"),
    ("mux/active/set", b"", "empty payload"),
    ("mux/active/set", b"x" * 1_000_000, "payload too large"),
    ("mux/active/set", b"\xff\xfe", "not valid UTF-8"),
    ("mux/bogus/set", b"work", "no such command topic"),
    ("mux/persona/work/set", b"explode", "unknown action 'explode'"),
    ("mux/persona/garden/set", b"start", "unknown persona 'garden' in topic"),
])
@pytest.mark.pure
def test_bad_commands_are_refused_with_a_reason(topic: str, payload: bytes, words: str) -> None:
    result = parse_command(topic, payload, "mux", ["work", "home"])
    assert not hasattr(result, "kind"), result
    assert words in result.error  # type: ignore[union-attr]


@pytest.mark.pure
def test_good_commands_parse() -> None:
    assert parse_command("mux/active/set", b"home\n", "mux", ["work", "home"]).persona == "home"  # type: ignore[union-attr]
    command = parse_command("mux/persona/work/set", b"restart", "mux", ["work"])
    assert (command.kind, command.persona, command.action) == ("persona", "work", "restart")  # type: ignore[union-attr]


# --- against the broker, no guests booted ---------------------------------------------------


@pytest.mark.guests
async def test_discovery_follows_home_assistant_schema(tmp_path: Path, broker: Broker,
                                                       console_image: Any) -> None:
    async with Panel(broker).connected() as panel, \
            controller_with_mqtt(tmp_path, broker, *idle("work", "home")):
        await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online")
        configs = {t: json.loads(p) for t, p in panel.latest.items() if t.startswith(HA + "/")}
        device = configs[f"{HA}/select/{NODE}/active/config"]["device"]
        assert device["identifiers"] == [f"mux_{NODE}"] and device["name"]
        unique_ids = set()
        for topic, config in configs.items():
            assert config["device"] == device, topic
            assert config["availability"][0] == {"topic": f"{BASE}/availability"}
            assert config["availability_mode"] == "all"
            assert config["origin"]["name"] == "mux"
            assert config["unique_id"] not in unique_ids
            unique_ids.add(config["unique_id"])
        select = configs[f"{HA}/select/{NODE}/active/config"]
        assert select["command_topic"] == f"{BASE}/active/set"
        assert select["state_topic"] == f"{BASE}/active"
        assert select["options"] == ["work", "home"]
        for name in ("work", "home"):
            image = configs[f"{HA}/image/{NODE}/{name}_screen/config"]
            assert image["image_topic"] == f"{BASE}/persona/{name}/screenshot"
            assert image["content_type"] == "image/jpeg"
            sensor = configs[f"{HA}/sensor/{NODE}/{name}_state/config"]
            assert sensor["state_topic"] == f"{BASE}/persona/{name}/state"
            assert set(sensor["options"]) == {"stopped", "starting", "running", "stopping", "crashed"}
            button = configs[f"{HA}/button/{NODE}/{name}_restart/config"]
            assert button["command_topic"] == f"{BASE}/persona/{name}/set"
            assert button["payload_press"] == "restart"
            for led in ("caps", "num", "scroll"):
                sensor = configs[f"{HA}/binary_sensor/{NODE}/{name}_{led}/config"]
                assert sensor["state_topic"] == f"{BASE}/persona/{name}/leds"
                assert sensor["payload_on"] == "ON" and led in sensor["value_template"]
            ready = configs[f"{HA}/binary_sensor/{NODE}/{name}_ready/config"]
            assert ready["state_topic"] == f"{BASE}/persona/{name}/ready"
            assert (ready["payload_on"], ready["payload_off"]) == ("true", "false")
            assert panel.latest[f"{BASE}/persona/{name}/state"] == b"stopped"
            assert panel.latest[f"{BASE}/persona/{name}/ready"] == b"false"
            audio = configs[f"{HA}/sensor/{NODE}/{name}_audio/config"]
            assert audio["state_topic"] == f"{BASE}/persona/{name}/audio" and "muted" in audio["options"]
            await panel.wait_for(f"{BASE}/persona/{name}/audio", lambda p: p == b"off")  # no audio = true
        assert len(configs) == 4 + 2 * 10  # active, events, 2 clipboard buttons; per persona 10
        async with Panel(broker).connected(f"{HA}/#") as late:  # a panel that comes later
            await late.wait_for(f"{HA}/select/{NODE}/active/config")
            await asyncio.sleep(0.3)
            assert {t for t, _, retain in late.messages if retain} == set(configs)


@pytest.mark.guests
async def test_rediscovery_and_removal_of_a_persona_that_left(tmp_path: Path, broker: Broker,
                                                              console_image: Any) -> None:
    stale = f"{HA}/sensor/{NODE}/gone_state/config"
    async with Panel(broker).connected() as panel:
        await panel.publish(stale, json.dumps({"name": "gone state"}), retain=True)
        async with controller_with_mqtt(tmp_path, broker, *idle("work")):
            await panel.wait_for(stale, lambda p: p == b"")
            select = f"{HA}/select/{NODE}/active/config"
            await panel.wait_for(select)
            before = len(panel.heard(select))
            await panel.publish(f"{HA}/status", "online")
            await panel.wait_for(select, lambda p: len(panel.heard(select)) > before)


@pytest.mark.guests
async def test_bad_input_gets_one_error_and_changes_nothing(tmp_path: Path, broker: Broker,
                                                            console_image: Any) -> None:
    bad = [
        (f"{BASE}/active/set", b"garden"),
        (f"{BASE}/active/set", b""),
        (f"{BASE}/active/set", b"w" * 1_000_000),
        (f"{BASE}/active/set", b"\xc3\x28"),
        (f"{BASE}/nothing/here/set", b"work"),
    ]
    async with Panel(broker).connected() as panel, \
            controller_with_mqtt(tmp_path, broker, *idle("work", "home")) as ctl:
        await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online")
        await panel.wait_for(f"{BASE}/persona/home/state", lambda p: p == b"stopped")
        for index, (topic, payload) in enumerate(bad, start=1):
            await panel.publish(topic, payload)
            await panel.wait_for(f"{BASE}/error", lambda p, n=index: len(panel.heard(f"{BASE}/error")) >= n)
            error = json.loads(panel.heard(f"{BASE}/error")[-1])
            assert error["topic"] == topic and error["error"]
        await asyncio.sleep(0.5)
        assert len(panel.heard(f"{BASE}/error")) == len(bad)
        assert ctl.active is None
        assert panel.heard(f"{BASE}/active") == []  # none active: nothing (not an empty select state)
        assert all(p.state == "stopped" for p in ctl.personas.values())


@pytest.mark.guests
async def test_password_auth(tmp_path: Path, broker: Broker, console_image: Any) -> None:
    broker.stop()
    broker.users = {"panel": "secret", "mux": "hunter2"}
    broker.start()
    async with Panel(broker, username="panel", password="secret").connected() as panel:
        async with controller_with_mqtt(tmp_path / "a", broker, *idle("work"), username="mux",
                                        password="wrong") as ctl:
            await asyncio.sleep(1.5)
            assert not bridge(ctl).connected.is_set()
            assert f"{BASE}/availability" not in panel.latest
        async with controller_with_mqtt(tmp_path / "b", broker, *idle("work"), username="mux",
                                        password="hunter2"):
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online")
        await panel.wait_for(f"{BASE}/availability", lambda p: p == b"offline")


@pytest.mark.guests
async def test_broker_restart_republishes_and_commands_still_work(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    async with controller_with_mqtt(tmp_path, broker, *idle("work", "home"), start_on_switch=False) as ctl:
        await asyncio.wait_for(bridge(ctl).connected.wait(), 10)
        broker.stop()
        await asyncio.sleep(1.0)
        assert not bridge(ctl).connected.is_set()
        broker.start()  # no persistence: every retained message is gone
        async with Panel(broker).connected() as panel:
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=40)
            await panel.wait_for(f"{BASE}/persona/home/state", lambda p: p == b"stopped")
            await panel.publish(f"{BASE}/active/set", "home")  # carried out: refused, home is stopped
            error = json.loads(await panel.wait_for(f"{BASE}/error"))
            assert error["topic"] == f"{BASE}/active/set" and "start_on_switch" in error["error"]
            assert ctl.active is None


@pytest.mark.guests
def test_last_will_after_sigkill(tmp_path: Path, broker: Broker, console_image: Any) -> None:
    config = tmp_path / "mux.toml"
    config.write_text(f'[mux]\naccel = "tcg"\ncontrol_socket = "{tmp_path}/c.sock"\n'
                      '[[persona]]\nname = "work"\nautostart = false\n'
                      f'[mqtt]\nurl = "{broker.url}"\nnode_id = "{NODE}"\n')

    async def scenario() -> None:
        async with Panel(broker).connected(f"{BASE}/availability") as panel:
            proc = subprocess.Popen([sys.executable, "-m", "mux", "run", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "XDG_STATE_HOME": str(tmp_path)})
            try:
                await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=60)
                proc.send_signal(signal.SIGKILL)
                await panel.wait_for(f"{BASE}/availability", lambda p: p == b"offline", timeout=10)
            finally:
                proc.kill()
                proc.wait()

    asyncio.run(scenario())


# --- with real guests ------------------------------------------------------------------------


@pytest.mark.guests
async def test_select_switches_real_guests_and_screens_are_the_right_persona(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    personas = [PersonaConfig("work", color="c03030"), PersonaConfig("home", color="3060c0")]
    async with Panel(broker).connected() as panel, \
            controller_with_mqtt(tmp_path, broker, *personas) as ctl:
        import re

        for name in ("work", "home"):
            await ctl.persona(name).serial.wait_for(re.compile("MUX-READY"), READY_S)
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"work")
        # Order and cause, not speed (speed is `mux bench`'s mqtt_switch_latency_ms): home
        # becomes active only after, and because of, this command.
        mark = len(panel.messages)
        assert b"home" not in panel.heard(f"{BASE}/active") and ctl.active == "work"
        await panel.publish(f"{BASE}/active/set", "home")
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"home", timeout=30)
        assert [p for t, p, _ in panel.messages[mark:] if t == f"{BASE}/active"] == [b"home"]

        def switched_events() -> list[dict[str, Any]]:
            events = [json.loads(p) for t, p, _ in panel.messages[mark:] if t == f"{BASE}/event"]
            return [e for e in events if e["event_type"] == "switched"]

        await panel.wait_for(f"{BASE}/event", lambda p: bool(switched_events()))
        switched = switched_events()
        assert [(e["persona"], e["source"]) for e in switched] == [("home", "mqtt")]
        assert ctl.active == "home" and ctl.router.active == "home"
        for name, rgb in (("work", (198, 48, 49)), ("home", (49, 97, 198))):
            topic = f"{BASE}/persona/{name}/screenshot"
            jpeg = await panel.wait_for(topic, lambda p, c=rgb: _dominant_close(p, c), timeout=30)
            assert jpeg[:2] == b"\xff\xd8"


def _dominant_close(jpeg: bytes, rgb: tuple[int, int, int]) -> bool:
    image = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((64, 48))
    colors = image.getcolors(64 * 48) or []
    _, dominant = max(colors)
    return all(abs(a - b) < 24 for a, b in zip(dominant, rgb, strict=True))


@pytest.mark.guests
async def test_device_topics_move_a_device_and_publish_the_lists(tmp_path: Path, broker: Broker,
                                                                 console_image: Any) -> None:
    from mux.devices.model import DeviceConfig

    stick = tmp_path / "stick.img"
    stick.write_bytes(b"\0" * 1024 * 1024)
    work = PersonaConfig("work", autostart=False,
                         devices=(DeviceConfig("stick", "usb-storage", "work", file=stick),))
    async with Panel(broker).connected() as panel, \
            controller_with_mqtt(tmp_path, broker, work, *idle("home")):
        listed = f"{BASE}/persona/work/devices"
        assert "stick" in (await panel.wait_for(listed)).decode()
        await panel.publish(f"{BASE}/persona/home/devices/set", "attach stick")
        home = await panel.wait_for(f"{BASE}/persona/home/devices", lambda p: b"stick" in p)
        assert json.loads(home)[0]["id"] == "stick"
        await panel.wait_for(listed, lambda p: json.loads(p) == [])
        await panel.publish(f"{BASE}/persona/home/devices/set", "attach nothing-here")
        error = json.loads(await panel.wait_for(f"{BASE}/error"))
        assert error["topic"] == f"{BASE}/persona/home/devices/set" and "nothing-here" in error["error"]
