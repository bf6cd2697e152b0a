"""The config keys, read from the schema's dataclasses (:mod:`mux.config.schema`).

Each table of a config file is one frozen dataclass; each of its fields is a key. A
key's type and allowed values come from the field's annotation (a ``Literal`` lists the
values), its default from the field, its description from the ``#:`` comment above it
(:func:`~mux.reference.common.attribute_docs`). A field whose default is computed when
mux starts (``default_factory``: the runtime directory, the host's name) says its
default in its description. The dataclasses are looked up by name each time, so a test
can put a throwaway key into the schema and see the reference change, or fail.

:func:`config_keys` is the data (also the JSON Schema's, :mod:`mux.reference.jsonschema`);
:func:`config_page` the Markdown of ``docs/reference/config.md``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mux.reference.common import UndocumentedError, attribute_docs, code, header, table


@dataclass(frozen=True)
class Table:
    """One table of a config file and the dataclass that is its schema."""

    name: str  # as written in a file: "mux", "persona", "persona.devices"
    module: str
    cls: str
    array: bool = False  # an array of tables: [[persona]]
    skip: frozenset[str] = frozenset({"location"})  # fields that are no keys


TABLES = (
    Table("mux", "mux.config.schema", "MuxSection"),
    Table("persona", "mux.config.schema", "PersonaConfig", array=True),
    Table("persona.devices", "mux.devices.model", "DeviceConfig", array=True,
          skip=frozenset({"location", "persona"})),
    Table("input", "mux.config.schema", "InputSection"),
    Table("display", "mux.config.schema", "DisplaySection"),
    Table("audio", "mux.config.schema", "AudioSection"),
    Table("mqtt", "mux.config.schema", "MqttSection"),
    Table("clipboard", "mux.config.schema", "ClipboardSection"),
    Table("seat", "mux.config.schema", "SeatSection", array=True),
)

#: Descriptions of the keys whose dataclass lives outside mux.config (the device model has
#: no ``#:`` comments of its own); a ``#:`` comment on the field wins over these.
FALLBACK_DOCS: dict[tuple[str, str], str] = {
    ("persona.devices", "id"): "1-20 lower-case letters, digits, `-`, `_`, starting with a letter; unique"
    " across all personas (devices move). The QEMU device id and, for disks and sticks, the serial the"
    " guest sees (`/sys/block/vda/serial`).",
    ("persona.devices", "type"): "`disk`: a `virtio-blk-pci` on `pci.0` (`/dev/vda` in the guest);"
    " `usb-storage`: a stick on the `qemu-xhci` bus (`/dev/sda`); `usb-host`: a host USB device passed"
    " through.",
    ("persona.devices", "file"): "The image (`disk`, `usb-storage`), relative to the config file.",
    ("persona.devices", "format"): "The image's format (`disk`, `usb-storage`): default `qcow2` for a"
    " `.qcow2` file, else `raw` (never probed).",
    ("persona.devices", "readonly"): "The guest cannot write the image (`disk`, `usb-storage`).",
    ("persona.devices", "vendor"): "The USB vendor id of a `usb-host` device, `\"0x046d\"` or `0x046d`.",
    ("persona.devices", "product"): "The USB product id of a `usb-host` device, `\"0x0825\"` or `0x0825`.",
    ("persona.devices", "follow"): "`none`: stays with its persona until moved by hand; `active`: moves"
    " to whichever persona becomes active, as the keyboard does.",
    ("persona.devices", "release_timeout_s"): "How long a move waits for the old guest to let go, in"
    " seconds (above 0).",
}
FALLBACK_TABLE_DOCS = {
    "persona.devices": "`devices = [{ id = ..., type = ... }, ...]` in a `[[persona]]`: the devices that"
    " belong to it, which can move between personas while they run.",
}
#: Keys whose TOML type is wider than their field's (the parser converts).
TYPE_OVERRIDES = {("persona.devices", "vendor"): "string or integer",
                  ("persona.devices", "product"): "string or integer"}

REQUIRED = "required"
COMPUTED = "computed"


@dataclass(frozen=True)
class Key:
    """One config key: where it is, what it takes, what it means."""

    table: str
    name: str
    kind: str  # string, integer, number, boolean, path, list of strings, table of strings, ...
    values: tuple[str, ...]  # the allowed values, if only some are
    default: Any  # the value, or REQUIRED, or COMPUTED (said in the description)
    description: str

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def schema_class(t: Table) -> type:
    """The dataclass of table ``t``, as its module has it now."""
    cls: type = getattr(importlib.import_module(t.module), t.cls)
    return cls


def table_doc(t: Table) -> str:
    """What table ``t`` is: its dataclass's docstring, first paragraph, as Markdown."""
    cls = schema_class(t)
    own = cls.__doc__ if "__doc__" in vars(cls) and not (cls.__doc__ or "").startswith(cls.__name__ + "(") \
        else None
    text = FALLBACK_TABLE_DOCS.get(t.name) or (own or "").split("\n\n")[0]
    text = re.sub(r"^``\[[a-z.]+\]``: ", "", " ".join(text.split()))  # the heading says it
    return (text[:1].upper() + text[1:]).replace("``", "`")


