"""Typing and idle-MQTT figures for ``mux bench``.

- ``type_chars_per_s`` and ``type_lost_keys``, per keyboard (``ps2``, ``virtio``): 2000
  characters (lines of lower-case words after ``: ``, so the shell runs nothing) typed
  with the ``type`` step into a ``console`` persona at its keyboard's pace
  (:mod:`mux.input.pacing`); the time is the step's, the count the guest's own
  ``MUX-KEY`` lines as the controller read them from the serial port (what its waits
  see), compared edge by edge with what was sent. The text is typed into
  ``cat > /tmp/typed`` too, and ``type_shell_got_every_character`` says whether the
  file's MD5 (one short serial line) is the text's: a lost key would change it.
  ``type_serial_log_garbled_lines`` counts lines of QEMU's own serial log file that are
  no whole ``MUX`` line: when the controller reads the port late, QEMU 7.2 and 10.0 write
  a byte the socket refused to the file, then again when it retries (``chardev/char.c``),
  so ``MUX-KEY 30 1`` can appear there as ``MUX-KEYY 30 1`` although the controller got it
  once. The guest is first left to finish booting (3 s without serial output, its QEMU
  under half a core), and a virtio persona's driver to come up.
- ``mqtt_idle_screenshots_per_hour``: screenshots the MQTT bridge publishes for one idle
  ``console`` persona (its cursor blinking) at the default 5 s interval, counted over
  :data:`MQTT_IDLE_S` seconds after the first one and scaled to an hour (x 3600 /
  window). ``mqtt_idle_screenshots_taken`` says how many were taken meanwhile.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import random
import re
import time
from pathlib import Path
from typing import Any

from mux.app.controller import Controller
from mux.config import Config, MqttSection, MuxSection, PersonaConfig
from mux.config.schema import Keyboard
from mux.input import keymap
from mux.input.pacing import chord_edges
from mux.scenario.runner import StepRunner

READY_S = 300.0
TYPED_CHARS = 2000
MQTT_IDLE_S = 120.0
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
          "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
          "uniform", "victor", "whiskey", "xray", "yankee", "zulu")


def typing_text(length: int = TYPED_CHARS) -> str:
    """``length`` characters of ``: word word ...`` lines, 60 characters at most each; the
    words in a fixed pseudo-random order (a text that repeats would let the edge-by-edge
    comparison align one lost key with a whole period)."""
    pick = random.Random(17)
    lines: list[str] = []
    total = 0
    while total < length:
        line = ":"
        while len(line) < 52:
            line += " " + pick.choice(_WORDS)
        line = line[:max(1, length - total - 1)] + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines)[:length]


def _guest_keys(text: str) -> list[tuple[int, int]]:
    return [(int(c), int(v)) for c, v in re.findall(r"^MUX-KEY (\d+) ([01])\r?$", text, re.MULTILINE)]


def _garbled(text: str) -> int:
    """Serial log lines that are no whole MUX line (QEMU repeats a byte in its log file
    when the controller reads late; see the module docstring)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    whole = re.compile(r"MUX-KEY \d+ [012]|MUX-(?!KEY)[A-Z]+( .*)?")
    return sum(1 for line in lines if not whole.fullmatch(line))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def _settled(pid: int, log: Path, timeout: float = 120.0) -> None:
    """Until the guest has finished booting: 3 s without serial output, QEMU under half a core."""
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 3 and time.monotonic() < deadline:
        before, said = _cpu_s(pid), log.stat().st_size
        await asyncio.sleep(1.0)
        busy = _cpu_s(pid) - before >= 0.5 or log.stat().st_size != said
        quiet = 0 if busy else quiet + 1


