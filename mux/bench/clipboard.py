"""``clipboard_copy_ms`` for ``mux bench``: text copied in one persona's session until an
application in the other one could paste it.

Two ``desktop`` personas (the built-in image: X, spice-vdagent, QEMU's ``qemu-vdagent``
with ``clipboard = true``, the guest agent) under one controller, both sessions up
(``MUX-READY``) before the first sample. Each sample sets a
fresh text as the CLIPBOARD inside the active persona (``mux-clipboard set`` through its
agent: not timed), then times, through the controller as a user would do it: the keys
``scrolllock+c``, a switch to the other persona, ``scrolllock+v``, until
``mux-clipboard get`` inside the other persona prints that text. The next sample goes
the other way. A copy that took the text the persona had before (QEMU had not heard of
the new one yet: the copy's event says how many characters it took) is not a sample: the
guest is given a moment and the keys are pressed again.

``{p50, p99, n}`` in ms over :data:`SAMPLES`; ``null``, with ``clipboard_copy_skipped``
saying why, when the ``desktop`` image is not built (as root: ``mux images build desktop``).
The texts are the bench's own and are printed nowhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import statistics
import time
from pathlib import Path
from typing import Any

from mux.app.api import ClipboardChanged, Event
from mux.app.controller import Controller
from mux.config import Config, MuxSection, PersonaConfig
from mux.errors import ImageError, MuxError, PersonaError
from mux.images import find_built
from mux.input.events import EV_KEY, EV_SYN, SYN_REPORT, InputEvent
from mux.scenario.guest_clipboard import read_clipboard, set_clipboard
from mux.scenario.model import scenario_chord

SAMPLES = 20
NAMES = ("left", "right")
SESSION_S = 900.0  # two desktops booting under TCG on a busy machine, until their sessions answer
STEP_S = 60.0  # one copy, switch or paste; one read of a clipboard through the agent
RETRY_S = 0.5  # after a copy that took the old text
TRIES = 20  # copies of one sample's text before giving up
KEY_GAP_S = 0.01
SYN = InputEvent(EV_SYN, SYN_REPORT, 0)
READY = re.compile("MUX-READY")


def _quiet(message: str) -> None:
    pass


async def bench_clipboard(runtime_dir: Path | None = None) -> dict[str, Any]:
    """``{"clipboard_copy_ms": {"p50", "p99", "n"}}``, or null and ``clipboard_copy_skipped``.

    Raises:
        PersonaError: the desktops did not come up, or a copy and paste did not arrive.
    """
    try:
        image = find_built("desktop")
        reason = None if image is not None and image.disk is not None else \
            "the desktop image is not built (as root: mux images build desktop)"
    except ImageError as exc:
        reason = str(exc)
    if reason:
        print(f"bench: clipboard_copy_ms skipped: {reason}")
        return {"clipboard_copy_ms": None, "clipboard_copy_skipped": reason}
    mux = MuxSection(accel="tcg", keep_guests="never")
    if runtime_dir is not None:
        mux = dataclasses.replace(mux, runtime_dir=runtime_dir)
    personas = tuple(PersonaConfig(name, image="desktop", agent=True, clipboard=True, vga="virtio",
                                   memory_mb=1024) for name in NAMES)
    async with Controller(Config(mux=mux, personas=personas), progress=_quiet) as ctl:
        times = await measure(ctl, SAMPLES)
    cuts = statistics.quantiles(times, n=100)
    return {"clipboard_copy_ms": {"p50": round(statistics.median(times), 1), "p99": round(cuts[98], 1),
                                  "n": len(times)}}


async def measure(ctl: Controller, samples: int) -> list[float]:
    """Milliseconds of each of ``samples`` copies and pastes between ``ctl``'s first two
    personas (desktops with the clipboard), alternating; see the module docstring.

    Raises:
        PersonaError: a session did not answer, or a text did not arrive.
    """
    first, second = ctl.names[0], ctl.names[1]
    for name in (first, second):
        await _session_up(ctl, name)
    await ctl.switch(first, "bench")
    heard: asyncio.Queue[ClipboardChanged] = asyncio.Queue()

    def on_event(event: Event) -> None:
        if isinstance(event, ClipboardChanged):
            heard.put_nowait(event)

    unsubscribe = ctl.subscribe(on_event)
    times: list[float] = []
    try:
        for index in range(samples):
            source, target = (first, second) if index % 2 == 0 else (second, first)
            text = f"mux bench clipboard sample {index} " + "x" * (index + 1)  # a new length each time
            await set_clipboard(ctl, source, text, STEP_S)
            times.append(await _one(ctl, heard, source, target, text))
    finally:
        unsubscribe()
    return times


async def _one(ctl: Controller, heard: asyncio.Queue[ClipboardChanged], source: str, target: str,
               text: str) -> float:
    """One sample: keys, switch, keys, until ``target``'s session has ``text``; its ms."""
    for _ in range(TRIES):
        began = time.monotonic()
        await _press(ctl, "scrolllock+c")
        copied = await _next(heard, "copy")
        if copied.refused is None and copied.chars == len(text):
            break
        await asyncio.sleep(RETRY_S)  # QEMU had the old text still: not a sample
    else:
        raise PersonaError(f"bench: {source}'s new clipboard text never reached QEMU ({TRIES} copies)")
    await ctl.switch(target, "bench")
    await _press(ctl, "scrolllock+v")
    pasted = await _next(heard, "paste")
    if pasted.refused is not None:
        raise PersonaError(f"bench: the paste into {target} was {pasted.refused}")
    deadline = time.monotonic() + STEP_S
    while await read_clipboard(ctl, target, STEP_S) != text:
        if time.monotonic() > deadline:
            raise PersonaError(f"bench: the text pasted into {target} did not reach its session in"
                               f" {STEP_S:.0f} s")
        await asyncio.sleep(0.01)
    return (time.monotonic() - began) * 1000


async def _press(ctl: Controller, chord: str) -> None:
    """A chord through the controller's input, as the keyboard would send it."""
    codes = scenario_chord(chord)
    for code, value in [(c, 1) for c in codes] + [(c, 0) for c in reversed(codes)]:
        await ctl.input([InputEvent(EV_KEY, code, value), SYN])
        await asyncio.sleep(KEY_GAP_S)


async def _next(heard: asyncio.Queue[ClipboardChanged], action: str) -> ClipboardChanged:
    """The next clipboard event of ``action``. Raises PersonaError: none in time."""
    try:
        async with asyncio.timeout(STEP_S):
            while (event := await heard.get()).action != action:
                pass
    except TimeoutError:
        raise PersonaError(f"bench: the {action} keys made no clipboard {action} in {STEP_S:.0f} s") from None
    return event


async def _session_up(ctl: Controller, name: str) -> None:
    """Wait until ``name``'s session is up (``MUX-READY``: X, the window manager and
    spice-vdagent started; a paste before vdagent is connected never reaches the session)
    and answers ``mux-clipboard get``. Raises PersonaError."""
    deadline = time.monotonic() + SESSION_S
    try:
        await ctl.persona(name).serial.wait_for(READY, SESSION_S, start=0, move_cursor=False)
    except TimeoutError:
        raise PersonaError(f"bench: {name}'s desktop printed no MUX-READY in {SESSION_S:.0f} s") from None
    while True:
        try:
            await read_clipboard(ctl, name, SESSION_S)
            return
        except MuxError as exc:
            if time.monotonic() > deadline:
                raise PersonaError(f"bench: {name}'s desktop session did not answer in {SESSION_S:.0f} s:"
                                   f" {exc}") from exc
        await asyncio.sleep(1.0)
