"""Personas with a QEMU guest agent, for real: the built-in ``debian`` image under TCG.

- booted with BIOS and with UEFI until the agent answers (``ready`` in ``ctl status``);
  ``mux ctl exec`` of ``uname -r`` prints the guest's kernel (the image's
  ``kernel_release``) and exits 0, ``exit 3`` exits 3, stderr reaches stderr; after a
  stop the persona is not ready;
- keys typed through the router on a ``debian`` persona are read back with an ``exec``
  step, and a second persona's key reporter saw none of them (and does see keys typed
  to it: the positive control).

The image is built in a fixture (cached; needs root and mmdebstrap, skipped otherwise).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mux import images
from mux.config import PersonaConfig
from mux.errors import ImageError
from mux.images.disk import find_ovmf
from mux.scenario.parse import load_scenario
from mux.scenario.report import write_junit, write_results
from mux.scenario.runner import run_scenario

pytestmark = pytest.mark.heavy
#: A debian guest's boot until its agent answers: 27-65 s with BIOS, 42-91 s with UEFI
#: measured under TCG on this shared 2-core machine (docs/guides/images.md); every wait
#: of a test here adds up to less than the heavy tier's 1800 s (each test says how).
AGENT_S = 600.0



def kernel_release(image: images.BuiltImage) -> str:
    assert image.disk is not None
    return str(json.loads((image.disk.parent / "image.json").read_text())["kernel_release"])


async def ctl_exec(socket: Path, persona: str, *command: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mux", "ctl", "--socket", str(socket), "exec", persona, "--timeout", "120",
        "--", *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_debian_boots_with_bios_and_uefi_until_the_agent_answers_and_ctl_exec_runs(
        tmp_path: Path, debian_image: images.BuiltImage, controller: Callable[..., Any]) -> None:
    try:
        find_ovmf()
    except ImageError as exc:
        pytest.skip(f"UEFI: {exc}")
    socket = tmp_path / "control.sock"
    async with controller(PersonaConfig("bios", image="debian", agent=True, firmware="bios"),
                          PersonaConfig("uefi", image="debian", agent=True, firmware="uefi")) as ctl:
        status = {p["name"]: p for p in ctl.status()["personas"]}
        assert status["bios"]["state"] == "running"
        # both boot at once: 600 s for both, then 5 ctl exec of at most 120 s, then a stop
        await asyncio.gather(*(ctl.persona(name).readiness.wait(AGENT_S) for name in ("bios", "uefi")))
        status = {p["name"]: p for p in ctl.status()["personas"]}
        assert status["bios"]["ready"] is True and status["uefi"]["ready"] is True
        release = kernel_release(debian_image)
        for name in ("bios", "uefi"):
            code, out, err = await ctl_exec(socket, name, "uname", "-r")
            assert (code, out) == (0, release + "\n"), err
        code, out, err = await ctl_exec(socket, "bios", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
        assert (code, out, err) == (3, "out\n", "err\n")
        code, _out, err = await ctl_exec(socket, "bios", "/no/such/program")
        assert code == 1 and "mux:" in err  # the agent refused: mux's own error, not the command's
        await ctl.stop("bios")  # asks the agent first (the order: tests/guest/test_ready.py)
        assert str(ctl.persona("bios").state) == "stopped" and ctl.persona("bios").pid is None
        assert not ctl.persona("bios").readiness.ready
        status = {p["name"]: p for p in ctl.status()["personas"]}
        assert status["bios"]["ready"] is False


#: Its waits add up to 600 + 300 + 120 + 120 + 60 + 60 = 1260 s of the heavy tier's 1800
#: (both guests boot at once: the console one is long up when debian's agent answers).
SCENARIO = """\
name: typed into debian
config:
  persona:
    - {name: deb, image: debian, agent: true}
    - {name: other, image: console, color: "3060c0"}
steps:
  - wait_ready: {persona: deb, timeout: 600}
  - wait_serial: {persona: deb, match: MUX-READY, timeout: 300}
  - wait_serial: {persona: other, match: MUX-READY, timeout: 120}
  - switch: deb
  - type: "echo typed > /tmp/t\\n"
  - exec: {command: "cat /tmp/t", match: "^typed$", timeout: 120}
  - exec: {command: [cat, /tmp/t], persona: deb}
  - assert_no_serial: {persona: other, match: MUX-KEY}
  - switch: other
  - type: "x"
  - wait_serial: {persona: other, match: "MUX-KEY 45 1", timeout: 60}
"""


async def test_keys_typed_on_debian_are_seen_by_exec_and_not_by_the_other_persona(
        tmp_path: Path, debian_image: images.BuiltImage, console_image: Any) -> None:
    path = tmp_path / "typed.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    result = await run_scenario(scenario, tmp_path / "artifacts", out=lambda line: None)
    assert result.passed, f"{result.error}\n" + "\n".join(result.output[-30:])
    execs = [s for s in result.steps if s.step.kind == "exec"]
    assert execs[0].message == "exit status 0\nstdout:\ntyped"
    assert "    deb$ typed" in result.output  # the progress lines: the JUnit system-out
    results = json.loads(write_results([result], tmp_path / "artifacts", 0).read_text())
    messages = [step["message"] for step in results["scenarios"][0]["steps"]]
    assert "exit status 0\nstdout:\ntyped" in messages
    junit = write_junit([result], tmp_path / "artifacts" / "junit.xml").read_text()
    assert "deb$ typed" in junit
