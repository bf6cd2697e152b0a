"""What the MQTT bridge does with what it hears: commands from the broker, events from mux.

A mixin of :class:`~mux.frontends.mqtt.MqttBridge` (kept apart so the bridge's connection
handling stays short). Two directions, each a plain translation:

- a parsed :class:`~mux.frontends.mqtt_topics.Command` (a seat's command too, with
  ``[[seat]]`` tables: :mod:`mux.frontends.mqtt_seats`) becomes one
  :class:`~mux.app.api.ControlAPI` call (:meth:`CommandHandling._carry_out`, in the task the
  bridge gave it). A :class:`~mux.errors.MuxError` is a refused command: one ``error``
  message and a ``refused`` event (:meth:`MqttBridge._refuse`); anything else is a bug in
  mux, logged with its traceback and reported as an internal error. Nothing is raised.
- an event of the hub (:mod:`mux.app.events`) becomes at most one ``event`` message (a
  switch names its seat when the config has ``[[seat]]`` tables; and,
  for a request for attention, one ``persona/<name>/attention`` message): switches,
  crashes, requests for attention, and clipboard copies and pastes, made or refused
  (:func:`~mux.frontends.mqtt_topics.clipboard_event_text`: names and a count; the
  clipboard's text never reaches MQTT, nor does it cross the control API's events).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

import aiomqtt

from mux.app.api import (
    AttentionRequested,
    ClipboardChanged,
    ControlAPI,
    Event,
    StateChanged,
    Switched,
)
from mux.errors import MuxError
from mux.frontends.mqtt_seats import WALKS, SeatView, parse_seat_command, seat_views, stale_seat_state
from mux.frontends.mqtt_topics import (
    Command,
    CommandError,
    attention_message,
    clipboard_event_text,
)

log = logging.getLogger("mux.frontends.mqtt")  # the bridge's own logger: one place to look


class CommandHandling:
    """``_carry_out`` and ``_on_event``; the bridge provides what is declared here."""

    api: ControlAPI
    base: str

    def notify(self) -> None:
        raise NotImplementedError

    def _event(self, event_type: str, persona: str | None, source: str | None, text: str,
               *also: tuple[str, str], seat: str | None = None) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        raise NotImplementedError

    async def _refuse(self, error: CommandError) -> None:
        raise NotImplementedError

    def _on_event(self, event: Event) -> None:
        """The hub's subscriber: recompute the state soon; queue the event's message, if any."""
        self.notify()
        if isinstance(event, Switched) and self.api.explicit_seats:  # which seat: mqtt_seats
            self._event("switched", event.new, event.source, f"seat {event.seat} switched from "
                        f"{event.old or 'none'} to {event.new or 'none'}", seat=event.seat)
        elif isinstance(event, Switched):
            self._event("switched", event.new, event.source, f"switched from {event.old} to {event.new}")
        elif isinstance(event, StateChanged) and event.state == "crashed":
            self._event("crashed", event.persona, "guest", f"persona {event.persona!r} crashed")
        elif isinstance(event, AttentionRequested):
            self._event("attention", event.persona, "guest", event.text,
                        (f"persona/{event.persona}/attention", attention_message(event.text, event.time)))
        elif isinstance(event, ClipboardChanged):
            self._event("clipboard", event.persona, event.source, clipboard_event_text(
                event.action, event.persona, event.origin, event.chars, event.refused))

    def _seats(self) -> list[SeatView]:
        """The seats published on MQTT (none without ``[[seat]]`` tables)."""
        return seat_views(self.api.status(), self.api.explicit_seats, self.api.names)

    async def _on_seat_message(self, client: aiomqtt.Client, retained: bool, topic: str,
                               payload: bytes) -> bool:
        """A message on a ``<base>/seat/...`` topic: a retained seat state no configured seat
        publishes is cleared; a seat command is carried out in its own task, or refused.
        Returns False for a command topic without ``[[seat]]`` tables (it is then the unknown
        topic it always was: :func:`~mux.frontends.mqtt_topics.parse_command` refuses it)."""
        seats = self._seats()
        if not topic.endswith("/set"):
            if retained and payload and stale_seat_state(topic, self.base, seats):
                await client.publish(topic, b"", qos=1, retain=True)
            return True
        if not seats:
            return False
        command = parse_seat_command(topic, payload, self.base, seats, self.api.names)
        if isinstance(command, CommandError):
            await self._refuse(command)
        else:
            self._spawn(self._carry_out(command, topic, payload),
                        f"mqtt:switch:{command.seat}:{command.persona}")
        return True

    async def _carry_out(self, command: Command, topic: str, payload: bytes) -> None:
        """One command, in its own task; what goes wrong is reported here, never raised."""
        text = payload.decode(errors="replace")
        whom = None if command.persona in WALKS else command.persona or None  # next/previous: not a name
        try:
            if command.kind == "switch" and command.seat is not None:
                await self.api.switch(command.persona, "mqtt", seat=command.seat)
            elif command.kind == "switch":
                await self.api.switch(command.persona, "mqtt")
            elif command.kind == "persona":
                action = {"start": self.api.start, "stop": self.api.stop, "restart": self.api.restart}
                await action[command.action](command.persona)
            elif command.kind == "clipboard":  # the reply (names and a count) comes as an event
                clipboard = {"copy": self.api.clipboard_copy, "paste": self.api.clipboard_paste}
                await clipboard[command.action]("mqtt")
            elif command.action == "attach":
                await self.api.attach(command.device, command.persona)
            else:
                await self.api.detach(command.device, command.persona or None)
        except MuxError as exc:
            await self._refuse(CommandError(topic, text, str(exc), whom))
        except Exception as exc:  # a bug in mux: logged with its traceback, the panel told
            log.exception("MQTT %s: carrying out %r failed", topic, text[:60])
            await self._refuse(CommandError(topic, text, f"internal error in mux (see its log): {exc!r}",
                                            whom))
        self.notify()
