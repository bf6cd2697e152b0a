"""JSON Schemas of config files and scenario files, generated from the schema and the step table.

:func:`json_schema` ``("config")`` is the config's tables and keys as
:func:`mux.reference.config.config_keys` reads them from the dataclasses (types, allowed
values, defaults, descriptions), ``("scenario")`` a scenario file: its top-level keys,
the config inline, and every step of :data:`mux.scenario.model.STEPS` with its
arguments (a bare value for the main one), ``if``, ``repeat`` and ``include``. Both are
JSON Schema 2020-12, for editors (the YAML language server, taplo) and CI linters
(check-jsonschema); ``mux schema config|scenario`` prints them.

What a schema can say, it says: types, enums, unknown keys, patterns and ranges. The
patterns come from the code's own constants; the ranges mirror the parser's checks and
the tests hold the two together. What needs more than one file's structure (a persona
named by a step or a hotkey, a file that must exist, a needle on disk, names used
twice) is left to the loader (``mux replay --check``, ``mux run --dry-run``), whose
errors also name ``file:line``.
"""

from __future__ import annotations

import copy
from typing import Any

from mux.reference.common import UndocumentedError

DRAFT = "https://json-schema.org/draft/2020-12/schema"
KINDS = ("config", "scenario")
AREA = ("xpos", "ypos", "width", "height")
#: A key that may not be there. Not ``False``: Python's jsonschema (check-jsonschema's) then
#: reports the error at the table instead of at the key.
NOT_ALLOWED: dict[str, Any] = {"not": {}}
_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a ``config`` file (TOML) or a ``scenario`` file (YAML).

    Raises:
        ValueError: ``kind`` is neither.
        UndocumentedError: a key or step the reference cannot describe.
    """
    if kind == "config":
        defs = config_defs()
        return {"$schema": DRAFT, "title": "mux config", **defs.pop("config"), "$defs": defs}
    if kind == "scenario":
        return scenario_schema()
    raise ValueError(f"no JSON Schema of {kind!r} (kinds: {', '.join(KINDS)})")


# --- the config ------------------------------------------------------------------------------


def _constraints() -> dict[tuple[str, str], dict[str, Any]]:
    """What the parser checks beyond a key's type (patterns from the code's constants)."""
    from mux.config.machine import CLOCK_PATTERN, FORWARD_PATTERN, OWNED_OPTIONS
    from mux.config.schema import NAME_PATTERN
    from mux.devices.model import ID_PATTERN, RESERVED_IDS
    from mux.input.hotkeys import TARGETS

    usb_id = {"pattern": r"^(0x)?[0-9a-fA-F]{1,4}$", "minimum": 0, "maximum": 0xFFFF}
    positive = {"exclusiveMinimum": 0}
    owned = sorted(f"{dash}{option}" for option in OWNED_OPTIONS for dash in ("-", "--"))
    return {
        ("persona", "name"): {"pattern": NAME_PATTERN.pattern, "not": {"enum": list(TARGETS)}},
        ("persona", "color"): {"pattern": "^#?[0-9a-fA-F]{6}$"},
        ("persona", "memory_mb"): {"minimum": 32, "maximum": 65536},
        ("persona", "cpus"): {"minimum": 1, "maximum": 64},
        ("persona", "forward"): {"items": {"type": "string", "pattern": FORWARD_PATTERN.pattern}},
        ("persona", "clock"): {"pattern": CLOCK_PATTERN.pattern},
        ("persona", "attention"): {"format": "regex"},
        ("persona", "qemu_args"): {"items": {"type": "string", "not": {"enum": owned}}},
        ("seat", "name"): {"pattern": NAME_PATTERN.pattern},
        ("seat", "monitor"): {"minimum": 0},
        ("persona.devices", "id"): {"pattern": ID_PATTERN, "not": {"enum": sorted(RESERVED_IDS)}},
        ("persona.devices", "vendor"): usb_id,
        ("persona.devices", "product"): usb_id,
        ("persona.devices", "release_timeout_s"): positive,
        ("display", "backbuffer_interval_s"): positive,
        ("mqtt", "screenshot_interval_s"): positive,
        ("mqtt", "url"): {"pattern": r"^mqtts?://[^/:]+(:\d+)?/?$"},
    }


def _key_schema(key: Any, constraints: dict[str, Any]) -> dict[str, Any]:
    from mux.reference.config import COMPUTED, REQUIRED

    kinds: dict[str, dict[str, Any]] = {
        "string": {"type": "string"}, "path": {"type": "string"}, "integer": {"type": "integer"},
        "number": {"type": "number"}, "boolean": {"type": "boolean"},
        "list of strings": {"type": "array", "items": {"type": "string"}},
        "table of strings": {"type": "object", "additionalProperties": {"type": "string"}},
        "list of tables": {"type": "array", "items": {"$ref": "#/$defs/device"}},
        "string or integer": {"type": ["string", "integer"]},
    }
    if key.kind not in kinds:
        raise UndocumentedError(f"config key {key.table}.{key.name}: no JSON Schema for a {key.kind}")
    schema: dict[str, Any] = {"description": key.description, **copy.deepcopy(kinds[key.kind])}
    if key.values:
        schema["enum"] = list(key.values)
    if key.default not in (REQUIRED, COMPUTED, None):
        schema["default"] = list(key.default) if isinstance(key.default, tuple) else key.default
    for name, value in constraints.items():
        if name == "items":
            schema["items"].update(value)
        else:
            schema[name] = value
    return schema


def config_defs() -> dict[str, dict[str, Any]]:
    """One definition per table (``device`` for ``[[persona.devices]]``), and ``config``."""
    from mux.reference.config import TABLES, config_keys, table_doc

    keys = config_keys()
    constraints = _constraints()
    defs: dict[str, dict[str, Any]] = {}
    for t in TABLES:
        mine = [k for k in keys if k.table == t.name]
        defs["device" if t.name == "persona.devices" else t.name] = {
            "type": "object", "description": table_doc(t), "additionalProperties": False,
            "properties": {k.name: _key_schema(k, constraints.get((t.name, k.name), {})) for k in mine},
            **({"required": [k.name for k in mine if k.required]} if any(k.required for k in mine) else {}),
        }
    defs["persona"]["allOf"] = [
        {"if": {"required": ["kernel"]}, "then": {"properties": {"image": NOT_ALLOWED}}},
        {"if": {"not": {"required": ["kernel"]}},
         "then": {"properties": {"initrd": NOT_ALLOWED, "append": NOT_ALLOWED}}},
        {"if": {"not": {"required": ["network"], "properties": {"network": {"const": "user"}}}},
         "then": {"properties": {"forward": {"maxItems": 0}, "host_access": NOT_ALLOWED}}},
    ]
    defs["device"]["allOf"] = [
        {"if": {"required": ["type"], "properties": {"type": {"const": "usb-host"}}},
         "then": {"required": ["vendor", "product"],
                  "properties": {"file": NOT_ALLOWED, "format": NOT_ALLOWED, "readonly": NOT_ALLOWED}}},
        {"if": {"required": ["type"], "properties": {"type": {"enum": ["disk", "usb-storage"]}}},
         "then": {"required": ["file"], "properties": {"vendor": NOT_ALLOWED, "product": NOT_ALLOWED}}},
    ]
    sections = {t.name: {"$ref": f"#/$defs/{t.name}"} for t in TABLES if not t.array}
    defs["config"] = {
        "type": "object", "additionalProperties": False, "required": ["persona"],
        "description": "A mux config: the [mux] table, one [[persona]] table per guest, and the optional"
                       " [input], [display], [audio], [mqtt], [clipboard] and [[seat]] tables.",
        "properties": {**sections, "persona": {"type": "array", "minItems": 1,
                                                "items": {"$ref": "#/$defs/persona"},
                                                "description": defs["persona"]["description"]},
                       "seat": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/seat"},
                                "description": defs["seat"]["description"]}},
    }
    return defs


# --- scenarios -------------------------------------------------------------------------------


def _arg_schema(step: str, name: str, arg: Any) -> dict[str, Any]:
    """One step argument: its type, what the step's checks add, its meaning and default."""
    from mux.reference.steps import arg_doc
    from mux.scenario.model import MOUSE_BUTTONS, SNAPSHOT_NAME, STATES

    kinds = arg.kind if isinstance(arg.kind, tuple) else (arg.kind,)
    types = sorted({_JSON_TYPES[k] for k in kinds} - ({"integer"} if float in kinds else set()))
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types,
                              "description": arg_doc(name, arg)}
    if arg.default is not None:
        schema["default"] = arg.default
    if arg.regex:
        schema["format"] = "regex"
    if arg.needle:
        schema.update({"items": {"type": "string"}, "minItems": 1})
    if name in ("timeout", "within", "stilltime", "similarity", "tries"):
        schema["minimum"] = 0
    extra: dict[str, dict[str, Any]] = {
        "state": {"enum": list(STATES)},
        "button": {"enum": list(MOUSE_BUTTONS)},
        "delta": {"items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "rate": {"exclusiveMinimum": 0},
        "area": {"required": list(AREA), "additionalProperties": False,
                 "properties": {k: {"type": "integer", "minimum": 0} for k in AREA}},
        "name": {"pattern": SNAPSHOT_NAME.pattern} if step in ("snapshot", "screenshot") else {},
        "command": {"minLength": 1, "minItems": 1, "items": {"type": "string"}} if step == "exec" else {},
    }
    schema.update(extra.get(name, {}))
    return schema


def _step_defs() -> dict[str, dict[str, Any]]:
    from mux.scenario.model import STEPS

    defs: dict[str, dict[str, Any]] = {}
    for step, spec in STEPS.items():
        args = {name: _arg_schema(step, name, arg) for name, arg in spec.args.items()}
        mapping: dict[str, Any] = {"type": "object", "properties": args, "additionalProperties": False}
        required = [name for name, arg in spec.args.items() if arg.required]
        if required:
            mapping["required"] = required
        if step == "assert_led":
            mapping["anyOf"] = [{"required": [led]} for led in ("caps", "num", "scroll")]
        if spec.main is None:
            defs[f"step_{step}"] = {"description": spec.doc, **mapping}
        else:
            defs[f"step_{step}"] = {"description": spec.doc + f" (a bare value: its {spec.main})",
                                    "if": {"type": "object"}, "then": mapping, "else": args[spec.main]}
    return defs


def scenario_schema() -> dict[str, Any]:
    """A scenario file (also an included file: a list of steps, or a mapping with ``steps``)."""
    from mux.reference.steps import scenario_keys
    from mux.scenario.model import REPEAT_UNTIL_TIMES, SNAPSHOT_NAME, STEPS

    about = scenario_keys()
    defs = config_defs()
    config = defs.pop("config")
    defs |= _step_defs()
    kinds = [*STEPS, "include"]
    defs["repeat"] = {
        "description": f"times (a bare number), or {{times, until}} (until: check_screen arguments; times"
                       f" then defaults to {REPEAT_UNTIL_TIMES}); alone as a step, {{times, until, steps}}",
        "if": {"type": "object"},
        "then": {"type": "object", "additionalProperties": False,
                 "anyOf": [{"required": ["times"]}, {"required": ["until"]}],
                 "properties": {"times": {"type": "integer", "minimum": 1},
                                "until": {"$ref": "#/$defs/step_check_screen"},
                                "steps": {"$ref": "#/$defs/steps"}}},
        "else": {"type": "integer", "minimum": 1},
    }
    defs["step"] = {
        "type": "object", "additionalProperties": False,
        "description": "One step: a mapping with one step key; beside it, if and repeat.",
        "properties": {**{k: {"$ref": f"#/$defs/step_{k}"} for k in STEPS},
                       "include": {"type": "string", "description": "a file of steps, relative to this one"},
                       "if": {"$ref": "#/$defs/step_check_screen"}, "repeat": {"$ref": "#/$defs/repeat"}},
        "oneOf": [{"required": [k]} for k in kinds]
        + [{"required": ["repeat"], "properties": {"repeat": {"type": "object", "required": ["steps"]}},
            "not": {"anyOf": [{"required": [k]} for k in kinds]}}],
    }
    defs["steps"] = {"type": "array", "items": {"$ref": "#/$defs/step"}}
    name = {"type": "string", "pattern": SNAPSHOT_NAME.pattern}
    return {
        "$schema": DRAFT, "title": "mux scenario",
        "description": "A scenario file of mux replay: name, config (the personas) and steps. An included"
                       " file is a list of steps, or a mapping with steps.",
        "type": ["object", "array"], "items": {"$ref": "#/$defs/step"},
        "additionalProperties": False, "required": ["steps"],
        "properties": {"name": {"type": "string", "description": about["name"]},
                       "config": {**config, "description": about["config"]},
                       "steps": {"$ref": "#/$defs/steps", "description": about["steps"]},
                       "snapshot": {**name, "description": about["snapshot"]},
                       "from_snapshot": {**name, "description": about["from_snapshot"]}},
        "$defs": defs,
    }