def config_keys() -> list[Key]:
    """Every key of every table, in the schema's order.

    Raises:
        UndocumentedError: a key has no description, or a type the reference cannot name.
    """
    from mux.images import image_names

    allowed = {("persona", "image"): tuple(image_names())}
    keys: list[Key] = []
    missing: list[str] = []
    for t in TABLES:
        cls = schema_class(t)
        hints = typing.get_type_hints(cls)
        docs = attribute_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in t.skip:
                continue
            kind, values = _kind(hints[f.name], f"{t.name}.{f.name}")
            description = docs.get(f.name) or FALLBACK_DOCS.get((t.name, f.name), "")
            if not description:
                missing.append(f"{t.name}.{f.name}")
            keys.append(Key(t.name, f.name, TYPE_OVERRIDES.get((t.name, f.name), kind),
                            allowed.get((t.name, f.name), values), _default(f), description))
    if missing:
        raise UndocumentedError(f"config keys without a description: {', '.join(missing)} (add a `#:`"
                                " comment above the field in its dataclass)")
    return keys


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return COMPUTED
    return REQUIRED


def _kind(hint: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """The TOML type of an annotation, and its allowed values."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _kind(rest[0], where)
    if origin is typing.Literal:
        return "string", tuple(str(a) for a in args)
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    if hint in simple:
        return simple[hint], ()
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        return ("list of tables" if dataclasses.is_dataclass(item) and not _is_string_like(item)
                else "list of strings"), ()
    if origin is dict:
        return "table of strings", ()
    raise UndocumentedError(f"config key {where}: the reference cannot name its type {hint!r}")


def _is_string_like(cls: Any) -> bool:
    """A dataclass written as one string in a file (``forward``'s "tcp:2222:22")."""
    return "__str__" in vars(cls)


def toml_value(value: Any) -> str:
    """A default as it would be written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def _shown_default(key: Key) -> str:
    if key.default is REQUIRED:
        return "**required**"
    if key.default is COMPUTED:
        return "computed (see description)"
    if key.default is None:
        return "not set"
    return code(toml_value(key.default))


INTRO = """\
A config is a TOML file (`mux run CONFIG`); a scenario holds the same schema inline, in
YAML, under `config:`. Paths are relative to the config file. Unknown keys and bad values
are errors that name the file, the line and the key, and every mistake in a file is
reported at once. Editors can check a file as it is typed against the
[JSON Schema](schema/config.json) generated from the same schema: see
[Editor support](index.md#editor-support). The guides tell what the keys are for:
[Running personas](../guides/running.md), [Your own VMs](../guides/your-own-vms.md),
[Input](../guides/input.md), [Display and LEDs](../guides/display.md),
[Audio](../guides/audio.md), [Devices and hotplug](../guides/devices.md),
[MQTT and Home Assistant](../guides/mqtt.md).
"""


def config_page() -> str:
    """``docs/reference/config.md``: every table and key.

    Raises:
        UndocumentedError: see :func:`config_keys`.
    """
    keys = config_keys()
    out = [header("Config keys", "mux/config/schema.py (and mux/devices/model.py)", INTRO)]
    for t in TABLES:
        title = f"[[{t.name}]]" if t.array else f"[{t.name}]"
        out.append(f"## `{title}` {{ #{t.name.replace('.', '-')} }}\n\n{table_doc(t)}\n\n")
        rows = [(code(k.name), k.kind + (": one of " + ", ".join(code(v) for v in k.values) if k.values
                                          else ""), _shown_default(k), k.description)
                for k in keys if k.table == t.name]
        out.append(table(("key", "type", "default", "description"), rows) + "\n")
    return "".join(out).rstrip("\n") + "\n"
