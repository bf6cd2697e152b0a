"""``mux bench``: performance figures as ratios against a baseline from the same run.

The machine is shared and noisy, so every figure is measured next to its baseline,
interleaved sample by sample, and reported both raw (milliseconds) and as a ratio:

- ``qmp_roundtrip_ms``: a bare QMP ``input-send-event`` to a running persona;
- ``input_latency_ms``: an event entering the router until QEMU acknowledges the
  command it became (router, switch lock, dispatch, QMP);
- ``input_latency_ratio``: ``input_latency_ms.p99 / qmp_roundtrip_ms.p50`` (target <= 1.5),
  and the like-for-like ``input_latency_ratio_p50`` and ``input_latency_ratio_p99``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from mux.config import Config, MuxSection, PersonaConfig
from mux.controller import Controller
from mux.router import EV_REL, EV_SYN, REL_X, InputEvent


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


async def run_bench(json_path: Path | None, events: int = 2000) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with Controller(bench_config(2), progress=lambda m: print(f"bench: {m}")) as ctl:
        print(f"bench: input, {events} events with {len(ctl.personas)} personas running")
        results.update(await bench_input(ctl, events))
    for key, value in results.items():
        print(f"{key}: {value}")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    return results
