"""Steps that no shipped scenario runs, replayed by ``mux replay`` on real console guests,
each step's effect shown by what the guests report (MUX-KEY lines, bytes read from the
mouse, a second boot) and by what results.json and the JUnit report record: ``start``,
``stop``, ``switch: next``/``previous``, ``mouse_move``, ``mouse_click``, ``sleep``,
``repeat`` as a block and with an ``until`` that first fails, the false branch of
``if``, the outcomes of ``check_screen``, ``check_text`` and ``record_info``, and the
``snapshot`` step (a later scenario resumes from it). Also ``mux ctl text --area``
reading typed text off a running controller's persona.

The scenarios are ``tests/data/scenarios/steps-live.yaml`` and ``steps-live-resume.yaml``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.end_to_end.test_scenarios import replay, valid_junit

pytestmark = pytest.mark.guests
SCENARIOS = Path(__file__).parent.parent / "data" / "scenarios"


def steps_by_number(scenario: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A scenario's step records by number ("29.1" once per run of a repeat block)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for step in scenario["steps"]:
        found.setdefault(step["number"], []).append(step)
    return found


def numbers_of(scenario: dict[str, Any], kind: str) -> list[str]:
    return [s["number"] for s in scenario["steps"] if s["kind"] == kind]


@pytest.mark.timeout(900)
def test_steps_take_effect_in_the_guests(tmp_path: Path, console_image: Any) -> None:
    out, snapshots = tmp_path / "out", tmp_path / "snapshots"
    result = replay(str(SCENARIOS / "steps-live.yaml"), str(SCENARIOS / "steps-live-resume.yaml"),
                    "--artifacts", str(out), "--snapshots", str(snapshots),
                    "--junit", str(tmp_path / "junit.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 0 failed" in result.stdout
    data = json.loads((out / "results.json").read_text())
    live, resumed = data["scenarios"]
    assert [live["status"], resumed["status"]] == ["passed", "passed"]
    steps = steps_by_number(live)
    logs = {name: (out / path).read_text() for name, path in live["serial_logs"].items()}

    # start: spare was stopped (not autostarted) until the step, then it booted;
    # stop, then start again: a second boot, so the stop ended the first QEMU
    assert [s["kind"] for s in live["steps"][2:6]] == ["assert_state", "start", "assert_state", "wait_serial"]
    assert logs["spare"].count("MUX-READY spare") == 2
    stop = numbers_of(live, "stop")
    assert len(stop) == 1 and steps[stop[0]][0]["status"] == "passed"
    # switch next, next, previous: home, spare, home each reported the shift pressed there
    assert numbers_of(live, "switch") == ["8", "12", "16", "20"]
    assert logs["home"].count("MUX-KEY 42 1") == 2 and logs["spare"].count("MUX-KEY 42 1") == 1
    # repeat until, false first: `switch: next` from home until work's prompt shows takes
    # two runs (home -> spare -> work); one run would leave spare active, no until all three
    (repeat_until,) = steps["20"]
    assert repeat_until["status"] == "passed"
    assert steps["21"][0]["kind"] == "assert_active" and steps["21"][0]["status"] == "passed"

    # if: the false branch is reported as skipped and sent nothing; the true branch's
    # key, sent after it, is the only right ctrl work ever reported
    skipped, ran = steps["26"][0], steps["27"][0]
    assert (skipped["kind"], skipped["status"]) == ("press", "skipped")
    assert (ran["kind"], ran["status"]) == ("press", "passed")
    assert logs["work"].count("MUX-KEY 97 1") == 1 and logs["work"].count("MUX-KEY 97 0") == 1

    # repeat as a block: its steps numbered 29.1, 29.2, run three times; three right shifts
    assert steps["29"][0]["kind"] == "repeat" and steps["29"][0]["status"] == "passed"
    assert [s["kind"] for s in steps["29.1"]] == ["press"] * 3
    assert [s["kind"] for s in steps["29.2"]] == ["wait_serial"] * 3
    assert logs["work"].count("MUX-KEY 54 1") == 3 and logs["work"].count("MUX-KEY 54 0") == 3

    # check_screen records whether it matched; a miss does not fail the scenario
    hit, miss = steps["30"][0], steps["31"][0]
    assert hit["kind"] == miss["kind"] == "check_screen"
    assert hit["status"] == miss["status"] == "passed"
    assert "work-prompt" in hit["message"] and "home-prompt" in miss["message"]
    assert "did not match" in miss["message"] and "did not match" not in hit["message"]

    # record_info: in the progress, results.json and the JUnit system-out
    note = "a note from steps-live"
    assert steps["32"][0]["kind"] == "record_info" and note in steps["32"][0]["message"]
    assert [text for text in live["info"] if note in text and "live" in text]
    assert note in result.stdout
    junit = valid_junit(tmp_path / "junit.xml").getroot()
    outputs = [case.findtext("system-out") or "" for case in junit.iter("testcase")]
    assert note in outputs[0] and note not in outputs[1]

    # sleep waits (at least) its seconds
    assert steps["33"][0]["kind"] == "sleep" and steps["33"][0]["duration_s"] >= 1.5

    # mouse_move [5, 7] then left and right clicks, as the guest read them from
    # /dev/input/mice: PS/2 packets (byte 0: 8 + buttons + 16 if dx < 0 + 32 if dy < 0;
    # dy counts upwards): a move, left down, up, right down, up
    read = re.search(r"^((?:\s+-?\d+){15})\s*$", logs["work"], re.MULTILINE)
    assert read, logs["work"][-2000:]
    assert [int(v) for v in read.group(1).split()] == [40, 5, -7, 9, 0, 0, 8, 0, 0, 10, 0, 0, 8, 0, 0]

    # check_text records whether the text was read; a miss does not fail the scenario
    found, absent = steps["41"][0], steps["42"][0]
    assert found["kind"] == absent["kind"] == "check_text"
    assert found["status"] == absent["status"] == "passed" and found["message"] != absent["message"]
    assert "stepsmarker" in found["message"] and "no-such-words" in absent["message"]
    assert "BusyBox" in absent["message"]  # what was read off work's screen is quoted

    # snapshot as a step: taken while X=saved (X changed after it); the resumed
    # scenario's work was restored, not booted, with the shell's X as it was then
    assert steps["45"][0]["kind"] == "snapshot" and steps["45"][0]["status"] == "passed"
    assert "now X=changed" in logs["work"]
    manifest = json.loads((snapshots / "steps-live-mid" / "manifest.json").read_text())
    assert sorted(manifest["personas"]) == ["home", "work"]  # every running persona; spare was stopped
    assert resumed["from_snapshot"] == "steps-live-mid"
    restored = (out / resumed["serial_logs"]["work"]).read_text()
    assert "restored X=saved" in restored and "MUX-READY" not in restored


async def test_ctl_text_area_finds_typed_text(tmp_path: Path, controller: Any) -> None:
    from mux.config import PersonaConfig
    from mux.scenario.runner import StepRunner
    from tests.conftest import READY_S

    async def ctl_text(*more: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mux", "ctl", "--socket", str(tmp_path / "control.sock"), "text",
            *more, "work", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, stderr.decode()
        return stdout.decode()

    async with controller(PersonaConfig("work")) as ctl:
        await ctl.persona("work").serial.wait_for(re.compile("MUX-READY"), READY_S)
        await StepRunner(ctl).step_type({"text": "needle-marker"})
        whole = ""

        async def on_screen() -> None:
            nonlocal whole
            while "needle-marker" not in whole:
                whole = await ctl_text()

        await asyncio.wait_for(on_screen(), READY_S)
        assert "BusyBox" in whole  # the banner above the prompt is read with the whole screen
        # the prompt line: the work-prompt needle finds the prompt at +0+76, 20 pixels high
        line = await ctl_text("--area", "0,64,1024,48")
        assert "needle-marker" in line and "BusyBox" not in line
