"""Checking a config against the schema: every mistake collected, each with its location.

Loading is two steps: :mod:`mux.sourcemap` turns a file into plain data plus a map
back to its lines, then :func:`parse_config` checks that data against the schema
(:mod:`mux.config.schema`) and builds its frozen dataclasses. Every mistake is collected
(not just the first) and raised together as one :class:`~mux.errors.ConfigError` whose
lines read ``file:line: message``. Keys that are not in the schema are errors, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

from mux.config.checks import Checker as _Checker
from mux.config.checks import color as _color
from mux.config.checks import positive as _positive
from mux.config.checks import relative_to as _relative_to
from mux.config.machine import MACHINE_KEYS, check_forwards, parse_machine
from mux.config.schema import (
    DEFAULT_COLORS,
    NAME_PATTERN,
    AudioSection,
    ClipboardSection,
    Config,
    DisplaySection,
    InputSection,
    MqttSection,
    MuxSection,
    PersonaConfig,
    default_control_socket,
    runtime_base,
)
from mux.config.seats import parse_seats
from mux.devices.model import (
    DEVICE_TYPES,
    ID_PATTERN,
    RELEASE_TIMEOUT_S,
    RESERVED_IDS,
    Claim,
    DeviceConfig,
    file_conflicts,
)
from mux.errors import ConfigError, InputError, Location
from mux.input.hotkeys import TARGETS as HOTKEY_TARGETS
from mux.sourcemap import Path_, SourceMap, load_file, locate_in


def parse_config(data: Any, locate: SourceMap, source: Path | str, prefix: Path_ = (),
                 *, overlay: bool | None = None) -> Config:
    """Check plain data against the schema and build a :class:`Config`.

    ``prefix`` is where the config sits inside a larger file (``("config",)`` in a scenario).
    ``overlay`` is the personas' default ``overlay``; None: true inside a larger file (a
    scenario's personas never write their disks), false for a config file (``mux run``).

    Raises:
        ConfigError: every problem found, each with its location.
    """
    problems: list[tuple[Location, str]] = []
    c = _Checker(locate, problems)
    top = c.table(data, prefix, {"mux", "persona", "input", "display", "audio", "mqtt", "clipboard",
                                          "seat"})

    p = (*prefix, "mux")
    t = c.table(top.get("mux"), p, {"accel", "runtime_dir", "control_socket", "active",
                                    "start_on_switch", "keep_guests", "background", "quick_boot",
                                    "steal"})
    mux = MuxSection(
        accel=c.choice(t, p, "accel", ("auto", "kvm", "tcg"), "auto"),
        runtime_dir=_relative_to(source, c.get(t, p, "runtime_dir", str, None)) or runtime_base(),
        control_socket=_relative_to(source, c.get(t, p, "control_socket", str, None))
        or default_control_socket(),
        active=c.get(t, p, "active", str, None),
        start_on_switch=c.get(t, p, "start_on_switch", bool, True),
        keep_guests=c.choice(t, p, "keep_guests", ("on-crash", "always", "never"), "on-crash"),
        background=c.choice(t, p, "background", ("run", "low", "pause"), "low"),
        quick_boot=c.get(t, p, "quick_boot", bool, True),
        steal=c.get(t, p, "steal", bool, False),
    )

    personas = _parse_personas(c, top.get("persona"), (*prefix, "persona"), source,
                               bool(prefix) if overlay is None else overlay)
    if mux.active is not None and personas and mux.active not in [q.name for q in personas]:
        c.fail((*p, "active"), f"mux.active: unknown persona {mux.active!r} "
               f"(personas: {', '.join(q.name for q in personas)})")

    p = (*prefix, "input")
    t = c.table(top.get("input"), p, {"devices", "hotkeys", "autorepeat"})
    devices = c.get(t, p, "devices", list, [])
    if not all(isinstance(d, str) for d in devices):
        c.fail((*p, "devices"), "input.devices must be a list of strings")
    hotkeys = c.get(t, p, "hotkeys", dict, None)
    if hotkeys is not None and not all(isinstance(v, str) for v in hotkeys.values()):
        c.fail((*p, "hotkeys"), "input.hotkeys values must be persona names, 'next' or 'previous'")
    input_ = InputSection(tuple(devices), hotkeys, c.choice(t, p, "autorepeat", ("pass", "drop"), "pass"))
    _check_hotkeys(c, input_, (*p, "hotkeys"), [q.name for q in personas])

    p = (*prefix, "display")
    t = c.table(top.get("display"), p, {"output", "backbuffer_interval_s", "fullscreen", "on_attention",
                                        "resize_guest"})
    display = DisplaySection(
        output=c.choice(t, p, "output", ("headless", "window", "auto"), "headless"),
        backbuffer_interval_s=float(c.get(t, p, "backbuffer_interval_s", (int, float), 1.0, _positive)),
        fullscreen=c.get(t, p, "fullscreen", bool, False),
        on_attention=c.choice(t, p, "on_attention", ("notify", "switch"), "notify"),
        resize_guest=c.get(t, p, "resize_guest", bool, None),
    )
    p = (*prefix, "audio")
    t = c.table(top.get("audio"), p, {"background"})
    audio = AudioSection(background=c.choice(t, p, "background", ("mute", "duck"), "mute"))

    mqtt = _parse_mqtt(c, top.get("mqtt"), (*prefix, "mqtt"), source)
    for index, q in enumerate(personas if mqtt is not None else []):
        if q.name in HOME_ASSISTANT_WORDS:  # its selects would read the name, not the persona
            c.fail((*prefix, "persona", index, "name"),
                   f"persona name '{q.name}' means {HOME_ASSISTANT_WORDS[q.name]} to Home Assistant's"
                   " selects: rename the persona (or leave out [mqtt])")
    clipboard = _parse_clipboard(c, top.get("clipboard"), (*prefix, "clipboard"), [q.name for q in personas])
    seats = parse_seats(c, top.get("seat"), (*prefix, "seat"), [q.name for q in personas], top, prefix)
    if problems:
        raise ConfigError(problems)
    return Config(mux, tuple(personas), input_, display, mqtt, source, audio, clipboard, seats)


#: ``[clipboard] allow``'s rules: "from -> to", each a persona's name or "*".
ALLOW_PATTERN = re.compile(r"^\s*([a-z0-9][a-z0-9_-]{0,31}|\*)\s*->\s*([a-z0-9][a-z0-9_-]{0,31}|\*)\s*$")


def _parse_clipboard(c: _Checker, data: Any, p: Path_, names: list[str]) -> ClipboardSection:
    t = c.table(data, p, {"allow"})
    allow = c.get(t, p, "allow", list, None)
    if allow is None:
        return ClipboardSection()
    rules: list[str] = []
    for index, rule in enumerate(allow):
        match = ALLOW_PATTERN.match(rule) if isinstance(rule, str) else None
        if match is None:
            c.fail((*p, "allow", index), f"{rule!r}: a rule reads \"from -> to\", each a persona's"
                   " name or \"*\", such as \"home -> work\"")
            continue
        for end in match.groups():
            if end != "*" and end not in names:
                c.fail((*p, "allow", index),
                       f"{rule!r}: unknown persona {end!r} (personas: {', '.join(names)})")
        rules.append(f"{match[1]} -> {match[2]}")
    return ClipboardSection(allow=tuple(rules))


#: Words Home Assistant's MQTT selects read as something else than an option.
HOME_ASSISTANT_WORDS = {"none": "'clear the selection'", "detached": "the device select's 'nobody'"}


def _parse_personas(c: _Checker, data: Any, path: Path_, source: Path | str,
                    overlay: bool) -> list[PersonaConfig]:
    if not isinstance(data, list) or not data:
        c.fail(path, "at least one [[persona]] is needed")
        return []
    known = {"name", "image", "kernel", "initrd", "append", "disk", "memory_mb", "color",
             "restart", "autostart", "devices", "keyboard", "attention", "host_access", *MACHINE_KEYS}
    reserved = HOTKEY_TARGETS
    personas: list[PersonaConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        p = (*path, index)
        t = c.table(item, p, known)
        name = c.get(t, p, "name", str, "",
                     lambda v: f"is reserved for hotkeys ({', '.join(reserved)})"
                     if v in reserved else None if NAME_PATTERN.match(v) else
                     "must be 1-32 lower-case letters, digits, '-' or '_'")
        if "name" not in t:
            c.fail(p, "a persona needs a name")
        elif name in seen:
            c.fail((*p, "name"), f"persona name {name!r} is used twice")
        seen.add(name)
        machine = parse_machine(c, t, p, source, overlay_default=overlay)  # image, kernel, disk, ...
        for key in ("initrd", "append"):
            if key in t and machine["kernel"] is None:
                c.fail((*p, key), f"{key} is only for a persona with its own kernel")
        host_access = c.get(t, p, "host_access", bool, False)
        _check_network(c, p, machine["network"], host_access, "host_access" in t)
        personas.append(PersonaConfig(
            name=name,
            initrd=_relative_to(source, c.get(t, p, "initrd", str, None)),
            append=c.get(t, p, "append", str, ""),
            color=c.get(t, p, "color", str, DEFAULT_COLORS[index % len(DEFAULT_COLORS)],
                        _color).lstrip("#").lower(),
            restart=c.choice(t, p, "restart", ("no", "on-failure", "always"), "no"),
            autostart=c.get(t, p, "autostart", bool, True),
            keyboard=c.choice(t, p, "keyboard", ("ps2", "virtio"), "ps2"),
            attention=c.get(t, p, "attention", str, None, _regex),
            devices=_parse_devices(c, t, p, source, name),
            host_access=host_access,
            location=c.locate(p),
            **machine,
        ))
    _check_devices(c, personas)
    check_forwards(c, personas)
    return personas


def _check_network(c: _Checker, p: Path_, network: str, host_access: bool, given: bool) -> None:
    """``host_access`` goes with ``network = "user"``; without it, the network is passt's,
    which must be installed (no silent fallback to QEMU's slirp, which reaches the host)."""
    if given and network != "user":
        c.fail((*p, "host_access"), "host_access needs network = \"user\"")
    elif network == "user" and not host_access and shutil.which("passt") is None:
        c.fail((*p, "network"), "network = \"user\" needs passt, which keeps the guest off the host's"
               " 127.0.0.1: apt-get install passt (dnf install passt, pacman -S passt); or host_access"
               " = true for QEMU's own user network, which reaches it")


_DEVICE_KEYS = {"id", "type", "file", "format", "readonly", "vendor", "product", "follow",
                "release_timeout_s"}


def _parse_devices(c: _Checker, persona: dict[str, Any], path: Path_, source: Path | str,
                   name: str) -> tuple[DeviceConfig, ...]:
    """A persona's ``devices``: a list of tables (see :mod:`mux.devices.model`)."""
    items = c.get(persona, path, "devices", list, [])
    devices: list[DeviceConfig] = []
    for index, item in enumerate(items):
        p = (*path, "devices", index)
        t = c.table(item, p, _DEVICE_KEYS)
        if not isinstance(item, dict):
            continue
        id_ = c.get(t, p, "id", str, "", lambda v: None if re.match(ID_PATTERN, v) and v not in RESERVED_IDS
                    else "must be 1-20 lower-case letters, digits, '-' or '_', starting with a letter"
                    f" (not {', '.join(sorted(RESERVED_IDS))})")
        kind = c.choice(t, p, "type", DEVICE_TYPES, "")
        for key in ("id", "type"):
            if key not in t:
                c.fail(p, f"a device needs {'an' if key == 'id' else 'a'} {key}")
        block = kind in ("disk", "usb-storage")
        for key in ("file", "format", "readonly") if kind == "usb-host" else ("vendor", "product"):
            if key in t and kind:
                c.fail((*p, key), f"{key} is not a key of a {kind} device")
        file = _relative_to(source, c.get(t, p, "file", str, None))
        if block and "file" not in t:
            c.fail(p, f"a {kind} device needs a file")
        ids = {key: c.get(t, p, key, (str, int), None, _usb_id) for key in ("vendor", "product")}
        if kind == "usb-host" and not all(key in t for key in ids):
            c.fail(p, "a usb-host device needs vendor and product (e.g. vendor = \"0x046d\")")
        default_format = "qcow2" if file is not None and file.suffix == ".qcow2" else "raw"
        devices.append(DeviceConfig(
            id=id_, type=kind or "disk", persona=name, file=file,
            format=c.choice(t, p, "format", ("raw", "qcow2"), default_format),
            readonly=c.get(t, p, "readonly", bool, False),
            vendor=_usb_int(ids["vendor"]), product=_usb_int(ids["product"]),
            follow=c.choice(t, p, "follow", ("none", "active"), "none"),
            release_timeout_s=float(c.get(t, p, "release_timeout_s", (int, float), RELEASE_TIMEOUT_S,
                                          _positive)),
            location=c.locate(p),
        ))
    return tuple(devices)


def _regex(value: str) -> str | None:
    """Why ``value`` is not a regular expression (None: it is one)."""
    try:
        re.compile(value)
    except re.error as exc:
        return f"{value!r} is not a regular expression: {exc}"
    return None


def _usb_id(value: str | int) -> str | None:
    number = _usb_int(value)
    return None if number is not None else "must be a 16-bit USB id such as \"0x046d\""


def _usb_int(value: str | int | None) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"(0x)?[0-9a-fA-F]{1,4}", value):
        return int(value, 16)
    if isinstance(value, int) and 0 <= value <= 0xFFFF:
        return value
    return None


