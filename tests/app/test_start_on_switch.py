"""A switch goes to a running persona: the switcher's ``ready`` step starts a stopped one
or refuses the switch, for every source, before anything else is touched."""

from __future__ import annotations

import asyncio

import pytest

from mux.app.events import Event, Events, Switched
from mux.app.switcher import Switcher
from mux.errors import StateError

pytestmark = pytest.mark.pure


async def test_a_refused_ready_changes_nothing_and_a_started_one_switches() -> None:
    running = {"work"}
    applied: list[tuple[str, str | None, str]] = []
    heard: list[Event] = []

    async def ready(name: str) -> None:
        if name == "garden":  # stands in for start_on_switch = false and a stopped persona
            raise StateError(name, "stopped", "running ([mux] start_on_switch is false)")
        running.add(name)  # stands in for starting it

    def part(label: str):  # type: ignore[no-untyped-def]
        async def apply(old: str | None, new: str | None, *seat: str) -> None:
            applied.append((label, old, new))
        return apply

    hub = Events()
    hub.subscribe(heard.append)
    switcher = Switcher(["work", "home", "garden"], hub, prepare=part("devices"),
                        parts=[("input", part("input"))], ready=ready)
    consumer = asyncio.create_task(switcher.run())
    try:
        assert await switcher.request("work", "startup") == "work"
        applied.clear()
        with pytest.raises(StateError, match="start_on_switch is false"):
            await switcher.request("garden", "hotkey")
        assert switcher.active == "work" and applied == [] and len(heard) == 1
        assert await switcher.request("home", "mqtt") == "home"
        assert "home" in running and applied == [("devices", "work", "home"), ("input", "work", "home")]
        assert heard[-1] == Switched("work", "home", "mqtt")
    finally:
        consumer.cancel()
