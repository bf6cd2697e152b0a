"""Scenario files: the model (pure: no asyncio, QEMU or I/O but reading a file).

A scenario is YAML: a ``name``, an inline ``config`` (the TOML schema), and ``steps``;
optionally ``snapshot: NAME`` (save every persona when the steps have passed) and
``from_snapshot: NAME`` (start from a saved state instead of booting; the config may
then be left out and is the saving scenario's). Each step is a mapping with one step
key, ``- wait_serial: {persona: work, match: READY}``, whose argument is either a
mapping or, for steps with a main argument, that value alone (``- switch: home``).
Beside the step key a step may carry ``if: <check_screen arguments>`` (the step runs
only when the screen matches) and ``repeat: {times, until}`` (``until`` also takes
check_screen arguments). Two steps hold other steps: ``include: other.yaml`` (a list of
steps, or a mapping with ``steps``; relative to the including file) and ``repeat:
{times, until, steps}``.

The step vocabulary is the table :data:`STEPS`; a file becomes a :class:`Scenario` of
:class:`Step` trees. Reading and checking a file is :mod:`mux.scenario.parse` (the file)
and :mod:`mux.scenario.steps` (its steps): everything that is wrong in a file (YAML
syntax, unknown steps, argument types, unknown personas, regexes that do not compile,
missing or broken needles, include cycles) is found before anything boots and reported
at once, each with ``file:line:column``. Needles are resolved when a file is read
(:mod:`mux.needles`): a step keeps them in its ``_needles`` argument.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mux.config import Config
from mux.errors import ConfigError, Location, ScenarioError
from mux.sourcemap import SourceMap, load_yaml_text

Number = (int, float)


@dataclass(frozen=True)
class Arg:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    persona: bool = False  # must name a configured persona
    regex: bool = False  # must compile
    needle: bool = False  # a needle path or tags, resolved when the file is loaded


@dataclass(frozen=True)
class StepSpec:
    args: dict[str, Arg]
    main: str | None = None  # the argument a bare value stands for


def _persona(required: bool = True, default: Any = None) -> Arg:
    return Arg(str, default, required, persona=True)


def _needle() -> Arg:
    return Arg((str, list), required=True, needle=True)


STEPS: dict[str, StepSpec] = {
    "start": StepSpec({"persona": _persona(), "timeout": Arg(Number, 60)}, "persona"),
    "stop": StepSpec({"persona": _persona()}, "persona"),
    "kill": StepSpec({"persona": _persona()}, "persona"),
    "switch": StepSpec({"persona": Arg(str, required=True)}, "persona"),
    "type": StepSpec({"text": Arg(str, required=True), "rate": Arg(Number)}, "text"),
    "press": StepSpec({"keys": Arg(str, required=True)}, "keys"),
    "hold": StepSpec({"key": Arg(str, required=True)}, "key"),
    "release": StepSpec({"key": Arg(str, required=True)}, "key"),
    "wait_serial": StepSpec({"persona": _persona(), "match": Arg(str, required=True, regex=True),
                             "timeout": Arg(Number, 90)}),
    "assert_no_serial": StepSpec({"persona": _persona(),
                                  "match": Arg(str, required=True, regex=True),
                                  "within": Arg(Number, 0)}),
    "assert_active": StepSpec({"persona": _persona()}, "persona"),
    "assert_state": StepSpec({"persona": _persona(), "state": Arg(str, required=True),
                              "timeout": Arg(Number, 30)}),
    "sleep": StepSpec({"seconds": Arg(Number, required=True)}, "seconds"),
    "mouse_move": StepSpec({"delta": Arg(list, required=True)}, "delta"),
    "mouse_click": StepSpec({"button": Arg(str, "left")}, "button"),
    "evemu": StepSpec({"path": Arg(str, required=True), "realtime": Arg(bool, False)}, "path"),
    "attach": StepSpec({"device": Arg(str, required=True), "persona": _persona()}),
    "detach": StepSpec({"device": Arg(str, required=True)}, "device"),
    # openQA's screen vocabulary; persona None means the active one.
    "assert_screen": StepSpec({"persona": _persona(False), "needle": _needle(), "timeout": Arg(Number, 30)},
                              "needle"),
    "check_screen": StepSpec({"persona": _persona(False), "needle": _needle(), "timeout": Arg(Number, 0)},
                             "needle"),
    "wait_screen_change": StepSpec({"persona": _persona(False), "timeout": Arg(Number, 10),
                                    "similarity": Arg(Number, 50)}, "persona"),
    "wait_still_screen": StepSpec({"persona": _persona(False), "stilltime": Arg(Number, 7),
                                   "timeout": Arg(Number, 30), "similarity": Arg(Number, 47)}, "persona"),
    "send_key_until_needlematch": StepSpec({"persona": _persona(False), "needle": _needle(),
                                            "key": Arg(str, required=True), "tries": Arg(int, 20),
                                            "timeout": Arg(Number, 1)}),
    "assert_and_click": StepSpec({"persona": _persona(False), "needle": _needle(), "button": Arg(str, "left"),
                                  "timeout": Arg(Number, 30)}, "needle"),
    "click_lastmatch": StepSpec({"button": Arg(str, "left")}, "button"),
    "assert_text": StepSpec({"persona": _persona(False), "text": Arg(str, required=True, regex=True),
                             "area": Arg(dict), "timeout": Arg(Number, 30)}, "text"),
    "check_text": StepSpec({"persona": _persona(False), "text": Arg(str, required=True, regex=True),
                            "area": Arg(dict), "timeout": Arg(Number, 0)}, "text"),
    "screenshot": StepSpec({"persona": _persona(False), "name": Arg(str)}, "persona"),
    "assert_led": StepSpec({"persona": Arg(str), "caps": Arg(bool), "num": Arg(bool), "scroll": Arg(bool),
                            "timeout": Arg(Number, 5)}, "persona"),
    "record_info": StepSpec({"text": Arg(str, required=True), "title": Arg(str)}, "text"),
    "snapshot": StepSpec({"name": Arg(str, required=True)}, "name"),
    # The guest itself (mux.guest.ready): persona None means the active one.
    "wait_ready": StepSpec({"persona": _persona(False), "timeout": Arg(Number, 120)}, "persona"),
    "exec": StepSpec({"command": Arg((str, list), required=True), "persona": _persona(False),
                      "timeout": Arg(Number, 60), "status": Arg(int, 0), "match": Arg(str, regex=True)},
                     "command"),
    # The guest's clock through its agent (mux.guest.clock: ISO 8601, UTC unless offset; or host).
    "set_clock": StepSpec({"persona": _persona(False), "time": Arg(str, required=True),
                           "timeout": Arg(Number, 60)}),
    # A request for attention from persona whose text matches (mux.app.attention).
    "assert_attention": StepSpec({"persona": _persona(), "match": Arg(str, "", regex=True),
                                  "timeout": Arg(Number, 30)}, "persona"),
}
BLOCKS = ("include", "repeat")  # steps that hold steps (parsed apart from STEPS)
MODIFIERS = ("if", "repeat")  # keys a step may carry beside its own
MOUSE_BUTTONS = {"left": 0x110, "right": 0x111, "middle": 0x112}
STATES = ("stopped", "starting", "running", "stopping", "crashed")
TIMEOUT_ARGS = ("timeout", "within")
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REPEAT_UNTIL_TIMES = 20  # repeat with until but no times: like send_key_until_needlematch


@dataclass(frozen=True)
class Repeat:
    times: int
    until: Step | None = None  # a check_screen step


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict[str, Any]
    location: Location
    when: Step | None = None  # ``if:``, a check_screen step
    repeat: Repeat | None = None
    body: tuple[Step, ...] = ()  # the steps of an include or a repeat block

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args.items()
                          if v is not None and not k.startswith("_"))
        return f"{self.kind}({shown})"

    def walk(self) -> list[Step]:
        """This step and every step inside it, in order."""
        inner = [s for child in self.body for s in child.walk()]
        return [self, *inner]


@dataclass(frozen=True)
class Scenario:
    name: str
    file: Path
    config: Config
    steps: list[Step] = field(default_factory=list)
    snapshot: str | None = None  # saved after the last step
    from_snapshot: str | None = None
    config_data: Any = None  # the config as written, kept with a snapshot
    warnings: list[tuple[Location, str]] = field(default_factory=list)  # e.g. ocr needle areas

    @property
    def saves(self) -> list[str]:
        """Every snapshot this scenario saves, in order."""
        names = [s.args["name"] for top in self.steps for s in top.walk() if s.kind == "snapshot"]
        return names + ([self.snapshot] if self.snapshot else [])


SnapshotConfigs = Callable[[str], Config | None]


def timeout_scale() -> float:
    """``MUX_TIMEOUT_SCALE`` (default 1): every step timeout is multiplied by it."""
    try:
        return max(float(os.environ.get("MUX_TIMEOUT_SCALE", "1")), 0.01)
    except ValueError:
        return 1.0


def read_yaml(path: Path, where: Location) -> tuple[Any, SourceMap]:
    """A YAML file as data and its source map; ``where`` is blamed if it cannot be read.

    Raises:
        ScenarioError: unreadable, or not YAML (with the parser's line and column).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([(where, f"cannot read {path}: {exc}")]) from exc
    try:
        return load_yaml_text(text, path)
    except ConfigError as exc:
        raise ScenarioError(exc.problems) from exc


def scenario_chord(spec: str) -> list[int]:
    """``ctrl+alt+f2`` as Linux key codes; ``ctrl``/``alt``/``shift``/``meta`` mean the left key.

    Raises:
        UnknownKeyError: an unknown key name.
    """
    from mux.input import keymap

    return [keymap.key_code(part.strip()) for part in spec.split("+")]
