"""What a replay leaves for people and CI systems: results, JUnit XML, an animated summary.

- :class:`StepResult` / :class:`ScenarioResult` are the record of a run, filled in by
  :mod:`mux.scenario.runner` as steps finish.
- ``results.json`` (:func:`write_results`) has every scenario and every step: status
  (``passed``, ``failed``, ``skipped``), duration, message, and the pictures taken,
  as paths relative to the artifacts directory.
- :func:`write_junit` writes the JUnit XML that Jenkins, GitLab and GitHub read, in the
  shape of Jenkins' ``junit-10.xsd``: one ``testsuite`` per scenario file, one
  ``testcase`` per scenario; a failed step is a ``failure`` whose message starts with
  the step's ``file:line:column``, a scenario that could not run (QEMU would not start)
  is an ``error``; ``system-out`` has the progress lines and the tail of every
  persona's serial log. Characters XML 1.0 cannot carry (a guest's escape sequences)
  are dropped.
- :class:`SummaryRecorder` samples the active persona's screen while the steps run and
  writes ``summary.gif``: small frames, a caption with the time, the persona and the
  step, identical frames merged, played at twice the real speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw

from mux.errors import MuxError
from mux.scenario.model import Scenario, Step

SERIAL_TAIL_LINES = 40
FRAME_WIDTH = 320
CAPTION_HEIGHT = 13
MAX_FRAMES = 600
SPEEDUP = 2.0
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class StepResult:
    number: str  # "3", or "3.2" for the second step inside step 3
    step: Step
    status: str  # "passed" | "failed" | "skipped"
    duration_s: float
    message: str = ""
    screenshots: list[Path] = field(default_factory=list)


@dataclass
class ScenarioResult:
    scenario: Scenario
    artifacts: Path = Path()
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""  # empty: passed
    could_not_run: bool = False  # the error is the machinery's (QEMU, snapshot), not a step's
    not_run: bool = False  # an earlier scenario failed and --keep-going was not given
    duration_s: float = 0.0
    startup_s: float | None = None  # from the start until the first step could run
    output: list[str] = field(default_factory=list)  # the progress lines
    serial_tails: dict[str, str] = field(default_factory=dict)
    info: list[str] = field(default_factory=list)  # record_info texts
    summary: Path | None = None

    @property
    def passed(self) -> bool:
        return not self.error and not self.not_run

    @property
    def failed_step(self) -> StepResult | None:
        leaves = [s for s in self.steps if s.status == "failed"]
        return min(leaves, key=lambda s: -s.number.count(".")) if leaves else None


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def results_data(results: list[ScenarioResult], artifacts: Path, exit_code: int) -> dict[str, Any]:
    """Everything in ``results.json``, as plain data."""
    def step(s: StepResult) -> dict[str, Any]:
        return {"number": s.number, "kind": s.step.kind, "step": s.step.describe(),
                "location": str(s.step.location), "status": s.status,
                "duration_s": round(s.duration_s, 3), "message": s.message,
                "screenshots": [_relative(p, artifacts) for p in s.screenshots]}

    def scenario(r: ScenarioResult) -> dict[str, Any]:
        failed = r.failed_step
        return {"name": r.scenario.name, "file": str(r.scenario.file),
                "status": _status(r),
                "duration_s": round(r.duration_s, 3),
                "startup_s": None if r.startup_s is None else round(r.startup_s, 3),
                "from_snapshot": r.scenario.from_snapshot, "error": r.error,
                "failed_step": str(failed.step.location) if failed else None,
                "artifacts": _relative(r.artifacts, artifacts),
                "serial_logs": {name: _relative(r.artifacts / f"{name}.serial.log", artifacts)
                                for name in r.scenario.config.names},
                "summary": _relative(r.summary, artifacts) if r.summary else None,
                "info": r.info, "steps": [step(s) for s in r.steps]}

    statuses = [_status(r) for r in results]
    return {"passed": statuses.count("passed"), "failed": len(results) - statuses.count("passed")
            - statuses.count("skipped"), "skipped": statuses.count("skipped"), "exit_code": exit_code,
            "scenarios": [scenario(r) for r in results]}


def _status(r: ScenarioResult) -> str:
    """passed, failed (a step), error (could not run) or skipped (not run)."""
    if r.not_run:
        return "skipped"
    return "passed" if r.passed else "error" if r.could_not_run else "failed"


def write_results(results: list[ScenarioResult], artifacts: Path, exit_code: int) -> Path:
    """Write ``artifacts/results.json``; returns its path.

    Raises:
        OSError: it could not be written.
    """
    path = artifacts / "results.json"
    artifacts.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results_data(results, artifacts, exit_code), indent=2) + "\n",
                    encoding="utf-8")
    return path


def _clean(text: str) -> str:
    return _XML_BAD.sub("", text)


def junit_tree(results: list[ScenarioResult]) -> ET.Element:
    """The JUnit XML document (Jenkins' junit-10.xsd) for a run."""
    statuses = [_status(r) for r in results]
    root = ET.Element("testsuites", name="mux replay", tests=str(len(results)),
                      failures=str(statuses.count("failed")), errors=str(statuses.count("error")),
                      time=f"{sum(r.duration_s for r in results):.3f}")
    host = socket.gethostname()
    for r, status in zip(results, statuses, strict=True):
        suite = ET.SubElement(root, "testsuite", name=str(r.scenario.file), tests="1",
                              failures=str(int(status == "failed")), errors=str(int(status == "error")),
                              skipped=str(int(status == "skipped")), time=f"{r.duration_s:.3f}",
                              timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"), hostname=host,
                              file=str(r.scenario.file))
        case = ET.SubElement(suite, "testcase", name=r.scenario.name, classname=r.scenario.file.stem,
                             time=f"{r.duration_s:.3f}")
        if status == "skipped":
            ET.SubElement(case, "skipped", message="not run: an earlier scenario failed (no --keep-going)")
            continue
        if not r.passed:
            failed = r.failed_step
            kind = "error" if r.could_not_run else "failure"
            detail = [r.error]
            if failed:
                detail.append(f"step {failed.number} at {failed.step.location}: {failed.step.describe()}")
                detail += [f"picture: {p}" for p in failed.screenshots]
            element = ET.SubElement(case, kind, message=_clean(r.error.splitlines()[0] if r.error else ""),
                                    type="StepFailed" if failed else "MuxError")
            element.text = _clean("\n".join(detail))
        out = [*r.output, *[f"info: {text}" for text in r.info]]
        for name, tail in r.serial_tails.items():
            out += ["", f"--- last {SERIAL_TAIL_LINES} lines of {name}'s serial log ---", tail]
        ET.SubElement(case, "system-out").text = _clean("\n".join(out))
    return root


def write_junit(results: list[ScenarioResult], path: Path) -> Path:
    """Write the JUnit XML report to ``path``.

    Raises:
        OSError: it could not be written.
    """
    tree = ET.ElementTree(junit_tree(results))
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return path


class SummaryRecorder:
    """Samples the active persona's screen into small frames for ``summary.gif``.

    ``screenshot(name)`` and ``active()`` come from the controller; ``caption()`` says
    which step is running.
    """

    def __init__(self, screenshot: Callable[[str], Any], active: Callable[[], str | None],
                 caption: Callable[[], str], interval_s: float = 0.5) -> None:
        self._screenshot = screenshot
        self._active = active
        self._caption = caption
        self.interval_s = interval_s
        self.frames: list[Image.Image] = []
        self.durations: list[float] = []
        self._began = time.monotonic()
        self._last_time = self._began
        self._last_caption = ""

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await self.capture()
            await asyncio.sleep(self.interval_s)

    async def capture(self) -> None:
        """Add one frame (or lengthen the last one if nothing changed)."""
        name = self._active()
        now = time.monotonic()
        image: Image.Image | None = None
        if name is not None:
            with contextlib.suppress(MuxError, KeyError, OSError):
                image = await self._screenshot(name)
        height = FRAME_WIDTH * 3 // 4
        if image is not None:
            height = max(1, image.height * FRAME_WIDTH // image.width)
        frame = Image.new("RGB", (FRAME_WIDTH, height + CAPTION_HEIGHT), (30, 30, 30))
        if image is not None:
            frame.paste(image.convert("RGB").resize((FRAME_WIDTH, height), Image.Resampling.BILINEAR))
        what = f"{name or '-'}  {self._caption()}"
        if self.frames:
            self.durations[-1] += now - self._last_time
        self._last_time = now
        last = self.frames[-1] if self.frames else None
        if last is not None and last.size == frame.size and what == self._last_caption and \
                ImageChops.difference(last.crop((0, 0, FRAME_WIDTH, height)),
                                      frame.crop((0, 0, FRAME_WIDTH, height))).getbbox() is None:
            return  # nothing new: the last frame just lasts longer
        self._last_caption = what
        ImageDraw.Draw(frame).rectangle((0, height, FRAME_WIDTH, height + CAPTION_HEIGHT), fill=(0, 0, 0))
        ImageDraw.Draw(frame).text((3, height + 1), f"{now - self._began:6.1f}s {what}"[:56],
                                   fill=(255, 255, 255))
        if len(self.frames) >= MAX_FRAMES:  # keep every other frame, sample half as often
            self.frames, self.durations = self.frames[::2], [
                sum(self.durations[i:i + 2]) for i in range(0, len(self.durations), 2)]
            self.interval_s *= 2
        self.frames.append(frame)
        self.durations.append(0.0)

    def save(self, path: Path) -> Path | None:
        """Write the animated GIF; None if no frame was captured.

        Raises:
            OSError: it could not be written.
        """
        if not self.frames:
            return None
        self.durations[-1] = max(self.durations[-1], 1.0)
        durations = [max(20, int(d * 1000 / SPEEDUP)) for d in self.durations]
        self.frames[0].save(path, save_all=True, append_images=self.frames[1:], duration=durations,
                            loop=0, disposal=1)
        return path
