"""The QMP seam: the one place mux speaks QEMU's machine protocol.

Theory. The controller listens on a unix socket in its private runtime directory and
each QEMU connects to it (``-qmp unix:PATH``, see :mod:`mux.guest.cmdline`), so no
other process can reach a guest's monitor. :class:`QmpLink` wraps one such session of
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
    """One QMP session with one persona's QEMU: ``listen``, ``accept``, commands, ``close``."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._client = QMPClient(name)

    async def listen(self) -> None:
        """Open the socket QEMU will connect to (replacing a stale one).

        Raises:
            OSError: the socket cannot be bound.  QMPError: qemu.qmp refused to listen.
        """
        self.path.unlink(missing_ok=True)
        await self._client.start_server(str(self.path))

    async def accept(self) -> None:
        """Wait for QEMU to connect and greet.

        Raises:
            QMPError, EOFError, OSError: QEMU closed the socket or broke the handshake
                (it usually dies right after).
        """
        await self._client.accept()

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
