"""The scenario steps ``clipboard_set`` and ``assert_clipboard`` (mux.scenario.guest_clipboard).

Pure: how a file's clipboard steps are read and what is wrong with a bad one (file:line).
Guests: a persona without an agent is a clear error, before anything runs in a guest.
Heavy: the ``debian`` image (an agent, no ``mux-clipboard``) is a clear error; two
``desktop`` personas move a text by ``clipboard_set``, ``scrolllock+c``, a switch,
``scrolllock+v`` and ``assert_clipboard``; a failing ``assert_clipboard`` says how many
characters differ and never the text it read, in ``results.json``, JUnit and the progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mux import images
from mux.app.controller import Controller
from mux.app.events import ClipboardChanged
from mux.config import PersonaConfig
from mux.errors import PersonaError, ScenarioError, StepFailed
from mux.scenario.guest_clipboard import HELPER
from mux.scenario.model import STEPS, one_of_problem
from mux.scenario.parse import load_scenario
from mux.scenario.report import ScenarioResult, write_junit, write_results
from mux.scenario.runner import StepRunner
from tests.conftest import make_config, wait_until

HEAD = """\
name: clipboard
config:
  persona: [{name: home, image: console, agent: true}, {name: work, image: console, agent: true}]
steps:
"""


def load(tmp_path: Path, steps: str) -> Any:
    path = tmp_path / "clip.yaml"
    path.write_text(HEAD + steps)
    return load_scenario(path)


def problems(tmp_path: Path, steps: str) -> list[tuple[int, str]]:
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path, steps)
    return [(loc.line, message) for loc, message in caught.value.problems]


# --- pure: reading the steps ---------------------------------------------------------------


@pytest.mark.pure
def test_the_clipboard_steps_read_with_their_defaults(tmp_path: Path) -> None:
    scenario = load(tmp_path, """\
  - clipboard_set: hello there
  - clipboard_set: {text: "two\\nlines", persona: work, timeout: 5}
  - assert_clipboard: {text: hello there}
  - assert_clipboard: {match: "^two$", persona: work, timeout: 30}
""")
    assert [(s.kind, s.args) for s in scenario.steps] == [
        ("clipboard_set", {"text": "hello there", "persona": None, "timeout": 60}),
        ("clipboard_set", {"text": "two\nlines", "persona": "work", "timeout": 5}),
        ("assert_clipboard", {"text": "hello there", "match": None, "persona": None, "timeout": 10}),
        ("assert_clipboard", {"text": None, "match": "^two$", "persona": "work", "timeout": 30}),
    ]
    assert [s.location.line for s in scenario.steps] == [5, 6, 7, 8]


@pytest.mark.pure
def test_bad_clipboard_steps_are_named_with_their_lines(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
  - clipboard_set: {persona: home}
  - clipboard_set: {text: 42}
  - assert_clipboard: {text: a, persona: garden}
  - assert_clipboard: {match: "(unclosed"}
  - assert_clipboard: {text: a, timeout: -1}
""")
    assert (5, "clipboard_set: missing argument 'text'") in found
    assert (6, "clipboard_set: text must be str, not int") in found
    assert any(line == 7 and "unknown persona 'garden'" in m for line, m in found)
    assert any(line == 8 and "match is not a valid regex" in m for line, m in found)
    assert (9, "assert_clipboard: timeout must be >= 0") in found


@pytest.mark.pure
def test_assert_clipboard_takes_text_or_match_exactly() -> None:
    spec = STEPS["assert_clipboard"]
    assert one_of_problem("assert_clipboard", spec, {"text": "a", "match": None}) is None
    assert one_of_problem("assert_clipboard", spec, {"text": None, "match": "a"}) is None
    assert one_of_problem("assert_clipboard", spec, {"text": "a", "match": "a"}) == \
        "assert_clipboard: give text or match, not both"
    assert one_of_problem("assert_clipboard", spec, {"text": None, "match": None}) == \
        "assert_clipboard: give text or match"
    assert one_of_problem("clipboard_set", STEPS["clipboard_set"], {"text": None}) is None  # no rule


@pytest.mark.pure
def test_text_and_match_together_or_neither_is_a_file_error(tmp_path: Path) -> None:
    """Needs mux/scenario/steps.py to apply StepSpec.one_of (see the report to the lead)."""
    found = problems(tmp_path, """\
  - assert_clipboard: {text: a, match: a}
  - assert_clipboard: {persona: home}
""")
    assert (5, "assert_clipboard: give text or match, not both") in found
    assert (6, "assert_clipboard: give text or match") in found


# --- guests: the errors that need no agent ---------------------------------------------------


@pytest.mark.guests
async def test_a_persona_without_an_agent_is_a_clear_error(tmp_path: Path, console_image: Any) -> None:
    config = make_config(tmp_path, PersonaConfig("plain", autostart=False))
    async with Controller(config, logs_dir=tmp_path / "logs", progress=lambda m: None) as ctl:
        runner = StepRunner(ctl)
        with pytest.raises(PersonaError, match="'plain' has no guest agent: the clipboard steps need"
                                               " agent = true"):
            await runner.step_clipboard_set({"text": "x", "persona": "plain", "timeout": 1})
        with pytest.raises(PersonaError, match="has no guest agent"):
            await runner.step_assert_clipboard({"text": "x", "match": None, "persona": "plain", "timeout": 1})


