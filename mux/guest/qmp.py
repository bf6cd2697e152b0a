"""The QMP seam: the one place mux speaks QEMU's machine protocol.

Theory. Each QEMU listens on a unix socket in a private (0700) directory
(``-qmp unix:PATH,server=on,wait=off``, see :mod:`mux.guest.cmdline`) and the controller
connects to it, so no other user can reach a guest's monitor, and a guest outlives the
controller that started it: a later one connects again (QEMU serves one client at a
time, so while a controller is attached nobody else gets in). :class:`QmpLink` wraps one
session of
``qemu.qmp``: commands come back as their result or as a :class:`~mux.errors.PersonaError`
naming the persona and the command; events are read through :meth:`QmpLink.events`,
registered before the caller awaits anything so none is lost. Nothing outside
:mod:`mux.guest` imports ``qemu.qmp``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient, QMPError

from mux.errors import PersonaError


class QmpLink:
    """One QMP session with one persona's QEMU: ``connect``, commands, ``close``."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._client = QMPClient(name)

    async def connect(self) -> None:
        """Connect to QEMU's socket and complete the greeting.

        Raises:
            OSError: nobody listens there yet, or QEMU broke the handshake (a caller
                retries while QEMU starts).
        """
        if not self.path.is_socket():  # QEMU has not bound it yet (qemu.qmp would log an error)
            raise FileNotFoundError(f"QMP {self.path}: no socket yet")
        self._client = QMPClient(self.name)
        try:
            await self._client.connect(str(self.path))
        except (QMPError, EOFError) as exc:
            with contextlib.suppress(QMPError, OSError, EOFError):
                await self._client.disconnect()
            raise OSError(f"QMP {self.path}: {exc}") from exc

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one command and return its result.

        Raises:
            PersonaError: QEMU refused the command or the connection broke.
        """
        try:
            return await self._client.execute(command, arguments)
        except QMPError as exc:
            raise PersonaError(f"persona {self.name!r}: QMP {command} failed: {exc}") from exc

    def events(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Every ``name`` event of this session from now on (the listener is registered at
        once); the iteration ends only when cancelled."""
        listener = EventListener(name)
        self._client.register_listener(listener)

        async def read() -> AsyncIterator[dict[str, Any]]:
            try:
                async for event in listener:
                    yield dict(event)
            finally:
                self._client.remove_listener(listener)

        return read()

    async def close(self) -> None:
        """Disconnect (or stop listening); raises nothing."""
        # disconnect() re-raises whatever ended the session (EOFError when QEMU died).
        with contextlib.suppress(QMPError, OSError, EOFError):
            await self._client.disconnect()
