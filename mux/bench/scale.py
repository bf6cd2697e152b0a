"""Sixteen personas, the active persona first for the CPU, and the live picture in frame copies.

- ``background_low_ratio``: a CPU-bound shell loop's rate in the active ``console`` guest
  (ticks it prints on ttyS0 a second) with 3 background personas running the same loop
  flat out, over its rate with them idle, under ``[mux] background = "low"``; and
  ``background_run_ratio``, the same with ``"run"`` (every guest equal), measured beside it.
  ``background_cpu_percent`` {low, run}: the CPU (% of one core) the active guest's QEMU
  and the 3 others' took while the busy rate was counted (that they did run).
- ``idle_cpu_percent_16``, ``switch_latency_ms_16``, ``controller_rss_mb_16``: the
  8-persona figures of :mod:`mux.bench.display` with 16 ``console`` personas of
  :data:`SMALL_MEMORY_MB` each (the least the image boots with here: 64 MiB does not
  boot it); ``null`` with ``personas_16_skipped`` when the host has not the memory.
- ``frame_copy_ms`` and ``frame_copy_ms_1080``: one frame-sized memory copy (32 bits a
  pixel, 1024x768 and 1920x1080), the median of :data:`COPIES`, on the machine the bench
  runs on, between buffers not in the CPU's cache (copies rotate over 128 MiB of them:
  a copy of one cached buffer over and over measured 0.065 ms here, 4 times faster
  than the live path can ever see).
- ``live_cpu_frame_in_copies``: ``live_cpu_ms_per_frame`` (:func:`mux.bench.display.bench_live`)
  over ``frame_copy_ms``, so the figure means the same on any host (the design's floor is
  three: socket read, texture upload, present; target <= 5); ``live_cpu_frame_in_copies_1080``
  the same with the guest at 1920x1080 over ``frame_copy_ms_1080``: the console image
  booted as the persona's own kernel with ``vga=0x390`` in place of ``vga=0x317`` (VESA mode
  0x190, 1920x1080x16 in QEMU's SeaVGABIOS for ``-vga std``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

from mux import images
from mux.app.controller import Controller
from mux.bench import display
from mux.config import Config, MuxSection, PersonaConfig
from mux.config.schema import Background
from mux.scenario.runner import StepRunner

READY_S = 300.0
SMALL_MEMORY_MB = 96
COPIES = 200
COPY_SPAN_MB = 128  # over twice a large server CPU's last-level cache (32 MiB here)
#: Prints TICK on ttyS0 every 500 additions: the active guest's rate.
TICK_LOOP = "i=0; while :; do i=$((i+1)); [ $((i%500)) = 0 ] && echo TICK > /dev/ttyS0; done\n"
BUSY_LOOP = "while :; do :; done\n"
RATE_S = 10.0
VGA_1080 = "vga=0x390"


def frame_copy_ms(width: int, height: int, copies: int = COPIES) -> float:
    """The median milliseconds of copying one ``width`` x ``height`` 32-bit frame in memory,
    between buffers that are not in the CPU's cache: each copy takes the next of enough
    pairs to fill :data:`COPY_SPAN_MB` (a frame the guest just sent is not cached either)."""
    size = width * height * 4
    pairs = max(2, -(-COPY_SPAN_MB * 2**20 // (2 * size)))
    sources = [bytearray(b"\x5a" * size) for _ in range(pairs)]
    targets = [memoryview(bytearray(size)) for _ in range(pairs)]
    samples: list[float] = []
    for i in range(copies):
        source, target = sources[i % pairs], targets[i % pairs]
        t0 = time.perf_counter()
        target[:] = source
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 4)


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _rate(ctl: Controller, name: str, seconds: float = RATE_S) -> tuple[float, float, float]:
    """Ticks a second of ``name``'s loop; its QEMU's CPU and the others' (% of one core)."""
    serial = ctl.persona(name).serial
    others = [p.pid for p in ctl.personas.values() if p.name != name]
    mark, own, rest = serial.end, _cpu_s(ctl.persona(name).pid), sum(map(_cpu_s, others))
    await asyncio.sleep(seconds)
    own, rest = _cpu_s(ctl.persona(name).pid) - own, sum(map(_cpu_s, others)) - rest
    return serial.since(mark).count("TICK") / seconds, 100 * own / seconds, 100 * rest / seconds


