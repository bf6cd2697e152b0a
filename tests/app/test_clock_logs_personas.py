"""A clock per persona and one tagged log, for real (debian guests with their agent, TCG).

- a replay: two ``debian`` personas with different ``clock`` keys report different years
  (``exec date -u +%Y``: 2031 and the host's); ``set_clock`` moves each (an ISO time
  with an offset, and ``host``); then they print lines on their serial ports in turn,
  and ``mux logs --from`` the scenario's artifacts folder shows them tagged, in that
  order (``--json`` and a PERSONA filter too);
- a running controller: ``mux logs -f`` gets a line printed before it started, then one
  printed after, and ends (exit 0, a note) when the controller stops; ``mux ctl clock``
  sets a guest's clock; bad requests get clear errors.

The debian image has no NTP client (no systemd-timesyncd): nothing moves the clocks back.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mux import images
from mux.config import PersonaConfig
from mux.scenario.parse import load_scenario
from mux.scenario.runner import run_scenario
from tests.app.test_agent_personas import AGENT_S, ctl_exec

pytestmark = pytest.mark.heavy

#: Its waits, with six order steps, add up to 600 + 300 + 4 * 60 + 2 * set_clock (at
#: most 60 s each) + 6 * (30 + 30) = 1620 s of the heavy tier's 1800 (the two guests
#: boot at once: utc is up soon after future).
SCENARIO = """\
name: clocks and tagged lines
config:
  persona:
    - {{name: future, image: debian, agent: true, clock: "2031-05-01T09:00:00"}}
    - {{name: utc, image: debian, agent: true, clock: utc}}
