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
    doc: str = ""  # what the value means, where its type and flags do not say (the reference)
    given_only: bool = False  # left out of the step's args unless given (steps read it with .get)


@dataclass(frozen=True)
class StepSpec:
    args: dict[str, Arg]
    main: str | None = None  # the argument a bare value stands for
    doc: str = ""  # what the step does (the generated reference, docs/reference/scenario-steps.md)
    one_of: tuple[str, ...] = ()  # exactly one of these arguments must be given (see one_of_problem)


def one_of_problem(kind: str, spec: StepSpec, args: dict[str, Any]) -> str | None:
    """What is wrong when ``spec.one_of`` is not given exactly once in ``args``, or None."""
    given = [key for key in spec.one_of if args.get(key) is not None]
    if not spec.one_of or len(given) == 1:
        return None
    names = " or ".join(spec.one_of)
    return f"{kind}: give {names}, not both" if given else f"{kind}: give {names}"


def _persona(required: bool = True, default: Any = None) -> Arg:
    return Arg(str, default, required, persona=True)


def _needle() -> Arg:
    return Arg((str, list), required=True, needle=True)


_CHORD = "a chord such as `ctrl+alt+f2`"
_AREA = "`{xpos, ypos, width, height}`, whole numbers: read only this part of the screen"
_LINES = "a regex; `^` and `$` match at each line"
_BUTTON = "`left`, `right` or `middle`"
_NAME = "letters, digits, `.`, `_`, `-`"

