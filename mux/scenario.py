"""Scenario files: the model and its checks (pure: no asyncio, QEMU or I/O but reading).

A scenario is YAML: a ``name``, an inline ``config`` (the TOML schema), and ``steps``.
Each step is a one-key mapping, ``- wait_serial: {persona: work, match: READY}``, whose
argument is either a mapping or, for steps with a main argument, that value alone
(``- switch: home``). The step vocabulary is the table :data:`STEPS`; everything that
is wrong in a file (YAML syntax, unknown steps, argument types, unknown personas,
regexes that do not compile) is found before anything boots and reported at once,
each with ``file:line:column``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mux.config import Config, parse_config
from mux.errors import ConfigError, Location, ScenarioError
from mux.sourcemap import Path_, SourceMap, load_yaml_text

Number = (int, float)


@dataclass(frozen=True)
class Arg:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    persona: bool = False  # must name a configured persona
    regex: bool = False  # must compile


@dataclass(frozen=True)
class StepSpec:
    args: dict[str, Arg]
    main: str | None = None  # the argument a bare value stands for


def _persona(required: bool = True, default: Any = None) -> Arg:
    return Arg(str, default, required, persona=True)


STEPS: dict[str, StepSpec] = {
    "start": StepSpec({"persona": _persona(), "timeout": Arg(Number, 60)}, "persona"),
    "stop": StepSpec({"persona": _persona()}, "persona"),
    "kill": StepSpec({"persona": _persona()}, "persona"),
    "switch": StepSpec({"persona": Arg(str, required=True)}, "persona"),
    "type": StepSpec({"text": Arg(str, required=True)}, "text"),
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
}
MOUSE_BUTTONS = {"left": 0x110, "right": 0x111, "middle": 0x112}
STATES = ("stopped", "starting", "running", "stopping", "crashed")
TIMEOUT_ARGS = ("timeout", "within")


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict[str, Any]
    location: Location

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args.items() if v is not None)
        return f"{self.kind}({shown})"


@dataclass(frozen=True)
class Scenario:
    name: str
    file: Path
    config: Config
    steps: list[Step] = field(default_factory=list)


def timeout_scale() -> float:
    """``MUX_TIMEOUT_SCALE`` (default 1): every step timeout is multiplied by it."""
    try:
        return max(float(os.environ.get("MUX_TIMEOUT_SCALE", "1")), 0.01)
    except ValueError:
        return 1.0


def load_scenario(path: Path) -> Scenario:
    """Read and check one scenario file.

    Raises:
        ScenarioError: every problem in the file, each with file:line:column.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([(Location(path), f"cannot read: {exc}")]) from exc
    try:
        data, locate = load_yaml_text(text, path)
    except ConfigError as exc:
        raise ScenarioError(exc.problems) from exc
    return parse_scenario(data, locate, path)


def parse_scenario(data: Any, locate: SourceMap, path: Path) -> Scenario:
    """Check plain scenario data; see :func:`load_scenario`."""
    problems: list[tuple[Location, str]] = []
    if not isinstance(data, dict):
        raise ScenarioError([(locate(()), "a scenario is a mapping with name, config and steps")])
    for key in data:
        if key not in ("name", "config", "steps"):
            problems.append((locate((key,)), f"unknown key {key!r} (name, config, steps)"))
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        problems.append((locate(("name",)), "name must be a string"))
        name = path.stem
    config: Config | None = None
    if "config" not in data:
        problems.append((locate(()), "a scenario needs a config (with at least one persona)"))
    else:
        try:
            config = parse_config(data["config"], locate, path, prefix=("config",))
        except ConfigError as exc:
            problems.extend(exc.problems)
    names = config.names if config else _raw_persona_names(data.get("config"))
    steps_data = data.get("steps")
    steps: list[Step] = []
    if not isinstance(steps_data, list):
        problems.append((locate(("steps",)), "steps must be a list"))
    else:
        for index, item in enumerate(steps_data):
            step = _parse_step(item, ("steps", index), locate, names, problems)
            if step:
                steps.append(step)
    if problems or config is None:
        raise ScenarioError(problems)
    return Scenario(name, path, config, steps)


