"""Scenario files are checked before anything boots; every mistake has file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.errors import ScenarioError
from mux.scenario import load_scenario

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


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_good_scenario_loads(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.name == "two personas stay apart"
    assert scenario.config.names == ["work", "home"]
    kinds = [s.kind for s in scenario.steps]
    assert kinds == ["wait_serial", "switch", "type", "press", "hold", "release",
                     "assert_no_serial", "assert_state", "sleep"]
    assert scenario.steps[0].args == {"persona": "work", "match": "MUX-READY", "timeout": 120}
    assert scenario.steps[1].args == {"persona": "work"}
    assert scenario.steps[1].location.line == 7


def test_five_mistakes_five_locations(tmp_path: Path) -> None:
    bad = GOOD.replace("accel: tcg", "accel: tcg, colour: red") \
              .replace("- switch: work", "- swtich: work") \
              .replace("persona: home, state: running", "persona: garden, state: running") \
              .replace('match: "MUX-READY"', 'match: "MUX-(READY"') \
              .replace("- sleep: 0.5", "- sleep: soon")
    path = write(tmp_path, bad)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    problems = caught.value.problems
    assert len(problems) == 5, caught.value
    lines = sorted(loc.line for loc, _ in problems)
    assert lines == [3, 6, 7, 13, 14]
    assert all(loc.column > 0 for loc, _ in problems)
    text = str(caught.value)
    for words in ("colour", "swtich", "garden", "regex", "sleep"):
        assert words in text


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps: [\n  - sleep: 1\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert f"{path}:" in str(caught.value)
    assert "YAML syntax error" in str(caught.value)


def test_unknown_key_name_in_press(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("ctrl+alt+f2", "ctrl+alt+f99"))
    with pytest.raises(ScenarioError, match="f99"):
        load_scenario(path)


def test_shipped_scenarios_load() -> None:
    for path in sorted(Path(__file__).parent.parent.joinpath("scenarios").glob("*.yaml")):
        load_scenario(path)
