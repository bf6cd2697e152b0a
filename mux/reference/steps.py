"""The scenario file's vocabulary, read from the step table (:data:`mux.scenario.model.STEPS`).

Each step is a :class:`~mux.scenario.model.StepSpec`: its arguments (each an ``Arg``:
type, default, whether required, whether it names a persona, a regex or a needle), the
argument a bare value stands for, and what it does (``doc``). An argument's meaning is
its own ``doc``, else what its flags say, else the common meaning of its name
(:data:`COMMON`); a step or argument with none of them is an
:class:`~mux.reference.common.UndocumentedError`. The file's top-level keys are checked
against what the parser itself accepts (:func:`scenario_keys`). The table is looked up
each time, so a test can add a step and see the page change.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from mux.reference.common import UndocumentedError, code, header, table

#: What an argument means when its ``Arg`` has no ``doc`` and its flags say nothing.
COMMON = {
    "timeout": "seconds (every timeout is multiplied by `MUX_TIMEOUT_SCALE`)",
    "within": "seconds",
    "stilltime": "seconds",
    "seconds": "seconds",
    "similarity": "a PSNR in dB, as openQA's `similarity_level` (1 or less: the fraction of pixels"
                  " that must be unchanged)",
    "key": "a key's name: Linux's without `KEY_`, lower case (`leftshift`, `f6`)",
    "text": "the text",
    "title": "the note's title",
    "device": "a device's id",
    "tries": "how many times to look and press",
    "caps": "Caps Lock on (true) or off (false)",
    "num": "Num Lock on (true) or off (false)",
    "scroll": "Scroll Lock on (true) or off (false)",
}
#: The top-level keys of a scenario file (checked against the parser's own list).
SCENARIO_KEYS = {
    "name": "the scenario's name in reports (default: the file's name without `.yaml`)",
    "config": "the personas: the config file's schema, inline (see [Config keys](config.md)); may be"
              " left out with `from_snapshot` (then it is the saving scenario's)",
    "steps": "the steps, in order (below)",
    "snapshot": "a name: save every running persona when the steps have passed",
    "from_snapshot": "a name: start the personas from that snapshot instead of booting them",
}
_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "list", dict: "mapping"}


def _model() -> Any:
    return importlib.import_module("mux.scenario.model")


def kind_name(kind: type | tuple[type, ...]) -> str:
    """An argument's type in words: ``(int, float)`` is "number"."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "number"
    return " or ".join(_TYPES.get(k, k.__name__) for k in kinds)


def yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value == "" else value
    return str(value)


def arg_doc(name: str, arg: Any) -> str:
    """What argument ``name`` means (empty: nothing says)."""
    parts = []
    if arg.doc:
        parts.append(arg.doc)
    elif arg.persona:
        parts.append("a persona's name")
    elif arg.needle:
        parts.append("a needle tag (several tags separated by spaces must all be on the needle; a"
                     " needle's file name counts as a tag), a needle file (a path with a `/` or ending"
                     " in `.json`), or a list of either")
    elif name == "state":
        parts.append("one of " + ", ".join(code(s) for s in _model().STATES))
    elif arg.regex:
        parts.append("a regular expression")
    elif name in COMMON:
        parts.append(COMMON[name])
    if arg.persona and not arg.required and arg.default is None:
        parts.append("left out: the active persona")
    return "; ".join(parts)


def scenario_keys() -> dict[str, str]:
    """:data:`SCENARIO_KEYS`, checked against the keys the parser accepts.

    Raises:
        UndocumentedError: the parser accepts a key not described here, or not one that is.
    """
    from mux.errors import Location, ScenarioError
    from mux.scenario.parse import parse_scenario

    known: set[str] = set()
    try:
        parse_scenario({"_": None}, lambda path: Location("probe.yaml"), Path("probe.yaml"))
    except ScenarioError as exc:
        found = re.search(r"unknown key '_' \(([^)]*)\)", str(exc))
        known = set(found[1].split(", ")) if found else set()
    if known != set(SCENARIO_KEYS):
        raise UndocumentedError(f"scenario file keys: the parser knows {sorted(known)}, the reference"
                                f" describes {sorted(SCENARIO_KEYS)} (mux/reference/steps.py)")
    return SCENARIO_KEYS