# --- heavy: real guests with an agent --------------------------------------------------------


@pytest.mark.heavy
async def test_an_image_without_mux_clipboard_is_a_clear_error(
        tmp_path: Path, debian_image: images.BuiltImage) -> None:
    config = make_config(tmp_path, PersonaConfig("deb", image="debian", agent=True))
    async with Controller(config, logs_dir=tmp_path / "logs", progress=lambda m: None) as ctl:
        await ctl.persona("deb").readiness.wait(900)
        runner = StepRunner(ctl)
        await runner.step_exec({"command": "true", "persona": "deb", "timeout": 120, "status": 0,
                                "match": None})  # positive control: the agent runs commands
        with pytest.raises(PersonaError, match=f"its image has no {HELPER}"):
            await runner.step_clipboard_set({"text": "x", "persona": "deb", "timeout": 120})
        with pytest.raises(PersonaError, match=f"its image has no {HELPER}"):
            await runner.step_assert_clipboard({"text": "x", "match": None, "persona": "deb", "timeout": 120})


FLOW = """\
  - wait_serial: {persona: home, match: MUX-READY, timeout: 900}
  - wait_serial: {persona: work, match: MUX-READY, timeout: 900}
  - switch: home
  - clipboard_set: {text: "from home 42", persona: home}
  - assert_clipboard: {text: "from home 42", persona: home}
  - press: scrolllock+c
  - switch: work
  - press: scrolllock+v
  - assert_clipboard: {text: "from home 42", timeout: 60}
  - assert_clipboard: {match: "^from home \\\\d+$"}
  - clipboard_set: {text: "from work 7", persona: work}
  - press: scrolllock+c
  - switch: home
  - press: scrolllock+v
  - assert_clipboard: {text: "from home 42", persona: home}
  - switch: work
  - exec: "printf 'sec%s' ret-0451 | /usr/lib/mux/mux-clipboard set"
  - assert_clipboard: {text: "from home 42", timeout: 3}
"""
GENERATED = "secret-0451"  # what the exec step makes: written nowhere in the scenario


@pytest.mark.heavy
async def test_text_moves_between_desktops_and_a_failure_never_shows_the_text(
        tmp_path: Path, desktop_image: images.BuiltImage) -> None:
    path = tmp_path / "clip.yaml"
    # Only home -> work is allowed: the paste of work's text into home is refused, while home's
    # into work, earlier in the same run, is the control that a paste does arrive.
    head = HEAD.replace("image: console, agent: true", "image: desktop")
    path.write_text(head.replace("steps:", '  clipboard: {allow: ["home -> work"]}\nsteps:') + FLOW)
    scenario = load_scenario(path)
    assert GENERATED not in path.read_text()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = ScenarioResult(scenario, artifacts=artifacts)
    async with Controller(scenario.config, logs_dir=artifacts, progress=result.output.append) as ctl:
        runner = StepRunner(ctl, artifacts, result=result, say=result.output.append, scenario=scenario)
        steps = scenario.steps
        for number, step in enumerate(steps[:5], 1):
            await runner.run_step(step, str(number))
        link = ctl.display.links["home"].rfb  # QEMU has heard of the guest's new text
        await wait_until(lambda: link.clipboard_available, 120, "home's clipboard announced to mux")
        heard: list[ClipboardChanged] = []
        ctl.subscribe(lambda event: heard.append(event) if isinstance(event, ClipboardChanged) else None)
        work = ctl.display.links["work"].rfb
        for number, step in enumerate(steps[5:-1], 6):
            announced = work.clipboard_changes
            await runner.run_step(step, str(number))
            if step.kind == "clipboard_set":  # the copy must read work's new text, not find none
                await wait_until(lambda n=announced: work.clipboard_changes > n, 120, "work's text announced")
        assert [(e.action, e.persona, e.origin, e.chars, e.refused) for e in heard] == [
            ("copy", "home", "home", 12, None), ("paste", "work", "home", 12, None),
            ("copy", "work", "work", 11, None), ("paste", "home", "work", 0, "refused: work → home")]
        with pytest.raises(StepFailed) as caught:
            await runner.run_step(steps[-1], str(len(steps)))
    message = str(caught.value)
    assert message == (f"the clipboard of work differs from the expected text (12 characters) after 3s:"
                       f" it has {len(GENERATED)} characters (not shown: clipboard text is not kept)")
    passed = [s for s in result.steps if s.step.kind == "assert_clipboard" and s.status == "passed"]
    assert [s.message for s in passed] == ["home: the clipboard is the expected text (12 characters)",
                                           "work: the clipboard is the expected text (12 characters)",
                                           "work: the clipboard is a text matching '^from home \\\\d+$'",
                                           "home: the clipboard is the expected text (12 characters)"]
    result.error = f"step {len(steps)} failed: {message}"
    written = [write_results([result], artifacts, 1), write_junit([result], artifacts / "junit.xml")]
    assert json.loads(written[0].read_text())["scenarios"][0]["steps"][-1]["message"] == message
    for file in [*written, *(p for p in artifacts.rglob("*") if p.is_file())]:
        assert GENERATED.encode() not in file.read_bytes(), file
    assert not any(GENERATED in line for line in result.output)
