"""Scenario steps with a ``seat``: checked when the file is read, and carried out on two seats.

The file's checks (pure): a seat the config does not have, a switch to a persona the seat
may not show (``physical`` LEDs of an unknown seat too) are errors with file:line:col;
a step without ``seat`` keeps its arguments as before seats (the first seat is meant).

Live (console guests under TCG): a scenario on two seats switches seat two, types on it,
and the guest-side ``MUX-KEY`` lines arrive in seat two's persona only, while a key on
seat one arrives in seat one's persona only (the positive control); ``assert_active`` and a
screen step with ``seat`` look at that seat's persona; caps lock pressed on seat two lights
seat two's ``physical`` LEDs and not seat one's (seat two's the positive control); a
switch of seat one to a persona active on seat two fails its step with the SeatError's
message; a snapshot keeps each seat's persona, and a scenario restored from it types on
seat two into that persona again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mux.errors import ScenarioError
from mux.scenario.parse import load_scenario
from mux.scenario.runner import run_scenario

NEEDLES = Path(__file__).parent.parent.parent / "scenarios" / "needles"
CONFIG = """\
config:
  mux: {accel: tcg, keep_guests: never}
  persona: [{name: work, image: console}, {name: home, image: console}, {name: lab, image: console}]
  seat: [{name: one}, {name: two, personas: [home, lab]}]
"""


def write(tmp_path: Path, text: str, name: str = "seats.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [(where.line or 0, message) for where, message in caught.value.problems]


@pytest.mark.pure
def test_seat_arguments_load_and_a_step_without_one_is_unchanged(tmp_path: Path) -> None:
    shutil.copytree(NEEDLES, tmp_path / "needles")
    path = write(tmp_path, "name: seats\n" + CONFIG + """\
steps:
  - switch: {persona: lab, seat: two}
  - switch: home
  - type: {text: "a", seat: two}
  - press: {keys: b, seat: one}
  - assert_active: {persona: lab, seat: two}
  - wait_still_screen: {seat: two, stilltime: 1}
  - assert_screen: {needle: home-prompt, seat: two}
  - press: b
    if: {needle: home-prompt, seat: two}
""")
    steps = load_scenario(path).steps
    assert steps[0].args == {"persona": "lab", "seat": "two"}
    assert steps[1].args == {"persona": "home"}  # no seat given: none kept, the first seat is meant
    assert steps[2].args["seat"] == "two" and steps[3].args["seat"] == "one"
    assert steps[5].args == {"persona": None, "stilltime": 1, "timeout": 30, "similarity": 47, "seat": "two"}
    assert steps[6].args["seat"] == "two" and steps[6].args["persona"] is None
    assert steps[7].when is not None and steps[7].when.args["seat"] == "two"
    assert "seat" not in steps[7].args


@pytest.mark.pure
def test_an_unknown_seat_and_a_persona_the_seat_may_not_show_are_errors_with_their_line(
        tmp_path: Path) -> None:
    path = write(tmp_path, "name: bad seats\n" + CONFIG + """\
steps:
  - switch: {persona: work, seat: two}
  - type: {text: "a", seat: three}
  - assert_active: {persona: work, seat: two}
  - assert_led: {persona: physical, caps: true, seat: three}
  - switch: {persona: next, seat: two}
""")
    found = problems_of(path)
    assert (7, "switch: seat 'two' may not show persona 'work' (it shows: home, lab)") in found
    assert (8, "type: unknown seat 'three' (seats: one, two)") in found
    assert (9, "assert_active: seat 'two' may not show persona 'work' (it shows: home, lab)") in found
    assert (10, "assert_led: unknown seat 'three' (seats: one, two)") in found
    assert len(found) == 4, found  # next on seat two is fine


@pytest.mark.pure
def test_without_seat_tables_the_one_seat_is_default(tmp_path: Path) -> None:
    path = write(tmp_path, """\
name: one seat
config:
  mux: {accel: tcg}
  persona: [{name: work, image: console}, {name: home, image: console}]
steps:
  - switch: {persona: home, seat: default}
  - switch: {persona: work, seat: two}
""")
    assert problems_of(path) == [(7, "switch: unknown seat 'two' (seats: default)")]


@pytest.mark.pure
def test_a_config_that_fails_its_checks_still_has_its_seats_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "name: broken\n" + CONFIG.replace("accel: tcg", "accel: tcg, colour: red") + """\
steps:
  - switch: {persona: home, seat: two}
  - switch: {persona: home, seat: four}
