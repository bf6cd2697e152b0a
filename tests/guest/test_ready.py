"""Readiness (mux/guest/ready.py) and MUX-READY meaning "ready for keys".

Fast: a persona's readiness against a fake qemu-ga (ready when it answers, exec through
it, guest-shutdown asked first when stopping), the MUX-READY marker only after the
launch began, the scenario steps' checks and handlers.

Slow: twenty fresh boots of the ``console`` image, four at a time, each typed at the
moment it is ready; the guest then reads its own screen (``/dev/vcs1``, the console's
text) and the line with the typed command must begin with the prompt.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.app.controller import Controller
from mux.config import PersonaConfig
from mux.errors import PersonaError, ScenarioError
from mux.guest import process
from mux.guest.ready import Readiness
from mux.guest.serial import SerialLog
from mux.scenario.model import STEPS
from mux.scenario.parse import load_scenario
from mux.scenario.runner import StepRunner
from tests.conftest import make_config
from tests.guest.test_agent import FakeAgent, serving

# --- fast --------------------------------------------------------------------------------


@pytest.fixture
async def fake_agent(tmp_path: Path) -> AsyncIterator[tuple[FakeAgent, Path]]:
    async with serving(FakeAgent(deaf_syncs=2), tmp_path / "qga.sock") as served:
        yield served


@pytest.mark.pure
async def test_ready_when_the_agent_answers_then_exec_and_shutdown(
        tmp_path: Path, fake_agent: tuple[FakeAgent, Path]) -> None:
    agent, path = fake_agent
    log = SerialLog(tmp_path / "serial.log")
    readiness = Readiness("work", log, path, marker=True)  # a built-in image: the agent AND the marker
    heard: list[tuple[str, bool]] = []
    readiness.listeners.append(lambda name, ready: heard.append((name, ready)))
    assert not readiness.ready and not await readiness.shutdown()  # not ready: not asked
    readiness.begin(log.end, booted=True)
    for _ in range(300):  # the agent answers first (the desktop image: its X session comes later)
        if any(m.get("execute") == "guest-sync-delimited" for m in agent.received):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)
    assert agent.received and not readiness.ready and heard == []
    await log.append("MUX-READY work\n")
    await readiness.wait(30)
    assert readiness.ready and heard == [("work", True)]
    result = await readiness.exec(["uname", "-r"], timeout=10)
    assert (result.exitcode, result.stdout) == (3, b"6.1.0-test\n")
    assert agent.received[-1]["execute"] == "guest-exec-status"
    assert await readiness.shutdown()
    await asyncio.sleep(0.1)
    assert agent.received[-1] == {"execute": "guest-shutdown", "arguments": {"mode": "powerdown"}}
    await readiness.reset()
    assert not readiness.ready and heard[-1] == ("work", False)
    with pytest.raises(PersonaError, match="did not answer within"):
        await readiness.exec(["true"], timeout=0.2)
    log.close()


@pytest.mark.pure
async def test_without_an_agent_exec_says_so_and_the_marker_counts_only_after_the_launch(
        tmp_path: Path) -> None:
    log = SerialLog(tmp_path / "serial.log")
    await log.append("MUX-READY work\n")  # an earlier boot's
    readiness = Readiness("work", log, None, marker=True)
    readiness.begin(log.end, booted=True)
    await asyncio.sleep(0.2)
    assert not readiness.ready
    await log.append("booting\nMUX-READY work\n")
    await readiness.wait(5)
    assert readiness.ready and log.cursor == 0  # a scenario's wait_serial still sees it
    with pytest.raises(PersonaError, match="no guest agent"):
        await readiness.exec(["true"], timeout=1)
    await readiness.reset()
    resumed = Readiness("home", log, None, marker=True)
    resumed.begin(log.end, booted=False)  # a restored machine printed its MUX-READY long ago
    await resumed.wait(5)
    other = Readiness("disk", log, None, marker=False)
    other.begin(log.end, booted=True)
    await other.wait(5)
    await resumed.reset()
    await other.reset()
    log.close()


class FakeProcess:
    """A QEMU that exits when the agent's guest-shutdown was asked (or when killed)."""

    pid = 4242  # named in the stop's log lines

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.commands: list[str] = []

    @property
    def exited(self) -> bool:
        return self.gone.is_set()

    async def wait(self) -> int:
        await self.gone.wait()
        return 0

    def kill(self) -> None:
        self.commands.append("kill")
        self.gone.set()


@pytest.mark.pure
async def test_stopping_asks_the_agent_first_then_escalates() -> None:
    proc = FakeProcess()

    async def execute(command: str) -> None:
        proc.commands.append(command)

    async def ask_agent() -> bool:
        proc.commands.append("guest-shutdown")
        asyncio.get_running_loop().call_later(0.1, proc.gone.set)
        return True

    await process.shut_down(proc, execute, ask_agent)  # type: ignore[arg-type]
    assert proc.commands == ["guest-shutdown", "kill"]  # kill of a gone process does nothing

    deaf = FakeProcess()
    asked: list[str] = []

    async def no_agent() -> bool:
        asked.append("asked")
        return False

    async def quit_on(command: str) -> None:
        deaf.commands.append(command)
        if command == "quit":
            deaf.gone.set()

    await process.shut_down(deaf, quit_on, no_agent)  # type: ignore[arg-type]
    assert asked == ["asked"] and deaf.commands[:2] == ["system_powerdown", "quit"]


