"""The display's figures for ``mux bench``: switch latency, live frame rate, CPU, memory.

Every figure is taken with ``output = "window"`` under SDL's dummy video driver (the
whole drawing path runs; nothing reaches a screen), on real TCG guests:

- ``switch_latency_ms`` {p50, p99}: a switch request until it returns, by which time
  the new persona's back-buffered frame has been presented on the window, its LEDs
  written to the LED sinks and input routed to it (checked after every switch); 2
  personas, and ``switch_latency_ms_8`` with 8 running, switching round them;
- ``live_fps``: frames the window presented per second while the active persona
  repaints its whole 1024x768 screen about 50 times a second (a ``console`` guest
  running ``printf`` colour changes; the built-in ``palette`` guest changes colour only
  twice a second, so it cannot show whether 30 fps are reached), and
  ``controller_cpu_percent`` over the same seconds; with ``live_cpu_ms_per_frame`` and
  how often the guest did repaint (``live_guest_repaints_per_s``). QEMU's VNC server
  sends at most one update per 30 ms (``VNC_REFRESH_INTERVAL_BASE`` in its
  ``ui/vnc.c``; a refresh tick that finds nothing new adds 50 ms to the next), so
  about 33 fps is the ceiling and a guest repainting 50 times a second can never be
  matched. So ``live_fps_ratio`` is presented frames over what QEMU sends, over the
  same seconds, a second VNC client that only reads (``live_vnc_updates_per_s``; in
  another process, so its CPU is not the controller's): it drops if mux skips an
  update QEMU sent, or reads so slowly that QEMU has no request pending at its tick.
  ``live_fps_ratio_guest`` is presented frames over guest repaints, for reference;
- ``idle_cpu_percent``: 4 idle ``console`` personas, back-buffered every 1 s (and
  ``idle_cpu_percent_8`` with 8);
- ``controller_rss_mb``: resident memory of a fresh controller process (the bench runs
  it as a child, so nothing from the other figures counts) with 8 personas running.

CPU is ``getrusage(RUSAGE_SELF)`` user + system time of the controller process (all its
threads; the QEMU children are not counted) over wall time, in % of one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mux.app.controller import Controller
from mux.config import Config, DisplaySection, MuxSection, PersonaConfig
from mux.display.backbuffer import Frame
from mux.guest.rfb import RfbClient
from mux.guest.serial import SerialLog
from mux.scenario.runner import StepRunner

NAMES = ("work", "home", "lab", "play", "shop", "bank", "game", "mail",  # 9 to 16: mux.bench.scale
         "news", "chat", "code", "docs", "film", "kids", "shed", "yard")
READY_S = 300.0
#: Repaints the whole screen in three colours, about 50 times a second under TCG here
#: (``sleep 0.01`` between repaints: flat out, the guest's vCPU thread takes a whole core
#: and starves QEMU's own display refresh on a 2-core machine), reporting every 60th
#: repaint on ttyS0.
REPAINT_LOOP = ("i=0; while :; do for c in 41 42 44; do printf '\\033['$c'm\\033[2J'; sleep 0.01; done; "
                "i=$((i+1)); [ $((i%20)) = 0 ] && echo REPAINTS > /dev/ttyS0; done\n")
REPAINTS_PER_LINE = 60
BARE_WARMUP_S = 2.0  # the baseline VNC client's time to connect and stream before counting


def percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return {"p50": round(q[49], 3), "p99": round(q[98], 3), "n": len(samples)}


def display_config(personas: int, interval: float = 1.0, memory_mb: int | None = None,
                   persona: PersonaConfig | None = None) -> Config:
    """``personas`` console personas (``memory_mb`` each, if given), or the one ``persona``."""
    memory = PersonaConfig("x").memory_mb if memory_mb is None else memory_mb
    return Config(mux=MuxSection(accel="tcg"),
                  personas=(persona,) if persona else tuple(PersonaConfig(NAMES[i], memory_mb=memory)
                                                            for i in range(personas)),
                  display=DisplaySection(output="window", backbuffer_interval_s=interval))


@contextlib.contextmanager
def sdl_dummy() -> Iterator[None]:
    """SDL's dummy video driver for the duration."""
    old = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = old


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def ready(ctl: Controller, timeout: float = READY_S) -> None:
    """Wait until every persona's shell is up. Raises TimeoutError."""
    await asyncio.gather(*(p.serial.wait_for(re.compile(f"MUX-READY {p.name}"), timeout, start=0)
                           for p in ctl.personas.values()))


