"""Results a CI system reads: JUnit XML valid against Jenkins' schema, results.json, the GIF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

from mux.scenario.parse import load_scenario
from mux.scenario.report import ScenarioResult, StepResult, SummaryRecorder, write_junit, write_results

pytestmark = pytest.mark.pure

SCHEMA = Path(__file__).parent.parent / "data" / "junit-10.xsd"

SCENARIO = """\
name: two steps
config:
  persona: [{name: work}]
steps:
  - wait_serial: {persona: work, match: READY}
  - assert_active: work
"""


def validate(path: Path) -> etree._ElementTree:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    document = etree.parse(str(path))
    assert schema.validate(document), schema.error_log
    return document


def results(tmp_path: Path) -> list[ScenarioResult]:
    (tmp_path / "a.yaml").write_text(SCENARIO)
    (tmp_path / "b.yaml").write_text(SCENARIO.replace("two steps", "fails"))
    (tmp_path / "c.yaml").write_text(SCENARIO.replace("two steps", "not run"))
    a, b, c = (load_scenario(tmp_path / f"{n}.yaml") for n in "abc")
    passed = ScenarioResult(a, tmp_path / "out" / "a", duration_s=12.5, startup_s=0.4,
                            output=["  [   1.00s] ok   1 wait_serial(...)"],
                            serial_tails={"work": "MUX-READY work\n\x1b[0m\x07bell"})
    passed.steps = [StepResult("1", a.steps[0], "passed", 1.0), StepResult("2", a.steps[1], "passed", 0.0)]
    failed = ScenarioResult(b, tmp_path / "out" / "b", duration_s=3.25)
    failed.steps = [StepResult("1", b.steps[0], "passed", 1.0),
                    StepResult("2", b.steps[1], "failed", 0.1, "active persona is home, expected work",
                               [tmp_path / "out" / "b" / "fail-step2-work.png"])]
    failed.error = f"{b.steps[1].location}: step 2 assert_active failed: {failed.steps[1].message}"
    return [passed, failed, ScenarioResult(c, not_run=True)]


def test_junit_validates_against_jenkins_schema_and_names_the_failing_line(tmp_path: Path) -> None:
    path = write_junit(results(tmp_path), tmp_path / "reports" / "junit.xml")
    document = validate(path)
    root = document.getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(tmp_path / f"{n}.yaml") for n in "abc"]
    assert [len(s.findall("testcase")) for s in suites] == [1, 1, 1]
    failure = suites[1].find("testcase/failure")
    assert failure is not None
    assert failure.get("message", "").startswith(f"{tmp_path / 'b.yaml'}:6:5: step 2 assert_active failed")
    assert "fail-step2-work.png" in (failure.text or "")
    assert suites[2].find("testcase/skipped") is not None
    out = suites[0].findtext("testcase/system-out") or ""
    assert "last 40 lines of work's serial log" in out and "MUX-READY work" in out
    assert "\x1b" not in out  # a guest's escape sequences cannot go into XML 1.0


def test_a_broken_document_does_not_validate(tmp_path: Path) -> None:
    """The schema check can fail: a testcase without its name is refused."""
    path = write_junit(results(tmp_path), tmp_path / "junit.xml")
    path.write_text(path.read_text().replace('testcase name="fails"', "testcase"))
    with pytest.raises(AssertionError):
        validate(path)


def test_results_json_has_every_scenario_and_step(tmp_path: Path) -> None:
    artifacts = tmp_path / "out"
    data = json.loads(write_results(results(tmp_path), artifacts, 1).read_text())
    assert (data["passed"], data["failed"], data["skipped"], data["exit_code"]) == (1, 1, 1, 1)
    first, second, third = data["scenarios"]
    assert first["status"] == "passed" and first["startup_s"] == 0.4
    assert first["serial_logs"] == {"work": "a/work.serial.log"}
    assert [s["status"] for s in first["steps"]] == ["passed", "passed"]
    assert second["status"] == "failed" and second["failed_step"] == f"{tmp_path / 'b.yaml'}:6:5"
    step = second["steps"][1]
    assert step["kind"] == "assert_active" and step["screenshots"] == ["b/fail-step2-work.png"]
    assert step["message"] == "active persona is home, expected work"
    assert third["status"] == "skipped"


async def test_summary_gif_merges_still_frames(tmp_path: Path) -> None:
    colours = iter([(200, 0, 0)] * 3 + [(0, 0, 200)] * 2)

    async def screenshot(name: str) -> Image.Image:
        return Image.new("RGB", (1024, 768), next(colours))

    recorder = SummaryRecorder(screenshot, lambda: "work", lambda: "3 type", interval_s=0.01)
    for _ in range(5):
        await recorder.capture()
    assert len(recorder.frames) == 2
    path = recorder.save(tmp_path / "summary.gif")
    assert path is not None
    with Image.open(path) as gif:
        assert gif.n_frames == 2 and gif.width == 320