INTRO = """\
A scenario is a YAML file: a `name`, the personas (`config`) and the `steps`, replayed by
`mux replay` against fresh personas. Every file is checked before anything boots: unknown
steps or arguments, argument types, unknown personas, regexes, needles, includes; each
mistake with `file:line:column`. The [Scenarios guide](../guides/scenarios.md) tells how
they run and report, and [Needles](../guides/needles.md) how screens are matched. Editors
can check a file as it is typed against the [JSON Schema](schema/scenario.json): see
[Editor support](index.md#editor-support).
"""


def steps_page() -> str:
    """``docs/reference/scenario-steps.md``: the file's keys, every step and its arguments.

    Raises:
        UndocumentedError: a step or an argument that nothing describes.
    """
    model = _model()
    out = [header("Scenario steps", "mux/scenario/model.py (STEPS)", INTRO)]
    out.append("## The file\n\n" + table(("key", "what it is"), [(code(k), v) for k, v in scenario_keys()
                                                                 .items()]) + "\n")
    out.append(_grammar(model))
    out.append("## Steps\n\nA step whose `persona` is left out looks at the active persona. Arguments"
               " without a default are optional unless marked required.\n\n")
    missing: list[str] = []
    for name, spec in model.STEPS.items():
        if not spec.doc:
            missing.append(name)
        out.append(f"### `{name}`\n\n{spec.doc[:1].upper() + spec.doc[1:]}.\n\n")
        if spec.main:
            out.append(f"A bare value stands for `{spec.main}`: `- {name}: ...`.\n\n")
        rows = []
        for key, arg in spec.args.items():
            doc = arg_doc(key, arg)
            if not doc:
                missing.append(f"{name}.{key}")
            default = "**required**" if arg.required else "" if arg.default is None else \
                code(yaml_value(arg.default))
            rows.append((code(key), kind_name(arg.kind), default, doc))
        out.append(table(("argument", "type", "default", "meaning"), rows) + "\n")
    if missing:
        raise UndocumentedError(f"scenario steps or arguments without a description: {', '.join(missing)}"
                                " (give the StepSpec or its Arg a doc in mux/scenario/model.py)")
    return "".join(out).rstrip("\n") + "\n"


def _grammar(model: Any) -> str:
    blocks, modifiers = model.BLOCKS, model.MODIFIERS
    if set(blocks) != {"include", "repeat"} or set(modifiers) != {"if", "repeat"}:
        raise UndocumentedError(f"scenario blocks {blocks} and modifiers {modifiers} changed: describe"
                                " them in mux/reference/steps.py")
    rows = [
        ("`include`", "a step of its own", "a file's steps (a list, or a mapping with `steps`), relative to"
         " the including file; an include cycle is an error"),
        ("`repeat`", "a step of its own: `{times, until, steps}`", "runs `steps` `times` times, or until"
         " `until` holds"),
        ("`if`", "beside a step's key", "`check_screen` arguments (a bare value is the needle): the step runs"
         " only if the screen matches; otherwise it is reported as skipped"),
        ("`repeat`", "beside a step's key: `{times, until}`, or a bare number (`times`)", "runs the step"
         " again until `until` (`check_screen` arguments) holds, at most `times` times"
         f" ({model.REPEAT_UNTIL_TIMES} with `until` alone); the step fails if `until` still does not hold"),
    ]
    return ("## Blocks and flow control\n\nEach step is a mapping with one step key: `- wait_serial:"
            " {persona: work, match: READY}`; for a step with a main argument, that value alone stands"
            " for the mapping: `- switch: home`.\n\n" + table(("key", "where", "what it does"), rows)
            + "\nSteps inside an `include` or a `repeat` block are numbered `3.1`, `3.2`...\n\n")