def _check_devices(c: _Checker, personas: list[PersonaConfig]) -> None:
    """Device ids are unique across personas (devices move), and nothing one persona
    writes is opened by another: checked here, before anything boots."""
    seen: dict[str, DeviceConfig] = {}
    claims: list[Claim] = []
    for persona in personas:
        if persona.disk is not None:  # under an overlay, the disk is only read
            claims.append(Claim(_file_key(persona.disk), not persona.overlay, persona.name, "disk",
                                persona.location))
        if persona.cdrom is not None:
            claims.append(Claim(_file_key(persona.cdrom), False, persona.name, "cdrom", persona.location))
        for device in persona.devices:
            if device.id and device.id in seen:
                other = seen[device.id]
                c.problems.append((device.location, f"device id {device.id!r} is already used by persona "
                                                    f"{other.persona!r} ({other.location})"))
            seen.setdefault(device.id, device)
            what = f"device {device.id!r}"
            if device.file is not None and device.is_block:
                claims.append(Claim(_file_key(device.file), not device.readonly, persona.name, what,
                                    device.location))
            elif device.type == "usb-host" and device.vendor is not None and device.product is not None:
                claims.append(Claim(f"usb:{device.vendor:04x}:{device.product:04x}", True, persona.name,
                                    what, device.location))
    c.problems.extend(file_conflicts(claims))


