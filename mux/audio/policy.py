"""What a persona's sound streams should be, and PulseAudio's volume scale (pure).

Theory. The active persona's streams are *live*: unmuted, at full volume; with seats
(``[[seat]]``), every persona active on *some* seat is live (each seat hears its own on its
own sink, :mod:`mux.audio.follow`). A background persona's output is muted (``[audio]
background = "mute"``) or *ducked*: unmuted, 20 dB down (``"duck"``); its microphone is
muted either way (only the active persona may listen). A persona without ``audio`` is
``"off"``; one whose sound could not be set up (no sound server, no libpulse, QEMU without
its ``pa`` backend) is ``"unavailable"``.

PulseAudio's software volumes are cubic: a volume ``v`` (1.0 is 100 %, ``PA_VOLUME_NORM``)
scales the samples by ``v³``, so its gain is ``60·log10(v)`` dB, and 20 dB down is
``10^(-20/60) ≈ 0.464`` (46 %), not 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Set
from dataclasses import dataclass
from typing import Literal, TypeAlias

#: How far a ducked background persona is turned down.
DUCK_DB = 20.0

AudioState = Literal["live", "muted", "ducked", "off", "unavailable"]
StreamKind = Literal["output", "input"]  # a sink input (what the guest plays), a source output (its mic)
#: Who is active: the one active persona, the set of personas active on some seat, or None.
Active: TypeAlias = str | Set[str] | None


def volume_for_db(db: float) -> float:
    """PulseAudio's volume (1.0 = 100 %) whose gain is ``db`` decibels (cubic scale)."""
    return float(10 ** (db / 60.0))


def db_of_volume(volume: float) -> float:
    """The gain in decibels of PulseAudio volume ``volume`` (``-inf`` for 0)."""
    return 60.0 * math.log10(volume) if volume > 0 else -math.inf


@dataclass(frozen=True)
class StreamSetting:
    """What one stream should be: muted or not, and its volume (1.0 = 100 %)."""

    mute: bool
    volume: float = 1.0


LIVE = StreamSetting(mute=False)
MUTED = StreamSetting(mute=True)
DUCKED = StreamSetting(mute=False, volume=volume_for_db(-DUCK_DB))


def is_active(persona: str, active: Active) -> bool:
    """Whether ``persona`` is (one of) ``active``."""
    return persona == active if active is None or isinstance(active, str) else persona in active


def stream_setting(persona: str, active: Active, kind: StreamKind, background: str) -> StreamSetting:
    """The setting of ``persona``'s stream of ``kind`` while ``active`` is active."""
    if is_active(persona, active):
        return LIVE
    return DUCKED if background == "duck" and kind == "output" else MUTED


def persona_state(persona: str, active: Active, *, audio: bool, available: bool,
                  background: str) -> AudioState:
    """``persona``'s audio state (see the module docstring)."""
    if not audio:
        return "off"
    if not available:
        return "unavailable"
    if is_active(persona, active):
        return "live"
    return "ducked" if background == "duck" else "muted"


def matches(setting: StreamSetting, mute: bool, volume: float) -> bool:
    """Whether a stream that is ``mute`` at ``volume`` already has ``setting`` (volumes
    compared to PulseAudio's step, 1/65536)."""
    return mute == setting.mute and (mute or abs(volume - setting.volume) < 2 / 65536)
