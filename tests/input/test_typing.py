"""Typing: whole batches of key edges per QMP command, each sent once the keyboard has
room for it (or paced, where QEMU cannot say), no key lost.

The pure part (how text is cut into batches, the config key, the argv) is checked
directly; the slow part types into real `console` guests, one on each keyboard, and
compares the guest's own MUX-KEY lines with the edges sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import time
from pathlib import Path
from typing import Any

import pytest

from mux.config import PersonaConfig, load_config
from mux.errors import ConfigError, InputError, ScenarioError
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import VIRTIO_KEYBOARD, keyboard_in_use, qemu_argv
from mux.guest.keyboard import PS2_QUEUE_BYTES, ps2_room
from mux.input import keymap
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from mux.input.pacing import PACES, chord_edges, type_batches
from mux.scenario.parse import load_scenario
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S
from tests.documented import documented, documented_number

SYN = InputEvent(EV_SYN, 0, 0)
TEXT = ": The quick brown fox jumps over the lazy dog; 0123456789 QWERTY\n"


def first_chord(edges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The edges of the first character: until every key it pressed is up again."""
    held: set[int] = set()
    for index, (code, value) in enumerate(edges):
        (held.add if value else held.discard)(code)
        if not held:
            return list(edges[:index + 1])
    return list(edges)


def all_edges(text: str) -> list[tuple[int, int]]:
    return [edge for chord in keymap.text_to_chords(text) for edge in chord_edges(chord)]


def documented_room(keyboard: str, watched: bool) -> float:
    """What one command may carry, by the docs: PS/2 queue bytes, or virtio events (with
    the SYN); blind (QEMU cannot say how much room is left) at most half of the queue."""
    if keyboard == "ps2":
        queue = documented_number(r"PS/2 keyboard has a (\d+)-byte queue")
        if watched:
            return queue - documented_number(r"a command fills the queue but for (\w+) bytes")
    else:
        queue = documented_number(r"(\d+) event buffers")
        if watched:
            return queue
    assert documented(r"commands fill at most (\w+) of the queue") == "half"
    return queue / 2


@pytest.mark.pure
@pytest.mark.parametrize("keyboard", ["ps2", "virtio"])
@pytest.mark.parametrize("watched", [False, True])
def test_batches_carry_every_edge_in_order_and_fit_the_keyboard(keyboard: str, watched: bool) -> None:
    batches = type_batches(TEXT * 5, keyboard, watched=watched)
    assert [edge for b in batches for edge in b.edges] == all_edges(TEXT * 5)
    room = documented_room(keyboard, watched)
    blind_gap_s = documented_number(r"start at least (\d+) ms apart") / 1000
    pace = PACES[keyboard]
    capacity = pace.watched_capacity if watched else pace.capacity
    assert capacity <= room
    for batch in batches:
        used = sum(pace.cost(code) for code, _ in batch.edges) + (0 if pace.counts_bytes else 1)
        assert used == batch.cost <= room
        if not watched:
            assert batch.wait_s >= blind_gap_s
    assert sum(b.characters for b in batches) == len(TEXT * 5)
    # As few commands as fit: every batch but the last is too full for one more character.
    for batch, after in itertools.pairwise(batches):
        assert batch.cost + sum(pace.cost(code) for code, _ in first_chord(after.edges)) > capacity
    if keyboard == "ps2" and watched:  # watched, the queue may be filled further: fewer commands
        assert len(batches) < len(type_batches(TEXT * 5, keyboard, watched=False))


@pytest.mark.pure
def test_ps2_counts_bytes_extended_keys_cost_two() -> None:
    pace = PACES["ps2"]
    per_edge = r"\((\w+) byte per key edge, (\w+) for an extended key\)"  # the PS/2 queue, in the docs
    assert pace.cost(keymap.key_code("a")) == documented_number(per_edge, 1)
    assert pace.cost(keymap.key_code("rightctrl")) == documented_number(per_edge, 2)
    assert PACES["virtio"].cost(keymap.key_code("rightctrl")) == 1


