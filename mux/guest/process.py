"""Starting one QEMU process and waiting for it to connect its QMP monitor.

Theory. QEMU's stdout is the guest's serial port (read by the persona); its stderr goes
to a file in the runtime directory, so a failed launch can say why. QEMU runs in its own
session, so a terminal's Ctrl-C reaches the controller only, which then stops each guest
in order. A launch has succeeded once QEMU has connected to the controller's QMP socket
and greeted; if QEMU exits first, or closes QMP before its greeting (it dies right
after), the launch fails with QEMU's exit code, argv and stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from mux.errors import LaunchError
from mux.guest.qmp import QmpLink


async def spawn(name: str, argv: list[str], stderr_path: Path) -> asyncio.subprocess.Process:
    """Start QEMU with its stdout piped and its stderr written to ``stderr_path``.

    Raises:
        LaunchError: the binary cannot be run.
    """
    with open(stderr_path, "wb") as stderr:
        try:
            return await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, start_new_session=True)
        except OSError as exc:
            raise LaunchError(name, None, argv, f"cannot run {argv[0]}: {exc}") from exc


async def await_qmp(name: str, proc: asyncio.subprocess.Process, qmp: QmpLink, argv: list[str],
                    stderr_path: Path, timeout: float) -> None:
    """Wait for QEMU to connect to ``qmp`` and greet, or to exit.

    Raises:
        LaunchError: QEMU exited, broke the QMP handshake or did not connect within
            ``timeout`` (exit code, argv and stderr in the error).
    """
    accept = asyncio.ensure_future(qmp.accept())
    exited = asyncio.ensure_future(proc.wait())
    done, _ = await asyncio.wait({accept, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    exited_early = accept not in done or accept.exception() is not None
    if exited_early:
        accept.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await accept
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exited, 5.0)
    exited.cancel()
    if exited_early:
        raise LaunchError(name, proc.returncode, argv, stderr_text(stderr_path))


def stderr_text(path: Path) -> str:
    """What QEMU wrote to its stderr file ("" when there is none)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
