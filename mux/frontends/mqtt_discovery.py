"""Home Assistant MQTT discovery configs for mux (pure: no asyncio, no broker).

One Home Assistant device per mux node (``node_id``), holding: a select for the active
persona, an event entity (``switched``, ``refused``, ``crashed``, ``attention``, ``clipboard``),
two buttons for mux's clipboard ("Clipboard copy": the active persona's clipboard into mux's
own; "Clipboard paste": mux's into the active persona's; no text crosses MQTT), per persona a
picture of its screen, its run state, a switch (on = running), whether its guest is ready
(a binary sensor on ``persona/<name>/ready``), a restart button, its three lock LEDs, an
event entity for its requests for attention (``attention``, on ``persona/<name>/attention``:
a template adds the ``event_type`` that payload lacks), its audio state (a sensor on
``persona/<name>/audio``: live, muted, ducked, off, unavailable), and per device a select saying
which persona holds it (or ``detached``: Home Assistant reads an option ``none``, in any
case, as "no option"). With ``[[seat]]`` tables, also a select per seat for the persona it
shows (options: the personas it may show; ``none``, its state while it shows none, reads as
"no option"); without, nothing for seats (:mod:`mux.frontends.mqtt_seats`).

Two ways to publish them (``[mqtt] discovery``), both following Home Assistant's MQTT
discovery documentation as of 2024.11:

- ``"entities"`` (the default; any Home Assistant): one retained config per entity on
  ``<prefix>/<component>/<node>/<object_id>/config``, each with the ``device`` and
  ``origin`` blocks;
- ``"device"`` (Home Assistant 2024.11 and later): one retained config on
  ``<prefix>/device/<node>/config`` with ``dev``, ``o`` and ``cmps`` (the same entity
  configs keyed by the same object ids, each naming its ``p``\\ latform).

Home Assistant identifies a discovered entity by (component, "<node> <object_id>") in
both, and mux keeps every ``unique_id``, so moving between the two keeps the entities.
The move follows Home Assistant's ``migrate_discovery`` procedure (the bridge does it
on connect): publish :data:`MIGRATE` (retained) on the old mode's topics, publish the new
configs, then clear the old topics with an empty retained payload.

Availability: every entity needs ``<base>/availability`` (the bridge, with its last
will) to be ``online``; a persona's screen and LEDs also need
``<base>/persona/<name>/availability`` (``online`` while it runs), so a stopped
persona's old picture and LEDs show as unavailable (``availability_mode: all``).
Names follow ``has_entity_name`` semantics: Home Assistant prefixes the device name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from mux import __version__

DISCOVERY_MODES = ("entities", "device")
STATES = ("stopped", "starting", "running", "stopping", "crashed")
AUDIO_STATES = ("live", "muted", "ducked", "off", "unavailable")  # mux.audio.policy
LED_NAMES = ("caps", "num", "scroll")
EVENT_TYPES = ("switched", "refused", "crashed", "attention", "clipboard")
CLIPBOARD_PRESS = "PRESS"  # what the clipboard buttons send (any payload does)
DETACHED = "detached"  # the device select's option for "no persona holds it"
#: Also accepted on ``device/<id>/set`` for "detach": the option's name before (Home Assistant
#: reads a select state ``none`` as "no option", so it is no longer published).
DETACHED_ALIASES = ("none",)
#: Under it, each node's topics: ``<DEFAULT_BASE>/<node>`` unless ``base_topic`` is set.
DEFAULT_BASE = "mux"
MIGRATE: dict[str, Any] = {"migrate_discovery": True}
#: ``persona/<name>/attention`` carries {"text", "time"}; Home Assistant's event wants an event_type.
ATTENTION_TEMPLATE = ('{{ {"event_type": "attention", "text": value_json.text,'
                      ' "time": value_json.time} | tojson }}')


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity: its component, object id and config (no device block)."""

    component: str
    object_id: str
    config: dict[str, Any]


