"""Scenario files are checked before anything boots; every mistake has file:line:col."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mux.errors import ScenarioError
from mux.scenario.parse import load_scenario

pytestmark = pytest.mark.pure

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
    for path in sorted(Path(__file__).parent.parent.parent.joinpath("scenarios").glob("*.yaml")):
        load_scenario(path)


# --- openQA steps, flow control, includes, needles, snapshots ------------------------

SCREENS = """\
name: screens
config:
  mux: {accel: tcg}
  persona: [{name: work, image: console}, {name: home, image: console}]
steps:
  - assert_screen: {persona: work, needle: work-prompt}
  - check_screen: home-prompt
  - wait_screen_change: work
  - wait_still_screen: {persona: home, stilltime: 2, similarity: 0.99}
  - send_key_until_needlematch: {needle: [work-prompt, home-prompt], key: ctrl+l, tries: 3}
  - screenshot: {persona: home, name: home-shot}
  - assert_led: {persona: physical, caps: true}
  - record_info: all good
  - press: f5
    if: {persona: work, needle: work-prompt, timeout: 3}
    repeat: {times: 4, until: home-prompt}
  - repeat:
      times: 2
      steps:
        - include: more.yaml
  - snapshot: booted
"""
MORE = """\
steps:
  - type: "ls\\n"
  - assert_screen: needles/home-prompt.json
"""


def with_needles(tmp_path: Path, text: str, more: str = MORE) -> Path:
    shutil.copytree(Path(__file__).parent.parent.parent / "scenarios" / "needles", tmp_path / "needles")
    (tmp_path / "more.yaml").write_text(more)
    return write(tmp_path, text)


def test_openqa_steps_flow_and_includes_load(tmp_path: Path) -> None:
    scenario = load_scenario(with_needles(tmp_path, SCREENS))
    kinds = [s.kind for s in scenario.steps]
    assert kinds == ["assert_screen", "check_screen", "wait_screen_change", "wait_still_screen",
                     "send_key_until_needlematch", "screenshot", "assert_led", "record_info", "press",
                     "repeat", "snapshot"]
    steps = {s.kind: s for s in scenario.steps}
    assert [n.name for n in steps["assert_screen"].args["_needles"]] == ["work-prompt"]
    assert steps["assert_screen"].args["timeout"] == 30 and steps["check_screen"].args["timeout"] == 0
    assert steps["check_screen"].args["persona"] is None  # the active persona
    assert steps["wait_screen_change"].args == {"persona": "work", "timeout": 10, "similarity": 50}
    assert steps["wait_still_screen"].args["similarity"] == 0.99
    assert len(steps["send_key_until_needlematch"].args["_needles"]) == 2
    assert steps["assert_led"].args == {"persona": "physical", "caps": True, "num": None, "scroll": None,
                                        "timeout": 5}
    assert steps["record_info"].args["text"] == "all good"
    press = steps["press"]
    assert press.when is not None and press.when.args["timeout"] == 3
    assert press.repeat is not None and press.repeat.times == 4
    assert press.repeat.until is not None and press.repeat.until.args["needle"] == "home-prompt"
    block = steps["repeat"]
    assert block.repeat is not None and block.repeat.times == 2
    (include,) = block.body
    assert include.kind == "include" and [s.kind for s in include.body] == ["type", "assert_screen"]
    assert include.body[1].location.file == tmp_path / "more.yaml" and include.body[1].location.line == 3
    assert scenario.saves == ["booted"]
    assert "_needles" not in steps["assert_screen"].describe()


def test_five_different_mistakes_of_the_issue_five_locations(tmp_path: Path) -> None:
    """Unknown step, wrong argument type, missing needle PNG, needle area outside its
    picture, a regex that does not compile: all reported at once, each located. A broken
    needle is skipped as openQA skips it, so the steps that need it are the mistakes, and
    they name the skipped file."""
    path = with_needles(tmp_path, GOOD.replace("- sleep: 0.5", "- sleep: [1]")
                        .replace("- switch: work", "- switch_to: work")
                        .replace('match: "MUX-READY"', 'match: "MUX-(READY"')
                        + "  - assert_screen: {persona: work, needle: nopng}\n"
                        + "  - check_screen: {persona: home, needle: toolarge}\n")
    (tmp_path / "needles" / "nopng.json").write_text(
        '{"tags": ["nopng"], "area": [{"xpos": 0, "ypos": 0, "width": 10, "height": 10}]}')
    (tmp_path / "needles" / "toolarge.json").write_text(
        '{"tags": ["toolarge"],\n "area": [{"xpos": 1000, "ypos": 0, "width": 100, "height": 10}]}')
    shutil.copy(tmp_path / "needles" / "work-prompt.png", tmp_path / "needles" / "toolarge.png")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    problems = caught.value.problems
    assert len(problems) == 5, caught.value
    located = {(Path(loc.file).name, loc.line) for loc, _ in problems}
    assert located == {("s.yaml", 6), ("s.yaml", 7), ("s.yaml", 14), ("s.yaml", 15), ("s.yaml", 16)}
    assert all(loc.column > 0 for loc, _ in problems)
    text = str(caught.value)
    for words in ("switch_to", "not a valid regex", "sleep: seconds must be",
                  "assert_screen: no needle tagged 'nopng'", "skipped needles with it: nopng.json",
                  "check_screen: no needle tagged 'toolarge'", "skipped needles with it: toolarge.json"):
        assert words in text


def test_flow_and_include_mistakes(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text("- include: loop.yaml\n")
    path = with_needles(tmp_path, SCREENS.replace("repeat:\n      times: 2", "repeat:\n      times: 0")
                        .replace("include: more.yaml", "include: loop.yaml")
                        .replace("persona: physical", "persona: keyboard")
                        .replace("check_screen: home-prompt", "check_screen: nothing-like-this")
                        .replace("if: {", "when: {"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    text = str(caught.value)
    for words in ("repeat: times must be a whole number >= 1", "includes itself", "physical, not 'keyboard'",
                  "no needle tagged 'nothing-like-this'", "a step has one step key"):
        assert words in text, text
    assert len(caught.value.problems) == 5


def test_from_snapshot_needs_a_snapshot_saved_before(tmp_path: Path) -> None:
    from mux.scenario.runner import load_all

    saver = write(tmp_path, GOOD + "snapshot: booted\n")
    user = tmp_path / "user.yaml"
    user.write_text("name: user\nfrom_snapshot: booted\nsteps:\n  - switch: home\n")
    scenarios = load_all([saver, user], tmp_path / "snapshots")
    assert scenarios[1].config == scenarios[0].config  # inherited from the saving scenario
    with pytest.raises(ScenarioError, match=r"user.yaml:2:1: no snapshot 'booted'"):
        load_all([user], tmp_path / "snapshots")
    user.write_text("name: user\nfrom_snapshot: booted\nconfig:\n  persona: [{name: work}]\n"
                    "steps:\n  - switch: work\n")
    with pytest.raises(ScenarioError, match=r"user.yaml:3:1: the personas differ"):
        load_all([saver, user], tmp_path / "snapshots")


def test_shipped_scenarios_load_together(tmp_path: Path) -> None:
    from mux.scenario.runner import load_all

    paths = sorted(Path(__file__).parent.parent.parent.joinpath("scenarios").glob("*.yaml"))
    scenarios = load_all(paths, tmp_path)
    images = {p.image for s in scenarios for p in s.config.personas}
    assert {"console", "palette"} <= images
    kinds = {step.kind for s in scenarios for top in s.steps for step in top.walk()}
    assert {"assert_screen", "assert_led", "kill", "hold", "include"} <= kinds
