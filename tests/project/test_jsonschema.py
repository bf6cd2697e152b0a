"""The JSON Schemas of config and scenario files (mux.reference.jsonschema): valid schemas;
every config and scenario the repository ships, and every example in the docs, passes;
and each known-bad file fails at the key the loader names.

The known-bad files are those of the loader's own tests (tests/config/test_config.py,
tests/scenario/test_scenario_model.py) and a few more. Some mistakes need more than one
file's structure (a name used twice, a persona a step names, a file that must exist, a
key name the keymap does not know): the loader alone catches those, and the lists below
say which they are.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mux.errors import ConfigError
from mux.reference.jsonschema import json_schema
from mux.sourcemap import SourceMap, load_toml_text, load_yaml_text

pytestmark = pytest.mark.pure

REPO = Path(__file__).resolve().parent.parent.parent
Validator = jsonschema.Draft202012Validator


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return Validator(json_schema(kind), format_checker=Validator.FORMAT_CHECKER)


def leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """An error and, for anyOf/oneOf, the errors of each alternative, all the way down."""
    return [error, *(leaf for sub in error.context or [] for leaf in leaves(sub))]


def error_paths(error: jsonschema.ValidationError) -> list[tuple[Any, ...]]:
    """Where an error is: its path, and for keys that are not allowed, also theirs (the loader
    names the key, or for a step with two step keys, the step)."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        return [path, *((*path, key) for key in error.instance if key not in known)]
    return [path]


def schema_lines(kind: str, data: Any, locate: SourceMap) -> set[int]:
    return {locate(path).line for error in validator(kind).iter_errors(data) for leaf in leaves(error)
            for path in error_paths(leaf)}


# --- the schemas, and what the repository ships -------------------------------------------------


@pytest.mark.parametrize("kind", ["config", "scenario"])
def test_the_schemas_are_valid_json_schemas(kind: str) -> None:
    Validator.check_schema(json_schema(kind))


def test_mux_schema_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    from mux.cli import main

    for kind in ("config", "scenario"):
        assert main(["schema", kind]) == 0
        assert json.loads(capsys.readouterr().out) == json_schema(kind)


def shipped_configs() -> list[Path]:
    """Every mux config in the repository: the starters of mux init and any *.toml beside
    the scenarios or in the docs (guest_images/*/recipe.toml are image recipes, not configs)."""
    found = sorted({*REPO.joinpath("mux", "data").glob("*.toml"), *REPO.joinpath("scenarios").rglob("*.toml"),
                    *REPO.joinpath("docs").rglob("*.toml")})
    assert found, "no config found in the repository"
    return found


def test_every_config_the_repository_ships_passes() -> None:
    check = validator("config")
    for path in shipped_configs():
        errors = [e.message for e in check.iter_errors(tomllib.loads(path.read_text(encoding="utf-8")))]
        assert errors == [], path


