"""``quick_boot_s`` and ``quick_boot_debian_s`` for ``mux bench``: a real ``mux run``
process resuming a persona quick boot saved (``[mux] quick_boot``, docs/guides/running.md).

One config with one persona (a ``console`` one; for the second figure a ``debian`` one
with ``agent = true``) in a private state directory (``XDG_STATE_HOME``): a first
``mux run`` cold-boots it until it is ready and is stopped with SIGTERM, which saves it;
then, :data:`ROUNDS` times, a new ``mux run`` is started and timed from the moment its
process is spawned (Python's start-up included) until its control socket reports the
persona ``running`` and ready (``MUX-READY`` known; for ``debian``, its agent answering),
and is stopped with SIGTERM again (which saves it again). The median is reported. The
``debian`` figure is ``null`` when the image is not built (as the other debian figures).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mux.errors import ImageError, MuxError
from mux.frontends.control import request
from mux.images import find_built

ROUNDS = 3
COLD_S = 600.0  # the first, cold boot (debian under TCG: minutes on a busy machine)
WARM_S = 120.0
POLL_S = 0.02


def _ready(sock: Path) -> bool:
    try:
        reply = request(sock, {"cmd": "status"}, timeout=5.0)
    except (MuxError, OSError, ValueError):
        return False
    personas = reply.get("status", {}).get("personas", []) if reply.get("ok") else []
    return bool(personas) and all(p["state"] == "running" and p["ready"] for p in personas)


def _run_until_ready(config: Path, env: dict[str, str], log: Path, timeout: float) -> float:
    """Start ``mux run``; seconds until its persona is ready; then SIGTERM it (it saves).

    Raises:
        MuxError: it exited, or was not ready within ``timeout``.
    """
    sock = config.with_suffix(".sock")
    with open(log, "w") as out:
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "mux", "run", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        try:
            while not _ready(sock):
                if proc.poll() is not None or time.monotonic() - began > timeout:
                    raise MuxError(f"bench: mux run was not ready: {log.read_text()[-2000:]}")
                time.sleep(POLL_S)
            took = time.monotonic() - began
            proc.send_signal(signal.SIGTERM)
            proc.wait(300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    return took


def measure(persona_toml: str, rounds: int = ROUNDS) -> float:
    """The median seconds from ``mux run``'s start to its resumed persona being ready.

    Raises:
        MuxError: a run failed, or the persona was not resumed by quick boot.
    """
    with tempfile.TemporaryDirectory(prefix="mux-bench-qb-", dir="/tmp") as directory:
        base = Path(directory)
        config = base / "c.toml"
        config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{base}"\ncontrol_socket = "{base}/c.sock"\n'
                          f"[[persona]]\n{persona_toml}\n")
        env = {**os.environ, "XDG_STATE_HOME": str(base / "state"), "XDG_RUNTIME_DIR": str(base)}
        _run_until_ready(config, env, base / "cold.log", COLD_S)
        if "saved work for quick boot" not in (base / "cold.log").read_text():
            raise MuxError(f"bench: the persona was not saved: {(base / 'cold.log').read_text()[-2000:]}")
        times = []
        for n in range(rounds):
            log = base / f"warm-{n}.log"
            times.append(_run_until_ready(config, env, log, WARM_S))
            if "quick boot: resumed" not in log.read_text():
                raise MuxError(f"bench: the persona booted afresh: {log.read_text()[-2000:]}")
    return statistics.median(times)


async def bench_quick_boot() -> dict[str, Any]:
    """``{"quick_boot_s": seconds, "quick_boot_debian_s": seconds or None}``."""
    results: dict[str, Any] = {}
    results["quick_boot_s"] = round(await asyncio.to_thread(measure, 'name = "work"'), 2)
    try:
        image = find_built("debian")
    except ImageError as exc:
        image = None
        print(f"bench: quick_boot_debian_s skipped: {exc}")
    if image is None or image.disk is None:
        print("bench: quick_boot_debian_s skipped: the debian image is not built"
              " (as root: mux images build debian)")
        results["quick_boot_debian_s"] = None
    else:
        seconds = await asyncio.to_thread(measure, 'name = "work"\nimage = "debian"\nagent = true')
        results["quick_boot_debian_s"] = round(seconds, 2)
    return results
