"""Home Assistant discovery: every config against Home Assistant's documented keys, the
two discovery modes, the migrate_discovery hand-over, and the new config keys.

The key lists are Home Assistant's MQTT integration documentation as of 2024.11
(home-assistant.io, ``source/_integrations/<component>.mqtt.markdown`` for each
component; ``mqtt.markdown`` for ``origin`` and device-based discovery's ``dev``, ``o``,
``cmps`` and ``p``). Home Assistant ignores unknown keys in discovery payloads, so a key
missing from these lists would be silently dropped: that is what this test catches.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from mux.app import statedir
from mux.app.switcher import first_active
from mux.config import MqttSection, PersonaConfig
from mux.config.parse import load_config
from mux.errors import ConfigError
from mux.frontends.mqtt_discovery import (
    MIGRATE,
    device_topic,
    discovery_messages,
    migration_plan,
)
from mux.frontends.mqtt_topics import event_message, parse_command, state_messages, stopped_messages
from tests.mqtt_helpers import Broker, Panel

ENTITY_KEYS = {  # in every MQTT entity component's documentation
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "qos", "unique_id"}
COMPONENT_KEYS = {
    "select": {"command_template", "command_topic", "optimistic", "options", "retain", "state_topic",
               "value_template"},
    "event": {"device_class", "event_types", "state_topic", "value_template"},
    "image": {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
    "sensor": {"device_class", "expire_after", "force_update", "last_reset_value_template", "options",
               "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement",
               "value_template"},
    "binary_sensor": {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
                      "payload_on", "state_topic", "value_template"},
    "button": {"command_template", "command_topic", "device_class", "payload_press", "retain"},
    "switch": {"command_template", "command_topic", "device_class", "optimistic", "payload_off",
               "payload_on", "retain", "state_off", "state_on", "state_topic", "value_template"},
}
REQUIRED = {"select": {"command_topic", "options"}, "event": {"state_topic", "event_types"},
            "image": {"image_topic"}, "sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
            "button": {"command_topic"}, "switch": {"command_topic"}}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
               "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
DEVICE_DISCOVERY_KEYS = {"dev", "o", "cmps", "availability", "availability_mode", "availability_topic",
                         "qos", "state_topic", "command_topic", "encoding"}
ENTITY_CATEGORIES = {"config", "diagnostic"}

PERSONAS = ["work", "home"]
DEVICES = ["stick"]
ARGS = ("homeassistant", "desk", "mux", PERSONAS, DEVICES)


def check_entity(component: str, config: dict[str, Any], where: str) -> None:
    assert component in COMPONENT_KEYS, where
    unknown = set(config) - ENTITY_KEYS - COMPONENT_KEYS[component]
    assert not unknown, f"{where}: keys Home Assistant does not document for {component}: {unknown}"
    assert REQUIRED[component] <= set(config), where
    assert config.get("entity_category", "config") in ENTITY_CATEGORIES, where
    assert config["availability_mode"] in ("all", "any", "latest") and "availability_topic" not in config
    for entry in config["availability"]:
        assert set(entry) <= AVAILABILITY_KEYS and "topic" in entry, where
    if "device" in config:
        assert set(config["device"]) <= DEVICE_KEYS and config["device"]["identifiers"], where
    if "origin" in config:
        assert set(config["origin"]) <= ORIGIN_KEYS and config["origin"]["name"] == "mux", where


@pytest.mark.pure
def test_every_per_entity_config_has_only_documented_keys() -> None:
    configs = discovery_messages(*ARGS, support_url="https://example.org/mux")
    assert len(configs) == 4 + 10 * len(PERSONAS) + len(DEVICES)  # active, events, 2 buttons; 10 a persona
    for topic, config in configs.items():
        check_entity(topic.split("/")[1], config, topic)
        assert config["origin"] == {"name": "mux", "sw_version": config["device"]["sw_version"],
                                    "support_url": "https://example.org/mux"}
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)


@pytest.mark.pure
def test_the_device_config_holds_the_same_entities_with_the_same_ids() -> None:
    entities = discovery_messages(*ARGS)
    (topic, device), = discovery_messages(*ARGS, mode="device").items()
    assert topic == device_topic("homeassistant", "desk") == "homeassistant/device/desk/config"
    assert set(device) <= DEVICE_DISCOVERY_KEYS and {"dev", "o", "cmps"} <= set(device)
    assert set(device["dev"]) <= DEVICE_KEYS and set(device["o"]) <= ORIGIN_KEYS
    for object_id, component in device["cmps"].items():
        platform = component["p"]
        check_entity(platform, {k: v for k, v in component.items() if k != "p"}, object_id)
        # Home Assistant's discovery id is "<node> <object_id>" either way, and the ids stay
        single = entities[f"homeassistant/{platform}/desk/{object_id}/config"]
        assert {k: v for k, v in single.items() if k not in ("device", "origin")} == \
            {k: v for k, v in component.items() if k != "p"}
    assert len(device["cmps"]) == len(entities)


@pytest.mark.pure
def test_names_categories_and_availability_follow_the_panel_conventions() -> None:
    configs = {t.split("/")[3]: c for t, c in discovery_messages(*ARGS).items()}
    assert configs["active"]["name"] == "Active persona"
    assert configs["events"]["event_types"] == ["switched", "refused", "crashed", "attention", "clipboard"]
    assert configs["events"]["state_topic"] == "mux/event"
    for name in PERSONAS:
        assert configs[f"{name}_screen"]["name"] == f"{name} screen"
        attention = configs[f"{name}_attention"]  # a payload without event_type: the template adds it
        assert (attention["state_topic"], attention["event_types"]) == (f"mux/persona/{name}/attention",
                                                                        ["attention"])
        audio = configs[f"{name}_audio"]  # the audio state (mux.audio.policy)
        assert (audio["state_topic"], audio["device_class"]) == (f"mux/persona/{name}/audio", "enum")
        assert audio["options"] == ["live", "muted", "ducked", "off", "unavailable"]
        assert configs[f"{name}_caps"]["name"] == f"{name} caps lock"
        assert configs[f"{name}_running"]["name"] == f"{name} running"
        assert configs[f"{name}_restart"]["name"] == f"{name} restart"
        assert configs[f"{name}_restart"]["entity_category"] == "config"
        assert configs[f"{name}_state"]["entity_category"] == "diagnostic"
        assert configs[f"{name}_state"]["device_class"] == "enum"
        assert configs[f"{name}_num"]["entity_category"] == "diagnostic"
        switch = configs[f"{name}_running"]
        assert (switch["payload_on"], switch["payload_off"]) == ("start", "stop")
        own = {"topic": f"mux/persona/{name}/availability"}
        for object_id in (f"{name}_screen", f"{name}_caps", f"{name}_num", f"{name}_scroll"):
            assert own in configs[object_id]["availability"]
        assert own not in switch["availability"]  # a stopped persona can be started
    stick = configs["device_stick"]
    assert stick["options"] == [*PERSONAS, "detached"] and stick["command_topic"] == "mux/device/stick/set"


@pytest.mark.pure
def test_the_migration_plan_hands_over_what_stays_and_clears_the_rest() -> None:
    device = discovery_messages(*ARGS, mode="device")
    retained = {t: json.dumps(c).encode() for t, c in discovery_messages(*ARGS).items()}
    retained["homeassistant/sensor/desk/gone_state/config"] = b'{"name": "gone state"}'
    retained["homeassistant/sensor/desk/left_over/config"] = json.dumps(MIGRATE).encode()
    retained["homeassistant/sensor/otherdesk/work_state/config"] = b'{"name": "other node"}'
    migrate, clear = migration_plan(retained, device, "homeassistant", "desk")
    assert set(migrate) == set(discovery_messages(*ARGS))
    assert set(clear) == set(migrate) | {"homeassistant/sensor/desk/gone_state/config",
                                         "homeassistant/sensor/desk/left_over/config"}
    back_migrate, back_clear = migration_plan(
        {t: json.dumps(c).encode() for t, c in device.items()}, discovery_messages(*ARGS),
        "homeassistant", "desk")
    assert back_migrate == back_clear == list(device)
    assert migration_plan({}, device, "homeassistant", "desk") == ([], [])


@pytest.mark.pure
def test_device_select_commands_state_and_events() -> None:
    command = parse_command("mux/device/stick/set", b"home", "mux", PERSONAS, DEVICES)
    assert (command.kind, command.persona, command.action, command.device) == (  # type: ignore[union-attr]
        "device", "home", "attach", "stick")
    for word in (b"detached", b"none"):  # the option, and the old word still accepted
        command = parse_command("mux/device/stick/set", word, "mux", PERSONAS, DEVICES)
        assert (command.action, command.persona) == ("detach", "")  # type: ignore[union-attr]
    assert "unknown device" in parse_command("mux/device/cam/set", b"home", "mux", PERSONAS,
                                             DEVICES).error  # type: ignore[union-attr]
    assert "unknown persona" in parse_command("mux/device/stick/set", b"garden", "mux", PERSONAS,
                                              DEVICES).error  # type: ignore[union-attr]
    state = state_messages("mux", "work", {"work": "running", "home": "stopped"}, {}, None,
                           {"stick": "work", "cam": None})
    assert state["mux/persona/work/availability"] == "online"
    assert state["mux/persona/home/availability"] == "offline"
    assert (state["mux/device/stick"], state["mux/device/cam"]) == ("work", "detached")
    assert stopped_messages("mux", PERSONAS) == {
        "mux/persona/work/state": "stopped", "mux/persona/work/availability": "offline",
        "mux/persona/home/state": "stopped", "mux/persona/home/availability": "offline",
        "mux/persona/work/ready": "false", "mux/persona/home/ready": "false"}  # ready: issue 13
    # keep_guests = "always": the guests run on, so they are only unavailable
    assert stopped_messages("mux", PERSONAS, kept=True) == {
        "mux/persona/work/availability": "offline", "mux/persona/home/availability": "offline"}
    assert json.loads(event_message("switched", "home", "hotkey", "t")) == {
        "event_type": "switched", "persona": "home", "source": "hotkey", "text": "t"}


@pytest.mark.pure
def test_the_first_active_persona() -> None:
    assert first_active(["work", "home"], None, None) == "work"
    assert first_active(["work", "home"], None, "home") == "home"
    assert first_active(["work", "home"], "home", "work") == "home"
    assert first_active(["work"], "home", "home") == "work"  # not running: passed over
    assert first_active([], "home", None) is None


@pytest.mark.pure
def test_the_active_persona_is_remembered_per_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert statedir.remembered_active(tmp_path / "a.toml") is None
    statedir.remember_active(tmp_path / "a.toml", "home")
    statedir.remember_active(tmp_path / "b.toml", "work")
    assert statedir.remembered_active(tmp_path / "a.toml") == "home"
    assert statedir.remembered_active(tmp_path / "b.toml") == "work"
    assert stat.S_IMODE(statedir.state_dir().stat().st_mode) == 0o700
    assert statedir.state_dir() == tmp_path / "state" / "mux"


@pytest.mark.parametrize(("text", "words"), [
    ('[mux]\nactive = "garden"\n', "mux.active: unknown persona 'garden'"),
    ('[mux]\nstart_on_switch = "yes"\n', "mux.start_on_switch must be bool"),
    ('[mqtt]\nurl = "mqtt://b:1883"\ndiscovery = "devices"\n', "mqtt.discovery: must be one of"),
])
@pytest.mark.pure
def test_new_config_keys_are_checked(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "mux.toml"
    path.write_text(text + '[[persona]]\nname = "work"\n')
    with pytest.raises(ConfigError, match=words) as caught:
        load_config(path)
    assert f"{path}:{text.count(chr(10))}:" in str(caught.value)  # the line of the bad key


@pytest.mark.pure
def test_new_config_keys_are_read(tmp_path: Path) -> None:
    path = tmp_path / "mux.toml"
    path.write_text('[mux]\nactive = "home"\nstart_on_switch = false\n'
                    '[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n'
                    '[mqtt]\nurl = "mqtt://b:1883"\ndiscovery = "device"\n')
    config = load_config(path)
    assert (config.mux.active, config.mux.start_on_switch) == ("home", False)
    assert config.mqtt is not None and config.mqtt.discovery == "device"


# --- the hand-over between the modes, against a real mosquitto ---------------------------


@pytest.mark.guests
async def test_switching_the_discovery_mode_hands_the_entities_over(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    from mux.app.controller import Controller
    from mux.cli import frontends
    from tests.conftest import make_config

    def config(mode: str) -> Any:
        return make_config(tmp_path, PersonaConfig("work", autostart=False),
                           mqtt=MqttSection(url=broker.url, node_id="desk", discovery=mode))  # type: ignore[arg-type]

    entity_topics = set(discovery_messages("homeassistant", "desk", "mux", ["work"]))
    device = device_topic("homeassistant", "desk")
    async with Panel(broker).connected() as panel:
        for mode in ("entities", "device", "entities"):
            began = len(panel.messages)
            async with Controller(config(mode), frontends=frontends(config(mode)),
                                  progress=lambda m: None):
                await panel.wait_for("mux/desk/availability", lambda p: p == b"online")  # base_topic unset
                await asyncio.sleep(0.2)
            heard = [(t, p) for t, p, _ in panel.messages[began:] if t.startswith("homeassistant/")]
            old = {device} if mode == "entities" else entity_topics
            new = entity_topics if mode == "entities" else {device}
            first_new = min(i for i, (t, _) in enumerate(heard) if t in new)
            for topic in old:
                said = [(i, p) for i, (t, p) in enumerate(heard) if t == topic]
                if began == 0:
                    assert said == []  # nothing to hand over on the very first run
                    continue
                (marker_at, marker), (cleared_at, cleared) = said  # migrate, publish, clear
                assert json.loads(marker) == MIGRATE and cleared == b""
                assert marker_at < first_new < cleared_at
            assert all(panel.latest[t] for t in new) and not any(panel.latest.get(t) for t in old)