class _Sink:
    def __init__(self) -> None:
        self.writes = 0

    def set_leds(self, caps: bool, num: bool, scroll: bool) -> None:
        self.writes += 1


async def bench_switch(switches: int = 300, personas: int = 2,
                       memory_mb: int | None = None) -> dict[str, Any]:
    """Switch round ``personas`` personas; the time each request takes.

    Raises AssertionError if a switch returned before the output, LEDs and router moved.
    """
    async with Controller(display_config(personas, memory_mb=memory_mb), progress=lambda m: None) as ctl:
        await ready(ctl)
        sink = _Sink()
        ctl.add_led_sink(sink)
        await asyncio.sleep(2)  # every persona back-buffered and LED-reported
        samples: list[float] = []
        for i in range(switches):
            target = ctl.config.names[(i + 1) % personas]
            writes = sink.writes
            t0 = time.perf_counter()
            await ctl.switch(target, "bench")
            samples.append((time.perf_counter() - t0) * 1000)
            current = ctl.output.current_frame()
            assert current is not None and current[0] == target, current
            assert sink.writes == writes + 1 and ctl.router.active == target
            await asyncio.sleep(0.02)
    return {"switch_latency_ms" if personas == 2 else f"switch_latency_ms_{personas}": percentiles(samples)}


async def bench_live(seconds: float = 10.0, guest: PersonaConfig | None = None) -> dict[str, Any]:
    """Frames presented per second, and CPU, while the active guest (``guest``, default a
    console one) repaints in a loop; meanwhile what QEMU sends a client that only reads
    (another process: the baseline of ``live_fps_ratio``)."""
    async with Controller(display_config(1, persona=guest), progress=lambda m: None) as ctl:
        await ready(ctl)
        persona = ctl.persona(NAMES[0])
        await start_repainting(StepRunner(ctl), persona.serial)
        await asyncio.sleep(3)  # the loop is running; QEMU's VNC refresh has sped up
        output: Any = ctl.output
        code = ("import asyncio, sys, mux.bench.display as b; "
                f"asyncio.run(b.count_vnc_updates(sys.argv[1], {seconds}))")
        # run by a thread: asyncio's child watcher lost this child to another reaper
        # ("Unknown child process") when it was an asyncio subprocess
        bare = asyncio.create_task(asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", code, str(persona.vnc_link().path)],
            capture_output=True, text=True, timeout=seconds + 60, check=True))
        await asyncio.sleep(BARE_WARMUP_S + 0.5)  # it is counting
        mark = persona.serial.end
        frames, cpu, t0 = output.presented, cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - t0
        frames, cpu = output.presented - frames, cpu_seconds() - cpu
        sent, bare_wall = json.loads((await bare).stdout.strip().splitlines()[-1])
        repaints = persona.serial.since(mark).count("REPAINTS") * REPAINTS_PER_LINE
        size = ctl.display.backbuffer.get(NAMES[0])
    bare_fps = sent / bare_wall
    return {"live_fps": round(frames / wall, 1), "controller_cpu_percent": round(100 * cpu / wall, 1),
            "live_cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2),
            "live_guest_repaints_per_s": round(repaints / wall, 1),
            "live_vnc_updates_per_s": round(bare_fps, 1),
            "live_fps_ratio": round(frames / wall / max(bare_fps, 0.1), 3),
            "live_fps_ratio_guest": round(frames / max(repaints, 1), 3),
            "live_frame_size": list(size.image.size) if size else None}


async def start_repainting(steps: StepRunner, serial: SerialLog, tries: int = 3) -> None:
    """Type :data:`REPAINT_LOOP` until the guest says it repaints (a loaded machine's TCG
    guest may drop a PS/2 key, and the shell then runs something else).

    Raises:
        TimeoutError: the loop never reported a repaint.
    """
    for _ in range(tries):
        await steps.step_type({"text": REPAINT_LOOP})
        try:
            await serial.wait_for(re.compile("REPAINTS"), 20)
            return
        except TimeoutError:
            await steps.press_keys("ctrl+c")
            await steps.step_type({"text": "\n"})
    raise TimeoutError(f"the repaint loop did not start in {tries} tries")


