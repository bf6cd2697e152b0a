"""Both ends of a broker connection: the options the bridge and remote clients share, the
node claim, and the remote client behind ``mux ctl --mqtt`` and ``mux ps --mqtt``.

**Connection options** (:func:`client_options`): the ``[mqtt]`` table's url, user,
password and TLS files, for the bridge and for a script on another machine alike (the
broker's accounts and TLS are the only security boundary: whoever may publish under a
node's topics may steer it). Every connection has its own client id, so two processes
never take each other's session over.

**The node claim** (``<base>/claim``, retained JSON ``{"host", "pid", "client", "since"}``):
each controller publishes it when it connects, and clears it (an empty retained payload)
on a clean stop. MQTT gives a connection one last will, and the bridge's marks
``<base>/availability`` ``offline``; so a claim counts only while ``availability`` says
``online`` (:func:`claim_holder`): a controller that died leaves a claim the broker's
last will has already made stale, and it blocks nobody. A second controller of the same
node finds a live claim of another client before it publishes anything and refuses to
start (:func:`claimed_error`: a :class:`~mux.errors.ControlError`, as when another
controller listens on the control socket).

**The remote client** (:class:`RemoteNode`): subscribes to ``<base>/#``, reads the
retained state up to a marker of its own on ``<base>/sync``, and publishes a command on
the same ``.../set`` topics a panel uses; it then waits for the retained state the
command changes (``active``, ``persona/<name>/state``), or for the ``error`` the bridge
publishes for a refused command, or gives up after a timeout. :func:`list_nodes` reads
the retained discovery configs (each names its node's base topic) and the
``availability`` and ``claim`` topics under ``mux/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import aiomqtt

from mux.config import MqttSection
from mux.errors import ControlError
from mux.frontends.mqtt_discovery import DEFAULT_BASE, safe_node_id, topic_base

KEEPALIVE_S = 30
NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
#: What each remote command waits for: the retained topic (under the base) and its payload.
DONE = {"start": "running", "stop": "stopped", "restart": "running"}


def client_id(role: str, node_id: str) -> str:
    """A client id no other connection has (``role``: ``mux`` for a bridge, ``mux-ctl``...)."""
    return f"{role}-{safe_node_id(node_id)}-{uuid.uuid4().hex[:12]}"


def client_options(config: MqttSection, identifier: str, will: aiomqtt.Will | None = None) -> dict[str, Any]:
    """``aiomqtt.Client``'s keyword arguments for the broker of ``config``."""
    url = urlparse(config.url)
    secure = url.scheme == "mqtts"
    options: dict[str, Any] = {
        "hostname": url.hostname or "localhost",
        "port": url.port or (8883 if secure else 1883),
        "username": config.username, "password": config.password,
        "identifier": identifier, "keepalive": KEEPALIVE_S,
        # commands are tiny and latency matters: no Nagle delay (40 ms on loopback)
        "socket_options": [NO_DELAY],
    }
    if will is not None:
        options["will"] = will
    if secure or config.tls_ca:
        options["tls_params"] = aiomqtt.TLSParameters(
            ca_certs=str(config.tls_ca) if config.tls_ca else None,
            certfile=str(config.tls_cert) if config.tls_cert else None,
            keyfile=str(config.tls_key) if config.tls_key else None,
            cert_reqs=ssl.CERT_REQUIRED)
    return options


def claim_message(identifier: str) -> str:
    """This process's claim of a node: ``{"host", "pid", "client", "since"}``."""
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "client": identifier,
                       "since": datetime.now(UTC).isoformat(timespec="seconds")})


def claim_holder(claim: bytes | None, availability: bytes | None) -> dict[str, Any] | None:
    """The controller holding a node, from its retained ``claim`` and ``availability``:
    None when nobody claims it or the claim is stale (``availability`` not ``online``:
    the holder stopped, or died and its last will said so)."""
    if not claim or availability != b"online":
        return None
    try:
        holder = json.loads(claim)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {"claim": claim.decode(errors="replace")}


def claimed_error(node_id: str, base: str, url: str, holder: dict[str, Any]) -> ControlError:
    """Another controller, still online, serves this node id on the broker (a
    :class:`~mux.errors.ControlError`, as for another controller on the control socket)."""
    return ControlError(
        f"MQTT node {node_id!r} is already served on {url} by the controller on host"
        f" {holder.get('host', '?')!r}, pid {holder.get('pid', '?')} (since {holder.get('since', '?')};"
        f" retained on {base}/claim): give this one another [mqtt] node_id, or stop that one")