@pytest.mark.pure
def test_a_rate_spreads_characters_out() -> None:
    batches = type_batches("abcdefghij", "virtio", rate=20)
    assert [b.characters for b in batches] == [1] * 10
    assert all(b.wait_s == pytest.approx(1 / 20) for b in batches)
    fast = type_batches("abcdefghij" * 10, "virtio", rate=200)
    assert {b.characters for b in fast} == {5}  # 200/s * 25 ms = 5 a command
    assert fast[0].wait_s == pytest.approx(5 / 200)


@pytest.mark.parametrize(("keyboard", "rate", "words"), [
    ("usb", None, "keyboard must be one of"), ("ps2", 0, "above 0"), ("ps2", -3, "above 0")])
@pytest.mark.pure
def test_bad_keyboard_or_rate_is_an_input_error(keyboard: str, rate: float | None, words: str) -> None:
    with pytest.raises(InputError, match=words):
        type_batches("a", keyboard, rate)


@pytest.mark.pure
def test_the_virtio_keyboard_is_on_the_command_line_only_when_asked(tmp_path: Path) -> None:
    tcg = AccelChoice("tcg", "test", proven=True)
    virtio = qemu_argv(PersonaConfig("v", keyboard="virtio"), tmp_path, tcg, None)
    plain = qemu_argv(PersonaConfig("p"), tmp_path, tcg, None)
    assert " ".join(VIRTIO_KEYBOARD) in " ".join(virtio)
    assert "virtio-keyboard-pci" not in " ".join(plain)


@pytest.mark.pure
def test_keys_go_to_virtio_only_once_its_driver_is_ready() -> None:
    ready = {"status": {"statuses": ["VIRTIO_CONFIG_S_ACKNOWLEDGE: x",
                                     "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready"]}}
    assert keyboard_in_use(ready) == "virtio"
    assert keyboard_in_use({"status": {"statuses": ["VIRTIO_CONFIG_S_ACKNOWLEDGE: x"]}}) == "ps2"
    assert keyboard_in_use("nonsense") == "ps2"