async def count_vnc_updates(path: str, seconds: float) -> None:
    """Print the updates with pixels (and the wall seconds) that QEMU's VNC server at
    ``path`` sends a client that streams and only reads them, over ``seconds``, as JSON:
    what it can send at most, the guest's repaints and its refresh timer (one update per
    30 ms at best) permitting. Counting starts :data:`BARE_WARMUP_S` after it is run."""
    updates = 0

    def count(_frame: Frame) -> None:
        nonlocal updates
        updates += 1

    client = RfbClient(Path(path), on_frame=count)
    client.live = True
    async with client:
        await asyncio.sleep(BARE_WARMUP_S)  # connected and streaming
        first, t0 = updates, time.monotonic()
        await asyncio.sleep(seconds)
        print(json.dumps([updates - first, time.monotonic() - t0]), flush=True)


async def bench_idle(seconds: float = 20.0, personas: int = 4,
                     memory_mb: int | None = None) -> dict[str, Any]:
    """CPU with ``personas`` idle personas back-buffered every second."""
    async with Controller(display_config(personas, 1.0, memory_mb), progress=lambda m: None) as ctl:
        await ready(ctl)
        await asyncio.sleep(3)
        dumps, cpu, t0 = ctl.display.screendumps, cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - t0
        cpu, dumps = cpu_seconds() - cpu, ctl.display.screendumps - dumps
    suffix = "" if personas == 4 else f"_{personas}"
    return {f"idle_cpu_percent{suffix}": round(100 * cpu / wall, 2),
            f"idle_screendumps_per_s{suffix}": round(dumps / wall, 2)}


async def measure_rss(personas: int = 8, memory_mb: int | None = None) -> dict[str, Any]:
    """VmRSS of this process with ``personas`` running and back-buffered (run it fresh)."""
    with sdl_dummy():
        async with Controller(display_config(personas, memory_mb=memory_mb), progress=lambda m: None) as ctl:
            try:
                await ready(ctl)
                all_ready = True
            except TimeoutError:
                all_ready = False
            await asyncio.sleep(3)
            rss_kb = _vm_rss_kb()
    suffix = "" if personas == 8 else f"_{personas}"
    return {f"controller_rss_mb{suffix}": round(rss_kb / 1024, 1),
            f"controller_rss_personas{suffix}": personas, f"controller_rss_all_ready{suffix}": all_ready}


def _vm_rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def bench_rss(personas: int = 8, memory_mb: int | None = None) -> dict[str, Any]:
    """:func:`measure_rss` in a fresh Python process. Raises RuntimeError if it fails."""
    code = ("import asyncio, json, mux.bench.display as b; "
            f"print(json.dumps(asyncio.run(b.measure_rss({personas}, {memory_mb}))))")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the memory bench failed (exit code {proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def bench_display(parts: set[str] | None = None) -> dict[str, Any]:
    """The display's figures (see the module docstring); ``parts``: only these of
    ``switch``, ``switch_8``, ``live``, ``idle``, ``idle_8``, ``rss`` (None: all)."""
    results: dict[str, Any] = {}
    run = parts if parts is not None else {"switch", "switch_8", "live", "idle", "idle_8", "rss"}
    with sdl_dummy():
        if "switch" in run:
            print("bench: display switch latency (2 personas, window output, SDL dummy driver)")
            results.update(await bench_switch())
        if "switch_8" in run:
            print("bench: display switch latency (8 personas running)")
            results.update(await bench_switch(200, personas=8))
        if "live" in run:
            print("bench: live frame rate and CPU (a guest repainting its whole screen)")
            results.update(await bench_live())
        if "idle" in run:
            print("bench: idle CPU (4 personas back-buffered at 1 s)")
            results.update(await bench_idle())
        if "idle_8" in run:
            print("bench: idle CPU (8 personas back-buffered at 1 s)")
            results.update(await bench_idle(personas=8))
    if "rss" in run:
        print("bench: controller memory with 8 personas (fresh process)")
        results.update(await bench_rss())
    return results