def safe_node_id(node_id: str) -> str:
    """Home Assistant accepts ``[a-zA-Z0-9_-]`` in discovery topics; map the rest to ``_``."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", node_id) or "mux"


def topic_base(node_id: str, base_topic: str | None) -> str:
    """The topic every other topic of a node is under: ``base_topic`` exactly when the config
    sets it (an existing panel keeps its topics), else ``mux/<node>`` (``node``: the node id
    made safe by :func:`safe_node_id`), so controllers sharing a broker keep apart."""
    if base_topic is not None:
        return base_topic.rstrip("/")
    return f"{DEFAULT_BASE}/{safe_node_id(node_id)}"


def device_block(node_id: str) -> dict[str, Any]:
    """The Home Assistant device every mux entity belongs to."""
    node = safe_node_id(node_id)
    return {"identifiers": [f"mux_{node}"], "name": f"mux {node_id}", "manufacturer": "mux",
            "model": "persona controller", "sw_version": __version__}


def support_url() -> str | None:
    """The package's home page (``[project.urls]``), for the origin block."""
    try:
        urls = metadata.metadata("mux").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    return next((u.split(",", 1)[1].strip() for u in urls if "," in u), None)


def origin_block(support_url: str | None) -> dict[str, Any]:
    """Where the discovery came from (Home Assistant's log names it)."""
    origin: dict[str, Any] = {"name": "mux", "sw_version": __version__}
    if support_url:
        origin["support_url"] = support_url
    return origin


def entities(node_id: str, base: str, personas: Sequence[str],
             devices: Sequence[str] = (), seats: Mapping[str, Sequence[str]] | None = None) -> list[Entity]:
    """Every entity of a node, in a stable order (see the module docstring); ``seats`` (seat
    name → the personas it may show; only with ``[[seat]]`` tables) adds a select per seat."""
    node = safe_node_id(node_id)
    bridge = {"topic": f"{base}/availability"}

    def entity(component: str, object_id: str, name: str, *, persona: str | None = None,
               **fields: Any) -> Entity:
        availability = [bridge]
        if persona is not None:
            availability.append({"topic": f"{base}/persona/{persona}/availability"})
        return Entity(component, object_id, {
            "name": name, "unique_id": f"mux_{node}_{object_id}", "object_id": f"mux_{node}_{object_id}",
            **fields, "availability": availability, "availability_mode": "all"})

    found = [
        entity("select", "active", "Active persona", command_topic=f"{base}/active/set",
               state_topic=f"{base}/active", options=list(personas), icon="mdi:account-switch"),
        entity("event", "events", "Events", state_topic=f"{base}/event",
               event_types=list(EVENT_TYPES), icon="mdi:bell-ring"),
        entity("button", "clipboard_copy", "Clipboard copy", command_topic=f"{base}/clipboard/copy/set",
               payload_press=CLIPBOARD_PRESS, icon="mdi:content-copy"),
        entity("button", "clipboard_paste", "Clipboard paste", command_topic=f"{base}/clipboard/paste/set",
               payload_press=CLIPBOARD_PRESS, icon="mdi:content-paste"),
    ]
    for name in personas:
        topics = f"{base}/persona/{name}"
        found += [
            entity("image", f"{name}_screen", f"{name} screen", persona=name,
                   image_topic=f"{topics}/screenshot", content_type="image/jpeg"),
            entity("sensor", f"{name}_state", f"{name} state", state_topic=f"{topics}/state",
                   device_class="enum", options=list(STATES), entity_category="diagnostic"),
            entity("switch", f"{name}_running", f"{name} running", command_topic=f"{topics}/set",
                   payload_on="start", payload_off="stop", state_topic=f"{topics}/state",
                   value_template="{{ 'ON' if value in ('running', 'starting') else 'OFF' }}",
                   state_on="ON", state_off="OFF", icon="mdi:power"),
            entity("binary_sensor", f"{name}_ready", f"{name} ready", state_topic=f"{topics}/ready",
                   payload_on="true", payload_off="false", icon="mdi:check-circle"),
            entity("button", f"{name}_restart", f"{name} restart", command_topic=f"{topics}/set",
                   payload_press="restart", device_class="restart", entity_category="config"),
            entity("event", f"{name}_attention", f"{name} attention", state_topic=f"{topics}/attention",
                   event_types=["attention"], value_template=ATTENTION_TEMPLATE, icon="mdi:phone-ring"),
            entity("sensor", f"{name}_audio", f"{name} audio", state_topic=f"{topics}/audio",
                   device_class="enum", options=list(AUDIO_STATES), icon="mdi:volume-high"),
        ]
        found += [entity("binary_sensor", f"{name}_{led}", f"{name} {led} lock", persona=name,
                         state_topic=f"{topics}/leds",
                         value_template=f"{{{{ 'ON' if value_json.{led} else 'OFF' }}}}",
                         payload_on="ON", payload_off="OFF", icon="mdi:keyboard",
                         entity_category="diagnostic")
                  for led in LED_NAMES]
    found += [entity("select", f"device_{device}", f"{device} attached to",
                     command_topic=f"{base}/device/{device}/set", state_topic=f"{base}/device/{device}",
                     options=[*personas, DETACHED], icon="mdi:usb-port")
              for device in devices]
    found += [entity("select", f"seat_{seat}_active", f"Seat {seat} active persona",
                     command_topic=f"{base}/seat/{seat}/active/set", state_topic=f"{base}/seat/{seat}/active",
                     options=list(shown), icon="mdi:monitor-account")
              for seat, shown in (seats or {}).items()]
    return found