def _file_key(path: Path) -> str:
    """One name per file: symlinks and ``..`` resolved (the file need not exist yet)."""
    return os.path.realpath(path)


def _check_hotkeys(c: _Checker, input_: InputSection, path: Path_, names: list[str]) -> None:
    if not input_.hotkeys or not all(isinstance(v, str) for v in input_.hotkeys.values()):
        return  # values that are no names: said in parse_config
    from mux.input.hotkeys import TARGETS, parse_hotkeys

    for chord, target in input_.hotkeys.items():
        if isinstance(target, str) and target not in (*TARGETS, *names):
            c.fail((*path, chord), f"hotkey {chord!r} targets unknown persona {target!r}")
    try:
        parse_hotkeys(input_.hotkeys)
    except InputError as exc:
        c.fail(path, f"input.hotkeys: {exc}")


def _parse_mqtt(c: _Checker, data: Any, p: Path_, source: Path | str) -> MqttSection | None:
    if data is None:
        return None
    known = {"url", "username", "password", "tls_ca", "tls_cert", "tls_key", "base_topic",
             "discovery_prefix", "node_id", "screenshot_interval_s", "discovery"}
    t = c.table(data, p, known)
    url = c.get(t, p, "url", str, "",
                lambda v: None if re.match(r"^mqtts?://[^/:]+(:\d+)?/?$", v)
                else "must look like mqtt://host:1883 or mqtts://host:8883")
    if "url" not in t:
        c.fail(p, "mqtt.url is required")
    return MqttSection(
        url=url,
        username=c.get(t, p, "username", str, None),
        password=c.get(t, p, "password", str, None),
        tls_ca=_relative_to(source, c.get(t, p, "tls_ca", str, None)),
        tls_cert=_relative_to(source, c.get(t, p, "tls_cert", str, None)),
        tls_key=_relative_to(source, c.get(t, p, "tls_key", str, None)),
        base_topic=c.get(t, p, "base_topic", str, None),
        discovery_prefix=c.get(t, p, "discovery_prefix", str, "homeassistant"),
        node_id=c.get(t, p, "node_id", str, socket.gethostname()),
        screenshot_interval_s=float(c.get(t, p, "screenshot_interval_s", (int, float), 5.0, _positive)),
        discovery=c.choice(t, p, "discovery", ("entities", "device"), "entities"),
    )


def demo_config(*, desktop: bool = False, output: str = "auto") -> Config:
    """The built-in demo (``mux demo``): two personas, "work" and "home", of the ``console``
    image, or with ``desktop`` of the ``desktop`` image (with the defaults its recipe gives);
    in a window when a display can be opened (``output``: "auto", "window", "headless")."""
    image = {"image": "desktop"} if desktop else {}
    data = {"persona": [{"name": "work", "color": "c03030", "restart": "on-failure", **image},
                        {"name": "home", "color": "3060c0", "restart": "on-failure", **image}],
            "display": {"output": output}}
    return parse_config(data, locate_in({}, "<built-in demo>"), "<built-in demo>")


def load_config(path: Path) -> Config:
    """Load and check a TOML config file.

    Raises:
        ConfigError: the file is unreadable, not TOML, or breaks the schema.
    """
    data, locate = load_file(path)
    return parse_config(data, locate, path)
