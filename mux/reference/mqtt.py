"""MQTT topics and Home Assistant entities, read from the bridge's own code.

The set of topics is the code's: the retained state (:func:`~mux.frontends.mqtt_topics.state_messages`
and what a clean stop leaves, ``stopped_messages``; each seat's, :mod:`mux.frontends.mqtt_seats`),
the command topics the parsers name (:func:`~mux.frontends.mqtt_topics.parse_command`,
:func:`~mux.frontends.mqtt_seats.parse_seat_command`), the topics the discovery configs point
at (:func:`~mux.frontends.mqtt_discovery.entities`), and the topics the bridge publishes
by name (``f"{self.base}/..."`` in :mod:`mux.frontends.mqtt`). Each must have a line in
:data:`TOPICS` (how it is sent, what its payload is), and each line there must be one of
them: a topic added to the code without a description, or a description left behind by
a removed topic, is an :class:`~mux.reference.common.UndocumentedError`. The entities
are generated whole from the discovery code; :data:`ENTITIES` adds what each is for.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from mux.reference.common import UndocumentedError, code, header, table

PERSONA, DEVICE, SEAT, NODE, BASE = "PERSONA", "DEVICE", "SEAT", "NODE", "BASE"

#: topic under ``<base_topic>`` -> (how it is sent, its payload).
TOPICS: dict[str, tuple[str, str]] = {
    "availability": ("out, retained, also the last will", "`online` / `offline`"),
    "active": ("out, retained", "the active persona's name (nothing is published before one is); with"
               " `[[seat]]` tables the first seat's, as on `seat/<seat>/active` (`none` while it shows"
               " none)"),
    "claim": ("out, retained", "JSON `{\"host\", \"pid\", \"client\", \"since\"}`: the controller serving"
              " this node; it counts only while `availability` is `online`, and a clean stop clears it"
              " (empty payload). A second controller of the node refuses to start while it counts"),
    "active/set": ("in", "a persona's name (a stopped one is started first, or refused: `start_on_switch`)"),
    "event": ("out", "JSON `{\"event_type\", \"persona\", \"source\", \"text\"}`: {events}. `switched` has"
              " `source` `hotkey`, `mqtt`, `control socket`, `scenario`, `overview`, `startup` or"
              " `snapshot`; `refused` is a refused MQTT command, beside its `error`; `crashed` has `source`"
              " `guest`; `attention` has `source` `guest` and the request's `text`; `clipboard` has `source`"
              " who asked (`hotkey`, `mqtt`, `control socket`...) and a `text` such as `copied 42 characters"
              " from home` or the refusal, never the clipboard's text. With `[[seat]]` tables a `switched`"
              " event also has `\"seat\"` (which seat switched; its `persona` is null for a seat left"
              " showing none)"),
    "clipboard/copy/set": ("in", "any payload (the button sends `PRESS`): the active persona's clipboard into"
                           " mux's own, as `scrolllock+c` does; what happened comes as a `clipboard` event, a"
                           " refusal also on `error`. No clipboard text ever travels over MQTT"),
    "clipboard/paste/set": ("in", "any payload (the button sends `PRESS`): mux's clipboard into the active"
                            " persona's, as `scrolllock+v` does; reported like `clipboard/copy/set`"),
    "persona/<name>/state": ("out, retained", "{states}"),
    "persona/<name>/availability": ("out, retained", "`online` while the persona runs, else `offline`"),
    "persona/<name>/ready": ("out, retained", "`true` / `false`: the guest is ready for work"),
    "persona/<name>/audio": ("out, retained", "{audio}: what its sound does"),
    "persona/<name>/set": ("in", "{actions} (the switch entity sends `start` / `stop`)"),
    "persona/<name>/attention": ("out", "JSON `{\"text\", \"time\"}` for each request for attention; `time`"
                                 " is ISO 8601 in UTC with milliseconds, e.g."
                                 " `\"2031-05-01T09:00:00.123+00:00\"`"),
    "persona/<name>/screenshot": ("out, retained", "JPEG of the latest back-buffered frame, when it changed"
                                  " in a way a person would notice, at most every `screenshot_interval_s`"),
    "persona/<name>/leds": ("out, retained", "JSON `{leds}`, each true or false"),
    "persona/<name>/devices": ("out, retained", "JSON list of the persona's devices"),
    "persona/<name>/devices/set": ("in", "`attach DEVICE` or `detach DEVICE` (a bare device id means"
                                   " attach)"),
    "device/<id>": ("out, retained", "the persona holding the device, or `{detached}`"),
    "device/<id>/set": ("in", "a persona's name (the device moves there) or `{detached}` (`none` is"
                        " accepted too)"),
    "seat/<seat>/active": ("out, retained", "only with `[[seat]]` tables: the persona the seat shows, or"
                           " `{none}` when it shows none (another seat took its persona: `[mux] steal`)"),
    "seat/<seat>/active/set": ("in", "only with `[[seat]]` tables: a persona the seat may show, `next` or"
                               " `previous`; switches that seat only. Refused (on `error`) for a persona"
                               " the seat may not show, or one active on another seat (unless"
                               " `[mux] steal`)"),
    "error": ("out", "JSON `{\"topic\", \"payload\", \"error\"}` for every refused command"),
    "sync": ("out, internal", "a marker mux sends itself on connect, to know the retained discovery configs"
             " have arrived; ignore it"),
}
#: object id (with ``<persona>`` and ``<device>``) -> what the entity is for.
ENTITIES: dict[str, str] = {
    "clipboard_copy": "copies the active persona's clipboard into mux's own (`scrolllock+c`)",
    "clipboard_paste": "pastes mux's clipboard into the active persona's (`scrolllock+v`); refused when"
                       " `[clipboard] allow` has no rule for it",
    "active": "shows and switches the active persona (a stopped one is started first)",
    "events": "the events of the `event` topic, for automations",
    "<persona>_screen": "the persona's screen",
    "<persona>_state": "the persona's run state",
    "<persona>_running": "on = running (or starting); turning it on starts the persona, off stops it",
    "<persona>_ready": "whether the persona's guest is ready for work",
    "<persona>_restart": "restarts the persona",
    "<persona>_attention": "`attention`, with `text` and `time`, for each request for attention",
    "<persona>_audio": "what the persona's sound does",
    "<persona>_caps": "the guest's Caps Lock LED",
    "<persona>_num": "the guest's Num Lock LED",
    "<persona>_scroll": "the guest's Scroll Lock LED",
    "device_<device>": "which persona holds the device (`detached`: none); choosing one moves the device",
    "seat_<seat>_active": "only with `[[seat]]` tables, one per seat: shows and switches the persona the seat"
                          " shows; its options are the personas the seat may show",
}


def _shown(text: str) -> str:
    return text.replace(PERSONA, "<name>").replace(DEVICE, "<id>").replace(SEAT, "<seat>")


def code_topics() -> dict[str, str]:
    """Every topic the code publishes or reads, under the base: ``in`` or ``out``."""
    from mux.frontends import mqtt, mqtt_discovery, mqtt_seats, mqtt_topics

    found: dict[str, str] = {}

    def add(topic: str, direction: str) -> None:
        if topic.startswith(BASE + "/"):
            found.setdefault(_shown(topic[len(BASE) + 1:]), direction)

    commands = mqtt_topics.parse_command(f"{BASE}/?", b"?", BASE, [PERSONA])
    listed = re.search(r"\(commands: ([^)]*)\)", getattr(commands, "error", ""))
    for topic in listed[1].split(", ") if listed else []:
        found[topic] = "in"
    for topic in [*mqtt_topics.state_messages(
            BASE, PERSONA, {PERSONA: "running"}, {PERSONA: {}}, devices={PERSONA: []}, owners={DEVICE: None},
            ready={PERSONA: True}, audio={PERSONA: "live"}), *mqtt_topics.stopped_messages(BASE, [PERSONA]),
            *mqtt_seats.seat_state_messages(BASE, [mqtt_seats.SeatView(SEAT, PERSONA, (PERSONA,))])]:
        add(topic, "out")
    seat_commands = mqtt_seats.parse_seat_command(f"{BASE}/seat/?", b"?", BASE, [], [PERSONA])
    listed = re.search(r"\(seat commands: ([^)]*)\)", getattr(seat_commands, "error", ""))
    for topic in listed[1].split(", ") if listed else []:
        found[topic] = "in"
    for entity in mqtt_discovery.entities(NODE, BASE, [PERSONA], [DEVICE], {SEAT: [PERSONA]}):
        for key, value in entity.config.items():
            if key.endswith("_topic"):
                add(value, "in" if key == "command_topic" else "out")
        for item in entity.config.get("availability", []):
            add(item["topic"], "out")
    for topic in re.findall(r'f"\{(?:self\.)?base\}/([a-z][^"]*)"', inspect.getsource(mqtt)):
        add(f"{BASE}/" + re.sub(r"\{[a-z_]+\}", PERSONA, topic), "out")
    return found


def topics() -> list[tuple[str, str, str]]:
    """(topic, how it is sent, payload) for every topic, in :data:`TOPICS`' order.

    Raises:
        UndocumentedError: the code and :data:`TOPICS` do not name the same topics, or a
            topic's direction there is not the code's.
    """
    from mux.frontends.mqtt_discovery import AUDIO_STATES, DETACHED, EVENT_TYPES, LED_NAMES, STATES
    from mux.frontends.mqtt_seats import NO_PERSONA
    from mux.frontends.mqtt_topics import PERSONA_ACTIONS

    found = code_topics()
    if set(found) != set(TOPICS):
        raise UndocumentedError("MQTT topics: the code has " + ", ".join(sorted(set(found) - set(TOPICS)))
                                + " undescribed, and describes " + ", ".join(sorted(set(TOPICS) - set(found)))
                                + " it no longer has (mux/reference/mqtt.py, TOPICS)")
    wrong = [t for t, (how, _) in TOPICS.items() if how.split(",")[0] != found[t]]
    if wrong:
        raise UndocumentedError(f"MQTT topics described with the wrong direction: {', '.join(wrong)}")
    words = {"events": ", ".join(code(e) for e in EVENT_TYPES), "states": ", ".join(code(s) for s in STATES),
             "none": NO_PERSONA,
             "audio": ", ".join(code(a) for a in AUDIO_STATES),
             "actions": ", ".join(code(a) for a in PERSONA_ACTIONS), "detached": DETACHED,
             "leds": "{" + ", ".join(f'"{led}"' for led in LED_NAMES) + "}"}
    rows = []
    for topic, (how, payload) in TOPICS.items():
        for word, text in words.items():  # not str.format: payloads show JSON's braces
            payload = payload.replace("{" + word + "}", text)
        rows.append((topic, how, payload))
    return rows


def entities() -> list[dict[str, Any]]:
    """Every Home Assistant entity of a node with one persona and one device, described.

    Raises:
        UndocumentedError: an entity without a line in :data:`ENTITIES`, or a line there
            for an entity the code no longer makes.
    """
    from mux.frontends.mqtt_discovery import entities as discovered

    rows: list[dict[str, Any]] = []
    for entity in discovered(NODE, BASE, [PERSONA], [DEVICE], {SEAT: [PERSONA]}):
        object_id = entity.object_id.replace(PERSONA, "<persona>").replace(DEVICE, "<device>").replace(
            SEAT, "<seat>")
        config = entity.config
        options = [str(o).replace(PERSONA, "<personas>") for o in config.get("options", [])]
        topics = [_shown(config[k][len(BASE) + 1:]) for k in ("state_topic", "image_topic", "command_topic")
                  if k in config]
        rows.append({"object_id": object_id, "component": entity.component,
                     "name": config["name"].replace(PERSONA, "<persona>").replace(DEVICE, "<device>")
                     .replace(SEAT, "<seat>"),
                     "topics": topics, "options": options, "category": config.get("entity_category", ""),
                     "device_class": config.get("device_class", ""),
                     "per_persona": len(config["availability"]) > 1, "what": ENTITIES.get(object_id, "")})
    made = {row["object_id"] for row in rows}
    if made != set(ENTITIES):
        raise UndocumentedError("Home Assistant entities: undescribed "
                                + ", ".join(sorted(made - set(ENTITIES)))
                                + "; described but gone " + ", ".join(sorted(set(ENTITIES) - made))
                                + " (mux/reference/mqtt.py, ENTITIES)")
    return rows


INTRO = """\
With an `[mqtt]` table in the config (see [Config keys](config.md#mqtt)), mux publishes its
state and takes commands on an MQTT broker, and Home Assistant discovers it as one device.
The [MQTT and Home Assistant guide](../guides/mqtt.md) tells how it behaves (availability,
reconnecting, discovery modes, screenshots); this page is the contract for panel builders.
"""


def mqtt_page() -> str:
    """``docs/reference/mqtt.md``: every topic and every Home Assistant entity.

    Raises:
        UndocumentedError: see :func:`topics` and :func:`entities`.
    """
    out = [header("MQTT topics and Home Assistant entities",
                  "mux/frontends/mqtt_topics.py, mqtt_seats.py, mqtt_discovery.py and mqtt.py", INTRO)]
    out.append("## Topics\n\nUnder `<base_topic>` (not set: `mux/<node_id>`); `<name>` is a persona's name,"
               " `<id>` a device's id, `<seat>` a seat's name (`seat/...` topics exist only with `[[seat]]`"
               " tables; a config without has exactly the other topics).\n\n")
    out.append(table(("topic", "direction", "payload"),
                     [(code(t), how, payload) for t, how, payload in topics()]))
    out.append("\nA command is refused (one `error` message and one `refused` event, nothing else happens)"
               " for an unknown persona or device, an empty payload, a payload over 1 KiB, invalid UTF-8,"
               " an unknown action, a `.../set` topic that does not exist, or a request mux cannot carry"
               " out.\n\n")
    out.append("## Home Assistant entities\n\nOne device, `mux <node_id>`, whose name Home Assistant puts in"
               " front of each entity's; the `<persona>` entities are made for every persona, the `<device>`"
               " select for every device, the `<seat>` select for every seat (only with `[[seat]]` tables)."
               " Every entity is available only while mux is (`availability`, with the last will).\n\n")
    rows = []
    for e in entities():
        values = ", ".join(code(o) for o in e["options"])
        what = e["what"] + ("; unavailable while the persona is not running (`persona/<name>/availability`)"
                            if e["per_persona"] else "")
        name = e["name"].replace("<persona>", "`<persona>`").replace("<device>", "`<device>`").replace(
            "<seat>", "`<seat>`")
        topics_ = ", ".join(code(t) for t in e["topics"])
        kind = code(e["component"]) + (f" ({e['device_class']})" if e["device_class"] else "")
        rows.append((name, kind, code(e["object_id"]), topics_, values, e["category"], what))
    out.append(table(("entity", "component (device class)", "object id", "topics", "options", "category",
                      "what it does"), rows))
    return "".join(out).rstrip("\n") + "\n"
