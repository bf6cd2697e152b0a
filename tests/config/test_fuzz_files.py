"""Fuzzing the parsers of a user's files: config (TOML), scenarios (YAML), needles (JSON).

The property of each: whatever the file holds, loading it gives the parsed thing or mux's
own :class:`~mux.errors.ConfigError` (:class:`~mux.errors.ScenarioError` for a scenario)
whose every problem names the file (and, where the format keeps positions, the line);
never another exception type. Documents are built by hypothesis from each format's own
vocabulary (the config schema's keys, the step table, a needle's keys) with random
values, and from random bytes.

Budgets: each test's ``@settings`` is :func:`budget` (CI: a few hundred examples per
parser, the file in well under a minute; ``HYPOTHESIS_PROFILE=fuzz``, as ``tox -e fuzz``
sets it, :data:`FUZZ_SCALE` times more, randomised). The profiles are registered here
rather than in conftest.py; registering again is harmless.

Every bug found is fixed; its input stays as an ``@example`` or as a test of its own at
the end of this file.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mux.config import Config, load_config
from mux.config.machine import MACHINE_KEYS
from mux.errors import ConfigError, Location, ScenarioError
from mux.needles.loader import NeedleLibrary, load_needle
from mux.needles.model import Needle
from mux.scenario.model import STEPS, Scenario
from mux.scenario.parse import load_scenario
from mux.sourcemap import load_toml_text, load_yaml_text

pytestmark = pytest.mark.pure

# --- profiles and budgets (shared with tests/guest/test_fuzz_streams.py) -----------------------

FUZZ_SCALE = 40  # the fuzz profile runs this many times each parser's CI budget
FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"

settings.register_profile("fuzz-ci", deadline=None, suppress_health_check=list(HealthCheck),
                          derandomize=True, print_blob=True)
settings.register_profile("fuzz", deadline=None, suppress_health_check=list(HealthCheck),
                          print_blob=True)


def budget(ci_examples: int) -> settings:
    """One parser's settings: ``ci_examples`` in CI, :data:`FUZZ_SCALE` times as many, with
    a random seed, under ``HYPOTHESIS_PROFILE=fuzz``. No hypothesis deadline (the machine
    is shared); a test whose parser could hang bounds each example itself."""
    parent = settings.get_profile("fuzz" if FUZZING else "fuzz-ci")
    return settings(parent, max_examples=ci_examples * (FUZZ_SCALE if FUZZING else 1))


def scratch() -> Path:
    """A fresh directory for one example's files (hypothesis cannot use function fixtures)."""
    return Path(tempfile.mkdtemp(prefix="muxfuzz-"))


def assert_names_file(error: ConfigError, path: Path, *, lines: bool) -> None:
    """Every problem of ``error`` names ``path`` (and a line, if ``lines``) and says something."""
    assert error.problems, error
    for location, message in error.problems:
        assert isinstance(location, Location)
        assert str(location).startswith(str(path)), (location, message)
        assert message.strip(), error
        if lines:
            assert location.line >= 1, (location, message)


# --- random values -------------------------------------------------------------------------

NAMES = st.sampled_from(["work", "home", "w-1", "x", "next", "", "A", "a" * 40, "wörk"])
WORDS = st.sampled_from(["auto", "kvm", "tcg", "headless", "window", "switch", "notify", "mute", "duck",
                         "ps2", "virtio", "user", "none", "uefi", "bios", "disk", "cdrom", "usb-host",
                         "usb-storage", "qcow2", "raw", "active", "always", "never", "on-crash",
                         "mqtt://h:1883", "mqtts://h", "#ff0000", "red", "0x046d", "046d", "tcp:22:2222",
                         "host", "utc", "2031-05-01", "2031-05-01T09:00:00", "[a-", "(x)", "/dev/null",
                         "a\x00b", "next", "ctrl+alt+1", "-vnc", "console"])
SCALARS = st.one_of(
    st.text(max_size=12), WORDS, NAMES,
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from([0, 1, -1, 65535, 65536, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
)


def toml_values(scalars: st.SearchStrategy[Any] = SCALARS) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1, max_size=8),
                                          inner, max_size=3), max_leaves=8)