async def type_into(keyboard: Keyboard, text: str) -> dict[str, Any]:
    """Type ``text`` into a fresh console persona with ``keyboard``; the figures."""
    config = Config(mux=MuxSection(accel="tcg"), personas=(PersonaConfig("typist", keyboard=keyboard),))
    async with Controller(config, progress=lambda m: None) as ctl:
        persona = ctl.persona("typist")
        await persona.serial.wait_for(re.compile("MUX-READY typist"), READY_S)
        await ctl.switch("typist", "bench")
        deadline = time.monotonic() + READY_S
        while await persona.keyboard() != keyboard and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert persona.pid is not None
        log = Path(persona.serial.path)
        await _settled(persona.pid, log)
        steps = StepRunner(ctl)
        await steps.step_type({"text": "cat > /tmp/typed\n"})  # the shell keeps what it gets
        await asyncio.sleep(1.0)
        start, mark = log.stat().st_size, persona.serial.end
        expected = [edge for chord in keymap.text_to_chords(text) for edge in chord_edges(chord)]
        t0 = time.monotonic()
        await steps.step_type({"text": text})
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + 60
        got: list[tuple[int, int]] = []
        while time.monotonic() < deadline:  # until every edge is in, or nothing more comes
            await asyncio.sleep(1.0)
            now = _guest_keys(persona.serial.since(mark))
            if len(now) >= len(expected) or (now == got and now):
                got = now
                break
            got = now
        await steps.press_keys("ctrl+d")
        digest = re.compile(r"^([0-9a-f]{32})  /tmp/typed", re.MULTILINE)
        await steps.step_type({"text": "md5sum /tmp/typed > /dev/ttyS0\n"})
        try:
            found: re.Match[str] | None = await persona.serial.wait_for(digest, 20, start=mark)
        except TimeoutError:
            found = None
        logged = log.read_bytes()[start:].decode("utf-8", "replace")
    received = found is not None and found.group(1) == hashlib.md5(text.encode()).hexdigest()
    matched = sum(block.size for block in difflib.SequenceMatcher(None, expected, got, autojunk=False)
                  .get_matching_blocks())
    return {"chars_per_s": round(len(text) / elapsed, 1), "lost": len(expected) - matched,
            "extra": len(got) - matched, "edges": len(expected), "garbled_lines": _garbled(logged),
            "shell_got_it_all": received}


async def bench_typing() -> dict[str, Any]:
    """``type_chars_per_s`` and ``type_lost_keys`` for ``ps2`` and ``virtio``."""
    text = typing_text()
    speed: dict[str, float] = {}
    lost: dict[str, int] = {}
    garbled: dict[str, int] = {}
    whole: dict[str, bool] = {}
    keyboards: tuple[Keyboard, ...] = ("ps2", "virtio")
    for keyboard in keyboards:
        print(f"bench: typing {len(text)} characters into a console persona ({keyboard} keyboard)")
        figures = await type_into(keyboard, text)
        speed[keyboard], lost[keyboard] = figures["chars_per_s"], figures["lost"] + figures["extra"]
        garbled[keyboard], whole[keyboard] = figures["garbled_lines"], figures["shell_got_it_all"]
    return {"type_chars_per_s": speed, "type_lost_keys": lost, "type_serial_log_garbled_lines": garbled,
            "type_shell_got_every_character": whole}


async def bench_mqtt_idle(port: int, seconds: float = MQTT_IDLE_S) -> dict[str, Any]:
    """Screenshots published for an idle console persona, per hour (see the module docstring)."""
    import aiomqtt

    from mux.frontends.mqtt import MqttBridge
    from mux.frontends.mqtt_discovery import topic_base

    mqtt = MqttSection(url=f"mqtt://127.0.0.1:{port}", node_id="bench-idle")
    config = Config(mux=MuxSection(accel="tcg"), personas=(PersonaConfig("idle"),), mqtt=mqtt)
    bridge = MqttBridge(mqtt)
    taken = 0
    async with Controller(config, frontends=[bridge], progress=lambda m: None) as ctl, \
            aiomqtt.Client("127.0.0.1", port) as panel:
        await ctl.persona("idle").serial.wait_for(re.compile("MUX-READY idle"), READY_S)
        real_screenshot = ctl.screenshot

        async def counted(name: str) -> Any:
            nonlocal taken
            taken += 1
            return await real_screenshot(name)

        ctl.screenshot = counted  # type: ignore[method-assign]
        await asyncio.sleep(10)  # the console has drawn its prompt
        await panel.subscribe(f"{topic_base(mqtt.node_id, mqtt.base_topic)}/persona/idle/screenshot", qos=0)
        messages = aiter(panel.messages)
        await asyncio.wait_for(anext(messages), 30)  # the retained one, or the first
        published, taken = 0, 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with_timeout = asyncio.wait_for(anext(messages), left)
            try:
                await with_timeout
                published += 1
            except TimeoutError:
                break
    return {"mqtt_idle_screenshots_per_hour": round(published * 3600 / seconds, 1),
            "mqtt_idle_screenshots_taken": taken, "mqtt_idle_window_s": seconds,
            "mqtt_idle_interval_s": mqtt.screenshot_interval_s}