@pytest.mark.pure
def test_steps_wait_ready_and_exec_are_checked(tmp_path: Path) -> None:
    assert {"wait_ready", "exec"} <= set(STEPS)
    good = tmp_path / "good.yaml"
    good.write_text("name: g\nconfig:\n  persona:\n    - {name: work, agent: true}\nsteps:\n"
                    "  - wait_ready: work\n  - exec: uname -r\n"
                    "  - exec: {command: [cat, /tmp/t], persona: work, status: 1, match: '^typed$'}\n")
    steps = load_scenario(good).steps
    assert [s.args for s in steps] == [
        {"persona": "work", "timeout": 120},
        {"command": "uname -r", "persona": None, "timeout": 60, "status": 0, "match": None},
        {"command": ["cat", "/tmp/t"], "persona": "work", "timeout": 60, "status": 1, "match": "^typed$"}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nconfig:\n  persona:\n    - {name: work}\nsteps:\n"
                   "  - exec: {command: [], match: '('}\n  - exec: {command: [ls, 3]}\n"
                   "  - wait_ready: {persona: nobody}\n  - exec: {command: true, status: x}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    text = str(caught.value)
    assert "bad.yaml:6:" in text and "exec: command is a shell command line" in text
    assert "bad.yaml:7:" in text and "match is not a valid regex" in text
    assert "unknown persona 'nobody'" in text and "status must be int" in text
    assert "command must be str or list" in text


class FakeController:
    """Just what the guest steps use."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.active = "work"
        self.asked: list[tuple[str, list[str], float]] = []
        self.runtime_dir = Path("/nonexistent")

    async def exec(self, persona: str, argv: list[str], timeout: float) -> dict[str, Any]:
        self.asked.append((persona, argv, timeout))
        return self.result


@pytest.mark.pure
async def test_exec_step_runs_sh_c_checks_status_and_match_and_reports_output() -> None:
    ctl = FakeController({"exitcode": 0, "signal": None, "stdout": b"typed\n", "stderr": b"warn\n"})
    said: list[str] = []
    runner = StepRunner(ctl, say=said.append)  # type: ignore[arg-type]
    await runner.step_exec({"command": "cat /tmp/t", "persona": None, "timeout": 60, "status": 0,
                            "match": "^typed$"})
    assert ctl.asked[-1][:2] == ("work", ["/bin/sh", "-c", "cat /tmp/t"])
    assert runner.message == "exit status 0\nstdout:\ntyped\nstderr:\nwarn"
    assert "    work$ typed" in said
    with pytest.raises(Exception, match=r"does not match '\^other\$'"):
        await runner.step_exec({"command": ["cat", "/tmp/t"], "persona": "work", "timeout": 60,
                                "status": 0, "match": "^other$"})
    assert ctl.asked[-1][1] == ["cat", "/tmp/t"]
    ctl.result = {"exitcode": 3, "signal": None, "stdout": b"", "stderr": b""}
    with pytest.raises(Exception, match="exited with 3, expected 0"):
        await runner.step_exec({"command": "exit 3", "persona": None, "timeout": 60, "status": 0,
                                "match": None})
    await runner.step_exec({"command": "exit 3", "persona": None, "timeout": 60, "status": 3, "match": None})


@pytest.mark.pure
async def test_bench_agent_figures_are_null_with_a_reason_without_the_image(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mux.bench import agent

    monkeypatch.setattr(agent, "find_built", lambda name: None)
    figures = await agent.bench_agent()
    assert figures["debian_restore_s"] is None and figures["agent_exec_ms"] is None
    assert "not built" in figures["debian_agent_skipped"]


# --- slow: twenty fresh boots ------------------------------------------------------------

BOOTS = 20
AT_ONCE = 4
BOOT_READY_S = 180.0  # one of four console guests booting at once, TCG on a busy 2-core machine
TYPED = "echo ok"  # typed at the moment the guest is ready (no Enter)
ECHO_S = 90.0
#: A round of AT_ONCE boots: ready, the echo on the screen, the controller's start and stop.
ROUND_S = BOOT_READY_S + ECHO_S + 60


def _prompt_line(text: str) -> str | None:
    """The screen line with the shell's prompt (spaces dropped: OCR places them loosely)."""
    lines = [line.replace(" ", "") for line in text.splitlines() if ":/root" in line.replace(" ", "")]
    return lines[-1] if lines else None


async def _boot_and_type(tmp_path: Path, index: int, ocr: Callable[[Image.Image], Awaitable[str]]) -> str:
    """One fresh boot of a console persona, typed into as soon as it is ready; the
    prompt's line as the screen shows it once the typed text is echoed."""
    name = f"r{index}"
    config = make_config(tmp_path / name, PersonaConfig(name, image="console"))
    async with Controller(config, logs_dir=tmp_path / name, progress=lambda m: None) as ctl:
        persona = ctl.persona(name)
        await persona.readiness.wait(BOOT_READY_S)
        assert persona.serial.search(re.compile(r"MUX-READY")) is not None
        await StepRunner(ctl).step_type({"text": TYPED, "rate": None})
        line = None
        deadline = asyncio.get_running_loop().time() + ECHO_S
        while asyncio.get_running_loop().time() < deadline:
            screen = await persona.screendump(tmp_path / f"{name}.ppm")
            line = _prompt_line(await ocr(Image.open(screen).convert("RGB")))
            if line is not None and len(line.split(":/root", 1)[1]) >= 4:  # the typed text shows
                return line
            await asyncio.sleep(1)
        return f"the typed text never showed; last prompt line {line!r} ({screen})"


@pytest.mark.heavy
@pytest.mark.timeout(BOOTS // AT_ONCE * ROUND_S)  # the sum of its rounds' waits: 5 * 330 = 1650 s
async def test_twenty_boots_typed_text_follows_the_prompt(tmp_path: Path, console_image: Any) -> None:
    from mux.needles.ocr import OcrUnavailable, TextReader

    reader = TextReader()
    with ThreadPoolExecutor(1, thread_name_prefix="ocr") as one_thread:  # tesseract: one thread only

        async def ocr(picture: Image.Image) -> str:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(one_thread, reader.text, picture, (0, 0, 1024, 160))

        try:
            await ocr(Image.new("RGB", (64, 16)))
        except OcrUnavailable as exc:
            pytest.skip(f"OCR: {exc}")
        rows: list[str] = []
        for first in range(0, BOOTS, AT_ONCE):
            async with asyncio.TaskGroup() as group:
                boots = [group.create_task(_boot_and_type(tmp_path, i, ocr))
                         for i in range(first, first + AT_ONCE)]
            rows += [boot.result() for boot in boots]
    # Typed too early, the tty echoes the first key before the prompt: "er3:/root#echo".
    # OCR may misread the prompt's name ("610" for r10, "r?7" for r7, "r1i3" for r13), but
    # no name r0..r19 has an "e" in it: text before the prompt is an "e", and the whole
    # "echo" must follow the prompt.
    def typed_after_the_prompt(row: str) -> bool:
        name, prompt, rest = row.partition(":/root")
        return bool(prompt) and "e" not in name.lower() and "echo" in rest

    wrong = {index: row for index, row in enumerate(rows) if not typed_after_the_prompt(row)}
    assert not wrong, f"boots whose typed text does not follow the prompt: {wrong}"
    assert len(rows) == BOOTS


@pytest.mark.pure
async def test_ctl_exec_through_the_control_socket(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
                                                   ) -> None:
    from mux.errors import ControlError
    from mux.frontends import control

    class Api:
        def __init__(self) -> None:
            self.asked: list[tuple[str, list[str], float]] = []

        async def exec(self, persona: str, argv: list[str], timeout: float) -> dict[str, Any]:
            self.asked.append((persona, argv, timeout))
            if persona == "none":
                raise PersonaError("persona 'none' has no guest agent (set agent = true)")
            exited = argv[-1] == "exit 3"  # else: killed by signal 9
            return {"exitcode": 3 if exited else None, "signal": None if exited else 9,
                    "stdout": b"out\xff\n", "stderr": b"err\n"}

    api = Api()
    path = tmp_path / "control.sock"
    server = await control.serve_control(api, path)  # type: ignore[arg-type]
    try:
        code = await asyncio.to_thread(control.exec_in_guest, path, "work", ["--", "sh", "-c", "exit 3"], 5)
        assert code == 3 and api.asked[-1] == ("work", ["sh", "-c", "exit 3"], 5)
        out, err = capfdbinary.readouterr()
        assert (out, err) == (b"out\xff\n", b"err\n")  # any bytes, as the guest wrote them
        assert await asyncio.to_thread(control.exec_in_guest, path, "work", ["kill", "me"], 5) == 128 + 9
        with pytest.raises(ControlError, match="no guest agent"):
            await asyncio.to_thread(control.exec_in_guest, path, "none", ["true"], 5)
        await asyncio.to_thread(control.exec_in_guest, path, "work", ["--timeout", "7", "--", "exit 3"], 5)
        assert api.asked[-1] == ("work", ["exit 3"], 7.0)  # mux ctl exec PERSONA --timeout 7 -- ...
        with pytest.raises(ControlError, match="only --timeout SECONDS, not --bogus"):
            await asyncio.to_thread(control.exec_in_guest, path, "work", ["--bogus", "--", "true"], 5)
        with pytest.raises(ControlError, match="give the command after --"):
            await asyncio.to_thread(control.exec_in_guest, path, "work", ["--"], 5)
        reply = await asyncio.to_thread(control.request, path, {"cmd": "exec", "persona": "work", "argv": []})
        assert reply == {"ok": False, "error": "exec: argv is a non-empty list of strings"}
    finally:
        server.close()