def table(keys: frozenset[str] | set[str], values: st.SearchStrategy[Any] | None = None,
          extra: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """A table of some of ``keys`` (and now and then an unknown key) with random values."""
    names = st.sampled_from(sorted(keys))
    if extra:
        names = names | st.text(string.ascii_lowercase + "_", min_size=1, max_size=6)
    return st.dictionaries(names, values if values is not None else toml_values(), max_size=6)


DEVICE_KEYS = {"id", "type", "file", "format", "readonly", "vendor", "product", "follow", "release_timeout_s"}
PERSONA_KEYS = {"name", "image", "kernel", "initrd", "append", "disk", "memory_mb", "color", "restart",
                "autostart", "devices", "keyboard", "attention", "host_access", *MACHINE_KEYS}


@st.composite
def persona_tables(draw: st.DrawFn) -> dict[str, Any]:
    persona = draw(table(PERSONA_KEYS))
    if draw(st.booleans()):
        persona["name"] = draw(NAMES)
    if draw(st.booleans()):
        persona["devices"] = draw(st.lists(table(DEVICE_KEYS), max_size=3))
    if draw(st.booleans()):
        persona["forward"] = draw(st.lists(WORDS | st.text(max_size=10), max_size=3))
    return persona


CONFIGS = st.fixed_dictionaries({}, optional={
    "mux": table({"accel", "runtime_dir", "control_socket", "active", "start_on_switch", "keep_guests"}),
    "persona": st.lists(persona_tables(), max_size=3),
    "input": table({"devices", "hotkeys", "autorepeat"}),
    "display": table({"output", "backbuffer_interval_s", "fullscreen", "on_attention"}),
    "audio": table({"background"}),
    "mqtt": table({"url", "username", "password", "tls_ca", "tls_cert", "tls_key", "base_topic",
                   "discovery_prefix", "node_id", "screenshot_interval_s", "discovery"}),
}) | st.dictionaries(st.text(max_size=5), toml_values(), max_size=3)


def load_or_error(path: Path) -> Config | ConfigError:
    try:
        return load_config(path)
    except ConfigError as exc:
        return exc


# --- config files ----------------------------------------------------------------------------


@budget(250)
@given(document=CONFIGS)
@example(document={"persona": [{"name": "w", "disk": "a\x00b"}]})  # realpath: ValueError
@example(document={"persona": [{"name": "w", "devices": [{"id": "d", "type": "disk", "file": "a\x00"}]}]})
@example(document={"display": {"backbuffer_interval_s": 2**1100}})  # float(): OverflowError
@example(document={"mqtt": {"url": "mqtt://h", "screenshot_interval_s": 10**400}})
@example(document={"persona": [{"name": "w", "memory_mb": 10**400, "cpus": 10**400}]})
@example(document={"persona": [{"name": "w", "devices": [{"id": "d", "type": "disk", "file": "f",
                                                          "release_timeout_s": 10**400}]}]})
@example(document={"input": {"hotkeys": {"ctrl+alt+\x00": "w", "": "w", "+": "next"}}})
@example(document={"input": {"hotkeys": {"a": 0}}})  # parse_hotkeys: AttributeError
def test_config_documents_from_the_schema_load_or_name_the_file_and_line(document: dict[str, Any]) -> None:
    path = scratch() / "mux.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    result = load_or_error(path)
    if isinstance(result, ConfigError):
        assert_names_file(result, path, lines=False)
    else:
        assert isinstance(result, Config)


TOML_ALPHABET = st.sampled_from([*"[]{}=\"'.,#\n \t-_+:0123456789abcdefnrstu\\", "[[persona]]\n"])


@budget(200)
@given(data=st.binary(max_size=300) | st.lists(TOML_ALPHABET, max_size=80).map("".join).map(str.encode))
@example(data=b"a = " + b"[" * 3000)  # see test_toml_nested_too_deeply_is_a_config_error
@example(data=b"a = 1" + b"0" * 5000)  # see test_toml_integer_of_5000_digits_is_a_config_error
@example(data=b"\xff\xfe")
def test_config_bytes_load_or_name_the_file(data: bytes) -> None:
    path = scratch() / "mux.toml"
    path.write_bytes(data)
    result = load_or_error(path)
    if isinstance(result, ConfigError):
        assert_names_file(result, path, lines=False)


# --- scenario files --------------------------------------------------------------------------

CONFIG = {"persona": [{"name": "work", "image": "console"}, {"name": "home", "image": "console"}]}
YAML_SCALARS = st.one_of(
    st.text(max_size=10), st.sampled_from(["work", "home", "nobody", "READY", "[a-", "ctrl+alt+f2", "a",
                                           "left", "x.json", "needles/x", "../x.yaml", "running", "host",
                                           "2031-05-01T09:00:00", "true", "caps"]),
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.booleans(), st.none(),
)
YAML_KEYS = st.text(max_size=6) | st.sampled_from(["times", "until", "steps"])
YAML_VALUES = st.recursive(YAML_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(YAML_KEYS, inner, max_size=3), max_leaves=6)


@st.composite
def steps(draw: st.DrawFn, depth: int = 0) -> Any:
    """A list of steps from the vocabulary (and blocks, and mistakes), with random arguments."""
    items: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from([*sorted(STEPS), "include", "repeat", "no_such_step"]))
        spec = STEPS.get(kind)
        argument: Any
        if kind == "switch":  # not a persona name: see test_switch_to_a_list_is_a_scenario_error
            argument = draw(st.text(max_size=6) | st.fixed_dictionaries({"persona": st.text(max_size=6)}))
        elif spec is not None and draw(st.booleans()):
            names = st.sampled_from(sorted(spec.args)) | st.sampled_from(["bogus", "if", "repeat"])
            argument = draw(st.dictionaries(names, YAML_VALUES, max_size=4))
        elif kind == "repeat" and depth < 2:
            argument = {"times": draw(YAML_SCALARS), "steps": draw(steps(depth + 1))}
            if draw(st.booleans()):
                argument["until"] = draw(YAML_VALUES)
        else:
            argument = draw(YAML_VALUES)
        step: dict[Any, Any] = {kind: argument}
        if draw(st.integers(0, 4)) == 0:
            step[draw(st.sampled_from(["if", "repeat", "times", "press"]))] = draw(YAML_VALUES)
        items.append(draw(st.sampled_from([step, draw(YAML_VALUES)])) if draw(st.integers(0, 9)) == 0
                     else step)
    return items


