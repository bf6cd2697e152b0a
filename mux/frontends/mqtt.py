"""The MQTT bridge: a home-lab panel (Home Assistant) watches and steers mux.

The bridge is a :class:`~mux.app.api.Frontend`: it talks to mux only through
:class:`~mux.app.api.ControlAPI` and hears of changes through its one event
subscription. ``async with bridge.serve(api)`` owns a TaskGroup holding the
connection loop (task ``mqtt``) and every command being carried out (tasks
``mqtt:<kind>:<persona>``, ``mqtt:clipboard:<action>``); leaving it cancels them all and
waits for them. What a command or an event becomes is :mod:`mux.frontends.mqtt_commands`.

One long-lived loop, :meth:`MqttBridge.run`, keeps a connection to the broker: an
``async with aiomqtt.Client`` inside a reconnect loop with capped exponential back-off
(as aiomqtt's docs recommend), with ``<base>/availability = offline`` as the last will.
``<base>`` is ``mux/<node_id>`` unless ``base_topic`` is set (:func:`~.mqtt_discovery.topic_base`);
the client id is this bridge's own: nodes share a broker without touching each other.
On connect, the retained discovery configs already on the broker are read first (up to
a marker message the bridge sends itself, ``<base>/sync``): configs of the other
``[mqtt] discovery`` mode are handed over with Home Assistant's ``migrate_discovery``
procedure, and configs of personas or devices no longer configured are cleared (see
:mod:`mux.frontends.mqtt_discovery`). The node's retained ``claim`` read on the way
decides whether this controller may serve the node (:mod:`mux.frontends.mqtt_client`):
another's live claim on the first connection is raised out of :meth:`MqttBridge.serve`
(``mux run`` refuses to start before any guest boots; later, logged and retried).
Each connection then runs four tasks in one TaskGroup:

- commands: every message on a ``.../set`` topic goes through the pure
  :func:`~mux.frontends.mqtt_topics.parse_command`; a refused one earns one ``error`` message, a
  good one goes to the API (switches through the same switcher as hotkeys) in its own
  task, so a slow device move does not hold up the next message. A command mux cannot
  carry out (a :class:`~mux.errors.MuxError`) earns an ``error`` message too; anything
  else is a bug, logged with its traceback (and reported as an internal error);
- state: retained topics derived from the controller (active persona, each seat's with
  ``[[seat]]`` tables: :mod:`mux.frontends.mqtt_seats`, states, LEDs,
  devices) are recomputed on every change notification (and every second as a safety
  net) and only what changed is published; a new connection starts from nothing, so
  everything is re-published after a broker restart;
- screenshots: every ``screenshot_interval_s``, each running persona's latest
  back-buffered frame as JPEG, published only when it changed in a way a person would
  notice (:func:`mux.display.change.noticeable`: a blinking cursor or a clock's seconds
  are not a change);
- events: switches, crashes, refused commands, requests for attention and clipboard
  copies and pastes (names and a count, never the text) as JSON on
  ``<base>/event``, and each request for attention on ``<base>/persona/<name>/attention``
  too (none retained; an event while disconnected is dropped), for automations.

On a clean stop the bridge leaves every persona ``stopped`` (mux stops the guests as it
exits; not with ``keep_guests = "always"``, when they run on) and its ``availability``
``offline``, in that order, then clears its ``claim``. The bridge never stops the
controller: broker trouble is logged and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiomqtt
from PIL import Image

from mux.app.api import ControlAPI
from mux.config import MqttSection
from mux.display.change import noticeable
from mux.errors import ControlError, MuxError
from mux.frontends.mqtt_client import (
    cancel_until_done,
    claim_holder,
    claim_message,
    claimed_error,
    client_id,
    client_options,
    raise_if_cancelled,
)
from mux.frontends.mqtt_commands import CommandHandling
from mux.frontends.mqtt_discovery import (
    MIGRATE,
    discovery_messages,
    discovery_mode_of,
    migration_plan,
    safe_node_id,
    support_url,
    topic_base,
)
from mux.frontends.mqtt_seats import is_seat_topic, seat_state_messages, seat_views
from mux.frontends.mqtt_topics import (
    CommandError,
    event_message,
    jpeg,
    parse_command,
    state_messages,
    stopped_messages,
)

log = logging.getLogger(__name__)
BACKOFF_S = (0.5, 30.0)  # first and largest wait between reconnects
SAFETY_REFRESH_S = 1.0
SYNC_TIMEOUT_S = 5.0  # waiting for the broker's retained discovery configs on connect
FIRST_VERDICT_S = 15.0  # serve() waits this long at most for the first connection's claim check


class MqttBridge(CommandHandling):
    """Publishes mux's state and takes commands; see the module docstring (what it does with
    a command or an event: :mod:`mux.frontends.mqtt_commands`)."""

    api: ControlAPI  # set by serve()

    def __init__(self, config: MqttSection) -> None:
        self.config = config
        self.base = topic_base(config.node_id, config.base_topic)
        self.identifier = client_id("mux", config.node_id)
        self._verdict: asyncio.Future[None] | None = None  # the first connection's claim check
        self.connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._published: dict[str, str] = {}
        self._screens: dict[str, Image.Image] = {}  # the last screenshot published of each
        self._client: aiomqtt.Client | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (topic, payload)
        self._support_url = support_url()

    @contextlib.asynccontextmanager
    async def serve(self, api: ControlAPI) -> AsyncIterator[MqttBridge]:
        """Bridge ``api`` to the broker while inside (see the module docstring)."""
        self.api = api
        unsubscribe = api.subscribe(self._on_event)
        self._verdict = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._spawn(self.run(), "mqtt")
                try:
                    with contextlib.suppress(TimeoutError):  # a slow broker: start, keep trying
                        await asyncio.wait_for(asyncio.shield(self._verdict), FIRST_VERDICT_S)
                    yield self
                finally:
                    self._group = None
                    await cancel_until_done(self._tasks)
        except* ControlError as claimed:  # out of the TaskGroup's exception group: mux run says it
            raise claimed.exceptions[0] from None
        finally:
            unsubscribe()

    def _decided(self, error: ControlError | None = None) -> None:
        """The first connection attempt's outcome is known (``error``: this node is claimed)."""
        if self._verdict is not None and not self._verdict.done():
            self._verdict.set_exception(error) if error else self._verdict.set_result(None)

    def _spawn(self, coro: Any, name: str) -> None:
        assert self._group is not None, "the bridge is not being served"
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, event_type: str, persona: str | None, source: str | None, text: str,
               *also: tuple[str, str], seat: str | None = None) -> None:
        """Queue one ``event`` message and ``also`` (topic under the base, payload): dropped
        while not connected (events are not retained)."""
        if self._client is not None:
            message = event_message(event_type, persona, source, text, seat)
            self._events.put_nowait((f"{self.base}/event", message))
            for topic, payload in also:
                self._events.put_nowait((f"{self.base}/{topic}", payload))

    def notify(self) -> None:
        """Something in mux changed: recompute the retained state soon."""
        self._changed.set()

    # --- connection -------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled; then say ``offline`` (retained) and leave."""
        delay = BACKOFF_S[0]
        while True:
            problem: Exception | None = None
            try:
                async with aiomqtt.Client(**client_options(self.config, self.identifier, aiomqtt.Will(
                        f"{self.base}/availability", "offline", qos=1, retain=True))) as client:
                    self._client = client
                    delay = BACKOFF_S[0]
                    try:
                        await self._session(client)
                    finally:
                        self._client = None
                        self.connected.clear()
                        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                            await _say_offline(client, self.base, self.api.names,
                                               self.api.guests_outlive_stop)
            except* (ControlError, aiomqtt.MqttError) as group:  # the session's TaskGroup wraps it
                problem = group.exceptions[0]
            if isinstance(problem, ControlError) and self._verdict is not None and not self._verdict.done():
                self._decided(problem)  # serve() raises it: this controller does not start
                return
            log.warning("MQTT %s: %s; reconnecting in %.1fs", self.config.url, problem, delay)
            self._decided()  # no broker yet: mux starts, and keeps trying
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    async def _session(self, client: aiomqtt.Client) -> None:
        self._published.clear()
        self._screens.clear()
        while not self._events.empty():
            self._events.get_nowait()
        prefix, node = self.config.discovery_prefix, safe_node_id(self.config.node_id)
        await client.subscribe(f"{self.base}/#", qos=1)
        await client.subscribe(f"{prefix}/status", qos=1)
        await client.subscribe(f"{prefix}/+/{node}/+/config", qos=1)
        await client.subscribe(f"{prefix}/device/{node}/config", qos=1)
        retained, early = await self._read_retained(client)
        kept = {m.topic.value: _payload(m) for m in early if m.retain}
        holder = claim_holder(kept.get(f"{self.base}/claim"), kept.get(f"{self.base}/availability"))
        if holder is not None and holder.get("client") != self.identifier:
            raise claimed_error(self.config.node_id, self.base, self.config.url, holder)
        await client.publish(f"{self.base}/claim", claim_message(self.identifier), qos=1, retain=True)
        self._decided()
        migrate, clear = migration_plan(retained, self._discovery(), prefix, self.config.node_id)
        for topic in migrate:  # Home Assistant's migrate_discovery: hand over, publish, clear
            await client.publish(topic, json.dumps(MIGRATE), qos=1, retain=True)
        await self._publish_discovery(client)
        for topic in clear:
            await client.publish(topic, b"", qos=1, retain=True)
        await self._publish_changes(client)
        await client.publish(f"{self.base}/availability", "online", qos=1, retain=True)
        log.info("MQTT connected to %s, topics under %s/", self.config.url, self.base)
        self.connected.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._state_loop(client), name="mqtt:state")
            group.create_task(self._screenshot_loop(client), name="mqtt:screenshots")
            group.create_task(self._event_loop(client), name="mqtt:events")
            for message in early:
                await self._on_message(client, message)
            async for message in client.messages:
                await self._on_message(client, message)

    async def _read_retained(self, client: aiomqtt.Client) -> tuple[dict[str, bytes], list[aiomqtt.Message]]:
        """The retained discovery configs of this node, up to our own ``sync`` marker.

        The broker sends retained messages as it grants a subscription, so all of them
        arrive before a message published afterwards. Returns them (topic → payload) and
        the other messages met meanwhile (commands: handled once the session runs).
        """
        token = f"{id(client)}-{asyncio.get_running_loop().time()}"
        await client.publish(f"{self.base}/sync", token, qos=1)
        retained: dict[str, bytes] = {}
        early: list[aiomqtt.Message] = []
        prefix = self.config.discovery_prefix
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SYNC_TIMEOUT_S):
                async for message in client.messages:
                    payload = _payload(message)
                    if message.topic.value == f"{self.base}/sync" and payload == token.encode():
                        break
                    if discovery_mode_of(message.topic.value, prefix, self.config.node_id):
                        retained[message.topic.value] = payload
                    else:
                        early.append(message)
        return retained, early

    def _discovery(self) -> dict[str, dict[str, Any]]:
        c = self.config
        devices = [d["id"] for d in self.api.status()["devices"]]
        seats = {seat.name: seat.personas for seat in self._seats()}
        return discovery_messages(c.discovery_prefix, c.node_id, self.base, self.api.names, devices,
                                  c.discovery, self._support_url, seats)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        for topic, payload in self._discovery().items():
            await client.publish(topic, json.dumps(payload), qos=1, retain=True)

    # --- incoming ---------------------------------------------------------------------

    async def _on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = _payload(message)
        prefix = self.config.discovery_prefix
        if topic == f"{prefix}/status":
            if payload == b"online":
                await self._publish_discovery(client)
            return
        if discovery_mode_of(topic, prefix, self.config.node_id):
            # a config that is not ours now (a persona or device no longer configured)
            if payload and payload != json.dumps(MIGRATE).encode() and topic not in self._discovery():
                await client.publish(topic, b"", qos=1, retain=True)
            return
        if is_seat_topic(topic, self.base) and await self._on_seat_message(client, bool(message.retain),
                                                                           topic, payload):
            return
        if not topic.endswith("/set"):
            return  # our own retained state, echoed back by the broker
        devices = [d["id"] for d in self.api.status()["devices"]]
        command = parse_command(topic, payload, self.base, self.api.names, devices)
        if isinstance(command, CommandError):
            await self._refuse(command)
            return
        self._spawn(self._carry_out(command, topic, payload),
                    f"mqtt:{command.kind}:{command.persona or command.action}")

    async def _refuse(self, error: CommandError) -> None:
        log.warning("MQTT %s: refused %r: %s", error.topic, error.payload[:60], error.error)
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(f"{self.base}/error", error.to_json(), qos=1)
        self._event("refused", error.persona, "mqtt", f"{error.topic} {error.payload!r}: {error.error}")

    # --- outgoing ---------------------------------------------------------------------

    def _state(self) -> dict[str, str]:
        status = self.api.status()
        personas = status["personas"]
        leds = {p["name"]: p["leds"] for p in personas}
        devices = {n: self.api.devices(n) for n in self.api.names}
        owners = {d["id"]: d["persona"] for d in status["devices"]}
        messages = state_messages(self.base, status["active"], {p["name"]: p["state"] for p in personas},
                                  leds, devices, owners, {p["name"]: bool(p.get("ready")) for p in personas},
                                  {p["name"]: p["audio"] for p in personas if "audio" in p})
        seats = seat_views(status, self.api.explicit_seats, self.api.names)
        return messages | seat_state_messages(self.base, seats)  # active: the first seat's

    async def _publish_changes(self, client: aiomqtt.Client) -> None:
        self._changed.clear()
        for topic, payload in self._state().items():
            if self._published.get(topic) != payload:
                await client.publish(topic, payload, qos=1, retain=True)
                self._published[topic] = payload

    async def _state_loop(self, client: aiomqtt.Client) -> None:
        while True:
            raise_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SAFETY_REFRESH_S):
                    await self._changed.wait()
            await self._publish_changes(client)

    async def _event_loop(self, client: aiomqtt.Client) -> None:
        while True:
            raise_if_cancelled()
            topic, payload = await self._events.get()
            await client.publish(topic, payload, qos=1)

    async def _screenshot_loop(self, client: aiomqtt.Client) -> None:
        while True:
            raise_if_cancelled()
            for persona in self.api.status()["personas"]:
                name = persona["name"]
                if persona["state"] != "running":
                    continue
                try:
                    image = await self.api.screenshot(name)
                except MuxError as exc:
                    log.debug("MQTT: no screenshot of %s: %s", name, exc)
                    continue
                # Only a change a person would notice (not a blinking cursor): mux.display.change.
                if await asyncio.to_thread(noticeable, self._screens.get(name), image):
                    picture = await asyncio.to_thread(jpeg, image)
                    topic = f"{self.base}/persona/{name}/screenshot"
                    await client.publish(topic, picture, qos=0, retain=True)
                    self._screens[name] = image
            await asyncio.sleep(self.config.screenshot_interval_s)


def _payload(message: aiomqtt.Message) -> bytes:
    return message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()


async def _say_offline(client: aiomqtt.Client, base: str, names: Sequence[str], kept: bool) -> None:
    """A clean stop: every persona ``stopped`` (mux stops them as it exits; ``kept``: they run
    on, and are only unavailable), then ``offline``."""

    async def say() -> None:
        for topic, payload in stopped_messages(base, names, kept).items():
            await client.publish(topic, payload, qos=1, retain=True)
        await client.publish(f"{base}/availability", "offline", qos=1, retain=True)
        await client.publish(f"{base}/claim", b"", qos=1, retain=True)

    with contextlib.suppress(aiomqtt.MqttError, asyncio.CancelledError):
        await asyncio.shield(say())
