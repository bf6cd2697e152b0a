"""The loop that makes the sound server follow the active persona (of each seat).

Theory. :class:`AudioFollower` holds who is active on each seat (told by
:meth:`AudioFollower.switched`; a config without ``[[seat]]`` has the one seat
``"default"``); every persona active on some seat is live. While connected to the sound
server, it sets every stream of an ``audio`` persona as
:func:`mux.audio.policy.stream_setting` says: all of them after each switch (and after
connecting), and each new one as soon as the server reports it (a guest opens its sound
card, or QEMU reconnects its stream). A stream belongs to the persona whose QEMU has its
client's process id; a stream without a pid goes by its name (the persona's). Streams of
other programs are never touched.

A seat with an ``audio_sink`` plays its active persona's output on that sink: the stream is
moved there (before it is unmuted) if it plays elsewhere. A stream whose persona is in the
background stays on the sink it was on (muted or ducked); a seat without a sink leaves its
persona's stream where it is. A sink the server does not have is warned about once (naming
the seat and the sink) and the stream stays where it is.

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
from collections.abc import Callable, Mapping, Sequence

from mux.audio.policy import AudioState, matches, persona_state, stream_setting
from mux.audio.server import SoundServer, SoundUnavailable, Stream

log = logging.getLogger(__name__)

RETRY_S = 2.0
DEFAULT_SEAT = "default"  # the one seat of a config without [[seat]] (mux.input.seats)


class AudioFollower:
    """Applies the mute/duck policy to the ``names`` personas' streams; see the module docstring.

    ``sinks`` are the seats' sinks (seat name -> sink name; a seat not there has none).
    """

    def __init__(self, names: Sequence[str], background: str, pid_of: Callable[[str], int | None],
                 on_state: Callable[[str, AudioState], None], *,
                 server: Callable[[], SoundServer] = SoundServer, retry_s: float = RETRY_S,
                 sinks: Mapping[str, str] | None = None) -> None:
        self.names = tuple(names)
        self.background = background
        self.active_on: dict[str, str | None] = {}  # seat -> its active persona
        self.sinks = dict(sinks or {})
        self.available = False  # connected to the server now
        self._pid_of, self._on_state = pid_of, on_state
        self._server, self._retry_s = server, retry_s
        self._wake = asyncio.Event()
        self._states: dict[str, AudioState] = {}
        self._warned_sinks: set[tuple[str, str]] = set()

    @property
    def active(self) -> frozenset[str]:
        """The personas active on some seat (each is live)."""
        return frozenset(p for p in self.active_on.values() if p is not None)

    def switched(self, active: str | None, seat: str = DEFAULT_SEAT) -> None:
        """``active`` is ``seat``'s active persona now (None: none): every stream is set
        again (soon, on the loop)."""
        self.active_on[seat] = active
        self._wake.set()

    def sink_for(self, name: str) -> tuple[str, str] | None:
        """(seat, sink name) where persona ``name``'s output should play, or None (it is
        in the background, or its seat has no sink)."""
        for seat, persona in self.active_on.items():
            if persona == name and seat in self.sinks:
                return seat, self.sinks[seat]
        return None

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
        """Set every stream of these personas as the policy says (and move the live ones to
        their seats' sinks); then tell the states."""
        sinks = await server.sinks() if self.sinks else {}
        for seat, sink in self.sinks.items():
            self._check_sink(seat, sink, sinks)
        await asyncio.gather(*(self._apply(server, s, sinks) for s in await server.streams()))
        self._publish()

    def _check_sink(self, seat: str, sink: str, sinks: Mapping[str, int]) -> bool:
        """Whether the server has ``sink``; if not, warn once (per seat and sink)."""
        if sink in sinks:
            return True
        if (seat, sink) not in self._warned_sinks:
            self._warned_sinks.add((seat, sink))
            log.warning("audio: seat %s's audio_sink %r is not a sink of the sound server "
                        "(its sinks: %s); its persona's sound stays on the sink it plays on",
                        seat, sink, ", ".join(sorted(sinks)) or "none")
        return False

    async def _apply(self, server: SoundServer, stream: Stream, sinks: Mapping[str, int]) -> None:
        name = self.owner(stream)
        if name is None:
            return
        where = self.sink_for(name) if stream.kind == "output" else None
        if where is not None and self._check_sink(*where, sinks) and stream.sink != sinks[where[1]]:
            await server.move(stream, sinks[where[1]])  # before it is unmuted there
        setting = stream_setting(name, self.active, stream.kind, self.background)
        if not matches(setting, stream.mute, stream.volume):
            await server.apply(stream, setting)

    async def _watch(self, server: SoundServer) -> None:
        async for kind, index in server.new_streams():
            stream = await server.stream(kind, index)
            if stream is not None:
                sinks = await server.sinks() if self.sinks and kind == "output" else {}
                await self._apply(server, stream, sinks)