def entity_topic(prefix: str, node_id: str, entity: Entity) -> str:
    """The per-entity discovery topic of ``entity``."""
    return f"{prefix}/{entity.component}/{safe_node_id(node_id)}/{entity.object_id}/config"


def device_topic(prefix: str, node_id: str) -> str:
    """The single-message device discovery topic of a node."""
    return f"{prefix}/device/{safe_node_id(node_id)}/config"


def discovery_messages(prefix: str, node_id: str, base: str, personas: Sequence[str],
                       devices: Sequence[str] = (), mode: str = "entities",
                       support_url: str | None = None,
                       seats: Mapping[str, Sequence[str]] | None = None) -> dict[str, dict[str, Any]]:
    """The retained discovery configs, topic → config, for ``mode`` (see the module docstring;
    ``seats`` as for :func:`entities`)."""
    found = entities(node_id, base, personas, devices, seats)
    device, origin = device_block(node_id), origin_block(support_url)
    if mode == "device":
        components = {e.object_id: {"p": e.component, **e.config} for e in found}
        return {device_topic(prefix, node_id): {"dev": device, "o": origin, "cmps": components}}
    return {entity_topic(prefix, node_id, e): {**e.config, "device": device, "origin": origin}
            for e in found}


def discovery_mode_of(topic: str, prefix: str, node_id: str) -> str | None:
    """``"entities"`` or ``"device"`` for a discovery topic of this node, None for others."""
    parts = topic.split("/")
    node = safe_node_id(node_id)
    if len(parts) == 4 and parts[:3] == [prefix, "device", node] and parts[3] == "config":
        return "device"
    if (len(parts) == 5 and parts[0] == prefix and parts[1] != "device" and parts[2] == node
            and parts[4] == "config"):
        return "entities"
    return None


def migration_plan(retained: Mapping[str, bytes], current: Mapping[str, Any], prefix: str,
                   node_id: str) -> tuple[list[str], list[str]]:
    """What to do with the discovery configs already on the broker, before publishing ``current``.

    Returns ``(migrate, clear)``: topics that get :data:`MIGRATE` first (configs of the
    other mode whose entities are still wanted: Home Assistant hands them over), and
    topics to clear with an empty payload once ``current`` is published (every retained
    config not in ``current``: the migrated ones and those of personas or devices gone).
    """
    wanted: set[str] = set()
    for topic, config in current.items():
        wanted |= _object_ids(topic, config, prefix, node_id)
    migrate: list[str] = []
    clear: list[str] = []
    for topic, payload in sorted(retained.items()):
        if not payload or topic in current or discovery_mode_of(topic, prefix, node_id) is None:
            continue
        try:
            config = json.loads(payload)
        except ValueError:
            config = None
        clear.append(topic)
        if config == MIGRATE:
            continue  # a marker left by a hand-over that was cut short
        if _object_ids(topic, config, prefix, node_id) & wanted:
            migrate.append(topic)
    return migrate, clear


def _object_ids(topic: str, config: Any, prefix: str, node_id: str) -> set[str]:
    """The object ids one discovery config describes (for a device config: its components)."""
    if discovery_mode_of(topic, prefix, node_id) == "entities":
        return {topic.split("/")[3]}
    if isinstance(config, dict):
        components = config.get("cmps", config.get("components"))
        if isinstance(components, dict):
            return set(components)
    return set()
