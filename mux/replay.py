"""Replaying scenarios against fresh personas (``mux replay``).

Every file is checked first (:mod:`mux.scenario`); a bad file stops the run before any
guest boots (exit 2). Each scenario then gets its own controller, and its steps run in
order with one progress line each. A step that fails raises
:class:`~mux.errors.StepFailed`, whose message names the step and its line; the
scenario's serial logs are kept under the artifacts directory.

Input steps (``type``, ``press``, ``hold``, ``release``) enter through
:meth:`Controller.input`, the same path as the physical keyboard, never straight into
a persona.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mux import keymap
from mux.controller import Controller
from mux.errors import MuxError, ScenarioError, StepFailed
from mux.persona import RunState
from mux.inputs import RecordingSource
from mux.router import EV_KEY, EV_REL, EV_SYN, REL_X, REL_Y, InputEvent
from mux.scenario import MOUSE_BUTTONS, Scenario, Step, load_scenario, scenario_chord, timeout_scale

SYN = InputEvent(EV_SYN, 0, 0)
KEY_GAP_S = 0.01  # between key events of typed text, so a slow TCG guest keeps up


@dataclass
class StepResult:
    step: Step
    status: str  # "passed" | "failed"
    duration_s: float
    message: str = ""


@dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error


def load_all(paths: list[Path]) -> list[Scenario]:
    """Load every file, collecting the problems of all of them.

    Raises:
        ScenarioError: one or more files are bad (every problem, with locations).
    """
    scenarios: list[Scenario] = []
    problems = []
    for path in paths:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return scenarios


async def run_scenario(scenario: Scenario, artifacts: Path,
                       out: Callable[[str], None] = print) -> ScenarioResult:
    """Boot the scenario's personas, run its steps, stop everything."""
    result = ScenarioResult(scenario)
    logs = artifacts / _slug(scenario.name)
    out(f"scenario {scenario.name!r} ({scenario.file})")
    began = time.monotonic()
    try:
        async with Controller(scenario.config, logs_dir=logs, progress=lambda m: out(f"  {m}")) as ctl:
            runner = StepRunner(ctl)
            for number, step in enumerate(scenario.steps, start=1):
                t0 = time.monotonic()
                try:
                    await runner.run(step)
                except (StepFailed, MuxError, TimeoutError) as exc:
                    message = str(exc) or type(exc).__name__
                    result.steps.append(StepResult(step, "failed", time.monotonic() - t0, message))
                    result.error = f"{step.location}: step {number} {step.kind} failed: {message}"
                    out(f"  [{time.monotonic() - began:7.2f}s] FAIL {number} {step.describe()}: {message}")
                    break
                result.steps.append(StepResult(step, "passed", time.monotonic() - t0))
                out(f"  [{time.monotonic() - began:7.2f}s] ok   {number} {step.describe()}")
    except MuxError as exc:
        result.error = f"{scenario.file}: could not run: {exc}"
    out(f"scenario {scenario.name!r}: {'passed' if result.passed else 'FAILED'}"
        f" in {time.monotonic() - began:.1f}s; serial logs in {logs}")
    if result.error:
        out(result.error)
    return result


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"


class StepRunner:
    """Runs steps against one controller; one method per step kind."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.scale = timeout_scale()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            name[len("step_"):]: getattr(self, name) for name in dir(self) if name.startswith("step_")
        }

    async def run(self, step: Step) -> None:
        await self._handlers[step.kind](step.args)

    def timeout(self, seconds: float) -> float:
        return float(seconds) * self.scale

    async def step_start(self, a: dict[str, Any]) -> None:
        persona = self.ctl.persona(a["persona"])
        if persona.state != RunState.RUNNING:
            await asyncio.wait_for(self.ctl.start_personas([persona.name]), self.timeout(a["timeout"]))
        if persona.state != RunState.RUNNING:
            raise StepFailed(f"{persona.name} did not start (state {persona.state})")

    async def step_stop(self, a: dict[str, Any]) -> None:
        await self.ctl.persona(a["persona"]).stop()

    async def step_kill(self, a: dict[str, Any]) -> None:
        await self.ctl.persona(a["persona"]).kill()

    async def step_switch(self, a: dict[str, Any]) -> None:
        await self.ctl.switch(a["persona"], "scenario")

    async def step_type(self, a: dict[str, Any]) -> None:
        for chord in keymap.text_to_chords(a["text"]):
            await self._keys([(code, 1) for code in chord] + [(code, 0) for code in reversed(chord)])

    async def step_press(self, a: dict[str, Any]) -> None:
        chord = scenario_chord(a["keys"])
        await self._keys([(code, 1) for code in chord] + [(code, 0) for code in reversed(chord)])

    async def step_hold(self, a: dict[str, Any]) -> None:
        await self._keys([(keymap.key_code(a["key"]), 1)])

    async def step_release(self, a: dict[str, Any]) -> None:
        await self._keys([(keymap.key_code(a["key"]), 0)])

    async def _keys(self, keys: list[tuple[int, int]]) -> None:
        for code, value in keys:
            await self.ctl.input([InputEvent(EV_KEY, code, value), SYN])
            await asyncio.sleep(KEY_GAP_S)

    async def step_mouse_move(self, a: dict[str, Any]) -> None:
        dx, dy = a["delta"]
        await self.ctl.input([InputEvent(EV_REL, REL_X, dx), InputEvent(EV_REL, REL_Y, dy), SYN])

    async def step_mouse_click(self, a: dict[str, Any]) -> None:
        button = MOUSE_BUTTONS[a["button"]]
        await self._keys([(button, 1), (button, 0)])

    async def step_evemu(self, a: dict[str, Any]) -> None:
        source = RecordingSource(a["path"], realtime=a["realtime"])
        async for batch in source.batches():
            await self.ctl.input(batch)
            if not a["realtime"]:
                await asyncio.sleep(KEY_GAP_S)

    async def step_wait_serial(self, a: dict[str, Any]) -> None:
        log = self.ctl.persona(a["persona"]).serial
        try:
            await log.wait_for(_pattern(a["match"]), self.timeout(a["timeout"]))
        except TimeoutError:
            raise StepFailed(f"{a['match']!r} did not appear on {a['persona']}'s serial port within "
                             f"{self.timeout(a['timeout']):.0f}s; last lines:\n{log.tail(10)}") from None

    async def step_assert_no_serial(self, a: dict[str, Any]) -> None:
        log = self.ctl.persona(a["persona"]).serial
        pattern = _pattern(a["match"])
        deadline = time.monotonic() + self.timeout(a["within"])
        while True:
            match = log.search(pattern)
            if match:
                raise StepFailed(f"{a['match']!r} appeared on {a['persona']}'s serial port: "
                                 f"{match.group(0)[:200]!r}")
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0)))

    async def step_assert_active(self, a: dict[str, Any]) -> None:
        if self.ctl.active != a["persona"]:
            raise StepFailed(f"active persona is {self.ctl.active}, expected {a['persona']}")

    async def step_assert_state(self, a: dict[str, Any]) -> None:
        persona = self.ctl.persona(a["persona"])
        try:
            await persona.wait_state(RunState(a["state"]), self.timeout(a["timeout"]))
        except TimeoutError:
            raise StepFailed(f"{persona.name} is {persona.state}, expected {a['state']}") from None

    async def step_sleep(self, a: dict[str, Any]) -> None:
        await asyncio.sleep(float(a["seconds"]))


def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.MULTILINE)

