"""The steps that ask the guest itself, mixed into the runner: ``wait_ready``, ``exec`` and
``assert_attention``.

``wait_ready`` waits until the persona's guest is ready for work (:mod:`mux.guest.ready`:
its guest agent answers, or a built-in image printed ``MUX-READY`` once its prompt was
on the screen). ``exec`` runs a command in the guest through its QEMU guest agent (the
persona needs ``agent = true``): a string is a shell command line run by ``/bin/sh -c``,
a list a program and its arguments. The step fails unless the exit status is
``status`` (0) and, if given, ``match`` (a regex, multi-line) is found in its stdout.
Its exit status, stdout and stderr are the step's message in ``results.json`` and
progress lines in the JUnit ``system-out``, with their control characters made visible
(:func:`mux.guest.text.visible_lines`: a guest is untrusted), as are the serial lines in
``wait_ready``'s failure. A step whose ``persona`` is left out asks the active persona.
``assert_attention`` passes when ``persona`` has a pending request for
attention whose text ``match`` finds (``re.search``; default: any), or one arrives within
``timeout`` (:mod:`mux.app.attention`); its failure lists the requests seen.

``set_clock`` sets the guest's clock through its agent (``guest-set-time``) to ``time``:
ISO 8601, UTC unless it has an offset, or ``host`` for the host's time when the step
runs (:mod:`mux.guest.clock`).

``clipboard_set`` and ``assert_clipboard`` reach the CLIPBOARD of the guest's session
through its agent and the image's ``mux-clipboard`` (:mod:`mux.scenario.guest_clipboard`),
so a scenario can test copy and paste between personas (``press: scrolllock+c``...).
``assert_clipboard`` reads it until it is ``text`` (exactly) or ``match`` finds it, within
``timeout``. A choice made on purpose: the text read from the guest is never written
out. Its message, passed or failed, says whether it held and how many characters the
clipboard has ("differs (N characters)"), never what they are, so no clipboard text
reaches ``results.json``, JUnit or the progress beyond what the scenario's author wrote
in the step itself.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from mux.app.controller import Controller
from mux.errors import StepFailed
from mux.guest.clock import parse_guest_time, utc_text
from mux.guest.text import visible_lines
from mux.scenario import guest_clipboard

OUTPUT_CHARS = 4000  # of each stream, in messages (the rest is cut, the end kept)
CLIPBOARD_POLL_S = 0.25  # between reads of a guest's clipboard in assert_clipboard


class GuestSteps:
    """``step_*`` methods for the guest itself; the runner provides what is declared here."""

    ctl: Controller
    message: str
    say: Callable[[str], None]

    def timeout(self, seconds: float) -> float:
        raise NotImplementedError

    def _persona(self, a: dict[str, Any]) -> str:
        raise NotImplementedError

    async def step_wait_ready(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        persona = self.ctl.persona(name)
        timeout = self.timeout(a["timeout"])
        try:
            await persona.readiness.wait(timeout)
        except TimeoutError:
            what = "its guest agent did not answer" if persona.agent_socket else "no MUX-READY"
            raise StepFailed(f"{name} was not ready within {timeout:.0f}s ({what}; state {persona.state});"
                             f" last serial lines:\n{visible_lines(persona.serial.tail(10))}") from None

    async def step_exec(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        command = a["command"]
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(c) for c in command]
        result = await self.ctl.exec(name, argv, self.timeout(a["timeout"]))
        stdout = result["stdout"].decode(errors="replace")
        stderr = result["stderr"].decode(errors="replace")
        status = result["exitcode"] if result["exitcode"] is not None else 128 + int(result["signal"] or 0)
        report = exec_report(status, stdout, stderr)
        for line in report.splitlines():
            self.say(f"    {name}$ {line}")
        self.message = report
        if status != a["status"]:
            raise StepFailed(f"{command!r} on {name} exited with {status}, expected {a['status']}; {report}")
        if a["match"] is not None and not re.search(a["match"], stdout, re.MULTILINE):
            raise StepFailed(f"{command!r} on {name}: stdout does not match {a['match']!r}; {report}")

    async def step_set_clock(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        seconds = parse_guest_time(a["time"], time.time())
        await self.ctl.set_clock(name, seconds, self.timeout(a["timeout"]))
        self.message = f"{name}: clock set to {utc_text(seconds)}"
        self.say(f"    {self.message}")

    async def step_clipboard_set(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        await guest_clipboard.set_clipboard(self.ctl, name, a["text"], self.timeout(a["timeout"]))
        self.message = f"{name}: clipboard set ({len(a['text'])} characters)"

    async def step_assert_clipboard(self, a: dict[str, Any]) -> None:
        """Poll the guest's clipboard; see the module docstring for what a message may say."""
        name, timeout = self._persona(a), self.timeout(a["timeout"])
        expected, match = a["text"], a["match"]
        if (expected is None) == (match is None):  # the file's check says so first
            raise StepFailed("assert_clipboard: give text or match")
        wanted = f"the expected text ({len(expected)} characters)" if expected is not None \
            else f"a text matching {match!r}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            text = await guest_clipboard.read_clipboard(self.ctl, name, max(deadline - loop.time(), 1.0))
            held = text == expected if expected is not None else bool(re.search(match, text, re.MULTILINE))
            if held:
                self.message = f"{name}: the clipboard is {wanted}"
                return
            if loop.time() >= deadline:
                raise StepFailed(f"the clipboard of {name} differs from {wanted} after {timeout:.0f}s:"
                                 f" it has {len(text)} characters (not shown: clipboard text is not kept)")
            await asyncio.sleep(min(CLIPBOARD_POLL_S, max(deadline - loop.time(), 0.0)))

    async def step_assert_attention(self, a: dict[str, Any]) -> None:
        name, timeout = self.ctl.persona(a["persona"]).name, self.timeout(a["timeout"])
        try:
            found = await self.ctl.attention.wait_for(name, re.compile(a["match"]), timeout)
        except TimeoutError:
            raise StepFailed(f"no request for attention from {name} matching {a['match']!r} within"
                             f" {timeout:.0f}s; {self.ctl.attention.describe_seen()}") from None
        self.message = f"{name} asks for attention: {found.text!r}"


def exec_report(status: int, stdout: str, stderr: str) -> str:
    """A command's exit status and output as one message (long output cut, its end kept), the
    output's control characters made visible."""
    def cut(text: str) -> str:
        return text if len(text) <= OUTPUT_CHARS else f"[...{len(text) - OUTPUT_CHARS} chars cut]" \
            + text[-OUTPUT_CHARS:]
    parts = [f"exit status {status}"]
    for label, text in (("stdout", stdout), ("stderr", stderr)):
        if text:
            parts.append(f"{label}:\n{visible_lines(cut(text).rstrip(chr(10)))}")
    return "\n".join(parts)
