"""``debian_restore_s`` and ``agent_exec_ms`` for ``mux bench``: a ``debian`` persona with
its guest agent, through the controller as a scenario would use it.

- ``debian_restore_s``: a persona booted (BIOS, TCG) until its agent answered is saved
  as a snapshot (memory and its disk overlay, :mod:`mux.scenario.snapshot`); a second
  controller starts it from that snapshot, and the figure is the seconds from that
  controller's start until the restored guest's agent answers.
- ``agent_exec_ms``: ``exec true`` in the restored guest through the agent
  (``guest-exec`` and ``guest-exec-status`` polls), {p50, p99} over :data:`EXECS` runs.

Both are ``null``, with ``debian_agent_skipped`` saying why, when the ``debian`` image is
not built (building it needs root and minutes: ``mux images build debian``).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mux.app.controller import Controller
from mux.config import Config, MuxSection, PersonaConfig
from mux.errors import ImageError, PersonaError
from mux.images import find_built
from mux.scenario import snapshot

AGENT_S = 900.0  # TCG on a busy machine
EXECS = 50
NAME = "bench"


def _quiet(message: str) -> None:
    pass


async def bench_agent(runtime_dir: Path | None = None) -> dict[str, Any]:
    """``{"debian_restore_s": s, "agent_exec_ms": {"p50", "p99"}}`` (or nulls and a reason).

    Raises:
        PersonaError: the guest did not boot, save, restore or run ``true``.
    """
    try:
        image = find_built("debian")
        reason = None if image is not None and image.disk is not None else \
            "the debian image is not built (as root: mux images build debian)"
    except ImageError as exc:
        reason = str(exc)
    if reason:
        print(f"bench: debian_restore_s and agent_exec_ms skipped: {reason}")
        return {"debian_restore_s": None, "agent_exec_ms": None, "debian_agent_skipped": reason}
    mux = MuxSection(accel="tcg", keep_guests="never")
    if runtime_dir is not None:
        mux = dataclasses.replace(mux, runtime_dir=runtime_dir)
    persona = PersonaConfig(NAME, image="debian", agent=True)
    config = Config(mux=mux, personas=(persona,))
    with tempfile.TemporaryDirectory(prefix="mux-bench-agent-") as directory:
        store = Path(directory)
        async with Controller(config, progress=_quiet) as ctl:
            await _ready(ctl)
            await snapshot.save(ctl, store, "debian", None, Path("<bench>"), 300)
        began = time.monotonic()
        restored = dataclasses.replace(config, personas=(dataclasses.replace(persona, autostart=False),))
        async with Controller(restored, progress=_quiet) as ctl:
            await snapshot.restore(ctl, store, "debian", 300)
            await _ready(ctl)
            restore_s = time.monotonic() - began
            times = []
            for _ in range(EXECS):
                started = time.monotonic()
                result = await ctl.exec(NAME, ["true"], 60)
                times.append((time.monotonic() - started) * 1000)
                if result["exitcode"] != 0:
                    raise PersonaError(f"bench: exec true in the debian guest exited with {result}")
    cuts = statistics.quantiles(times, n=100)
    return {"debian_restore_s": round(restore_s, 2),
            "agent_exec_ms": {"p50": round(statistics.median(times), 1), "p99": round(cuts[98], 1)}}


async def _ready(ctl: Controller) -> None:
    try:
        await ctl.persona(NAME).readiness.wait(AGENT_S)
    except TimeoutError:
        raise PersonaError(f"bench: the debian guest's agent did not answer in {AGENT_S:.0f} s") from None
