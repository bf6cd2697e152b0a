"""The steps that switch and give input, mixed into the runner.

Input steps (``type``, ``press``, ``hold``, ``release``, ``mouse_move``, ``mouse_click``,
``evemu``, and the clicks of :mod:`mux.scenario.screen_steps`) enter through :meth:`Controller.input`, the
same path as a physical keyboard's, never straight into a persona: so they reach the
active persona of their ``seat`` only, and the router's rules (held keys released at a
switch, hotkeys) hold for them as for a person typing.

``switch`` switches the step's seat (:mod:`mux.scenario.seated`: default the first) and
fails with the :class:`~mux.errors.SeatError`'s message when the seat may not show the
persona or it is active on another seat (unless ``[mux] steal``); ``assert_active`` looks
at the seat's active persona.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mux.errors import StepFailed
from mux.input import keymap
from mux.input.events import EV_KEY, EV_REL, EV_SYN, REL_X, REL_Y, InputEvent
from mux.input.sources import RecordingSource
from mux.scenario import typist
from mux.scenario.model import MOUSE_BUTTONS, scenario_chord
from mux.scenario.seated import SeatedSteps

SYN = InputEvent(EV_SYN, 0, 0)
KEY_GAP_S = 0.01  # between key events of typed text, so a slow TCG guest keeps up


class InputSteps(SeatedSteps):
    """``step_*`` methods for switching and input; the runner provides what is declared here."""

    message: str

    async def step_switch(self, a: dict[str, Any]) -> None:
        seat = a.get("seat")
        if seat is None:
            await self.ctl.switch(a["persona"], "scenario")
        else:
            self.message = f"seat {seat}: {await self.ctl.switch(a['persona'], 'scenario', seat)}"

    async def step_assert_active(self, a: dict[str, Any]) -> None:
        seat = a.get("seat")
        active = self.active_on(seat)
        if active != a["persona"]:
            where = f" on seat {seat}" if seat is not None else ""
            raise StepFailed(f"active persona{where} is {active}, expected {a['persona']}")

    async def step_type(self, a: dict[str, Any]) -> None:
        # batched, paced: no key lost
        await typist.type_text(self.ctl, a["text"], a.get("rate"), a.get("seat"))

    async def step_press(self, a: dict[str, Any]) -> None:
        await self.press_keys(a["keys"], a.get("seat"))

    async def press_keys(self, chord_spec: str, seat: str | None = None) -> None:
        chord = scenario_chord(chord_spec)
        await self._keys([(code, 1) for code in chord] + [(code, 0) for code in reversed(chord)], seat)

    async def step_hold(self, a: dict[str, Any]) -> None:
        await self._keys([(keymap.key_code(a["key"]), 1)], a.get("seat"))

    async def step_release(self, a: dict[str, Any]) -> None:
        await self._keys([(keymap.key_code(a["key"]), 0)], a.get("seat"))

    async def _keys(self, keys: list[tuple[int, int]], seat: str | None = None) -> None:
        for code, value in keys:
            await self.send([InputEvent(EV_KEY, code, value), SYN], seat)
            await asyncio.sleep(KEY_GAP_S)

    async def step_mouse_move(self, a: dict[str, Any]) -> None:
        dx, dy = a["delta"]
        await self.send([InputEvent(EV_REL, REL_X, dx), InputEvent(EV_REL, REL_Y, dy), SYN], a.get("seat"))

    async def step_mouse_click(self, a: dict[str, Any]) -> None:
        button = MOUSE_BUTTONS[a["button"]]
        await self._keys([(button, 1), (button, 0)], a.get("seat"))

    async def step_evemu(self, a: dict[str, Any]) -> None:
        source = RecordingSource(a["path"], realtime=a["realtime"])
        async for batch in source.batches():
            await self.send(batch, a.get("seat"))
            if not a["realtime"]:
                await asyncio.sleep(KEY_GAP_S)
