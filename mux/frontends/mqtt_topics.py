"""MQTT topics, commands, state and events (pure: no asyncio, no broker).

Everything mux says on MQTT lives under ``<base_topic>``; the generated table in docs/reference/mqtt.md is
the contract for panel builders. Incoming messages go through :func:`parse_command`,
payload in and :class:`Command` or :class:`CommandError` out, so a hostile or broken
panel can never do more than earn an ``error`` message. Outgoing state is described by
:func:`state_messages` as a mapping topic → payload; the bridge publishes only what
changed, and everything again after a reconnect. :func:`event_message` is one message
on the ``event`` topic (not retained), for automations. Home Assistant discovery is in
:mod:`mux.frontends.mqtt_discovery`.

The clipboard's two buttons (``clipboard/copy/set``, ``clipboard/paste/set``) take any
payload (Home Assistant's button sends ``PRESS``): no text ever travels over MQTT, in
either direction; :func:`clipboard_event_text` says what happened in names and a count.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from mux.frontends.mqtt_discovery import DETACHED, DETACHED_ALIASES, LED_NAMES

MAX_PAYLOAD = 1024  # bytes; every command payload is a short word or name
PERSONA_ACTIONS = ("start", "stop", "restart")
CLIPBOARD_ACTIONS = ("copy", "paste")  # clipboard/<action>/set: mux's own clipboard (mux.app.clipboard)


@dataclass(frozen=True)
class Command:
    """What a panel asked for: ``switch`` to a persona (``seat``: of that seat, with
    ``[[seat]]`` tables: :mod:`mux.frontends.mqtt_seats`; ``persona`` may then be ``next`` or
    ``previous``), a persona ``action``, a device move, or a ``clipboard`` action
    (copy/paste: the active persona's, ``persona`` empty)."""

    kind: str  # "switch" | "persona" | "device" | "clipboard"
    persona: str
    action: str = ""  # start/stop/restart; attach/detach; copy/paste
    device: str = ""
    seat: str | None = None  # a switch of this seat (None: the node's active/set)


@dataclass(frozen=True)
class CommandError:
    """A refused command: the ``error`` message's fields (``persona``: whom it was for, if known)."""

    topic: str
    payload: str
    error: str
    persona: str | None = None

    def to_json(self) -> str:
        return json.dumps({"topic": self.topic, "payload": self.payload, "error": self.error})


def show_payload(payload: bytes) -> str:
    """The payload as text for an error message: decoded if possible, short either way."""
    text = payload[:200].decode("utf-8", errors="backslashreplace")
    return text + ("..." if len(payload) > 200 else "")


def payload_text(payload: bytes) -> tuple[str, str | None]:
    """A command's payload as stripped text, and what is wrong with it (None: nothing):
    not UTF-8, or empty. Shared by every command topic."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "", "payload is not valid UTF-8"
    return text, None if text else "empty payload"


def parse_command(topic: str, payload: bytes, base: str, personas: Sequence[str],
                  devices: Sequence[str] = ()) -> Command | CommandError:
    """Turn one incoming message into a command, or say exactly what is wrong with it.

    Command topics: ``<base>/active/set`` (a persona name), ``<base>/persona/<name>/set``
    (``start``, ``stop``, ``restart``), ``<base>/persona/<name>/devices/set``
    (``attach <device>`` or ``detach <device>``; a bare device id means attach),
    ``<base>/device/<id>/set`` (a persona name to move the device there, or ``detached``
    to detach it, also ``none`` as before; the device select's command),
    ``<base>/clipboard/copy/set`` and ``<base>/clipboard/paste/set`` (any payload up to
    the size limit, even none: the buttons' ``PRESS``; the payload is never used).
    """

    def error(message: str) -> CommandError:
        return CommandError(topic, show_payload(payload), message)

    if len(payload) > MAX_PAYLOAD:
        return error(f"payload too large ({len(payload)} bytes; at most {MAX_PAYLOAD})")
    parts = topic[len(base) + 1:].split("/") if topic.startswith(base + "/") else []
    if len(parts) == 3 and parts[0] == "clipboard" and parts[1] in CLIPBOARD_ACTIONS and parts[2] == "set":
        return Command("clipboard", "", parts[1])
    text, problem = payload_text(payload)
    if problem is not None:
        return error(problem)
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
    if len(parts) == 3 and parts[0] == "device" and parts[2] == "set":
        device = parts[1]
        if device not in devices:
            return error(f"unknown device {device!r} in topic (devices: {', '.join(devices) or 'none'})")
        if text == DETACHED or text in DETACHED_ALIASES:
            return Command("device", "", "detach", device)
        if text not in personas:
            return error(f"unknown persona {text!r} (personas: {known}, or {DETACHED} to detach)")
        return Command("device", text, "attach", device)
    clipboard = ", ".join(f"clipboard/{action}/set" for action in CLIPBOARD_ACTIONS)
    return error("no such command topic (commands: active/set, persona/<name>/set, "
                 f"persona/<name>/devices/set, device/<id>/set, {clipboard})")


def state_messages(base: str, active: str | None, states: Mapping[str, str],
                   leds: Mapping[str, Mapping[str, bool] | None],
                   devices: Mapping[str, list[Any]] | None = None,
                   owners: Mapping[str, str | None] | None = None,
                   ready: Mapping[str, bool] | None = None,
                   audio: Mapping[str, str] | None = None) -> dict[str, str]:
    """Retained state as topic → payload (personas with unknown LEDs publish none).

    ``active`` is left out until a persona is active: a retained select state must be one
    of the select's options (Home Assistant logs an error for an empty one).

    ``owners`` maps each device to the persona holding it (None: detached); ``ready``
    whether each persona's guest is ready for work (``persona/<name>/ready``: true/false);
    ``audio`` each persona's audio state (``persona/<name>/audio``: live, muted, ducked...).
    """
    messages = {f"{base}/active": active} if active else {}
    for name, state in states.items():
        messages[f"{base}/persona/{name}/state"] = state
        messages[f"{base}/persona/{name}/availability"] = "online" if state == "running" else "offline"
        if ready is not None and name in ready:
            messages[f"{base}/persona/{name}/ready"] = "true" if ready[name] else "false"
        if audio is not None and name in audio:
            messages[f"{base}/persona/{name}/audio"] = audio[name]
        persona_leds = leds.get(name)
        if persona_leds is not None:
            messages[f"{base}/persona/{name}/leds"] = json.dumps(
                {led: bool(persona_leds.get(led)) for led in LED_NAMES})
        if devices is not None and name in devices:
            messages[f"{base}/persona/{name}/devices"] = json.dumps(devices[name])
    for device, owner in (owners or {}).items():
        messages[f"{base}/device/{device}"] = owner or DETACHED
    return messages


def stopped_messages(base: str, personas: Sequence[str], kept: bool = False) -> dict[str, str]:
    """What a clean stop leaves retained, before ``availability`` says ``offline``: each
    persona stopped, not ready and unavailable (``kept``: guests that run on are only
    unavailable; their state is not known while no controller watches them)."""
    messages: dict[str, str] = {}
    for name in personas:
        if not kept:
            messages[f"{base}/persona/{name}/state"] = "stopped"
            messages[f"{base}/persona/{name}/ready"] = "false"
        messages[f"{base}/persona/{name}/availability"] = "offline"
    return messages


def event_message(event_type: str, persona: str | None, source: str | None, text: str,
                  seat: str | None = None) -> str:
    """One message on ``<base>/event``: JSON ``{"event_type", "persona", "source", "text"}``, and
    ``"seat"`` too for a switch when the config has ``[[seat]]`` tables."""
    fields = {"event_type": event_type, "persona": persona, "source": source, "text": text}
    return json.dumps(fields if seat is None else {**fields, "seat": seat})


def clipboard_event_text(action: str, persona: str | None, origin: str | None, chars: int,
                         refused: str | None) -> str:
    """The ``text`` of a ``clipboard`` event: persona names and a count, never the clipboard's
    text. ``persona``: copied from or pasted into; ``origin``: where a pasted text came from;
    ``refused``: the refusal as the banner shows it (``refused: home → work``), free of text
    too (:class:`~mux.errors.ClipboardRefused`)."""
    if refused is not None:
        return refused
    plural = "" if chars == 1 else "s"
    if action == "copy":
        return f"copied {chars} character{plural} from {persona}"
    return f"pasted {chars} character{plural}" + (f" from {origin}" if origin else "") + f" into {persona}"


def attention_message(text: str, when: float) -> str:
    """One message on ``<base>/persona/<name>/attention`` (not retained): JSON ``{"text",
    "time"}``, the time (``time.time()``) as ISO 8601 in UTC with milliseconds."""
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return json.dumps({"text": text, "time": stamp})


def jpeg(image: Image.Image) -> bytes:
    """A screenshot as published on ``persona/<name>/screenshot``."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue()
