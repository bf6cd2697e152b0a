"""``mqtt_nodes_switch_ms``: a switch on one of five controllers sharing one broker.

Five controllers (nodes ``n0`` ... ``n4``, each under its own ``mux/<node>`` topics, as
``mux run`` serves them without a ``base_topic``) run in this process on one private
loopback mosquitto. ``n2`` has two running ``console`` personas; the other four have one
persona each, configured but not booted (their bridges are connected and listening).
A panel client publishes ``mux/n2/active/set`` and times it until ``mux/n2/active`` comes
back with the new persona, alternating between the two, ``switches`` times; it listens
to every node's ``active`` meanwhile, and a switch any other node published would be
counted in ``mqtt_nodes_strays`` (expected 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Any

from mux.app.controller import Controller
from mux.config import Config, MqttSection, MuxSection, PersonaConfig

NODES = 5
TARGET = "n2"
NAMES = ("work", "home")


async def bench_mqtt_nodes(port: int, switches: int = 200) -> dict[str, Any]:
    """``mqtt_nodes_switch_ms`` {p50, p99, n} (see the module docstring)."""
    import aiomqtt

    from mux.frontends.mqtt import MqttBridge
    from mux.frontends.mqtt_client import NO_DELAY

    bridges: dict[str, MqttBridge] = {}
    async with contextlib.AsyncExitStack() as stack:
        for i in range(NODES):
            node = f"n{i}"
            mqtt = MqttSection(url=f"mqtt://127.0.0.1:{port}", node_id=node)
            personas = ((PersonaConfig(NAMES[0]), PersonaConfig(NAMES[1])) if node == TARGET
                        else (PersonaConfig(NAMES[0], autostart=False),))
            config = Config(mux=MuxSection(accel="tcg"), personas=personas, mqtt=mqtt)
            bridges[node] = MqttBridge(mqtt)
            controller = Controller(config, frontends=[bridges[node]], progress=lambda m: None)
            await stack.enter_async_context(controller)
        for bridge in bridges.values():
            await asyncio.wait_for(bridge.connected.wait(), 30)
        panel = await stack.enter_async_context(aiomqtt.Client("127.0.0.1", port, socket_options=[NO_DELAY]))
        await panel.subscribe("mux/+/active", qos=1)
        messages = aiter(panel.messages)
        samples: list[float] = []
        strays = 0
        for i in range(switches + 1):
            target = NAMES[i % 2]
            t0 = time.perf_counter()
            await panel.publish(f"mux/{TARGET}/active/set", target, qos=1)
            while True:
                message = await asyncio.wait_for(anext(messages), 120)  # the first may boot nothing
                if message.topic.value != f"mux/{TARGET}/active":
                    strays += 1
                elif message.payload == target.encode():
                    break
            if i:  # the first answers the retained active of the startup switch
                samples.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return {"mqtt_nodes_switch_ms": {"p50": round(q[49], 4), "p99": round(q[98], 4), "n": len(samples)},
            "mqtt_nodes_strays": strays}
