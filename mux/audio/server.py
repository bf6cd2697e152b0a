"""The one seam to the host's sound server: QEMU's streams, their mute and volume.

Theory. mux speaks PulseAudio's protocol (PulseAudio itself, or PipeWire's
``pipewire-pulse``) through ``pulsectl-asyncio``, whose libpulse calls run on mux's own
event loop (no thread). libpulse (Debian's ``libpulse0``) is loaded when
:meth:`SoundServer.connect` first runs, never at import: mux, its demo and personas
without ``audio`` work on a machine without it. Every failure (no library, no server,
the server gone) is :class:`SoundUnavailable`, whose message says what to install or
start. The server is found as every PulseAudio client finds it (``PULSE_SERVER``, else
``$XDG_RUNTIME_DIR/pulse/native``), the same way QEMU's ``pa`` backend does.

Streams: a guest's output is a *sink input*, its microphone a *source output*; each is
told apart by its client's process id (``application.process.id``: QEMU's pid) and its
name (``media.name``: the persona's, see :func:`mux.guest.hardware.audio_argv`). An
output plays on one *sink* (a sound card, or a ``module-null-sink``), which mux may move it
to by the sink's name (a seat's ``audio_sink``: :meth:`SoundServer.sinks`,
:meth:`SoundServer.move`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from mux.audio.policy import StreamKind, StreamSetting

CONNECT_S = 3.0

#: The server's event facilities of the two kinds of stream.
_FACILITY: dict[str, StreamKind] = {"sink_input": "output", "source_output": "input"}


class SoundUnavailable(Exception):
    """No sound server to talk to; the message says why and what to install or start."""


@dataclass(frozen=True)
class Stream:
    """One stream on the server, as mux sees it."""

    kind: StreamKind
    index: int
    pid: int | None  # the client's process id (application.process.id), if it told
    name: str  # media.name
    mute: bool
    volume: float  # the mean of its channels (1.0 = 100 %)
    channels: int = 2
    sink: int | None = None  # an output's sink (its index on the server); None for an input


def _pulsectl() -> tuple[Any, Any]:
    """(pulsectl_asyncio, pulsectl), imported now; raises SoundUnavailable."""
    try:
        return importlib.import_module("pulsectl_asyncio"), importlib.import_module("pulsectl")
    except ImportError as exc:
        raise SoundUnavailable(f"the Python package pulsectl-asyncio is missing ({exc}): "
                               "reinstall mux (pip install -e .)") from exc
    except OSError as exc:  # ctypes could not load libpulse.so.0
        raise SoundUnavailable(f"libpulse is missing ({exc}): install Debian's libpulse0") from exc


def _stream(kind: StreamKind, info: Any) -> Stream:
    pid = str(info.proplist.get("application.process.id", ""))
    sink = getattr(info, "sink", None) if kind == "output" else None
    return Stream(kind, int(info.index), int(pid) if pid.isdigit() else None,
                  str(info.proplist.get("media.name", info.name or "")), bool(info.mute),
                  float(info.volume.value_flat), len(info.volume.values) or 2,
                  int(sink) if isinstance(sink, int) else None)


async def _op(call: Coroutine[Any, Any, Any]) -> Any:
    """One call to the server, never cancelled halfway: its reply must find its future
    pending (pulsectl-asyncio sets the result of a cancelled one, which asyncio reports as
    an error). A caller that is cancelled stops waiting; the call finishes alone."""
    task = asyncio.ensure_future(call)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: never "never retrieved"
    return await asyncio.shield(task)


class SoundServer:
    """A connection to the sound server (``async with``, or :meth:`connect`/:meth:`close`)."""

    def __init__(self, client_name: str = "mux", server: str | None = None) -> None:
        self.client_name, self.server = client_name, server
        self._pulse: Any = None
        self._errors: tuple[type[BaseException], ...] = ()

    async def connect(self, timeout: float = CONNECT_S) -> None:
        """Raises SoundUnavailable: no libpulse, or no server answered within ``timeout``."""
        pulsectl_asyncio, pulsectl = _pulsectl()
        self._errors = (pulsectl.PulseError, pulsectl.PulseDisconnected)
        pulse = pulsectl_asyncio.PulseAsync(self.client_name, server=self.server)
        try:
            await pulse.connect(timeout=timeout)
        except (*self._errors, TimeoutError) as exc:
            pulse.close()
            where = self.server or "PULSE_SERVER, or $XDG_RUNTIME_DIR/pulse/native"
            raise SoundUnavailable(
                f"no sound server answered at {where} ({type(exc).__name__}): start PulseAudio "
                "(Debian's pulseaudio) or PipeWire's (pipewire-pulse)") from exc
        self._pulse = pulse

    def close(self) -> None:
        if self._pulse is not None:
            self._pulse.close()
            self._pulse = None

    async def __aenter__(self) -> SoundServer:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._pulse is not None and bool(self._pulse.connected)

    @contextlib.contextmanager
    def _calls(self, what: str) -> Any:
        if self._pulse is None:
            raise SoundUnavailable("not connected to the sound server")
        try:
            yield self._pulse
        except self._errors as exc:
            raise SoundUnavailable(f"the sound server failed to {what}: {type(exc).__name__} {exc}") from exc

    async def streams(self) -> list[Stream]:
        """Every sink input and source output now on the server. Raises SoundUnavailable."""
        with self._calls("list streams") as pulse:
            outputs, inputs = await asyncio.gather(_op(pulse.sink_input_list()),
                                                   _op(pulse.source_output_list()))
        return [_stream("output", i) for i in outputs] + [_stream("input", i) for i in inputs]

    async def stream(self, kind: StreamKind, index: int) -> Stream | None:
        """The stream ``index`` of ``kind``; None if it is gone. Raises SoundUnavailable."""
        pulsectl = importlib.import_module("pulsectl")
        with self._calls("look up a stream") as pulse:
            try:
                info = await _op(pulse.sink_input_info(index) if kind == "output"
                                 else pulse.source_output_info(index))
            except pulsectl.PulseIndexError:
                return None
        return _stream(kind, info)

    async def apply(self, stream: Stream, setting: StreamSetting) -> None:
        """Mute or unmute ``stream`` and set its volume. A stream that went away meanwhile
        is no error. Raises SoundUnavailable."""
        pulsectl = importlib.import_module("pulsectl")
        output = stream.kind == "output"
        with self._calls("set a stream's mute and volume") as pulse:
            calls = []  # sent at once, in this order (the server carries them out in order)
            if not setting.mute:
                volume = pulsectl.PulseVolumeInfo(setting.volume, stream.channels)
                calls.append(_op(pulse.sink_input_volume_set(stream.index, volume) if output
                                 else pulse.source_output_volume_set(stream.index, volume)))
            calls.append(_op(pulse.sink_input_mute(stream.index, setting.mute) if output
                             else pulse.source_output_mute(stream.index, setting.mute)))
            results = await asyncio.gather(*calls, return_exceptions=True)
            gone = pulsectl.PulseOperationFailed  # a stream that went away (QEMU closed it): no error
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, gone):
                    raise result

    async def sinks(self) -> dict[str, int]:
        """Every sink now on the server: its name -> its index. Raises SoundUnavailable."""
        with self._calls("list sinks") as pulse:
            return {str(info.name): int(info.index) for info in await _op(pulse.sink_list())}

    async def move(self, stream: Stream, sink: int) -> None:
        """Move the output ``stream`` to the sink of index ``sink``. A stream or sink that
        went away meanwhile is no error. Raises SoundUnavailable; ValueError for an input."""
        if stream.kind != "output":
            raise ValueError(f"only an output stream plays on a sink, not {stream}")
        pulsectl = importlib.import_module("pulsectl")
        gone = pulsectl.PulseOperationFailed  # the stream (QEMU closed it) or the sink went away
        with self._calls("move a stream to another sink") as pulse, contextlib.suppress(gone):
            await _op(pulse.sink_input_move(stream.index, sink))

    async def new_streams(self) -> AsyncIterator[tuple[StreamKind, int]]:
        """(kind, index) of every stream that appears from now on; ends by raising
        SoundUnavailable when the server goes away."""
        with self._calls("report new streams") as pulse:
            async for event in pulse.subscribe_events("sink_input", "source_output"):
                kinds = [k for facility, k in _FACILITY.items() if event.facility == facility]
                if kinds and event.t == "new":  # pulsectl's enum values compare to strings
                    yield kinds[0], int(event.index)