def raise_if_cancelled() -> None:
    """End a session loop whose task was cancelled, even if Python 3.11's ``wait_for`` (in
    aiomqtt's publish) swallowed the cancel: ``cancelling()`` still counts it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_until_done(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel the tasks, again every second until each has ended.

    Once is not always enough: on Python 3.11, ``asyncio.wait_for`` (which aiomqtt uses
    for every publish) swallows a cancel that arrives together with its result.
    """
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)


def _error_for(payload: bytes, topic: str) -> str | None:
    """The reason in an ``error`` message about a command on ``topic`` (None: not about it)."""
    try:
        error = json.loads(payload)
    except ValueError:
        return None
    return str(error.get("error")) if isinstance(error, dict) and error.get("topic") == topic else None


def _payload(message: aiomqtt.Message) -> bytes:
    return message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()


class _Listener:
    """Every message of one connection: the latest payload per topic, and the order."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.latest: dict[str, bytes] = {}
        self.heard: list[tuple[str, bytes]] = []
        self._new = asyncio.Condition()

    async def listen(self) -> None:
        async for message in self.client.messages:
            async with self._new:
                self.latest[message.topic.value] = _payload(message)
                self.heard.append((message.topic.value, _payload(message)))
                self._new.notify_all()

    async def until(self, check: Callable[[], Any], timeout: float) -> Any:
        """The first true ``check()`` as messages arrive; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout), self._new:
            while not (found := check()):
                await self._new.wait()
            return found

    async def sync(self, topic: str, timeout: float) -> None:
        """Every retained message of the subscriptions so far has arrived (a marker of our own
        on ``topic``, which must be subscribed, comes back after them)."""
        token = uuid.uuid4().hex.encode()
        await self.client.publish(topic, token, qos=1)
        await self.until(lambda: (topic, token) in self.heard, timeout)


@contextlib.asynccontextmanager
async def _connected(config: MqttSection, *topics: str) -> AsyncIterator[_Listener]:
    try:
        async with aiomqtt.Client(**client_options(config, client_id("mux-ctl", config.node_id))) as client:
            listener = _Listener(client)
            for topic in topics:
                await client.subscribe(topic, qos=1)
            task = asyncio.create_task(listener.listen())
            try:
                yield listener
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await task
    except aiomqtt.MqttError as exc:
        raise ControlError(f"MQTT broker {config.url}: {exc}") from exc


