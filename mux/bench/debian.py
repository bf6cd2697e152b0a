"""``debian_boot_s`` for ``mux bench``: the built-in ``debian`` image booted under TCG with
BIOS, from QEMU's start until its guest agent answers ``guest-sync-delimited``.

The guest is plain QEMU (``-machine pc``, 1 GiB, the cached disk opened with
``snapshot=on`` so it is never written, the agent's virtio-serial port on a unix socket
in a private directory): what a persona with ``image = "debian"`` and ``agent = true``
will do, without the controller. The image is used only if it is already built
(building it needs root and minutes: ``mux images build debian``); otherwise the figure
is ``null`` and the reason is printed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from mux.errors import ImageError, PersonaError
from mux.guest.agent import GuestAgent
from mux.images import find_built

AGENT_S = 600.0


async def boot_to_agent(disk: Path, directory: Path, timeout: float = AGENT_S) -> float:
    """Seconds from starting QEMU on ``disk`` (BIOS, TCG) until its agent answers.

    Raises:
        PersonaError: QEMU cannot start or exits, or the agent does not answer in time
        (an AgentError).
    """
    sock = directory / "qga.sock"
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "1024",
            "-nodefaults", "-no-user-config", "-vga", "std", "-display", "none",
            "-drive", f"file={disk},format=qcow2,if=virtio,snapshot=on",
            "-serial", "null", "-fw_cfg", "name=opt/mux/persona,string=bench",
            "-device", "virtio-serial",
            "-chardev", f"socket,path={sock},server=on,wait=off,id=qga0",
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"]
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise PersonaError(f"bench: cannot start {argv[0]}: {exc}") from exc
    agent = GuestAgent(sock, "bench")
    try:
        waiter = asyncio.ensure_future(agent.connect(timeout))
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
            raise PersonaError(f"bench: QEMU exited with {proc.returncode}: {stderr.strip()}")
        exited.cancel()
        await waiter
        return time.monotonic() - started
    finally:
        await agent.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def bench_debian() -> dict[str, Any]:
    """``{"debian_boot_s": seconds or None}``."""
    try:
        image = find_built("debian")
    except ImageError as exc:
        image = None
        print(f"bench: debian_boot_s skipped: {exc}")
    if image is None or image.disk is None:
        print("bench: debian_boot_s skipped: the debian image is not built"
              " (as root: mux images build debian)")
        return {"debian_boot_s": None}
    with tempfile.TemporaryDirectory(prefix="mux-bench-debian-") as directory:
        seconds = await boot_to_agent(image.disk, Path(directory))
    return {"debian_boot_s": round(seconds, 1)}
