"""Guest text is shown with its control characters made visible (mux.guest.text): by ``mux
logs`` (unless ``--raw``; ``--json`` is escaped by JSON) and by ``mux replay``'s progress
lines and failure messages. No guests here: a tagged log written by hand, and the
runner's steps against small stand-ins of the controller and a real SerialLog."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mux.app.taglog import FILE_NAME
from mux.cli_logs import Printer
from mux.errors import StepFailed
from mux.guest.serial import SerialLog
from mux.guest.text import CONTROLS, visible, visible_lines
from mux.scenario.runner import StepRunner

C0 = [c for c in range(0x20) if c != 0x09]
C1 = list(range(0x80, 0xA0))
TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: writes the clipboard
UP_TWO = "\x1b[2A"  # cursor up two lines: rewrites what was shown
SHOWN = {TITLE: r"\x1b]0;pwned\x07", CLIPBOARD: r"\x1b]52;c;cm0gLXJmIH4K\x07", UP_TWO: r"\x1b[2A"}


def bad(text: str, allowed: str = "") -> list[str]:
    return [c for c in text if (ord(c) in C0 or ord(c) == 0x7F or ord(c) in C1) and c not in allowed]


@pytest.mark.pure
def test_every_control_class_is_shown_as_backslash_x_and_tab_and_backslash_are_kept() -> None:
    assert sorted(CONTROLS) == sorted([*C0, 0x7F, *C1])
    for code in [*C0, 0x7F, *C1]:
        assert visible(f"a{chr(code)}b") == f"a\\x{code:02x}b"
    assert visible("\x1b[31mred") == r"\x1b[31mred"
    assert visible("\x9b2A\x85") == r"\x9b2A\x85"  # C1: CSI and NEL
    assert visible("a\tb") == "a\tb"
    assert visible(r"C:\x1b\n") == r"C:\x1b\n"  # one-way: a backslash is not escaped
    assert visible("héllo ✓ \u00a0") == "héllo ✓ \u00a0"  # printable non-ASCII, from U+00A0 on, is kept


@pytest.mark.pure
def test_a_carriage_return_ending_a_line_goes_and_one_inside_it_is_shown() -> None:
    assert visible("hi\r") == "hi" and visible("hi\r\r") == "hi"
    assert visible("secret\rlies") == r"secret\x0dlies"
    assert visible("one\ntwo") == r"one\x0atwo"  # one line: a newline in it cannot start an untagged line
    assert visible_lines("one\r\ntwo\r\n\x1b[2Athree") == "one\ntwo\n\\x1b[2Athree"


@pytest.mark.pure
@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    assert not bad(visible(text), "\t")
    shown = visible_lines(text)
    assert not bad(shown, "\t\n") and shown.count("\n") == text.count("\n")


@pytest.mark.pure
@given(st.text().filter(lambda t: not bad(t, "\t")))
def test_text_without_controls_is_unchanged(text: str) -> None:
    assert visible(text) == text and visible_lines(text) == text


@pytest.mark.pure
def test_the_printer_escapes_the_line_not_its_own_colours_and_raw_keeps_it() -> None:
    record = {"t": 1.5, "persona": "work", "line": f"{TITLE}ok{UP_TWO}"}
    coloured = Printer(color=True, json_lines=False, timestamps=False, only=[])
    coloured.header({"personas": ["work"], "colors": {"work": "c03030"}})
    assert coloured.format(record) == "\033[38;2;192;48;48mwork |\033[0m \\x1b]0;pwned\\x07ok\\x1b[2A"
    raw = Printer(color=False, json_lines=False, timestamps=False, only=[], raw=True)
    assert raw.format(record) == f"work | {TITLE}ok{UP_TWO}"
    as_json = Printer(color=True, json_lines=True, timestamps=False, only=[])
    record["line"] = "héllo\x1b\x7f\x9b"
    assert as_json.format(record) == '{"t": 1.5, "persona": "work", "line": "héllo\\u001b\\u007f\\u009b"}'
    assert json.loads(as_json.format(record)) == record


def write_log(folder: Path, *lines: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = {"t": 0, "mux": "serial log", "personas": ["work"], "colors": {}}
    records = [header, *({"t": n, "persona": "work", "line": line} for n, line in enumerate(lines, 1))]
    (folder / FILE_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))


def mux_logs(*args: str) -> subprocess.CompletedProcess[str]:
    """``mux logs``; its output decoded as is (no newline translation: "\r" stays "\r")."""
    done = subprocess.run([sys.executable, "-m", "mux", "logs", *args], capture_output=True, timeout=60,
                          check=False, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.mark.services
def test_mux_logs_shows_a_guests_escape_sequences_escaped_and_raw_prints_them(tmp_path: Path) -> None:
    lines = [TITLE + "title", CLIPBOARD, f"real{UP_TWO}fake", "bell\x07 del\x7f csi\x9b1m tab\tend",
             "a\rb", r"back\slash"]
    write_log(tmp_path, *lines)
    result = mux_logs("--from", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == [
        r"work | \x1b]0;pwned\x07title", r"work | \x1b]52;c;cm0gLXJmIH4K\x07", r"work | real\x1b[2Afake",
        "work | bell\\x07 del\\x7f csi\\x9b1m tab\tend", r"work | a\x0db", r"work | back\slash", ""]
    assert not bad(result.stdout, "\t\n")
    raw = mux_logs("--from", str(tmp_path), "--raw")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == "".join(f"work | {line}\n" for line in lines)
    as_json = mux_logs("--from", str(tmp_path), "--json")
    assert not bad(as_json.stdout, "\n")  # json.dumps escapes them (ensure_ascii=False or not)
    assert [json.loads(line)["line"] for line in as_json.stdout.splitlines()] == lines
    both = mux_logs("--from", str(tmp_path), "--json", "--raw")
    assert both.returncode == 2 and "not allowed with" in both.stderr


class FakeController:
    """What the exec and wait_serial steps use of a Controller."""

    def __init__(self, result: dict[str, Any], serial: SerialLog) -> None:
        self.result, self.serial = result, serial
        self.active = "work"
        self.runtime_dir = Path("/nonexistent")

    async def exec(self, persona: str, argv: list[str], timeout: float) -> dict[str, Any]:
        return self.result

    def persona(self, name: str) -> Any:
        return self


@pytest.mark.pure
async def test_replay_progress_lines_and_messages_show_guest_text_escaped(tmp_path: Path) -> None:
    serial = SerialLog(tmp_path / "work.serial.log")
    out, err = f"{TITLE}ok\r\n{CLIPBOARD}\nreal{UP_TWO}fake\n".encode(), "\x9b2J\n".encode()
    ctl = FakeController({"exitcode": 1, "signal": None, "stdout": out, "stderr": err}, serial)
    said: list[str] = []
    runner = StepRunner(ctl, say=said.append)  # type: ignore[arg-type]
    with pytest.raises(StepFailed) as failed:
        await runner.step_exec({"command": "cat evil", "persona": None, "timeout": 60, "status": 0,
                                "match": None})
    assert said == ["    work$ exit status 1", "    work$ stdout:", r"    work$ \x1b]0;pwned\x07ok",
                    r"    work$ \x1b]52;c;cm0gLXJmIH4K\x07", r"    work$ real\x1b[2Afake",
                    "    work$ stderr:", r"    work$ \x9b2J"]
    assert not bad(runner.message, "\n") and not bad(str(failed.value), "\n")
    await serial.append(f"booting\r\n{TITLE}\n")
    with pytest.raises(StepFailed) as waited:
        await runner.step_wait_serial({"persona": "work", "match": "never", "timeout": 0.01})
    assert str(waited.value).endswith("last lines:\nbooting\n\\x1b]0;pwned\\x07")
    serial.close()
