"""The loop that makes the sound server follow the active persona.

Theory. :class:`AudioFollower` holds who is active (told by :meth:`AudioFollower.switched`)
and, while connected to the sound server, sets every stream of an ``audio`` persona as
:func:`mux.audio.policy.stream_setting` says: all of them after each switch (and after
connecting), and each new one as soon as the server reports it (a guest opens its sound
card, or QEMU reconnects its stream). A stream belongs to the persona whose QEMU has its
client's process id; a stream without a pid goes by its name (the persona's). Streams of
other programs are never touched.

The server going away (or never answering) is warned about once; the personas run on,
their state becomes ``"unavailable"``, and the follower connects again every
:data:`RETRY_S` seconds, quietly, applying everything once it is back. Each persona's
state change is told to ``on_state`` (the controller publishes
:class:`~mux.app.events.AudioChanged`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from mux.audio.policy import AudioState, matches, persona_state, stream_setting
from mux.audio.server import SoundServer, SoundUnavailable, Stream

log = logging.getLogger(__name__)

RETRY_S = 2.0


class AudioFollower:
    """Applies the mute/duck policy to the ``names`` personas' streams; see the module docstring."""

    def __init__(self, names: Sequence[str], background: str, pid_of: Callable[[str], int | None],
                 on_state: Callable[[str, AudioState], None], *,
                 server: Callable[[], SoundServer] = SoundServer, retry_s: float = RETRY_S) -> None:
        self.names = tuple(names)
        self.background = background
        self.active: str | None = None
        self.available = False  # connected to the server now
        self._pid_of, self._on_state = pid_of, on_state
        self._server, self._retry_s = server, retry_s
        self._wake = asyncio.Event()
        self._states: dict[str, AudioState] = {}

    def switched(self, active: str) -> None:
        """``active`` is the active persona now: every stream is set again (soon, on the loop)."""
        self.active = active
        self._wake.set()

    def owner(self, stream: Stream) -> str | None:
        """The persona ``stream`` belongs to, or None (another program's)."""
        for name in self.names:
            if stream.pid is not None and stream.pid == self._pid_of(name):
                return name
        if stream.pid is None and stream.name in self.names:
            return stream.name
        return None

    def state(self, name: str) -> AudioState:
        """``name``'s state by the policy (for an ``audio`` persona of this follower)."""
        return persona_state(name, self.active, audio=True, available=self.available,
                             background=self.background)

    def _publish(self) -> None:
        for name in self.names:
            state = self.state(name)
            if self._states.get(name) != state:
                self._states[name] = state
                self._on_state(name, state)

    async def run(self) -> None:
        """Connect, follow, reconnect; until cancelled."""
        warned = False
        while True:
            server = self._server()
            try:
                await server.connect()
                self.available = True
                if warned:
                    log.info("audio: the sound server is back")
                await self._follow(server)
            except SoundUnavailable as exc:
                if not warned:
                    log.warning("audio: %s; the personas run on without sound control "
                                "(mux connects again when the server is back)", exc)
                    warned = True
            finally:
                server.close()
                self.available = False
            self._publish()
            await asyncio.sleep(self._retry_s)

    async def _follow(self, server: SoundServer) -> None:
        """Apply at each wake-up and to each new stream until the server goes away."""
        loop = asyncio.get_running_loop()
        watch = loop.create_task(self._watch(server), name="audio:new-streams")
        woken: asyncio.Task[bool] | None = None
        try:
            while True:
                self._wake.clear()
                await self.apply_all(server)
                woken = loop.create_task(self._wake.wait(), name="audio:wake")
                done, _ = await asyncio.wait({watch, woken}, return_when=asyncio.FIRST_COMPLETED)
                if watch in done:
                    watch.result()  # raises SoundUnavailable when the server went away
                    raise SoundUnavailable("the sound server stopped reporting streams")
        finally:
            if woken is not None:
                woken.cancel()
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, SoundUnavailable):
                await watch

    async def apply_all(self, server: SoundServer) -> None:
        """Set every stream of these personas as the policy says; then tell the states."""
        await asyncio.gather(*(self._apply(server, s) for s in await server.streams()))
        self._publish()

    async def _apply(self, server: SoundServer, stream: Stream) -> None:
        name = self.owner(stream)
        if name is not None:
            setting = stream_setting(name, self.active, stream.kind, self.background)
            if not matches(setting, stream.mute, stream.volume):
                await server.apply(stream, setting)

    async def _watch(self, server: SoundServer) -> None:
        async for kind, index in server.new_streams():
            stream = await server.stream(kind, index)
            if stream is not None:
                await self._apply(server, stream)
