"""MQTT topics, commands and Home Assistant discovery (pure: no asyncio, no broker).

Everything mux says on MQTT lives under ``<base_topic>``; the table in the README is
the contract for panel builders. Incoming messages go through :func:`parse_command`,
payload in and :class:`Command` or :class:`CommandError` out, so a hostile or broken
panel can never do more than earn an ``error`` message. Outgoing state is described by
:func:`state_messages` as a mapping topic → payload; the bridge publishes only what
changed, and everything again after a reconnect. Discovery configs follow Home
Assistant's MQTT discovery schema for ``select``, ``image``, ``sensor``,
``binary_sensor`` and ``button``, one device block shared by all, availability wired to
``<base_topic>/availability``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mux import __version__

MAX_PAYLOAD = 1024  # bytes; every command payload is a short word or name
PERSONA_ACTIONS = ("start", "stop", "restart")
STATES = ("stopped", "starting", "running", "stopping", "crashed")
LED_NAMES = ("caps", "num", "scroll")


@dataclass(frozen=True)
class Command:
    """What a panel asked for: ``switch`` to a persona, a persona ``action``, or a device move."""

    kind: str  # "switch" | "persona" | "device"
    persona: str
    action: str = ""  # start/stop/restart; attach/detach
    device: str = ""


@dataclass(frozen=True)
class CommandError:
    topic: str
    payload: str
    error: str

    def to_json(self) -> str:
        return json.dumps({"topic": self.topic, "payload": self.payload, "error": self.error})


def _show(payload: bytes) -> str:
    """The payload as text for an error message: decoded if possible, short either way."""
    text = payload[:200].decode("utf-8", errors="backslashreplace")
    return text + ("..." if len(payload) > 200 else "")


def parse_command(topic: str, payload: bytes, base: str,
                  personas: Sequence[str]) -> Command | CommandError:
    """Turn one incoming message into a command, or say exactly what is wrong with it.

    Command topics: ``<base>/active/set`` (a persona name), ``<base>/persona/<name>/set``
    (``start``, ``stop``, ``restart``), ``<base>/persona/<name>/devices/set``
    (``attach <device>`` or ``detach <device>``; a bare device id means attach).
    """

    def error(message: str) -> CommandError:
        return CommandError(topic, _show(payload), message)

    if len(payload) > MAX_PAYLOAD:
        return error(f"payload too large ({len(payload)} bytes; at most {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return error("payload is not valid UTF-8")
    if not text:
        return error("empty payload")
    parts = topic[len(base) + 1:].split("/") if topic.startswith(base + "/") else []
    known = ", ".join(personas)
    if parts == ["active", "set"]:
        if text not in personas:
            return error(f"unknown persona {text!r} (personas: {known})")
        return Command("switch", text)
    if len(parts) in (3, 4) and parts[0] == "persona" and parts[-1] == "set":
        name = parts[1]
        if name not in personas:
            return error(f"unknown persona {name!r} in topic (personas: {known})")
        if len(parts) == 3:
            if text not in PERSONA_ACTIONS:
                return error(f"unknown action {text!r} (actions: {', '.join(PERSONA_ACTIONS)})")
            return Command("persona", name, text)
        if parts[2] == "devices":
            words = text.split()
            if len(words) == 1:
                words = ["attach", *words]
            if len(words) != 2 or words[0] not in ("attach", "detach"):
                return error("expected 'attach DEVICE' or 'detach DEVICE'")
            return Command("device", name, words[0], words[1])
    return error("no such command topic (commands: active/set, persona/<name>/set, "
                 "persona/<name>/devices/set)")


def state_messages(base: str, active: str | None, states: Mapping[str, str],
                   leds: Mapping[str, Mapping[str, bool] | None],
                   devices: Mapping[str, list[Any]] | None = None) -> dict[str, str]:
    """Retained state as topic → payload (personas with unknown LEDs publish none)."""
    messages = {f"{base}/active": active or ""}
    for name, state in states.items():
        messages[f"{base}/persona/{name}/state"] = state
        persona_leds = leds.get(name)
        if persona_leds is not None:
            messages[f"{base}/persona/{name}/leds"] = json.dumps(
                {led: bool(persona_leds.get(led)) for led in LED_NAMES})
        if devices is not None and name in devices:
            messages[f"{base}/persona/{name}/devices"] = json.dumps(devices[name])
    return messages


def safe_node_id(node_id: str) -> str:
    """Home Assistant accepts ``[a-zA-Z0-9_-]`` in discovery topics; map the rest to ``_``."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", node_id) or "mux"


def discovery_messages(prefix: str, node_id: str, base: str,
                       personas: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery configs, topic → config, for a node and its personas."""
    node = safe_node_id(node_id)
    device = {"identifiers": [f"mux_{node}"], "name": f"mux {node_id}", "manufacturer": "mux",
              "model": "persona controller", "sw_version": __version__}
    common = {"availability_topic": f"{base}/availability", "payload_available": "online",
              "payload_not_available": "offline", "device": device}

    def entity(component: str, object_id: str, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        topic = f"{prefix}/{component}/{node}/{object_id}/config"
        return topic, {"name": name, "unique_id": f"mux_{node}_{object_id}",
                       "object_id": f"mux_{node}_{object_id}", **fields, **common}

    configs = dict([entity("select", "active", "Active persona", command_topic=f"{base}/active/set",
                           state_topic=f"{base}/active", options=list(personas), icon="mdi:account-switch")])
    for name in personas:
        topics = f"{base}/persona/{name}"
        configs.update([
            entity("image", f"{name}_screen", f"{name} screen", image_topic=f"{topics}/screenshot",
                   content_type="image/jpeg"),
            entity("sensor", f"{name}_state", f"{name} state", state_topic=f"{topics}/state",
                   device_class="enum", options=list(STATES)),
            entity("button", f"{name}_restart", f"{name} restart", command_topic=f"{topics}/set",
                   payload_press="restart", device_class="restart"),
        ])
        for led in LED_NAMES:
            configs.update([entity(
                "binary_sensor", f"{name}_{led}", f"{name} {led} lock", state_topic=f"{topics}/leds",
                value_template=f"{{{{ 'ON' if value_json.{led} else 'OFF' }}}}",
                payload_on="ON", payload_off="OFF", icon="mdi:keyboard")])
    return configs


def is_own_discovery(topic: str, prefix: str, node_id: str) -> bool:
    """Is this a discovery config topic of this node (from this run or an earlier one)?"""
    parts = topic.split("/")
    return (len(parts) == 5 and parts[0] == prefix and parts[2] == safe_node_id(node_id)
            and parts[4] == "config")
