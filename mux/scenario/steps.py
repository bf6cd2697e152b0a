"""The steps list of a scenario file: each step checked against :data:`~mux.scenario.model.STEPS`.

Split from :mod:`mux.scenario.model` (the model) to keep both short; pure like it. One
:class:`Context` per file being read carries what a step's checks need: where each
node is, the persona names, the needle library, the directories needle tags are
searched in, and the chain of includes (an include cycle is an error, not a hang).
Every problem is appended to one shared list, so a file reports all its mistakes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mux.errors import ConfigError, InputError, Location, ScenarioError
from mux.guest.clock import TimeError, parse_guest_time
from mux.input import keymap
from mux.needles.needles import NeedleLibrary
from mux.scenario.model import (
    BLOCKS,
    MODIFIERS,
    MOUSE_BUTTONS,
    REPEAT_UNTIL_TIMES,
    SNAPSHOT_NAME,
    STATES,
    STEPS,
    Repeat,
    Step,
    one_of_problem,
    read_yaml,
    scenario_chord,
)
from mux.sourcemap import Path_, SourceMap


@dataclass
class Context:
    """What checking one step needs to know about the file it is in."""

    locate: SourceMap
    names: list[str] | None
    problems: list[tuple[Location, str]]
    needles: NeedleLibrary
    file: Path
    bases: tuple[Path, ...]  # where needle tags are searched: this file's dir, the scenario's
    including: tuple[Path, ...] = ()
    seats: dict[str, tuple[str, ...] | None] | None = None  # seat: the personas it may show (None: all)

    def fail(self, where: Path_, message: str) -> None:
        self.problems.append((self.locate(where), message))


def parse_steps(data: Any, path: Path_, ctx: Context) -> list[Step]:
    if not isinstance(data, list):
        ctx.fail(path, "steps must be a list")
        return []
    steps = [_parse_item(item, (*path, index), ctx) for index, item in enumerate(data)]
    return [s for s in steps if s is not None]


def _parse_item(item: Any, path: Path_, ctx: Context) -> Step | None:
    """One entry of a steps list: a step, perhaps with ``if``/``repeat``, or a block."""
    if not isinstance(item, dict) or not item:
        ctx.fail(path, "a step is a mapping with one step key, e.g. '- switch: work'")
        return None
    kinds = [k for k in item if k not in MODIFIERS]
    if not kinds and "repeat" in item:  # the block form: - repeat: {times, until, steps}
        kinds = ["repeat"]
    if len(kinds) != 1:
        ctx.fail(path, f"a step has one step key (and may carry {' and '.join(MODIFIERS)});"
                       f" found {', '.join(map(str, kinds)) or 'none'}")
        return None
    kind = kinds[0]
    if kind == "include":
        step = _parse_include(item[kind], (*path, kind), ctx)
    elif kind == "repeat":
        step = _parse_repeat_block(item[kind], (*path, kind), ctx)
    else:
        step = _parse_step({kind: item[kind]}, path, ctx)
    if step is None:
        return None
    when = _parse_check(item["if"], (*path, "if"), ctx) if "if" in item else None
    repeat = _parse_repeat(item["repeat"], (*path, "repeat"), ctx) if "repeat" in item and kind != "repeat" \
        else step.repeat
    return Step(step.kind, step.args, step.location, when, repeat, step.body)


def _parse_check(raw: Any, path: Path_, ctx: Context) -> Step | None:
    """``if:`` and ``until:``: check_screen arguments (a bare value is the needle)."""
    return _parse_step({"check_screen": raw}, path, ctx, key_path=path)


def _parse_repeat(raw: Any, path: Path_, ctx: Context, block: bool = False) -> Repeat | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = {"times": raw}
    known = ("times", "until", "steps") if block else ("times", "until")
    if not isinstance(raw, dict):
        ctx.fail(path, f"repeat takes a number of times or a mapping {{{', '.join(known)}}}")
        return None
    for key in raw:
        if key not in known:
            ctx.fail((*path, key), f"repeat: unknown argument {key!r} (arguments: {', '.join(known)})")
    until = _parse_check(raw["until"], (*path, "until"), ctx) if "until" in raw else None
    times = raw.get("times", REPEAT_UNTIL_TIMES if until else None)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        ctx.fail((*path, "times") if "times" in raw else path,
                 "repeat: times must be a whole number >= 1" + ("" if "times" in raw else " (or give until)"))
        return None
    return Repeat(times, until)


def _parse_repeat_block(raw: Any, path: Path_, ctx: Context) -> Step | None:
    if not isinstance(raw, dict) or "steps" not in raw:
        ctx.fail(path, "repeat on its own holds steps: {times, until, steps}; or put repeat beside a step")
        return None
    repeat = _parse_repeat(raw, path, ctx, block=True)
    body = parse_steps(raw["steps"], (*path, "steps"), ctx)
    return Step("repeat", {"times": repeat.times if repeat else None}, ctx.locate(path), None, repeat,
                tuple(body)) if repeat else None


def _parse_include(raw: Any, path: Path_, ctx: Context) -> Step | None:
    if not isinstance(raw, str):
        ctx.fail(path, "include takes a file name, e.g. '- include: login.yaml'")
        return None
    target = Path(raw) if Path(raw).is_absolute() else ctx.file.parent / raw
    if target.resolve() in ctx.including:
        chain = " -> ".join(p.name for p in ctx.including)
        ctx.fail(path, f"include: {raw} includes itself (through {chain})")
        return None
    if not target.is_file():
        ctx.fail(path, f"include: no file {target}")
        return None
    try:
        data, locate = read_yaml(target, ctx.locate(path))
    except ScenarioError as exc:
        ctx.problems.extend(exc.problems)
        return None
    steps_path: Path_ = ()
    if isinstance(data, dict) and "steps" in data:
        data, steps_path = data["steps"], ("steps",)
    inner = Context(locate, ctx.names, ctx.problems, ctx.needles, target,
                     tuple(dict.fromkeys((target.parent, *ctx.bases))), (*ctx.including, target.resolve()),
                     ctx.seats)
    body = parse_steps(data, steps_path, inner)
    return Step("include", {"path": raw}, ctx.locate(path), body=tuple(body))


def _parse_step(item: dict[str, Any], path: Path_, ctx: Context,
                key_path: Path_ | None = None) -> Step | None:
    fail = ctx.fail
    ((kind, raw),) = item.items()
    spec = STEPS.get(kind)
    if spec is None:
        known = ", ".join([*STEPS, *BLOCKS])
        fail((*path, kind), f"unknown step {kind!r} (steps: {known})")
        return None
    where = key_path or (*path, kind)
    if not isinstance(raw, dict):
        if spec.main is None:
            fail(where, f"{kind} takes a mapping: {{{', '.join(spec.args)}}}")
            return None
        raw = {spec.main: raw}
    args: dict[str, Any] = {}
    for key in raw:
        if key not in spec.args:
            fail((*where, key), f"{kind}: unknown argument {key!r} (arguments: {', '.join(spec.args)})")
    names = ctx.names
    for key, arg in spec.args.items():
        if key not in raw:
            if arg.required:
                fail(where, f"{kind}: missing argument {key!r}")
            if not arg.given_only:
                args[key] = arg.default
            continue
        value = raw[key]
        kinds = arg.kind if isinstance(arg.kind, tuple) else (arg.kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
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
        if arg.needle:
            args["_needles"] = _needles(kind, value, (*where, key), ctx)
        args[key] = value
    _check_args(kind, args, where, ctx)
    if (problem := one_of_problem(kind, spec, args)) is not None:
        fail(where, problem)
    return Step(kind, args, ctx.locate(key_path or path))


def _needles(kind: str, value: Any, where: Path_, ctx: Context) -> list[Any]:
    if isinstance(value, list) and not (value and all(isinstance(v, str) for v in value)):
        ctx.fail(where, f"{kind}: needle must be a tag, a needle file, or a list of them")
        return []
    error = None
    for base in ctx.bases:
        found, error = ctx.needles.resolve(value, base)
        if found:
            return found
    if error:  # "" means: the needle file's own problems are reported
        ctx.fail(where, f"{kind}: {error}")
    return []


def _check_args(kind: str, args: dict[str, Any], where: Path_, ctx: Context) -> None:
    """Checks of one step kind beyond the types of its arguments."""
    fail, names = ctx.fail, ctx.names
    if kind == "assert_state" and args.get("state") not in (None, *STATES):
        fail((*where, "state"), f"assert_state: state must be one of {', '.join(STATES)}")
    persona = args.get("persona")  # missing when its type check failed (reported already)
    if kind == "switch" and names is not None and persona is not None \
            and persona not in (*names, "next", "previous"):
        fail((*where, "persona"), f"switch: unknown persona {args['persona']!r}"
                                  f" (personas: {', '.join(names)}, next, previous)")
    _check_seat(kind, args, where, ctx)
    if kind in ("press", "hold", "release", "type"):
        _check_keys(kind, args, lambda m: fail(where, m))
    if kind == "send_key_until_needlematch" and args.get("key"):
        _check_keys("press", {"keys": args["key"]}, lambda m: fail((*where, "key"), m))
    if kind == "send_key_until_needlematch" and isinstance(args.get("tries"), int) and args["tries"] < 0:
        fail((*where, "tries"), "send_key_until_needlematch: tries must be >= 0")
    for key in ("timeout", "within", "stilltime", "similarity"):
        value = args.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            fail((*where, key), f"{kind}: {key} must be >= 0")
    rate = args.get("rate")
    if kind == "type" and isinstance(rate, int | float) and not isinstance(rate, bool) and not rate > 0:
        fail((*where, "rate"), "type: rate is characters a second, above 0")
    if kind == "mouse_move" and args.get("delta") is not None and not (
            len(args["delta"]) == 2 and all(type(v) is int for v in args["delta"])):
        fail((*where, "delta"), "mouse_move takes [dx, dy], two integers")
    clicks = ("mouse_click", "assert_and_click", "click_lastmatch")
    if kind in clicks and args.get("button") not in MOUSE_BUTTONS:
        fail((*where, "button"), f"{kind}: button must be one of {', '.join(MOUSE_BUTTONS)}")
    area = args.get("area")
    if kind in ("assert_text", "check_text") and area is not None and not (
            set(area) == {"xpos", "ypos", "width", "height"}
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in area.values())):
        fail((*where, "area"), f"{kind}: area is {{xpos, ypos, width, height}}, whole numbers >= 0")
    if kind == "assert_led":
        if names is not None and args.get("persona") not in (None, "physical", *names):
            fail((*where, "persona"), f"assert_led: persona must be one of {', '.join(names)} or"
                                      f" physical, not {args['persona']!r}")
        if all(args.get(k) is None for k in ("caps", "num", "scroll")):
            fail(where, "assert_led: give at least one of caps, num, scroll (true or false)")
    command = args.get("command")
    if kind == "exec" and command is not None and not (
            (isinstance(command, str) and command.strip())
            or (isinstance(command, list) and command and all(isinstance(c, str) for c in command))):
        fail((*where, "command"), "exec: command is a shell command line (run by /bin/sh -c) or a"
                                  " non-empty list of strings (a program and its arguments)")
    if kind == "set_clock" and isinstance(args.get("time"), str):
        try:
            parse_guest_time(args["time"], 0.0)
        except TimeError as exc:
            fail((*where, "time"), f"set_clock: {exc}")
    if kind == "snapshot" and args.get("name") and not SNAPSHOT_NAME.match(args["name"]):
        fail((*where, "name"), "snapshot: the name is letters, digits, '.', '_' or '-'")
    if kind in ("screenshot",) and args.get("name") and not SNAPSHOT_NAME.match(args["name"]):
        fail((*where, "name"), "screenshot: the name is letters, digits, '.', '_' or '-' (no directories)")
    if kind == "evemu" and args.get("path") is not None:
        recording = Path(args["path"])
        args["path"] = recording if recording.is_absolute() else ctx.file.parent / recording
        if not args["path"].is_file():
            fail((*where, "path"), f"evemu: no recording at {args['path']}")
        else:
            from mux.input.evemu import read_recording

            try:
                read_recording(args["path"])
            except ConfigError as exc:
                ctx.problems.extend(exc.problems)


def _check_seat(kind: str, args: dict[str, Any], where: Path_, ctx: Context) -> None:
    """``seat`` names one of the config's seats (when they are known), and one that may show
    the persona a ``switch`` or ``assert_active`` names."""
    seat = args.get("seat")
    if seat is None:
        return
    if ctx.seats is None:
        return  # not known here (a config that failed its checks): the step itself checks
    if seat not in ctx.seats:
        ctx.fail((*where, "seat"), f"{kind}: unknown seat {seat!r} (seats: {', '.join(ctx.seats)})")
        return
    shows, persona = ctx.seats[seat], args.get("persona")
    if kind in ("switch", "assert_active") and shows is not None and isinstance(persona, str) \
            and persona not in ("next", "previous", *shows):
        ctx.fail((*where, "persona"), f"{kind}: seat {seat!r} may not show persona {persona!r}"
                                      f" (it shows: {', '.join(shows)})")


def _check_keys(kind: str, args: dict[str, Any], fail: Any) -> None:

    try:
        if kind == "type" and args.get("text") is not None:
            keymap.text_to_chords(args["text"])
        elif kind == "press" and args.get("keys"):
            scenario_chord(args["keys"])
        elif args.get("key"):
            keymap.key_code(args["key"])
    except InputError as exc:
        fail(f"{kind}: {exc}")
