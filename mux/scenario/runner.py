"""Replaying scenarios against fresh personas (``mux replay``).

Every file is checked first (:mod:`mux.scenario.model`, with its includes and needles); a
bad file stops the run before any guest boots (exit 2). Each scenario then gets its own
controller, booted or restored from a snapshot (:mod:`mux.scenario.snapshot`), and its steps run
in order with one progress line each. A step that fails raises
:class:`~mux.errors.StepFailed` (or a QEMU error, or a timeout); the runner records the
innermost failing step, so the message names that step's ``file:line:column``, and the
scenario saves a screenshot of every persona (plus a picture of the difference for a
failed screen assertion). The records (:mod:`mux.scenario.report`) become ``results.json``,
the JUnit XML, and ``summary.gif``; each persona's serial log is kept beside them. A guest
is untrusted: guest text put in a message has its control characters made visible
(:mod:`mux.guest.text`), and every progress line is made visible once more as it is said.

Flow control is the runner's: ``if`` runs a step only when its check_screen holds,
``repeat`` runs it ``times`` times or until its ``until`` holds (failing if it never
does), ``include`` and ``repeat`` blocks run their steps, numbered ``3.1``, ``3.2``...

Input steps (``type``, ``press``, ``hold``, ``release``...) enter through
:meth:`Controller.input`, the same path as the physical keyboard, never straight into
a persona; they and the steps that look at "the active persona" take a ``seat``
(:mod:`mux.scenario.input_steps`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mux.app.controller import Controller
from mux.config import Config
from mux.errors import MuxError, ScenarioError, SnapshotError, StepFailed
from mux.guest.state import RunState
from mux.guest.text import visible_lines
from mux.scenario import snapshot
from mux.scenario.guest_steps import GuestSteps
from mux.scenario.input_steps import InputSteps
from mux.scenario.model import Scenario, Step, timeout_scale
from mux.scenario.parse import load_scenario
from mux.scenario.report import ScenarioResult, StepResult, SummaryRecorder
from mux.scenario.screen_steps import ScreenSteps

CLICK_STEPS = ("assert_and_click", "click_lastmatch")  # their personas get an absolute pointer
SNAPSHOT_TIMEOUT_S = 60.0
# What fails a step (recorded, the scenario stops); anything else is a bug in mux and propagates.
# TimeoutError: a wait (serial, snapshot restore) that did not end in time.
FAILURES = (StepFailed, MuxError, TimeoutError)

__all__ = ["ScenarioResult", "StepResult", "StepRunner", "load_all", "run_scenario"]


def load_all(paths: list[Path], snapshots: Path | None = None) -> list[Scenario]:
    """Load every file, collecting the problems of all of them.

    ``from_snapshot`` must name a snapshot that an earlier file saves, or one already
    stored under ``snapshots`` (not checked when ``snapshots`` is None).

    Raises:
        ScenarioError: one or more files are bad (every problem, with locations).
    """
    scenarios: list[Scenario] = []
    problems = []
    saved: dict[str, Config] = {}

    def lookup(name: str) -> Config | None:
        if name in saved:
            return saved[name]
        return snapshot.saved_config(snapshots, name) if snapshots else None

    for path in paths:
        try:
            scenario = load_scenario(path, lookup if snapshots else None)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        scenarios.append(scenario)
        saved.update(dict.fromkeys(scenario.saves, scenario.config))
    if problems:
        raise ScenarioError(problems)
    return scenarios


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"


async def run_scenario(scenario: Scenario, artifacts: Path, out: Callable[[str], None] = print,
                       snapshots: Path | None = None, directory: Path | None = None,
                       missing: dict[str, str] | None = None) -> ScenarioResult:
    """Boot (or restore) the scenario's personas, run its steps, stop everything.

    Artifacts go to ``directory`` (default ``artifacts/<scenario name>``); snapshots to
    and from ``snapshots`` (default :func:`mux.scenario.snapshot.default_dir`). ``missing`` maps
    snapshot names that this run should have saved but did not to the reason.
    """
    logs = directory or artifacts / _slug(scenario.name)
    logs.mkdir(parents=True, exist_ok=True)
    result = ScenarioResult(scenario, artifacts=logs)

    def say(text: str) -> None:
        line = visible_lines(text)  # a message may carry guest text (an agent's error, say)
        result.output.append(line)
        out(line)

    say(f"scenario {scenario.name!r} ({scenario.file})")
    began = time.monotonic()
    config = scenario.config
    if scenario.from_snapshot:
        config = dataclasses.replace(config, personas=tuple(
            dataclasses.replace(p, autostart=False) for p in config.personas))
    store = snapshots or snapshot.default_dir()
    try:
        clicks = any(s.kind in CLICK_STEPS for top in scenario.steps for s in top.walk())
        async with Controller(config, logs_dir=logs, progress=lambda m: say(f"  {m}"), tablet=clicks) as ctl:
            runner = StepRunner(ctl, logs, result=result, say=say, snapshots=store, scenario=scenario)
            try:
                if scenario.from_snapshot:
                    name = scenario.from_snapshot
                    if reason := (missing or {}).get(name):
                        raise SnapshotError(f"snapshot {name!r} was not saved: {reason}")
                    await snapshot.restore(ctl, store, name, runner.timeout(SNAPSHOT_TIMEOUT_S))
                    say(f"  restored snapshot {name!r} in {time.monotonic() - began:.2f}s")
            except MuxError as exc:
                result.error, result.could_not_run = f"{scenario.file}: could not start: {exc}", True
            else:
                result.startup_s = time.monotonic() - began
                await runner.run_scenario_steps()
            result.serial_tails = {name: p.serial.tail(40) for name, p in ctl.personas.items()}
    except MuxError as exc:
        result.error, result.could_not_run = f"{scenario.file}: could not run: {exc}", True
    result.duration_s = time.monotonic() - began
    say(f"scenario {scenario.name!r}: {'passed' if result.passed else 'FAILED'}"
        f" in {result.duration_s:.1f}s; artifacts and serial logs in {logs}")
    if result.error:
        say(result.error)
    return result


class StepRunner(InputSteps, ScreenSteps, GuestSteps):
    """Runs steps against one controller; one ``step_*`` method per step kind.

    ``StepRunner(ctl)`` alone is enough to call step methods directly (tests do); the
    other arguments are for whole scenarios: where pictures go, the record to fill in,
    where progress lines go, and where snapshots live.
    """

    def __init__(self, ctl: Controller, artifacts: Path | None = None, *,
                 result: ScenarioResult | None = None, say: Callable[[str], None] | None = None,
                 snapshots: Path | None = None, scenario: Scenario | None = None) -> None:
        self.ctl = ctl
        self.scale = timeout_scale()
        self.artifacts = artifacts or ctl.runtime_dir
        self.result = result
        self.say = say or (lambda line: None)
        self.snapshots = snapshots or snapshot.default_dir()
        self.scenario = scenario
        self.message = ""
        self.pictures: list[Path] = []
        self.reference: dict[str, Any] = {}
        self.current = ""  # the number of the running step, for the summary's caption
        self._began = time.monotonic()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            name[len("step_"):]: getattr(self, name) for name in dir(self) if name.startswith("step_")
        }

    async def run(self, step: Step) -> None:
        """Run one step (with its ``if``, ``repeat`` and inner steps)."""
        await self.run_step(step, "1")

    def timeout(self, seconds: float) -> float:
        return float(seconds) * self.scale

    # --- whole scenarios and flow control -------------------------------------------

    async def run_scenario_steps(self) -> None:
        """The scenario's steps, then its ``snapshot``; a failure is recorded, not raised."""
        assert self.scenario is not None and self.result is not None
        recorder = SummaryRecorder(self.ctl.screenshot, lambda: self.ctl.active, lambda: self.current)
        sampler = asyncio.create_task(recorder.run(), name="replay:summary")
        try:
            await self.run_steps(self.scenario.steps, "")
            if self.scenario.snapshot:
                where = await snapshot.save(self.ctl, self.snapshots, self.scenario.snapshot,
                                            self.scenario.config_data, self.scenario.file,
                                            self.timeout(SNAPSHOT_TIMEOUT_S))
                self.say(f"  saved snapshot {self.scenario.snapshot!r} in {where}")
        except FAILURES as exc:
            failed = self.result.failed_step
            message = str(exc) or type(exc).__name__
            if failed is None:  # the scenario's own snapshot
                self.result.error = f"{self.scenario.file}: snapshot {self.scenario.snapshot!r}: {message}"
            else:
                self.result.error = (f"{failed.step.location}: step {failed.number} {failed.step.kind}"
                                     f" failed: {failed.message}")
                try:
                    failed.screenshots += await self.failure_pictures(f"fail-step{failed.number}", exc)
                    for path in failed.screenshots:
                        self.say(f"  picture: {path}")
                except OSError as error:
                    self.say(f"  could not save the failure's pictures: {error}")
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await recorder.capture()
            try:
                self.result.summary = await asyncio.to_thread(recorder.save, self.artifacts / "summary.gif")
            except OSError as error:
                self.say(f"  could not save the summary: {error}")

    async def run_steps(self, steps: list[Step] | tuple[Step, ...], prefix: str) -> None:
        for index, step in enumerate(steps):
            if index + 1 < len(steps) and steps[index + 1].kind == "wait_screen_change":
                await self._take_reference(steps[index + 1])
            await self.run_step(step, f"{prefix}{index + 1}")

    async def run_step(self, step: Step, number: str) -> None:
        """One step with its flow control; records it and raises what made it fail."""
        self.current = f"{number} {step.kind}"
        began = time.monotonic()
        times = step.repeat.times if step.repeat else 1
        note = ""
        try:
            if step.when is not None and not await self.check(step.when.args):
                self._record(number, step, "skipped", began, f"if: {self.message}")
                return
            for done in range(1, times + 1):
                await self._once(step, number)
                if step.repeat and step.repeat.until:
                    if await self.check(step.repeat.until.args):
                        note = f"until held after {done}"
                        break
                    if done == times:
                        raise StepFailed(f"repeat: until did not hold after {times} times: {self.message}")
        except FAILURES as exc:
            self._record(number, step, "failed", began, str(exc) or type(exc).__name__)
            raise
        self._record(number, step, "passed", began, note or ("" if step.body else self.message))

    async def _once(self, step: Step, number: str) -> None:
        self.message = ""
        if step.body:
            await self.run_steps(step.body, f"{number}.")
        else:
            await self._handlers[step.kind](step.args)

    def _record(self, number: str, step: Step, status: str, began: float, message: str) -> None:
        elapsed = time.monotonic() - began
        pictures, self.pictures = self.pictures, []
        if self.result is not None:
            if status == "failed" and any(s.status == "failed" for s in self.result.steps):
                message = f"step {self.result.failed_step.number if self.result.failed_step else '?'} failed"
            self.result.steps.append(StepResult(number, step, status, elapsed, message, pictures))
        word = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[status]
        shown = status != "passed" or step.repeat is not None \
            or step.kind in ("record_info", "check_screen", "check_text", "screenshot", "snapshot")
        detail = f": {message}" if message and shown else ""
        self.say(f"  [{time.monotonic() - self._began:7.2f}s] {word} {number} {step.describe()}"
                 f" ({elapsed:.2f}s){detail}")

    async def _take_reference(self, step: Step) -> None:
        try:
            name = step.args.get("persona") or self.active_on(step.args.get("seat"))
        except MuxError:
            return  # an unknown seat: the step itself fails
        if name and self.ctl.persona(name).state == RunState.RUNNING:
            try:
                self.reference[name] = await self.ctl.screenshot(name)
            except MuxError:
                self.reference.pop(name, None)

    # --- the first cut's steps ------------------------------------------------------

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

    async def step_wait_serial(self, a: dict[str, Any]) -> None:
        log = self.ctl.persona(a["persona"]).serial
        try:
            await log.wait_for(_pattern(a["match"]), self.timeout(a["timeout"]))
        except TimeoutError:
            raise StepFailed(f"{a['match']!r} did not appear on {a['persona']}'s serial port within "
                             f"{self.timeout(a['timeout']):.0f}s; last lines:\n"
                             f"{visible_lines(log.tail(10))}") from None

    async def step_assert_no_serial(self, a: dict[str, Any]) -> None:
        log = self.ctl.persona(a["persona"]).serial
        # All the output still in memory, then only what arrives (see mux.guest.serial).
        watch = log.watch(_pattern(a["match"]), log.start)
        deadline = time.monotonic() + self.timeout(a["within"])
        while True:
            match = watch.check()
            if match:
                raise StepFailed(f"{a['match']!r} appeared on {a['persona']}'s serial port: "
                                 f"{match.group(0)[:200]!r}")
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0)))

    async def step_assert_state(self, a: dict[str, Any]) -> None:
        persona = self.ctl.persona(a["persona"])
        try:
            await persona.wait_state(RunState(a["state"]), self.timeout(a["timeout"]))
        except TimeoutError:
            raise StepFailed(f"{persona.name} is {persona.state}, expected {a['state']}") from None

    async def step_sleep(self, a: dict[str, Any]) -> None:
        await asyncio.sleep(float(a["seconds"]))

    async def step_attach(self, a: dict[str, Any]) -> None:
        await self.ctl.attach(a["device"], a["persona"])

    async def step_detach(self, a: dict[str, Any]) -> None:
        await self.ctl.detach(a["device"])

    # --- reporting and snapshots ----------------------------------------------------

    async def step_record_info(self, a: dict[str, Any]) -> None:
        text = f"{a['title']}: {a['text']}" if a["title"] else a["text"]
        if self.result is not None:
            self.result.info.append(text)
        self.message = text

    async def step_snapshot(self, a: dict[str, Any]) -> None:
        scenario = self.scenario
        where = await snapshot.save(self.ctl, self.snapshots, a["name"],
                                    scenario.config_data if scenario else None,
                                    scenario.file if scenario else Path("<scenario>"),
                                    self.timeout(SNAPSHOT_TIMEOUT_S))
        self.message = f"saved in {where}"


def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.MULTILINE)