steps:
  - wait_ready: {{persona: future, timeout: 600}}
  - wait_ready: {{persona: utc, timeout: 300}}
  - exec: {{persona: future, command: "date -u +%Y", match: "^2031$", timeout: 60}}
  - exec: {{persona: utc, command: "date -u +%Y", match: "^{year}$", timeout: 60}}
  - set_clock: {{persona: utc, time: "2040-02-03T04:05:06+01:00"}}
  - exec: {{persona: utc, command: "date -u +%Y-%m-%d", match: "^2040-02-03$", timeout: 60}}
  - set_clock: {{persona: future, time: host}}
  - exec: {{persona: future, command: "date -u +%Y", match: "^{year}$", timeout: 60}}
{lines}"""


def order_steps(count: int) -> str:
    """Lines MUX-ORDER-1..count, printed by future and utc in turn, each seen before the next."""
    steps = []
    for n in range(1, count + 1):
        name = "future" if n % 2 else "utc"
        steps.append(f'  - exec: {{persona: {name}, command: "echo MUX-ORDER-{n} > /dev/ttyS0",'
                     " timeout: 30}\n"
                     f"  - wait_serial: {{persona: {name}, match: MUX-ORDER-{n}, timeout: 30}}\n")
    return "".join(steps)


async def mux(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mux", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_two_clocks_set_clock_and_mux_logs_of_the_finished_replay(
        tmp_path: Path, debian_image: images.BuiltImage) -> None:
    year = time.gmtime().tm_year
    path = tmp_path / "clocks.yaml"
    path.write_text(SCENARIO.format(year=year, lines=order_steps(6)))
    result = await run_scenario(load_scenario(path), tmp_path / "artifacts", out=lambda line: None,
                                directory=tmp_path / "artifacts" / "clocks")
    assert result.passed, f"{result.error}\n" + "\n".join(result.output[-30:])
    assert "    utc: clock set to 2040-02-03T03:05:06Z" in result.output

    code, out, err = await mux("logs", "--from", str(tmp_path / "artifacts" / "clocks"))
    assert code == 0, err
    tagged = [(m[1], int(m[2])) for m in re.finditer(r"^(future|utc   ) \| .*MUX-ORDER-(\d)$", out, re.M)]
    assert tagged == [("future", 1), ("utc   ", 2), ("future", 3), ("utc   ", 4),
                      ("future", 5), ("utc   ", 6)]
    assert "\033[" not in out  # not a terminal: no colour

    code, out, err = await mux("logs", "--from", str(tmp_path / "artifacts" / "clocks"), "--json", "utc")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert {r["persona"] for r in records} == {"utc"}
    ordered = [r for r in records if "MUX-ORDER" in r["line"]]
    assert [r["line"][-1] for r in ordered] == ["2", "4", "6"]
    assert [r["t"] for r in ordered] == sorted(r["t"] for r in ordered)


async def read_until(stream: asyncio.StreamReader, pattern: str, seen: list[str], timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"the follower ended before {pattern!r}; it printed:\n" + "".join(seen[-20:])
            seen.append(line)
            if re.search(pattern, line):
                return line


async def test_logs_follow_a_running_controller_and_ctl_clock_sets_a_guest(
        tmp_path: Path, debian_image: images.BuiltImage, controller: Callable[..., Any]) -> None:
    socket = tmp_path / "control.sock"
    async with controller(PersonaConfig("deb", image="debian", agent=True, clock="2031-05-01T09:00:00"),
                          PersonaConfig("con", image="console")) as ctl:
        # waits: 600 for the agent, 4 ctl exec and 3 reads of at most 120 s, 60 for the
        # follower's end: 1500 s of the heavy tier's 1800
        await ctl.persona("deb").readiness.wait(AGENT_S)
        assert await ctl_exec(socket, "deb", "date", "-u", "+%Y") == (0, "2031\n", "")
        assert (await ctl_exec(socket, "deb", "sh", "-c", "echo MUX-FOLLOW-0 > /dev/ttyS0"))[0] == 0
        await ctl.persona("deb").serial.wait_for(re.compile("MUX-FOLLOW-0"), 120)
        follower = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mux", "logs", "-f", "--socket", str(socket),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert follower.stdout is not None and follower.stderr is not None
            seen: list[str] = []
            # A line from before it started (so it is connected), then one printed after.
            assert (await read_until(follower.stdout, "MUX-FOLLOW-0", seen, 120)).startswith("deb | ")
            assert (await ctl_exec(socket, "deb", "sh", "-c", "echo MUX-FOLLOW-1 > /dev/ttyS0"))[0] == 0
            assert (await read_until(follower.stdout, "MUX-FOLLOW-1", seen, 120)).startswith("deb | ")

            code, out, err = await mux("ctl", "--socket", str(socket), "clock", "deb", "2040-02-03T04:05:06Z")
            assert (code, out) == (0, "deb: clock set to 2040-02-03T04:05:06Z\n"), err
            assert await ctl_exec(socket, "deb", "date", "-u", "+%Y-%m-%d") == (0, "2040-02-03\n", "")

            code, _, err = await mux("ctl", "--socket", str(socket), "clock", "con", "host")
            assert code == 1 and "has no guest agent (set agent = true)" in err
            code, _, err = await mux("ctl", "--socket", str(socket), "clock", "deb", "yesterday")
            assert code == 1 and "'yesterday' is not an ISO 8601 time" in err
            code, _, err = await mux("ctl", "--socket", str(socket), "clock", "nobody", "host")
            assert code == 1 and "nobody" in err and "deb" in err
            code, _, err = await mux("logs", "--socket", str(socket), "nobody")
            assert code == 1 and "no persona 'nobody' (personas: deb, con)" in err
            code, out, err = await mux("logs", "--socket", str(socket), "deb")  # no -f: what is kept
            assert code == 0 and "MUX-FOLLOW-1" in out and "con | " not in out, err
        except BaseException:
            follower.kill()
            await follower.wait()
            raise
    # The controller stopped: the follower says so and exits 0.
    assert await asyncio.wait_for(follower.wait(), 60) == 0
    assert "the controller stopped" in (await follower.stderr.read()).decode()