async def background_ratio(mode: Background) -> dict[str, float]:
    """The active guest's loop rate with 3 busy background personas over with them idle,
    and the CPU (% of one core) its QEMU and the 3 others' took meanwhile."""
    names = display.NAMES[:4]
    config = Config(mux=MuxSection(accel="tcg", background=mode),
                    personas=tuple(PersonaConfig(n, memory_mb=SMALL_MEMORY_MB) for n in names))
    async with Controller(config, progress=lambda m: None) as ctl:
        await display.ready(ctl)
        steps = StepRunner(ctl)
        await ctl.switch(names[0], "bench")
        await steps.step_type({"text": TICK_LOOP})
        await ctl.persona(names[0]).serial.wait_for(re.compile("TICK"), 30)
        await asyncio.sleep(2)
        alone, _, _ = await _rate(ctl, names[0])
        for name in names[1:]:
            await ctl.switch(name, "bench")
            await steps.step_type({"text": BUSY_LOOP})
        await ctl.switch(names[0], "bench")
        await asyncio.sleep(2)
        busy, own, rest = await _rate(ctl, names[0])
    return {"ratio": round(busy / max(alone, 0.01), 3), "active_cpu_percent": round(own, 1),
            "background_cpu_percent": round(rest, 1)}


def _memory_for(personas: int) -> str | None:
    """Why the host cannot hold ``personas`` small personas (None: it can)."""
    with open("/proc/meminfo") as meminfo:
        free = {line.split(":")[0]: int(line.split()[1]) for line in meminfo}
    need_mb = personas * (SMALL_MEMORY_MB + 40) + 512  # QEMU's own share, and the controller
    have_mb = free.get("MemAvailable", 0) // 1024
    return None if have_mb >= need_mb else f"{have_mb} MiB available, {need_mb} needed"


def small(config: Config) -> Config:
    return dataclasses.replace(config, personas=tuple(dataclasses.replace(p, memory_mb=SMALL_MEMORY_MB)
                                                      for p in config.personas))


def persona_1080() -> PersonaConfig:
    """The console image booted as a persona's own kernel, its framebuffer at 1920x1080."""
    built = images.build("console", progress=lambda m: None)
    assert "vga=0x317" in built.append, built.append
    return PersonaConfig(display.NAMES[0], image=None, kernel=built.kernel, initrd=built.initrd,
                         append=built.append.replace("vga=0x317", VGA_1080))


async def bench_scale(parts: set[str]) -> dict[str, Any]:
    """The figures of the parts among ``background``, ``idle_16``, ``switch_16``, ``rss_16``,
    ``frame_copy``, ``live_copies``, ``live_1080`` (see the module docstring)."""
    results: dict[str, Any] = {}
    if "background" in parts:
        print("bench: background_low_ratio: a loop's rate in the active guest, 3 busy ones behind it")
        low, run = await background_ratio("low"), await background_ratio("run")
        results["background_low_ratio"], results["background_run_ratio"] = low.pop("ratio"), run.pop("ratio")
        results["background_cpu_percent"] = {"low": low, "run": run}
    if parts & {"idle_16", "switch_16", "rss_16"}:
        skipped = _memory_for(16)
        if skipped is not None:
            print(f"bench: 16 personas skipped: {skipped}")
            results |= {"personas_16_skipped": skipped, "idle_cpu_percent_16": None,
                        "switch_latency_ms_16": None, "controller_rss_mb_16": None}
            parts = parts - {"idle_16", "switch_16", "rss_16"}
    with display.sdl_dummy():
        if "switch_16" in parts:
            print(f"bench: display switch latency (16 personas of {SMALL_MEMORY_MB} MiB running)")
            results.update(await display.bench_switch(200, personas=16, memory_mb=SMALL_MEMORY_MB))
        if "idle_16" in parts:
            print("bench: idle CPU (16 personas back-buffered at 1 s)")
            results.update(await display.bench_idle(personas=16, memory_mb=SMALL_MEMORY_MB))
        copies = {"frame_copy_ms": frame_copy_ms(1024, 768), "frame_copy_ms_1080": frame_copy_ms(1920, 1080)}
        if parts & {"frame_copy", "live_copies", "live_1080"}:
            results.update(copies)
        if "live_copies" in parts:
            print("bench: the live picture's CPU a frame, in frame copies (1024x768)")
            live = await display.bench_live()
            per_frame = live["live_cpu_ms_per_frame"]
            results["live_cpu_frame_in_copies"] = round(per_frame / copies["frame_copy_ms"], 2)
            results["live_copies_detail"] = live
        if "live_1080" in parts:
            print("bench: the live picture's CPU a frame, in frame copies (the guest at 1920x1080)")
            live = await display.bench_live(guest=persona_1080())
            results["live_cpu_frame_in_copies_1080"] = round(
                live["live_cpu_ms_per_frame"] / copies["frame_copy_ms_1080"], 2)
            results["live_1080_detail"] = live
    if "rss_16" in parts:
        print("bench: controller memory with 16 personas (fresh process)")
        results.update(await display.bench_rss(16, memory_mb=SMALL_MEMORY_MB))
    return results