STEPS: dict[str, StepSpec] = {
    "start": StepSpec({"persona": _persona(), "timeout": Arg(Number, 60)}, "persona",
                      "starts the persona and waits until it runs"),
    "stop": StepSpec({"persona": _persona()}, "persona", "stops the persona"),
    "kill": StepSpec({"persona": _persona()}, "persona", "SIGKILLs the persona's QEMU, for fault tests"),
    "switch": StepSpec({"persona": Arg(str, required=True, doc="a persona's name, `next` or `previous`")},
                       "persona", "switches through the switcher, like a hotkey; fails if the seat may not"
                       " show the persona or it is active on another seat (unless `[mux] steal`)"),
    "type": StepSpec({"text": Arg(str, required=True),
                      "rate": Arg(Number, doc="characters a second, for a guest that needs it slower")},
                     "text", "types the text on a US layout through the input router, as fast as the"
                     " keyboard takes it without losing keys"),
    "press": StepSpec({"keys": Arg(str, required=True, doc=_CHORD)}, "keys",
                      "presses a chord: the keys down in order, up in reverse"),
    "hold": StepSpec({"key": Arg(str, required=True)}, "key", "one key down"),
    "release": StepSpec({"key": Arg(str, required=True)}, "key", "one key up"),
    "wait_serial": StepSpec({"persona": _persona(), "match": Arg(str, required=True, regex=True),
                             "timeout": Arg(Number, 90)}, doc=(
        "waits until the regex is in the persona's serial output, searching after the previous match"
        " on that persona; carriage returns are dropped, so `^hi$` matches a line. Memory keeps the"
        " last 1 MiB of each persona's output (its serial log file keeps all): if more than that came"
        " since the previous match, the search starts at the oldest text kept")),
    "assert_no_serial": StepSpec({"persona": _persona(),
                                  "match": Arg(str, required=True, regex=True),
                                  "within": Arg(Number, 0, doc="seconds to keep watching")},
                                 doc="the regex is not in the persona's output (its last 1 MiB),"
                                     " up to `within` seconds"),
    "assert_active": StepSpec({"persona": _persona()}, "persona", "the persona is the active one"),
    "assert_state": StepSpec({"persona": _persona(), "state": Arg(str, required=True),
                              "timeout": Arg(Number, 30)}, doc="waits until the persona is in the state"),
    "sleep": StepSpec({"seconds": Arg(Number, required=True)}, "seconds", "waits"),
    "mouse_move": StepSpec({"delta": Arg(list, required=True, doc="`[dx, dy]`, two integers")}, "delta",
                           "moves the mouse (relative motion)"),
    "mouse_click": StepSpec({"button": Arg(str, "left", doc=_BUTTON)}, "button", "clicks a mouse button"),
    "evemu": StepSpec({"path": Arg(str, required=True, doc="relative to the scenario file"),
                       "realtime": Arg(bool, False, doc="keep the recording's timing")}, "path",
                      "replays an evemu recording through the router"),
    "attach": StepSpec({"device": Arg(str, required=True), "persona": _persona()},
                       doc="moves the device to the persona; fails if the move does"),
    "detach": StepSpec({"device": Arg(str, required=True)}, "device",
                       "unplugs the device from whichever persona holds it"),
    # openQA's screen vocabulary; persona None means the active one.
    "assert_screen": StepSpec({"persona": _persona(False), "needle": _needle(), "timeout": Arg(Number, 30)},
                              "needle", "fails unless the screen matches the needle within the timeout"),
    "check_screen": StepSpec({"persona": _persona(False), "needle": _needle(), "timeout": Arg(Number, 0)},
                             "needle", "as `assert_screen`, but only records whether it matched"),
    "wait_screen_change": StepSpec({"persona": _persona(False), "timeout": Arg(Number, 10),
                                    "similarity": Arg(Number, 50)}, "persona",
                                   "waits until the screen differs from how it was before the previous step"),
    "wait_still_screen": StepSpec({"persona": _persona(False), "stilltime": Arg(Number, 7),
                                   "timeout": Arg(Number, 30), "similarity": Arg(Number, 47)}, "persona",
                                  "waits until the screen stays the same for `stilltime` seconds"),
    "send_key_until_needlematch": StepSpec({"persona": _persona(False), "needle": _needle(),
                                            "key": Arg(str, required=True, doc=_CHORD),
                                            "tries": Arg(int, 20), "timeout": Arg(Number, 1)}, doc=(
        "looks, presses `key` (into the active persona, like all input), looks again, up to `tries`"
        " times")),
    "assert_and_click": StepSpec({"persona": _persona(False), "needle": _needle(),
                                  "button": Arg(str, "left", doc=_BUTTON), "timeout": Arg(Number, 30)},
                                 "needle", "`assert_screen`, then clicks the needle's `click_point` (or the"
                                 " centre of its first match area) where it was found, with an absolute"
                                 " pointer through the router: the persona must be the active one"),
    "click_lastmatch": StepSpec({"button": Arg(str, "left", doc=_BUTTON)}, "button",
                                "clicks where the last needle that matched in this scenario says"),
    "assert_text": StepSpec({"persona": _persona(False),
                             "text": Arg(str, required=True, regex=True, doc=_LINES),
                             "area": Arg(dict, doc=_AREA), "timeout": Arg(Number, 30)}, "text",
                            "fails unless the text read off the screen (tesseract) matches within the"
                            " timeout; the message quotes what was read"),
    "check_text": StepSpec({"persona": _persona(False),
                            "text": Arg(str, required=True, regex=True, doc=_LINES),
                            "area": Arg(dict, doc=_AREA), "timeout": Arg(Number, 0)}, "text",
                           "as `assert_text`, but only records whether it matched"),
    "screenshot": StepSpec({"persona": _persona(False), "name": Arg(str, doc=_NAME)},
                           "persona", "saves `screenshots/NAME.png` in the scenario's artifacts"),
    "assert_led": StepSpec({"persona": Arg(str, doc="a persona's name, or `physical` (the keyboards' LEDs;"
                                                    " with `seat`, that seat's)"),
                            "caps": Arg(bool), "num": Arg(bool), "scroll": Arg(bool),
                            "timeout": Arg(Number, 5)}, "persona",
                           "waits until the LEDs given (true or false) are so; those left out are not"
                           " checked"),
    "record_info": StepSpec({"text": Arg(str, required=True), "title": Arg(str)}, "text",
                            "a note in the progress, `results.json` and the JUnit `system-out`"),
    "snapshot": StepSpec({"name": Arg(str, required=True, doc=_NAME)}, "name",
                         "saves every running persona now (`from_snapshot` starts from it)"),
    # The guest itself (mux.guest.ready): persona None means the active one.
    "wait_ready": StepSpec({"persona": _persona(False), "timeout": Arg(Number, 120)}, "persona",
                           "waits until the persona's guest is ready (its agent answers, or `MUX-READY`)"),
    "exec": StepSpec({"command": Arg((str, list), required=True,
                                     doc="a string run by `/bin/sh -c`, or a list: a program and its"
                                         " arguments"),
                      "persona": _persona(False), "timeout": Arg(Number, 60),
                      "status": Arg(int, 0, doc="the exit status it must end with"),
                      "match": Arg(str, regex=True, doc=f"{_LINES}, searched in its stdout")},
                     "command", "runs the command in the guest through its guest agent (`agent = true`);"
                     " fails unless it exits with `status` and, if given, `match` is in its stdout. Its exit"
                     " status, stdout and stderr are the step's message in `results.json`, and progress lines"
                     " (`persona$ ...`) in the JUnit `system-out`"),
    # The guest's clock through its agent (mux.guest.clock: ISO 8601, UTC unless offset; or host).
    "set_clock": StepSpec({"persona": _persona(False),
                           "time": Arg(str, required=True,
                                       doc="ISO 8601, UTC unless it has an offset, or `host`"),
                           "timeout": Arg(Number, 60)}, doc="sets the guest's clock through its guest agent"),
    # The guest session's clipboard through its agent and the image's mux-clipboard helper
    # (mux.scenario.guest_clipboard): the text read from a guest is never written anywhere.
    "clipboard_set": StepSpec({"text": Arg(str, required=True), "persona": _persona(False),
                               "timeout": Arg(Number, 60)}, "text",
                              "makes `text` the CLIPBOARD of the persona's guest session, through its guest"
                              " agent and the image's `/usr/lib/mux/mux-clipboard set` (the built-in"
                              " `desktop` image has it)"),
    "assert_clipboard": StepSpec({"text": Arg(str, doc="the whole clipboard, exactly"),
                                  "match": Arg(str, regex=True, doc=f"{_LINES}, searched in the clipboard"),
                                  "persona": _persona(False), "timeout": Arg(Number, 10)},
                                 doc="waits until the CLIPBOARD of the persona's guest session (read"
                                     " through its agent: `/usr/lib/mux/mux-clipboard get`) is `text` or"
                                     " `match` finds it; give one of them. The text read is never written"
                                     " out: a failure says only that it differs and how many characters it"
                                     " has, so no clipboard text reaches `results.json`, JUnit or the"
                                     " progress",
                                 one_of=("text", "match")),
    # A request for attention from persona whose text matches (mux.app.attention).
    "assert_attention": StepSpec({"persona": _persona(),
                                  "match": Arg(str, "", regex=True,
                                               doc="searched in the request's text; left out: any"),
                                  "timeout": Arg(Number, 30)}, "persona",
                                 "passes when the persona has a pending request for attention that matches,"
                                 " or one arrives within the timeout; the failure lists the requests seen"),
}
#: The steps that act on, or look at, a seat's active persona: each takes ``seat`` (None:
#: the first seat, the only one of a config without ``[[seat]]``).
SEATED = ("switch", "type", "press", "hold", "release", "mouse_move", "mouse_click", "evemu",
          "assert_active", "assert_screen", "check_screen", "wait_screen_change", "wait_still_screen",
          "send_key_until_needlematch", "assert_and_click", "click_lastmatch", "assert_text",
          "check_text", "screenshot", "assert_led", "wait_ready", "exec", "set_clock",
          "clipboard_set", "assert_clipboard")
SEAT_ARG = Arg(str, given_only=True, doc="a `[[seat]]`'s name: the seat whose input this is, or whose"
                                         " active persona is meant when `persona` is left out (default:"
                                         " the first seat)")
for _kind in SEATED:
    STEPS[_kind] = StepSpec({**STEPS[_kind].args, "seat": SEAT_ARG}, STEPS[_kind].main, STEPS[_kind].doc,
                            STEPS[_kind].one_of)
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