""")
    found = problems_of(path)
    assert any(line == 3 and "colour" in m for line, m in found)
    assert (8, "switch: unknown seat 'four' (seats: one, two)") in found
    assert not any(line == 7 for line, _ in found)


LIVE = """\
name: two seats
""" + CONFIG + """\
steps:
  - wait_serial: {persona: work, match: "MUX-READY work", timeout: 120}
  - wait_serial: {persona: home, match: "MUX-READY home", timeout: 120}
  - wait_serial: {persona: lab, match: "MUX-READY lab", timeout: 120}
  - switch: {persona: work, seat: one}
  - switch: {persona: lab, seat: two}
  - assert_active: {persona: lab, seat: two}
  - assert_active: work
  - type: {text: "a", seat: two}
  - wait_serial: {persona: lab, match: "MUX-KEY 30 0"}
  - press: {keys: b, seat: one}
  - wait_serial: {persona: work, match: "MUX-KEY 48 0"}
  - switch: {persona: home, seat: two}
  - press: {keys: c, seat: two}
  - wait_serial: {persona: home, match: "MUX-KEY 46 0"}
  - wait_still_screen: {seat: two, stilltime: 1, timeout: 120}
  - assert_no_serial: {persona: work, match: "MUX-KEY (30|46) "}
  - assert_no_serial: {persona: lab, match: "MUX-KEY (48|46) "}
  - assert_no_serial: {persona: home, match: "MUX-KEY (30|48) "}
  - press: {keys: capslock, seat: two}
  - assert_led: {persona: home, caps: true}
  - assert_led: {persona: physical, seat: two, caps: true}
  - assert_led: {persona: physical, seat: one, caps: false}
  - switch: {persona: lab, seat: two}
  - snapshot: seated
  - switch: {persona: lab, seat: one}
"""
RESUMED = """\
name: two seats resumed
from_snapshot: seated
""" + CONFIG + """\
steps:
  - assert_active: {persona: lab, seat: two}
  - assert_active: work
  - press: {keys: d, seat: two}
  - wait_serial: {persona: lab, match: "MUX-KEY 32 0"}
  - assert_no_serial: {persona: home, match: "MUX-KEY 32 "}
"""


@pytest.mark.guests
@pytest.mark.timeout(600)
async def test_steps_on_seat_two_reach_its_persona_only_and_a_refused_switch_fails(
        tmp_path: Path, console_image: Any) -> None:
    scenario = load_scenario(write(tmp_path, LIVE))
    snapshots = tmp_path / "snapshots"
    result = await run_scenario(scenario, tmp_path / "artifacts", out=lambda line: None,
                                directory=tmp_path / "artifacts", snapshots=snapshots)
    statuses = [(s.number, s.step.kind, s.status) for s in result.steps]
    last = len(scenario.steps)
    # every step but the last passed: keys typed on seat two came out in lab, then home; the
    # key on seat one in work; none elsewhere (assert_no_serial over each whole log)
    assert all(status == "passed" for number, _, status in statuses if number != str(last)), (
        statuses, result.error)
    by_number = {s.number: s for s in result.steps}
    assert by_number["15"].message.startswith("home: still for 1s")  # the seat's persona was looked at
    assert by_number["5"].message == "seat two: lab"
    # the last: seat one may show lab, but lab is active on seat two (no steal)
    failed = by_number[str(last)]
    assert failed.status == "failed", statuses
    assert "persona 'lab' is active on seat 'two'" in failed.message
    assert result.error is not None and "persona 'lab' is active on seat 'two'" in result.error
    logs = {name: (tmp_path / "artifacts" / f"{name}.serial.log").read_text(errors="replace")
            for name in ("work", "home", "lab")}
    assert "MUX-KEY 30 1" in logs["lab"] and "MUX-KEY 48 1" in logs["work"] and "MUX-KEY 46 1" in logs["home"]

    # the snapshot kept each seat's persona: restored, seat two shows lab again (not its first
    # persona, home), and its keys go there
    resumed = load_scenario(write(tmp_path, RESUMED, "resumed.yaml"))
    again = await run_scenario(resumed, tmp_path / "resumed", out=lambda line: None,
                               directory=tmp_path / "resumed", snapshots=snapshots)
    assert again.passed, (again.error, [(s.number, s.status, s.message) for s in again.steps])
