"""A guest's whole machine saved to a file and started again from it (QEMU migration).

Theory. The built-in guests boot their kernel directly and have no disk, so qcow2
internal snapshots (``savevm``) have nowhere to live. QEMU's migration stream needs no
disk: QMP ``migrate`` to ``exec:cat > FILE`` writes RAM and device state into a file
(QEMU 7.2 has no ``file:`` URI; 8.2 added it), and a QEMU started with the same machine
arguments plus ``-incoming defer`` (:mod:`mux.guest.cmdline`) reads it back with
``migrate-incoming exec:cat FILE``. The guest is paused while it is saved (one pass,
no dirty-page rounds) and resumed afterwards; the migration bandwidth cap is lifted
(7.2's default, 32 MiB/s, would make a save of a 256 MiB guest take seconds).
:class:`~mux.guest.persona.Persona` offers this as ``save_state(path)`` and
``start(restore_from=path)``.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path

from mux.errors import MigrationError, PersonaError
from mux.guest.qmp import QmpLink

UNLIMITED = 1 << 40  # bytes per second: no migration bandwidth cap
POLL_S = 0.02


async def save(link: QmpLink, path: Path, timeout: float) -> None:
    """Pause the guest, write its whole state to ``path``, resume it (even on failure).

    Raises:
        MigrationError: the migration failed or did not complete within ``timeout``.
        PersonaError: QMP failed.
    """
    await link.execute("stop")
    try:
        await link.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        await link.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(path))}"})
        await _done(link, timeout)
    finally:
        await link.execute("cont")


async def load(link: QmpLink, path: Path, timeout: float) -> None:
    """Feed ``path`` to a QEMU started with ``-incoming defer``, then let the guest run.

    Raises:
        MigrationError: the state did not load (wrong machine, truncated file, QMP
            failed) within ``timeout``.
    """
    try:
        await link.execute("migrate-incoming", {"uri": f"exec:cat {shlex.quote(str(path))}"})
        await _done(link, timeout)
        await link.execute("cont")
    except MigrationError:
        raise
    except PersonaError as exc:
        raise MigrationError(str(exc)) from exc


async def _done(link: QmpLink, timeout: float) -> None:
    """Wait for the migration (out or in) to complete.

    Raises:
        MigrationError: it failed or did not complete within ``timeout``.
        PersonaError: QMP failed.
    """
    deadline = time.monotonic() + timeout
    while True:
        info = await link.execute("query-migrate")
        status = info.get("status") if isinstance(info, dict) else None
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise MigrationError(f"persona {link.name!r}: migration {status}: {info.get('error-desc', '')}")
        if time.monotonic() > deadline:
            raise MigrationError(f"persona {link.name!r}: migration still {status} after {timeout:.0f}s")
        await asyncio.sleep(POLL_S)