class RemoteNode:
    """One node's controller, steered over the broker (see the module docstring)."""

    def __init__(self, config: MqttSection, timeout: float = 60.0) -> None:
        self.config = config
        self.node = config.node_id
        self.base = topic_base(config.node_id, config.base_topic)
        self.timeout = timeout

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[_Listener]:
        async with _connected(self.config, f"{self.base}/#") as listener:
            try:
                await listener.sync(f"{self.base}/sync", self.timeout)
            except TimeoutError:
                raise ControlError(f"MQTT broker {self.config.url} did not echo a message within"
                                   f" {self.timeout:g} s (may this user publish on {self.base}/sync?)"
                                   ) from None
            yield listener

    def _status(self, latest: dict[str, bytes]) -> dict[str, Any]:
        def text(topic: str) -> str | None:
            value = latest.get(f"{self.base}/{topic}")
            return value.decode(errors="replace") if value else None

        names = sorted({t.split("/")[-2] for t in latest
                        if t.startswith(f"{self.base}/persona/") and t.endswith("/state")
                        and t.count("/") == self.base.count("/") + 3})
        personas = []
        for name in names:
            entry: dict[str, Any] = {"name": name, "state": text(f"persona/{name}/state"),
                                     "ready": text(f"persona/{name}/ready") == "true"}
            for key in ("leds", "devices"):
                if (raw := text(f"persona/{name}/{key}")) is not None:
                    entry[key] = json.loads(raw)
            if (audio := text(f"persona/{name}/audio")) is not None:
                entry["audio"] = audio
            personas.append(entry)
        devices = [{"id": t.rsplit("/", 1)[1], "persona": text(t[len(self.base) + 1:])}
                   for t in sorted(latest) if t.startswith(f"{self.base}/device/") and t.count("/")
                   == self.base.count("/") + 2 and latest[t]]
        claim = text("claim")
        return {"node": self.node, "base_topic": self.base, "availability": text("availability") or "unknown",
                "claim": json.loads(claim) if claim else None, "active": text("active"),
                "personas": personas, "devices": devices}

    async def status(self) -> dict[str, Any]:
        """What the node's retained topics say (``availability``: ``unknown`` when the broker
        holds nothing of the node)."""
        async with self._session() as listener:
            return self._status(listener.latest)

    async def command(self, action: str, persona: str) -> dict[str, Any]:
        """``switch``, ``start``, ``stop`` or ``restart`` ``persona``; the status once done.

        Raises:
            ControlError: the node is not online, refused the command, or did not carry
                it out within the timeout.
        """
        async with self._session() as listener:
            self._check_online(listener.latest)
            if action == "switch":
                topic, payload, watched, wanted = "active/set", persona, "active", persona
            else:
                topic, payload = f"persona/{persona}/set", action
                watched, wanted = f"persona/{persona}/state", DONE[action]
            set_topic, state_topic = f"{self.base}/{topic}", f"{self.base}/{watched}"
            start = len(listener.heard)
            await listener.client.publish(set_topic, payload, qos=1)

            def done() -> tuple[str, str] | None:
                after = listener.heard[start:]
                for t, p in after:
                    if t == f"{self.base}/error" and (error := _error_for(p, set_topic)) is not None:
                        return ("error", error)
                states = [p.decode(errors="replace") for t, p in after if t == state_topic]
                if action == "restart":  # it must have left "running" first
                    left = next((i for i, s in enumerate(states) if s != wanted), None)
                    return ("ok", "") if left is not None and wanted in states[left:] else None
                current = listener.latest.get(state_topic, b"").decode(errors="replace")
                return ("ok", "") if current == wanted else None

            try:
                outcome, error = await listener.until(done, self.timeout)
            except TimeoutError:
                raise ControlError(f"node {self.node!r} did not answer within {self.timeout:g} s"
                                   f" ({state_topic} is not {wanted!r})") from None
            if outcome == "error":
                raise ControlError(f"node {self.node!r} refused {payload!r} on {set_topic}: {error}")
            return self._status(listener.latest)

    async def screenshot(self, persona: str) -> bytes:
        """The node's last published screenshot of ``persona`` (JPEG)."""
        async with self._session() as listener:
            self._check_online(listener.latest)
            picture = listener.latest.get(f"{self.base}/persona/{persona}/screenshot")
        if not picture:
            raise ControlError(f"node {self.node!r} has published no screenshot of {persona!r}"
                               f" ({self.base}/persona/{persona}/screenshot: it publishes one while the"
                               " persona runs)")
        return picture

    def _check_online(self, latest: dict[str, bytes]) -> None:
        availability = latest.get(f"{self.base}/availability")
        if availability != b"online":
            said = availability.decode(errors="replace") if availability else "nothing retained"
            raise ControlError(f"node {self.node!r} is not online on {self.config.url}"
                               f" ({self.base}/availability: {said})")


async def list_nodes(config: MqttSection, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every node the broker knows: ``{"node", "base_topic", "availability", "host", "pid"}``.

    A node is known by its retained Home Assistant discovery (which names its base topic,
    whatever ``base_topic`` its config sets), or its ``availability`` under ``mux/``.
    """
    prefix = config.discovery_prefix
    marker = f"{DEFAULT_BASE}/ctl-sync/{uuid.uuid4().hex[:8]}"
    topics = (f"{prefix}/select/+/active/config", f"{prefix}/device/+/config",
              f"{DEFAULT_BASE}/+/availability", f"{DEFAULT_BASE}/availability", marker)
    async with _connected(config, *topics) as listener:
        await listener.sync(marker, timeout)
        bases: dict[str, str] = {}  # base -> node id
        for topic, payload in listener.latest.items():
            if topic.startswith(f"{prefix}/") and payload:
                with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                    config_ = json.loads(payload)
                    select = config_["cmps"]["active"] if "cmps" in config_ else config_
                    state = str(select["state_topic"])
                    device = config_.get("dev") or config_.get("device") or {}
                    name = str(device.get("name", ""))
                    bases[state.removesuffix("/active")] = name.removeprefix("mux ") or topic.split("/")[2]
            elif topic.endswith("/availability"):
                base = topic.removesuffix("/availability")
                bases.setdefault(base, base.split("/")[-1])
        for base in bases:
            await listener.client.subscribe(f"{base}/availability", qos=1)
            await listener.client.subscribe(f"{base}/claim", qos=1)
        await listener.sync(marker, timeout)
        nodes = []
        for base, node in sorted(bases.items(), key=lambda item: item[1]):
            availability = listener.latest.get(f"{base}/availability", b"")
            holder = claim_holder(listener.latest.get(f"{base}/claim"), availability) or {}
            nodes.append({"node": node, "base_topic": base,
                          "availability": availability.decode(errors="replace") or "unknown",
                          "host": holder.get("host"), "pid": holder.get("pid"), "since": holder.get("since")})
        return nodes