SCENARIOS = st.fixed_dictionaries(
    {"steps": steps()},
    optional={"name": YAML_SCALARS, "config": st.just(CONFIG) | st.fixed_dictionaries(
        {"persona": st.lists(st.dictionaries(st.sampled_from(sorted(PERSONA_KEYS)), YAML_VALUES, max_size=3),
                             max_size=2)}) | YAML_VALUES,
              "snapshot": YAML_SCALARS, "from_snapshot": YAML_SCALARS, "extra": YAML_VALUES},
) | YAML_VALUES


@budget(250)
@given(document=SCENARIOS)
@example(document={"config": CONFIG, "steps": [{"wait_serial": {"persona": "work", "match": "a" * 10,
                                                                "timeout": 10**400}}]})
@example(document={"config": CONFIG, "steps": [{"sleep": float("nan")}, {"sleep": -1e308},
                                              {"repeat": {"times": 10**30, "steps": []}}]})
@example(document={"config": CONFIG, "steps": [{"press": "\x00"}, {"type": {"text": "x", "rate": 0}},
                                              {"mouse_move": [10**400, "a"]}, {"assert_text": {"area": {}}}]})
def test_scenario_documents_load_or_name_the_file_and_line(document: Any) -> None:
    path = scratch() / "s.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        for location, message in exc.problems:  # an include names its own file
            assert str(location.file).endswith(".yaml") or Path(location.file).parent == path.parent, location
            assert location.line >= 1 and message.strip(), (location, message)
    else:
        assert isinstance(scenario, Scenario)


# --- needle files ----------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8), st.sampled_from(["center", "match", "exclude", "ocr", "90",
                                                                    " 1e999 ", "nan", "-1", "0"]),
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
AREA_KEYS = ["xpos", "ypos", "width", "height", "type", "match", "margin", "click_point"]
AREAS = st.dictionaries(st.sampled_from(AREA_KEYS), JSON_SCALARS | st.dictionaries(
    st.sampled_from(["xpos", "ypos"]), JSON_SCALARS, max_size=2), max_size=8)
NEEDLES = st.fixed_dictionaries({}, optional={
    "tags": st.lists(st.text(max_size=5), max_size=3) | JSON_VALUES,
    "properties": st.lists(JSON_VALUES, max_size=2) | JSON_VALUES,
    "area": st.lists(AREAS | JSON_VALUES, max_size=3) | JSON_VALUES,
}) | JSON_VALUES
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00\x90\x91h6"
       b"\x00\x00\x00\x0fIDATx\x9cc\xf8\xcf\x80\x1f0\x8c*\x00\x00h\xd3\xff\x01W\x1b\xd0\xeb\x00\x00\x00\x00"
       b"IEND\xaeB`\x82")  # 16x16