def test_every_scenario_the_repository_ships_passes() -> None:
    check = validator("scenario")
    paths = sorted(REPO.joinpath("scenarios").rglob("*.yaml"))
    assert len(paths) >= 7
    for path in paths:
        errors = [e.message for e in check.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
        assert errors == [], path


def doc_blocks(language: str) -> list[tuple[Path, str]]:
    pages = [REPO / "README.md", *sorted(REPO.joinpath("docs").rglob("*.md"))]
    return [(page, block) for page in pages
            for block in re.findall(rf"```{language}\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]


def completed(fragment: dict[str, Any]) -> dict[str, Any]:
    """A config fragment of the docs with what it leaves out: a persona, a broker's url."""
    whole = {"persona": [{"name": "example"}], **fragment}
    if "mqtt" in whole and "url" not in whole["mqtt"]:
        whole["mqtt"] = {"url": "mqtt://broker", **whole["mqtt"]}
    return whole


def test_every_config_and_scenario_in_the_docs_passes() -> None:
    configs = doc_blocks("toml")
    assert len(configs) >= 10
    for page, block in configs:
        errors = [e.message for e in validator("config").iter_errors(completed(tomllib.loads(block)))]
        assert errors == [], f"{page}:\n{block}"
    scenarios = [(page, yaml.safe_load(block)) for page, block in doc_blocks("yaml")]
    scenarios = [(page, data) for page, data in scenarios if isinstance(data, list) or "steps" in data]
    assert len(scenarios) >= 4
    for page, data in scenarios:
        assert [e.message for e in validator("scenario").iter_errors(data)] == [], page


# --- known-bad files fail at the key the loader names ----------------------------------------

BAD_CONFIGS = [  # test_config.py's, then more
    '[mux]\naccel = "tcg"\nbogus = 1\n[[persona]]\nname = "a"\n',
    '[mux]\naccel = "fast"\n[[persona]]\nname = "a"\n',
    '[[persona]]\nname = "a"\n\n[[persona]]\nname = "b"\nmemory_mb = "lots"\n',
    '[[persona]]\nname = "a"\nimage = "nope"\n',
    '[[persona]]\nname = "a"\nrestart = "sometimes"\n',
    '[mux]\naccel = "tcg"\n',
    '[[persona]]\nname = "a"\nkernel = "k"\nimage = "console"\n',
    '[[persona]]\nname = "a"\ninitrd = "i"\n',
    '[[persona]]\nname = "a"\nfirmware = "coreboot"\n',
    '[[persona]]\nname = "a"\nqemu_args = ["-display", "gtk"]\n',
    '[mux]\naccel = 3\n[[persona]]\nname = "A B"\nautostart = "yes"\n',
    '[[persona]]\nname = "next"\n',
    '[[persona]]\nname = "a"\ncpus = 0\ncolor = "red"\n',
    '[[persona]]\nname = "a"\nforward = ["tcp:2222:22"]\n',
    '[[persona]]\nname = "a"\nnetwork = "user"\nforward = ["ssh"]\n',
    '[[persona]]\nname = "a"\nclock = "tomorrow"\nattention = "call (from"\n',
    '[[persona]]\nname = "a"\ndevices = [\n  { id = "cam", type = "usb-host", file = "x.img" },\n]\n',
    '[[persona]]\nname = "a"\ndevices = [\n  { id = "Stick", type = "floppy" },\n]\n',
    '[[persona]]\nname = "a"\n[display]\nbackbuffer_interval_s = 0\n[displays]\noutput = "window"\n',
    '[[persona]]\nname = "a"\n[mqtt]\nbase_topic = "mux"\n',
    '[[persona]]\nname = "a"\n[mqtt]\nurl = "http://broker"\n',
    '[[persona]]\nname = "a"\n[input]\ndevices = "auto"\nautorepeat = "again"\n',
]
LOADER_ONLY_CONFIGS = [  # what one file's structure cannot say
    '[[persona]]\nname = "a"\n[[persona]]\nname = "a"\n',  # a name used twice
    '[[persona]]\nname = "a"\n[input]\nhotkeys = { "ctrl+f1" = "zzz" }\n',  # a persona a hotkey names
    '[[persona]]\nname = "a"\n[input]\nhotkeys = { "ctrl+fone" = "a" }\n',  # a key name
    '[[persona]]\nname = "a"\ndisk = "gone.qcow2"\n',  # a file that must exist
]


def loader_lines(error: ConfigError) -> set[int]:
    return {location.line for location, _ in error.problems}


@pytest.mark.parametrize("text", BAD_CONFIGS)
def test_a_bad_config_fails_where_the_loader_says(tmp_path: Path, text: str) -> None:
    from mux.config import load_config

    path = tmp_path / "mux.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    data, locate = load_toml_text(text, path)
    lines = schema_lines("config", data, locate)
    assert lines, f"the schema accepts:\n{text}"
    assert loader_lines(caught.value) <= lines, caught.value


@pytest.mark.parametrize("text", LOADER_ONLY_CONFIGS)
def test_what_only_the_loader_catches(tmp_path: Path, text: str) -> None:
    from mux.config import load_config

    path = tmp_path / "mux.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)
    data, locate = load_toml_text(text, path)
    assert schema_lines("config", data, locate) == set()


GOOD = """\
name: two personas stay apart
config:
  mux: {accel: tcg}
  persona: [{name: work, image: console}, {name: home, image: console}]
steps:
  - wait_serial: {persona: work, match: "MUX-READY", timeout: 120}
  - switch: work
  - type: "echo hi > /dev/ttyS0\\n"
  - press: ctrl+alt+f2
  - hold: leftshift
  - release: leftshift
  - assert_no_serial: {persona: home, match: "MUX-KEY", within: 2}
  - assert_state: {persona: home, state: running}
  - sleep: 0.5
"""
BAD_SCENARIOS = [  # test_scenario_model.py's mistakes, one at a time, then more
    ("accel: tcg", "accel: tcg, colour: red"),
    ("- switch: work", "- swtich: work"),
    ('match: "MUX-READY"', 'match: "MUX-(READY"'),
    ("- sleep: 0.5", "- sleep: soon"),
    ("- sleep: 0.5", "- sleep: [1]"),
    ("- switch: work", "- switch_to: work"),
    ("- sleep: 0.5", "- sleep: 1\n    when: {needle: x}"),
    ("- sleep: 0.5", "- repeat:\n      times: 0\n      steps:\n        - sleep: 1"),
    ("- sleep: 0.5", "- sleep: 1\n    repeat: {times: 2, until: x, every: 3}"),
    ('- wait_serial: {persona: work, match: "MUX-READY", timeout: 120}', "- wait_serial: {persona: work}"),
    ("state: running", "state: sleeping"),
    ("within: 2", "within: -2"),
    ("- sleep: 0.5", "- mouse_click: side"),
    ("- sleep: 0.5", "- mouse_move: [1, 2, 3]"),
    ("- sleep: 0.5", "- exec: ''"),
    ("- sleep: 0.5", "- snapshot: two words"),
    ("- sleep: 0.5", "- assert_led: {persona: physical}"),
    ("- sleep: 0.5", "- type: {text: hi, rate: 0}"),
    ("name: two personas stay apart", "name: two personas stay apart\nsnapshots: x"),
    ("  mux: {accel: tcg}", "  mux: {accel: tcg}\n  display: {output: screen}"),
]
LOADER_ONLY_SCENARIOS = [
    ("persona: home, state: running", "persona: garden, state: running"),  # a persona a step names
    ("ctrl+alt+f2", "ctrl+alt+f99"),  # a key name
    ("- sleep: 0.5", "- include: nowhere.yaml"),  # a file that must exist
]


def scenario_file(tmp_path: Path, old: str, new: str) -> Path:
    assert old in GOOD
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    return path


def test_the_good_scenario_passes_both() -> None:
    from mux.scenario.parse import parse_scenario

    data, locate = load_yaml_text(GOOD, "s.yaml")
    parse_scenario(data, locate, Path("s.yaml"))
    assert schema_lines("scenario", data, locate) == set()


@pytest.mark.parametrize(("old", "new"), BAD_SCENARIOS)
def test_a_bad_scenario_fails_where_the_loader_says(tmp_path: Path, old: str, new: str) -> None:
    from mux.scenario.parse import load_scenario

    path = scenario_file(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    data, locate = load_yaml_text(path.read_text(), path)
    lines = schema_lines("scenario", data, locate)
    assert lines, f"the schema accepts:\n{path.read_text()}"
    assert loader_lines(caught.value) <= lines, caught.value


@pytest.mark.parametrize(("old", "new"), LOADER_ONLY_SCENARIOS)
def test_what_only_the_scenario_loader_catches(tmp_path: Path, old: str, new: str) -> None:
    from mux.scenario.parse import load_scenario

    path = scenario_file(tmp_path, old, new)
    with pytest.raises(ConfigError):
        load_scenario(path)
    data, locate = load_yaml_text(path.read_text(), path)
    assert schema_lines("scenario", data, locate) == set()
