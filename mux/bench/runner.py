"""``mux bench``: performance figures as ratios against a baseline from the same run.

The display's figures (``switch_latency_ms``, ``live_fps``, ``live_fps_ratio``,
``controller_cpu_percent``, ``idle_cpu_percent``, ``controller_rss_mb``) are measured in
:mod:`mux.bench.display`; typing (``type_chars_per_s``, ``type_lost_keys``) and
``mqtt_idle_screenshots_per_hour`` in :mod:`mux.bench.keys`.

``mux bench --only KEY,...`` runs only the parts that measure those keys (:data:`PARTS`;
each part reports all of its keys), e.g. ``--only live_fps,idle_cpu_percent``.

The machine is shared and noisy, so every figure is measured next to its baseline,
interleaved sample by sample, and reported both raw (milliseconds) and as a ratio:

- ``qmp_roundtrip_ms``: a bare QMP ``input-send-event`` to a running persona;
- ``input_latency_ms``: an event entering the router until QEMU acknowledges the
  command it became (router, switch lock, dispatch, QMP);
- ``input_latency_ratio``: ``input_latency_ms.p99 / qmp_roundtrip_ms.p50`` (target <= 1.5),
  and the like-for-like ``input_latency_ratio_p50`` and ``input_latency_ratio_p99``;
- ``mqtt_switch_latency_ms``: publishing ``active/set`` until ``active`` comes back, next
  to ``mqtt_roundtrip_ms``, a bare publish-and-receive on the same private broker;
- ``mqtt_nodes_switch_ms`` {p50, p99}: the same on one of five controllers sharing one
  broker (:mod:`mux.bench.nodes`);
- ``needle_search_ms``, ``ocr_ms``: see :mod:`mux.bench.needles`;
- ``snapshot_speedup``: seconds until two personas are ready when cold-booted
  (``snapshot_cold_boot_s``) over the same when restored from a snapshot
  (``snapshot_restore_s``); target >= 5.
- ``debian_boot_s``: the built-in ``debian`` image, BIOS, TCG, until its guest agent
  answers (:mod:`mux.bench.debian`; ``null`` when the image is not built).
- ``desktop_boot_s``: the built-in ``desktop`` image, BIOS, TCG, virtio GPU, until its X
  session prints ``MUX-READY`` (:mod:`mux.bench.desktop`; ``null`` when not built).
- ``clipboard_copy_ms`` {p50, p99}: text set in one ``desktop`` persona's session, then
  ``scrolllock+c``, a switch and ``scrolllock+v``, until the other's session has it
  (:mod:`mux.bench.clipboard`; ``null`` when not built).
- ``debian_restore_s``: a ``debian`` persona started from a snapshot until its agent
  answers, and ``agent_exec_ms`` {p50, p99}: ``exec true`` through the agent
  (:mod:`mux.bench.agent`; ``null`` with ``debian_agent_skipped`` when not built).
- ``audio_switch_ms`` {p50, p99}: a switch request until a private PulseAudio server shows the
  old persona's stream muted and the new one's live (:mod:`mux.bench.audio`; ``null`` with
  ``audio_skipped`` without PulseAudio, QEMU's pa backend or the debian image).
- ``replay_jobs_speedup``: 8 console scenario files replayed with ``--jobs 1`` over the
  same with ``--jobs 2`` (:mod:`mux.bench.replay_jobs`; target >= 1.5 on 2 cores).
- ``quick_boot_s``, ``quick_boot_debian_s``: ``mux run``'s start until a persona quick boot
  saved is ready again (:mod:`mux.bench.quickboot`; the debian one ``null`` when not built).
- ``switch_latency_ms_2seats``: a switch of seat two while seat one holds its persona, next to
  the same switch without seats (``switch_latency_2seats_ratio``; :mod:`mux.bench.seats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mux.app.controller import Controller
from mux.config import Config, MqttSection, MuxSection, PersonaConfig
from mux.input.events import EV_REL, EV_SYN, REL_X, InputEvent


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": round(q[49], 4), "p99": round(q[98], 4), "n": len(ordered)}


def bench_config(personas: int = 2) -> Config:
    names = ["work", "home", "lab", "play", "shop", "bank", "game", "mail"]
    return Config(mux=MuxSection(accel="tcg"),
                  personas=tuple(PersonaConfig(names[i]) for i in range(personas)))


async def bench_input(ctl: Controller, events: int) -> dict[str, Any]:
    """Interleave bare QMP round trips with routed events on the active persona."""
    assert ctl.active is not None
    persona = ctl.persona(ctl.active)
    bare_event = [{"type": "rel", "data": {"axis": "x", "value": 1}}]
    routed = [InputEvent(EV_REL, REL_X, 1), InputEvent(EV_SYN, 0, 0)]
    bare: list[float] = []
    through: list[float] = []
    for _ in range(events):
        t0 = time.perf_counter()
        await persona.send_input(bare_event)
        t1 = time.perf_counter()
        await ctl.input(routed)
        t2 = time.perf_counter()
        bare.append((t1 - t0) * 1000)
        through.append((t2 - t1) * 1000)
    qmp = percentiles(bare)
    latency = percentiles(through)
    return {"qmp_roundtrip_ms": qmp, "input_latency_ms": latency,
            # the target: routed p99 over bare p50 (<= 1.5)
            "input_latency_ratio": round(latency["p99"] / qmp["p50"], 3),
            # like for like, less sensitive to the noise of a shared machine
            "input_latency_ratio_p50": round(latency["p50"] / qmp["p50"], 3),
            "input_latency_ratio_p99": round(latency["p99"] / qmp["p99"], 3)}


async def bench_mqtt(switches: int = 200) -> dict[str, Any]:
    """``active/set`` published until ``active`` comes back, on a private loopback mosquitto.

    The baseline is a bare MQTT round trip (publish, receive our own message) on the
    same broker in the same run.
    """
    import dataclasses

    import aiomqtt

    with _mosquitto() as port:
        if port is None:
            print("bench: mqtt skipped: mosquitto is not installed")
            return {}
        mqtt = MqttSection(url=f"mqtt://127.0.0.1:{port}", node_id="bench")
        config = dataclasses.replace(
            bench_config(2), mqtt=mqtt,
            personas=tuple(dataclasses.replace(p, autostart=False) for p in bench_config(2).personas))
        from mux.frontends.mqtt import MqttBridge
        from mux.frontends.mqtt_discovery import topic_base

        bridge, base = MqttBridge(mqtt), topic_base(mqtt.node_id, mqtt.base_topic)
        async with Controller(config, frontends=[bridge], progress=lambda m: None) as ctl, \
                aiomqtt.Client("127.0.0.1", port, socket_options=[NO_DELAY]) as panel:
            await asyncio.wait_for(bridge.connected.wait(), 10)
            await panel.subscribe(f"{base}/active", qos=1)
            await panel.subscribe("bench/echo", qos=1)
            messages = aiomqtt_messages(panel)
            switch: list[float] = []
            bare: list[float] = []
            for i in range(switches):
                target = ctl.config.names[i % 2]
                t0 = time.perf_counter()
                await panel.publish(f"{base}/active/set", target, qos=1)
                while (await anext(messages)).payload != target.encode():
                    pass
                t1 = time.perf_counter()
                await panel.publish("bench/echo", str(i), qos=1)
                await anext(messages)
                t2 = time.perf_counter()
                switch.append((t1 - t0) * 1000)
                bare.append((t2 - t1) * 1000)
    latency, baseline = percentiles(switch), percentiles(bare)
    return {"mqtt_switch_latency_ms": latency, "mqtt_roundtrip_ms": baseline,
            "mqtt_switch_latency_ratio": round(latency["p99"] / baseline["p50"], 3)}


NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def bench_snapshot(rounds: int = 1) -> dict[str, Any]:
    """``snapshot_speedup`` (see :func:`mux.scenario.snapshot.measure_speedup`), in a scratch directory."""
    from mux.scenario.snapshot import measure_speedup

    with tempfile.TemporaryDirectory(prefix="mux-bench-snapshots-") as store:
        return await measure_speedup(bench_config(2), Path(store), rounds)


def aiomqtt_messages(client: Any) -> Any:
    return aiter(client.messages)


@contextlib.contextmanager
def _mosquitto() -> Iterator[int | None]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mux-bench-") as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                        f"user {getpass.getuser()}\n")
        proc = subprocess.Popen([binary, "-c", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                    break
                time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


#: The keys ``--only`` knows, by the part of the bench that measures them (a part runs
#: when one of its keys is asked for, and reports all of its keys).
PARTS: dict[str, tuple[str, ...]] = {
    "input": ("qmp_roundtrip_ms", "input_latency_ms", "input_latency_ratio", "input_latency_ratio_p50",
              "input_latency_ratio_p99", "needle_search_ms", "ocr_ms", "ocr_dense_ms", "ocr_dense_ratio"),
    "mqtt": ("mqtt_switch_latency_ms", "mqtt_roundtrip_ms", "mqtt_switch_latency_ratio"),
    "typing": ("type_chars_per_s", "type_lost_keys"),
    "mqtt_idle": ("mqtt_idle_screenshots_per_hour",),
    "mqtt_nodes": ("mqtt_nodes_switch_ms",),
    "snapshot": ("snapshot_speedup", "snapshot_cold_boot_s", "snapshot_restore_s"),
    "switch": ("switch_latency_ms",),
    "switch_8": ("switch_latency_ms_8",),
    "live": ("live_fps", "live_cpu_ms_per_frame", "live_fps_ratio", "controller_cpu_percent"),
    "idle": ("idle_cpu_percent",),
    "idle_8": ("idle_cpu_percent_8",),
    "rss": ("controller_rss_mb",),
    "debian": ("debian_boot_s",),
    "desktop": ("desktop_boot_s",),
    "clipboard": ("clipboard_copy_ms",),
    "agent": ("debian_restore_s", "agent_exec_ms"),
    "audio": ("audio_switch_ms",),
    "replay_jobs": ("replay_jobs_speedup",),
    "quick_boot": ("quick_boot_s", "quick_boot_debian_s"),  # mux.bench.quickboot
    "seats": ("switch_latency_ms_2seats", "switch_latency_2seats_ratio"),  # mux.bench.seats
    # mux.bench.scale
    "background": ("background_low_ratio", "background_run_ratio"),
    "idle_16": ("idle_cpu_percent_16",),
    "switch_16": ("switch_latency_ms_16",),
    "rss_16": ("controller_rss_mb_16",),
    "frame_copy": ("frame_copy_ms", "frame_copy_ms_1080"),
    "live_copies": ("live_cpu_frame_in_copies",),
    "live_1080": ("live_cpu_frame_in_copies_1080",),
}


def parts_for(only: set[str] | None) -> set[str]:
    """The parts that measure the keys in ``only`` (None: all of them).

    Raises:
        ValueError: a key no part measures.
    """
    if only is None:
        return set(PARTS)
    unknown = only - {key for keys in PARTS.values() for key in keys}
    if unknown:
        known = ", ".join(key for keys in PARTS.values() for key in keys)
        raise ValueError(f"mux bench --only: unknown key {', '.join(sorted(unknown))} (known: {known})")
    return {part for part, keys in PARTS.items() if only & set(keys)}


async def run_bench(json_path: Path | None, events: int = 2000,
                    only: set[str] | None = None) -> dict[str, Any]:
    """Every figure, or only the parts measuring the keys in ``only``.

    Raises:
        ValueError: ``only`` names a key no part measures.
    """
    logging.getLogger("mux").setLevel(logging.WARNING)
    parts = parts_for(only)
    results: dict[str, Any] = {}
    if "input" in parts:
        async with Controller(bench_config(2), progress=lambda m: print(f"bench: {m}")) as ctl:
            print(f"bench: input, {events} events with {len(ctl.personas)} personas running")
            results.update(await bench_input(ctl, events))
            from mux.bench.needles import bench_needles, console_screens

            print("bench: needle search and OCR")
            results.update(bench_needles(*await console_screens(ctl)))
    if "mqtt" in parts:
        print("bench: mqtt switch latency")
        results.update(await bench_mqtt())
    from mux.bench.keys import bench_mqtt_idle, bench_typing

    if "typing" in parts:
        results.update(await bench_typing())
    if "mqtt_idle" in parts:
        with _mosquitto() as port:
            if port is not None:
                print("bench: MQTT screenshots of an idle console persona")
                results.update(await bench_mqtt_idle(port))
    if "mqtt_nodes" in parts:
        from mux.bench.nodes import bench_mqtt_nodes

        with _mosquitto() as port:
            if port is not None:
                print("bench: MQTT switch on one of five controllers sharing a broker")
                results.update(await bench_mqtt_nodes(port))
    if "snapshot" in parts:
        print("bench: snapshot speedup (cold boot vs restore, until the guests are ready)")
        results.update(await bench_snapshot())
    from mux.bench.display import bench_display
    from mux.bench.scale import bench_scale

    results.update(await bench_display(parts))
    results.update(await bench_scale(parts))
    from mux.bench.debian import bench_debian

    if "debian" in parts:
        print("bench: debian boot (BIOS, TCG) until its guest agent answers")
        results.update(await bench_debian())
    if "desktop" in parts:
        from mux.bench.desktop import bench_desktop

        print("bench: desktop boot (BIOS, TCG, virtio GPU) until its X session says MUX-READY")
        results.update(await bench_desktop())
    if "clipboard" in parts:
        from mux.bench.clipboard import bench_clipboard

        print("bench: clipboard_copy_ms: scrolllock+c, switch, scrolllock+v between two desktops")
        results.update(await bench_clipboard())
    from mux.bench.agent import bench_agent

    if "agent" in parts:
        print("bench: debian restored from a snapshot until its agent answers; exec true through the agent")
        results.update(await bench_agent())
    if "audio" in parts:
        from mux.bench.audio import bench_audio

        print("bench: audio_switch_ms: a switch until the sound server shows it (two debian guests' tones)")
        results.update(await bench_audio())
    if "replay_jobs" in parts:
        from mux.bench.replay_jobs import bench_replay_jobs

        print("bench: replay_jobs_speedup: 8 console scenario files, mux replay --jobs 2 against --jobs 1")
        results.update(await bench_replay_jobs())
    if "quick_boot" in parts:
        from mux.bench.quickboot import bench_quick_boot

        print("bench: quick_boot_s: mux run's start until a persona quick boot saved is ready again")
        results.update(await bench_quick_boot())
    if "seats" in parts:
        from mux.bench.seats import bench_seats

        print("bench: switch_latency_ms_2seats: seat two switching while seat one holds its persona")
        results.update(await bench_seats())
    for key, value in results.items():
        print(f"{key}: {value}")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    return results
