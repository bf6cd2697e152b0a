"""Seats on MQTT: each seat's active persona, and its command (pure: no asyncio, no broker).

A config with ``[[seat]]`` tables has several seats, each showing its own active persona
(:mod:`mux.input.seats`). On MQTT each seat has a retained ``<base>/seat/<seat>/active``
(the persona it shows, or :data:`NO_PERSONA` when it shows none: Home Assistant's select
reads ``none`` as "no option") and a command ``<base>/seat/<seat>/active/set`` (a persona
the seat may show, ``next`` or ``previous``), and Home Assistant a select per seat
(:func:`mux.frontends.mqtt_discovery.entities`). The node's ``active`` topic and select
keep following the first seat, as the control API's ``active`` does.

A config without ``[[seat]]`` has one implicit seat and keeps exactly the topics it had:
:func:`seat_views` is empty then, so nothing here publishes, parses or discovers anything,
and a ``seat/...`` command is the unknown topic it always was.

Like :func:`~mux.frontends.mqtt_topics.parse_command`, :func:`parse_seat_command` turns a
message into a :class:`~mux.frontends.mqtt_topics.Command` or says exactly what is wrong
(payload bounds, an unknown seat or persona, a persona the seat may not show); refusals a
seat makes at switch time (the persona is active on another seat) come from the control
API as :class:`~mux.errors.SeatError` and reach the ``error`` topic the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mux.frontends.mqtt_topics import MAX_PAYLOAD, Command, CommandError, payload_text, show_payload
from mux.input.hotkeys import NEXT, PREVIOUS

NO_PERSONA = "none"  # seat/<seat>/active of a seat that shows no persona
SEAT_COMMAND = "seat/<seat>/active/set"
WALKS = (NEXT, PREVIOUS)


@dataclass(frozen=True)
class SeatView:
    """One seat as the bridge publishes it: its name, the persona it shows (None: none) and
    the personas it may show, in config order."""

    name: str
    active: str | None
    personas: tuple[str, ...]


def seat_views(status: Mapping[str, Any], explicit: bool, names: Sequence[str]) -> list[SeatView]:
    """The seats of ``status()["seats"]`` to publish: none unless the config has ``[[seat]]``
    tables (``explicit``). A seat whose ``personas`` is missing or None may show all ``names``."""
    if not explicit:
        return []
    views = []
    for seat in status.get("seats") or ():
        personas = seat.get("personas")
        views.append(SeatView(str(seat["name"]), seat.get("active"),
                              tuple(names if personas is None else personas)))
    return views


def seat_topic(base: str, seat: str) -> str:
    """The retained topic of ``seat``'s active persona."""
    return f"{base}/seat/{seat}/active"


def seat_state_messages(base: str, seats: Sequence[SeatView]) -> dict[str, str]:
    """Retained state, topic → payload: ``active`` follows the first seat (:data:`NO_PERSONA`
    while it shows none), and each seat's ``seat/<seat>/active``. Empty without seats."""
    if not seats:
        return {}
    messages = {f"{base}/active": seats[0].active or NO_PERSONA}
    for seat in seats:
        messages[seat_topic(base, seat.name)] = seat.active or NO_PERSONA
    return messages


def is_seat_topic(topic: str, base: str) -> bool:
    """Whether ``topic`` is under ``<base>/seat/``."""
    return topic.startswith(f"{base}/seat/")


def stale_seat_state(topic: str, base: str, seats: Sequence[SeatView]) -> bool:
    """Whether ``topic`` is a seat's retained ``active`` that no configured seat publishes (a
    seat removed from the config, or every seat when the config has none now): the bridge
    clears it, as it clears the discovery configs of what is gone."""
    parts = topic[len(base) + 1:].split("/") if is_seat_topic(topic, base) else []
    return (len(parts) == 3 and parts[2] == "active"
            and parts[1] not in [seat.name for seat in seats])


def parse_seat_command(topic: str, payload: bytes, base: str, seats: Sequence[SeatView],
                       personas: Sequence[str]) -> Command | CommandError:
    """One message on a ``<base>/seat/...`` command topic, as a ``switch`` command for one
    seat (``Command.seat``), or what is wrong with it.

    ``<base>/seat/<seat>/active/set`` takes a persona the seat may show, ``next`` or
    ``previous`` (they walk the seat's personas). Refused: a payload over
    :data:`~mux.frontends.mqtt_topics.MAX_PAYLOAD` bytes, invalid UTF-8 or empty, an
    unknown seat, a persona not in ``personas`` (the configured ones), or one the seat may
    not show.
    """

    def error(message: str, persona: str | None = None) -> CommandError:
        return CommandError(topic, show_payload(payload), message, persona)

    if len(payload) > MAX_PAYLOAD:
        return error(f"payload too large ({len(payload)} bytes; at most {MAX_PAYLOAD})")
    parts = topic[len(base) + 1:].split("/") if is_seat_topic(topic, base) else []
    if len(parts) != 4 or parts[2:] != ["active", "set"]:
        return error(f"no such seat command topic (seat commands: {SEAT_COMMAND})")
    names = [seat.name for seat in seats]
    if parts[1] not in names:
        return error(f"unknown seat {parts[1]!r} in topic (seats: {', '.join(names) or 'none'})")
    seat = seats[names.index(parts[1])]
    text, problem = payload_text(payload)
    if problem is not None:
        return error(problem)
    choices = f"it may show: {', '.join(seat.personas)}; or {', '.join(WALKS)}"
    if text in WALKS:
        return Command("switch", text, seat=seat.name)
    if text not in personas:
        return error(f"unknown persona {text!r} ({choices})")
    if text not in seat.personas:
        return error(f"seat {seat.name!r} may not show persona {text!r} ({choices})", text)
    return Command("switch", text, seat=seat.name)