def _raw_persona_names(config: Any) -> list[str] | None:
    """Persona names from a config that failed its checks, so steps can still be checked."""
    personas = config.get("persona") if isinstance(config, dict) else None
    if not isinstance(personas, list):
        return None
    return [p["name"] for p in personas if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _parse_step(item: Any, path: Path_, locate: SourceMap, names: list[str] | None,
                problems: list[tuple[Location, str]]) -> Step | None:
    def fail(where: Path_, message: str) -> None:
        problems.append((locate(where), message))

    if not isinstance(item, dict) or len(item) != 1:
        fail(path, "a step is a mapping with one key, e.g. '- switch: work'")
        return None
    ((kind, raw),) = item.items()
    spec = STEPS.get(kind)
    if spec is None:
        fail((*path, kind), f"unknown step {kind!r} (steps: {', '.join(STEPS)})")
        return None
    where = (*path, kind)
    if not isinstance(raw, dict):
        if spec.main is None:
            fail(where, f"{kind} takes a mapping: {{{', '.join(spec.args)}}}")
            return None
        raw = {spec.main: raw}
    args: dict[str, Any] = {}
    for key in raw:
        if key not in spec.args:
            fail((*where, key), f"{kind}: unknown argument {key!r} (arguments: {', '.join(spec.args)})")
    for key, arg in spec.args.items():
        if key not in raw:
            if arg.required:
                fail(where, f"{kind}: missing argument {key!r}")
            args[key] = arg.default
            continue
        value = raw[key]
        kinds = arg.kind if isinstance(arg.kind, tuple) else (arg.kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            fail((*where, key), f"{kind}: {key} must be {' or '.join(k.__name__ for k in kinds)},"
                                f" not {type(value).__name__}")
            continue
        if arg.persona and names is not None and value not in names:
            fail((*where, key), f"{kind}: unknown persona {value!r} (personas: {', '.join(names)})")
        if arg.regex:
            try:
                re.compile(str(value))
            except re.error as exc:
                fail((*where, key), f"{kind}: {key} is not a valid regex: {exc}")
        args[key] = value
    if kind == "assert_state" and args.get("state") not in (None, *STATES):
        fail((*where, "state"), f"assert_state: state must be one of {', '.join(STATES)}")
    if kind == "switch" and names is not None and args["persona"] not in (*names, "next", "previous"):
        fail((*where, "persona"), f"switch: unknown persona {args['persona']!r}"
                                  f" (personas: {', '.join(names)}, next, previous)")
    if kind in ("press", "hold", "release", "type"):
        _check_keys(kind, args, lambda m: fail(where, m))
    if kind == "mouse_move" and args.get("delta") is not None and not (
            len(args["delta"]) == 2 and all(type(v) is int for v in args["delta"])):
        fail((*where, "delta"), "mouse_move takes [dx, dy], two integers")
    if kind == "mouse_click" and args.get("button") not in MOUSE_BUTTONS:
        fail((*where, "button"), f"mouse_click: button must be one of {', '.join(MOUSE_BUTTONS)}")
    if kind == "evemu" and args.get("path") is not None:
        recording = Path(args["path"])
        args["path"] = recording if recording.is_absolute() else locate(()).file_dir() / recording
        if not args["path"].is_file():
            fail((*where, "path"), f"evemu: no recording at {args['path']}")
        else:
            from mux.evemu import read_recording

            try:
                read_recording(args["path"])
            except ConfigError as exc:
                problems.extend(exc.problems)
    return Step(kind, args, locate(path))


def _check_keys(kind: str, args: dict[str, Any], fail: Any) -> None:
    from mux import keymap

    try:
        if kind == "type" and args.get("text") is not None:
            keymap.text_to_chords(args["text"])
        elif kind == "press" and args.get("keys"):
            scenario_chord(args["keys"])
        elif args.get("key"):
            keymap.key_code(args["key"])
    except ValueError as exc:
        fail(f"{kind}: {exc}")


def scenario_chord(spec: str) -> list[int]:
    """``ctrl+alt+f2`` as Linux key codes; ``ctrl``/``alt``/``shift``/``meta`` mean the left key.

    Raises:
        ValueError: an unknown key name.
    """
    from mux import keymap

    return [keymap.key_code(part.strip()) for part in spec.split("+")]
