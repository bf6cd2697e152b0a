"""A persona's run state (see :mod:`mux.guest.persona` for the transitions)."""

from __future__ import annotations

import enum


class RunState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASHED = "crashed"