@pytest.mark.pure
def test_keyboard_config_key(tmp_path: Path) -> None:
    path = tmp_path / "mux.toml"
    path.write_text('[[persona]]\nname = "a"\nkeyboard = "virtio"\n[[persona]]\nname = "b"\n')
    config = load_config(path)
    assert config.persona("a").keyboard == "virtio" and config.persona("b").keyboard == "ps2"
    path.write_text('[[persona]]\nname = "a"\n\nkeyboard = "usb"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:4" in str(caught.value) and "ps2, virtio" in str(caught.value)


@pytest.mark.pure
def test_type_rate_must_be_above_zero_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nconfig:\n  persona: [{name: a}]\nsteps:\n  - type: {text: hi, rate: 40}\n"
                    "  - type: {text: hi, rate: 0}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert [(loc.line, "above 0" in message) for loc, message in caught.value.problems] == [(6, True)]


# --- real guests ------------------------------------------------------------------------


def guest_keys(text: str) -> list[tuple[int, int]]:
    return [(int(c), int(v)) for c, v in re.findall(r"MUX-KEY (\d+) (\d+)", text)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


async def settled(persona: Any, timeout: float = 120) -> None:
    """Wait until the guest has finished booting: for 3 s its serial port said nothing
    (modules load, and report uevents, after MUX-READY) and its QEMU used under half a core."""
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 3:
        before, said = cpu_seconds(persona.pid), Path(persona.serial.path).stat().st_size
        await asyncio.sleep(1.0)
        busy = cpu_seconds(persona.pid) - before >= 0.5 or Path(persona.serial.path).stat().st_size != said
        quiet = 0 if busy else quiet + 1
        assert time.monotonic() < deadline, f"{persona.name}'s guest stayed busy for {timeout} s"


@pytest.mark.guests
@pytest.mark.parametrize("keyboard", ["ps2", "virtio"])
async def test_typing_at_the_keyboards_pace_loses_no_key(controller: Any, keyboard: str) -> None:
    text = TEXT * 10  # 650 characters, 1460 key edges
    async with controller(PersonaConfig("typist", keyboard=keyboard)) as ctl:
        persona = ctl.persona("typist")
        await persona.serial.wait_for(re.compile("MUX-READY typist"), READY_S)
        await ctl.switch("typist", "test")
        if keyboard == "virtio":  # the guest loads its driver after MUX-READY
            deadline = time.monotonic() + READY_S
            while await persona.keyboard() != "virtio":
                assert time.monotonic() < deadline, "the virtio keyboard's driver never came up"
                await asyncio.sleep(0.2)
        await settled(persona)
        assert await persona.keyboard() == keyboard  # the keys do go to this keyboard
        if keyboard == "ps2":  # the host sees bytes wait in the queue, and the guest take them
            assert await ps2_room(persona) == PS2_QUEUE_BYTES
            shift = keymap.key_code("shift")
            taps = [InputEvent(EV_KEY, shift, value) for _ in range(7) for value in (1, 0)]
            seen_waiting = False
            for _ in range(100):  # the guest takes 14 bytes in a few ms: usually seen at once,
                # but under load the look can come late every time for a while
                await ctl.input([*taps, SYN])
                seen_waiting = await ps2_room(persona) == 0
                deadline = time.monotonic() + 10
                while await ps2_room(persona) != PS2_QUEUE_BYTES:
                    assert time.monotonic() < deadline, "the guest never took the queued bytes"
                    await asyncio.sleep(0.01)
                if seen_waiting:
                    break
            assert seen_waiting
        steps = StepRunner(ctl)
        await steps.step_type({"text": "cat > /tmp/typed\n"})
        before = len(guest_keys(persona.serial.text))
        await steps.step_type({"text": text})
        await steps.press_keys("ctrl+d")
        # What the shell got, as one short line: a lost key (or a lost release, which
        # autorepeats or keeps shift down) changes it. Asked for again if it does not
        # come (a loaded machine's guest may still be busy with the keys).
        found = None
        for _ in range(3):
            await steps.step_type({"text": "md5sum /tmp/typed > /dev/ttyS0\n"})
            with contextlib.suppress(TimeoutError):
                found = await persona.serial.wait_for(re.compile(r"([0-9a-f]{32})  /tmp/typed"), 20)
                break
        assert found is not None, persona.serial.text[-600:]
        assert found.group(1) == hashlib.md5(text.encode()).hexdigest()
        assert len(guest_keys(persona.serial.text)) - before >= len(all_edges(text)) // 2  # reported too


@pytest.mark.guests
async def test_ctrl_c_at_the_consoles_prompt_discards_the_line_and_keeps_the_shell(controller: Any) -> None:
    async with controller(PersonaConfig("shell")) as ctl:
        persona = ctl.persona("shell")
        await persona.serial.wait_for(re.compile("MUX-READY shell"), READY_S)
        await ctl.switch("shell", "test")
        steps = StepRunner(ctl)
        shell_pid = re.compile(r"SHELL-(\d+)-")
        await steps.step_type({"text": "echo SHELL-$$- > /dev/ttyS0\n"})
        before = (await persona.serial.wait_for(shell_pid, 30)).group(1)
        mark = persona.serial.end
        await steps.step_type({"text": "echo DISCARDED > /dev/ttyS0"})  # no Enter
        await steps.press_keys("ctrl+c")
        await steps.step_type({"text": "echo SHELL-$$- > /dev/ttyS0\n"})
        after = (await persona.serial.wait_for(shell_pid, 30)).group(1)
        assert after == before  # the same shell: Ctrl-C did not end it
        assert "DISCARDED" not in persona.serial.since(mark)  # the line was dropped, not run
