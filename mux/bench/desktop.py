"""``desktop_boot_s`` for ``mux bench``: the built-in ``desktop`` image booted under TCG with
BIOS, from QEMU's start until the guest prints ``MUX-READY`` (its X session is up: twm,
spice-vdagent and the xterm's shell running).

The guest is plain QEMU as a persona with ``image = "desktop"`` gets it from the recipe's
defaults (``-vga virtio``, 1 GiB, the guest agent's and the clipboard agent's
virtio-serial ports), the cached disk opened with ``snapshot=on`` so it is never written,
the serial port in a file in a private directory, read until the marker. The image is
used only if it is already built (building it needs root and minutes: ``mux images
build desktop``); otherwise the figure is ``null`` and the reason is printed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from mux.errors import ImageError, PersonaError
from mux.images import find_built

READY_S = 900.0
MARKER = b"MUX-READY bench"


async def boot_to_session(disk: Path, directory: Path, timeout: float = READY_S) -> float:
    """Seconds from starting QEMU on ``disk`` (BIOS, TCG, virtio GPU) until the guest's
    serial port says ``MUX-READY``.

    Raises:
        PersonaError: QEMU cannot start or exits, or the marker does not come in ``timeout``.
    """
    serial, agent = directory / "serial.log", directory / "qga.sock"
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "1024",
            "-nodefaults", "-no-user-config", "-vga", "virtio", "-display", "none",
            "-drive", f"file={disk},format=qcow2,if=virtio,snapshot=on",
            "-serial", f"file:{serial}", "-fw_cfg", "name=opt/mux/persona,string=bench",
            "-device", "virtio-serial-pci,id=vserial",
            "-chardev", f"socket,path={agent},server=on,wait=off,id=qga0",
            "-device", "virtserialport,bus=vserial.0,chardev=qga0,name=org.qemu.guest_agent.0",
            "-chardev", "qemu-vdagent,id=vdagent,clipboard=on,mouse=off",
            "-device", "virtserialport,bus=vserial.0,chardev=vdagent,name=com.redhat.spice.0"]
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise PersonaError(f"bench: cannot start {argv[0]}: {exc}") from exc
    try:
        while True:
            if _said(serial, MARKER):
                return time.monotonic() - started
            if proc.returncode is not None:
                stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                raise PersonaError(f"bench: QEMU exited with {proc.returncode}: {stderr.strip()[:2000]}")
            if time.monotonic() - started > timeout:
                raise PersonaError(f"bench: no MUX-READY from the desktop image in {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def _said(serial: Path, marker: bytes, tail: int = 64 << 10) -> bool:
    """Whether the last ``tail`` bytes of the serial log (the guest's own output, so
    bounded) hold ``marker``; False while QEMU has not made the file."""
    try:
        with serial.open("rb") as log:
            log.seek(max(0, log.seek(0, 2) - tail))
            return marker in log.read()
    except FileNotFoundError:
        return False


async def bench_desktop() -> dict[str, Any]:
    """``{"desktop_boot_s": seconds or None}``."""
    try:
        image = find_built("desktop")
    except ImageError as exc:
        print(f"bench: desktop_boot_s skipped: {exc}")
        return {"desktop_boot_s": None}
    if image is None or image.disk is None:
        print("bench: desktop_boot_s skipped: the desktop image is not built"
              " (as root: mux images build desktop)")
        return {"desktop_boot_s": None}
    with tempfile.TemporaryDirectory(prefix="mux-bench-desktop-") as directory:
        seconds = await boot_to_session(image.disk, Path(directory))
    return {"desktop_boot_s": round(seconds, 1)}