@budget(250)
@given(document=NEEDLES, png=st.sampled_from([PNG, b"", b"version https://git-lfs", None]),
       ascii_only=st.booleans())
@example(document={"area": [{"width": 10**400, "height": 1}]}, png=PNG, ascii_only=True)  # float(): Overflow
@example(document={"area": [{"width": float("inf"), "height": 1}]}, png=PNG, ascii_only=True)  # int(inf)
@example(document={"area": [{"xpos": float("nan"), "width": 1, "height": 1}]}, png=PNG, ascii_only=True)
@example(document={"area": [{"width": 1, "height": 1, "margin": float("inf")}]}, png=PNG, ascii_only=True)
@example(document={"area": [{"width": 1, "height": 1, "match": "1e999"}]}, png=PNG, ascii_only=True)
@example(document={"area": [{"width": 1, "height": 1}], "tags": ["\x07"]}, png=PNG, ascii_only=False)
@example(document={"area": [{"width": 1, "height": 1}], "tags": ["\ufffe"]}, png=PNG, ascii_only=False)
@example(document={"area": [{"width": 1, "height": 1, "click_point": {"xpos": 1e308, "ypos": -1e308}}]},
         png=PNG, ascii_only=True)
def test_needle_files_load_or_are_skipped_with_a_warning_naming_the_file(
        document: Any, png: bytes | None, ascii_only: bool) -> None:
    path = scratch() / "n.json"
    path.write_text(json.dumps(document, ensure_ascii=ascii_only), encoding="utf-8")
    if png is not None:
        path.with_suffix(".png").write_bytes(png)
    library = NeedleLibrary()
    needle = library.file(path)
    for location, message in library.warnings:
        assert str(location).startswith(str(path)) and "n.json" in message, (location, message)
    if needle is None:
        assert library.warnings
    else:
        assert isinstance(needle, Needle)
    try:
        strict = load_needle(path)
    except ConfigError as exc:
        assert needle is None
        assert_names_file(exc, path, lines=True)
    else:
        assert needle is not None and strict.areas == needle.areas


@budget(150)
@given(text=st.text(max_size=60) | st.lists(st.sampled_from(list('{}[]",:0123456789.eE-+ \n\ttrufalsn\\')),
                                            max_size=60).map("".join))
@example(text="1" + "0" * 5000)  # json.loads: ValueError (int digits), not JSONDecodeError
@example(text="[" * 5000)  # json.loads: RecursionError
@example(text='{"area": [{"width": 1' + "0" * 400 + ', "height": 1}]}')
def test_needle_text_loads_or_names_the_file(text: str) -> None:
    path = scratch() / "n.json"
    path.write_text(text, encoding="utf-8")
    path.with_suffix(".png").write_bytes(PNG)
    try:
        load_needle(path)
    except ConfigError as exc:
        assert_names_file(exc, path, lines=True)


# --- bugs the fuzzing found in mux/sourcemap.py and mux/scenario/steps.py, fixed ------------------


def _loads(load: Callable[[str, str], Any], text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text, "f")
    assert_names_file(info.value, Path("f"), lines=False)


def test_toml_nested_too_deeply_is_a_config_error() -> None:
    _loads(load_toml_text, "a = " + "[" * 3000 + "]" * 3000)


def test_toml_integer_of_5000_digits_is_a_config_error() -> None:
    _loads(load_toml_text, "a = 1" + "0" * 5000)


def test_yaml_control_character_is_a_config_error() -> None:
    _loads(load_yaml_text, "a: \x07")


def test_yaml_list_as_key_is_a_config_error() -> None:
    _loads(load_yaml_text, "? [a]\n: b\n")


def test_yaml_impossible_date_is_a_config_error() -> None:
    _loads(load_yaml_text, "a: 2001-13-45\n")


def test_yaml_bad_binary_is_a_config_error() -> None:
    _loads(load_yaml_text, "a: !!binary 'x'\n")


def test_yaml_nested_too_deeply_is_a_config_error() -> None:
    _loads(load_yaml_text, "[" * 5000)


def test_switch_to_a_list_is_a_scenario_error() -> None:
    path = scratch() / "s.yaml"
    path.write_text(yaml.safe_dump({"config": CONFIG, "steps": [{"switch": []}]}), encoding="utf-8")
    with pytest.raises(ScenarioError, match="switch"):
        load_scenario(path)
